"""Every rsatalker_ros message survives a round trip through a second process over real DDS, all fields intact."""

import os
import subprocess
import sys
import time

import pytest

from support.processes import child_env

pytestmark = pytest.mark.ros
HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def ros_pair():
    import rclpy
    from rclpy.node import Node

    echo = subprocess.Popen([sys.executable, os.path.join(HERE, "support", "echo_node.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env())
    assert echo.stdout.readline().strip() == "echo ready", "the echo process did not start"
    rclpy.init()
    node = Node("roundtrip_tester")
    yield node
    node.destroy_node()
    rclpy.try_shutdown()
    echo.terminate()
    try:                                   # (bounded for a hang only: on a loaded machine it can take seconds)
        echo.wait(timeout=60)
    except subprocess.TimeoutExpired:
        echo.kill()
        echo.wait()


@pytest.mark.parametrize("name", ["AudioFrame", "SocialRelation", "ConversationState", "FlameParams",
                                  "SocialMotion", "FaceMesh", "FaceTopology"])
def test_message_round_trips_between_processes(ros_pair, name):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from support.ros_messages import MESSAGE_TYPES, example, to_plain

    node = ros_pair
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    sent = example(name, seed=len(name))
    received = []
    sub = node.create_subscription(MESSAGE_TYPES[name], f"roundtrip/{name}/echo", received.append, qos)
    pub = node.create_publisher(MESSAGE_TYPES[name], f"roundtrip/{name}", qos)
    deadline = time.monotonic() + 30.0
    next_send = 0.0
    while not received and time.monotonic() < deadline:   # resend until the echo process has discovered us
        if time.monotonic() >= next_send:
            pub.publish(sent)
            next_send = time.monotonic() + 0.2
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_subscription(sub)
    node.destroy_publisher(pub)
    assert received, f"no {name} came back from the echo process within 30 s"
    assert to_plain(received[0]) == to_plain(sent)
    assert received[0] == sent
