"""Shared test setup: DDS stays on loopback, each test run gets its own ROS domain, ROS tests need the build."""

import os
import random

# Before anything imports rclpy: keep DDS traffic on this machine and away from other runs on it.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
from rsatalker_ros.ros.dds import local_dds_defaults  # noqa: E402  (the graph's own DDS profile, as in bringup)
local_dds_defaults()

import pytest  # noqa: E402


def _ros_missing_reason() -> str | None:
    try:
        import rclpy  # noqa: F401
        import rsatalker_ros.msg  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the machine
        return f"ROS 2 or the built interfaces are not importable ({err}); run scripts/bootstrap.sh and source scripts/env.sh"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _ros_missing_reason()
    if reason is None:
        return
    if os.environ.get("RSATALKER_REQUIRE_ROS") == "1":
        raise pytest.UsageError(reason + " (RSATALKER_REQUIRE_ROS=1: ROS tests may not be skipped)")
    for item in items:
        if "ros" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
