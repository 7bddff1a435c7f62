"""A separate process that echoes every rsatalker_ros message type: roundtrip/<Type> -> roundtrip/<Type>/echo."""

import os
import sys

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ros_messages import MESSAGE_TYPES  # noqa: E402
from spin_process import spin_until_shutdown  # noqa: E402


def main():
    rclpy.init()
    node = Node("roundtrip_echo")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    keep = []
    for name, msg_type in MESSAGE_TYPES.items():
        pub = node.create_publisher(msg_type, f"roundtrip/{name}/echo", qos)
        keep.append(node.create_subscription(msg_type, f"roundtrip/{name}", pub.publish, qos))
    print("echo ready", flush=True)
    spin_until_shutdown(node)


if __name__ == "__main__":
    main()
