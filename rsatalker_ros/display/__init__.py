"""Displays without rclpy: the kiosk page server (``kiosk.py`` + ``kiosk.html``) and the Foxglove bridge stage
(``foxglove_stage.py``). Their thin nodes are ``rsatalker_ros.nodes.kiosk`` and
``rsatalker_ros.nodes.foxglove_bridge``."""
