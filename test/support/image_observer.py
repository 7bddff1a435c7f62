"""A separate process that watches one participant's images (a display on the kiosk side of a network link):
prints ``IMG <receipt time ns> <header stamp ns>`` per image, both on the system clock (the ROS clock here).

    python test/support/image_observer.py alice
"""

import os
import sys
import time

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from rsatalker_ros.ros import qos, topics

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spin_process import spin_until_shutdown  # noqa: E402


def main():
    pid = sys.argv[1]
    rclpy.init()
    node = Node(f"image_observer_{pid}")

    def on_image(msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        print(f"IMG {time.time_ns()} {stamp}", flush=True)

    node.create_subscription(Image, topics.participant(pid, "image_raw"), on_image, qos.FRAMES)
    print("observer ready", flush=True)
    spin_until_shutdown(node)


if __name__ == "__main__":
    main()
