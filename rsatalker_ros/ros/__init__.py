"""ROS-side helpers: message conversion (convert), QoS profiles (qos), topic names (topics), the graph description
shared by the launch files and rsatalker-bringup (graph), and the pure logic the nodes wrap, testable without ROS
(turn_taking, stream_align, latest, audio_sources). qos, convert and probe import rclpy / the generated messages."""
