"""DDS settings for a graph on one machine (no rclpy): loopback-only discovery, and Fast DDS's shared-memory
transport sized for images (``config/fastdds_localhost.xml``: a 512 x 512 image reaches a subscriber in ~3 ms
instead of ~13 ms over fragmented UDP). Call before ``rclpy.init`` and for the environment of child processes.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from rsatalker_ros.ros.graph import default_config_dir

PROFILE = "fastdds_localhost.xml"


def local_dds_defaults(env: MutableMapping | None = None) -> MutableMapping:
    """Fill in, never overwrite: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and, when that is the range and the RMW is
    Fast DDS (the default) and no Fast DDS profile file is set, FASTDDS_DEFAULT_PROFILES_FILE = the shipped
    profile. ``env``: os.environ (the default) or a child process's environment dict. Returns ``env``."""
    env = os.environ if env is None else env
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    fast = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps")
    own = env.get("FASTDDS_DEFAULT_PROFILES_FILE") or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    if env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and fast and not own:
        try:
            path = default_config_dir() / PROFILE
        except Exception:  # noqa: BLE001 - no config/ found (an unusual install): Fast DDS defaults still work
            return env
        if path.is_file():
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return env
