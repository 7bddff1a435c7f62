"""rsatalker_ros: socially-aware 3D talking heads for ROS 2.

The core library (audio, face, social, motion, avatar, render, data, train, eval) imports no rclpy;
only ``rsatalker_ros.nodes`` and ``rsatalker_ros.ros`` need ROS 2.
"""

__version__ = "0.1.0"

# The generated interfaces (rsatalker_ros.msg) live in the colcon install tree. When this package is imported from a
# source checkout (tests, `pip install -e`), extend the package path so that `rsatalker_ros.msg` is still found there.
from pkgutil import extend_path as _extend_path

__path__ = _extend_path(__path__, __name__)
