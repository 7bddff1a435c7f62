"""launch_testing on a real ROS 2 install: rsatalker.launch.py with the bundled demo conversation publishes
images of both avatars. Skipped where launch_testing is not installed (as on the PyPI-wheel machines, where
test_graph_*.py runs the same graph through rsatalker-bringup instead)."""

import os
import time
import unittest
from importlib.metadata import entry_points

import pytest

# launch_testing's sources alone (../shared/third_party) do not register its pytest plugin, without which this
# file's test would run without the launch description: only a real install (entry point pytest11) runs it
if not any(ep.value.startswith("launch_testing") for ep in entry_points(group="pytest11")):
    pytest.skip("launch_testing's pytest plugin is not installed (real ROS 2 only; test_launch_real.py runs the "
                "launch file with the launch sources)", allow_module_level=True)
launch_testing = pytest.importorskip("launch_testing", reason="launch_testing is not installed (real ROS 2 only)")
pytestmark = [pytest.mark.ros, pytest.mark.slow]

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_test_description():
    src = PythonLaunchDescriptionSource(os.path.join(HERE, "..", "launch", "rsatalker.launch.py"))
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(src, launch_arguments={"source": "wav", "kinship": "blood",
                                                                        "hierarchy": "unequal",
                                                                        "senior": "alice"}.items()),
        launch_testing.actions.ReadyToTest()])


class TestImagesArrive(unittest.TestCase):
    def test_both_avatars_publish_images(self):
        import rclpy
        from sensor_msgs.msg import Image
        rclpy.init()
        node = rclpy.create_node("launch_test_probe")
        got = {"alice": [], "bob": []}
        for p in got:
            node.create_subscription(Image, f"/rsatalker/{p}/image_raw", lambda m, p=p: got[p].append(m), 2)
        end = time.monotonic() + 60
        while time.monotonic() < end and not all(len(v) >= 10 for v in got.values()):
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
        rclpy.shutdown()
        for p, msgs in got.items():
            self.assertGreaterEqual(len(msgs), 10, f"{p}: too few images")
            self.assertEqual((msgs[-1].width, msgs[-1].height, msgs[-1].encoding), (512, 512, "rgb8"))
