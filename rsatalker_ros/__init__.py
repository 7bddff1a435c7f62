"""rsatalker_ros: socially-aware 3D talking heads for ROS 2.

The core library (audio, face, social, motion, avatar, render, data, train, eval) imports no rclpy;
only ``rsatalker_ros.nodes`` and ``rsatalker_ros.ros`` need ROS 2.
"""

__version__ = "0.1.0"
