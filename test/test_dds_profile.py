"""The graph's local DDS settings: loopback-only discovery and a shared-memory transport sized for images."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rsatalker_ros.ros.dds import local_dds_defaults

NS = {"d": "http://www.eprosima.com"}


def test_localhost_graph_gets_the_shipped_profile_and_nothing_leaves_loopback():
    env = local_dds_defaults({})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    root = ET.parse(Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])).getroot()
    transports = {t.findtext("d:transport_id", namespaces=NS): t
                  for t in root.iterfind(".//d:transport_descriptor", NS)}
    kinds = {t.findtext("d:type", namespaces=NS) for t in transports.values()}
    assert kinds == {"SHM", "UDPv4"}
    shm = next(t for t in transports.values() if t.findtext("d:type", namespaces=NS) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=NS)) >= 4 * 512 * 512 * 3     # several images in flight
    assert int(shm.findtext("d:maxMessageSize", namespaces=NS)) > 512 * 512 * 3
    udp = next(t for t in transports.values() if t.findtext("d:type", namespaces=NS) == "UDPv4")
    assert [a.text for a in udp.iterfind("d:interfaceWhiteList/d:address", NS)] == ["127.0.0.1"]
    part = root.find(".//d:participant", NS)
    assert part.get("is_default_profile") == "true"
    assert part.findtext("d:rtps/d:useBuiltinTransports", namespaces=NS) == "false"
    assert {t.text for t in part.iterfind("d:rtps/d:userTransports/d:transport_id", NS)} == set(transports)


def test_a_users_own_settings_are_kept():
    mine = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    assert local_dds_defaults(dict(mine))["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/my_profile.xml"
    robot = local_dds_defaults({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert robot["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and "FASTDDS_DEFAULT_PROFILES_FILE" not in robot
    cyclone = local_dds_defaults({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in cyclone


@pytest.mark.ros
def test_fast_dds_accepts_the_profile_and_processes_talk_through_it():
    """Two processes (the smoke talker and listener) under the shipped profile: Fast DDS parses it without an
    error (a broken file is reported as 'XMLPARSER Error' and silently falls back to the defaults) and the
    audio -> conversation -> motion chain runs across them."""
    import subprocess
    import sys

    from support.processes import REPO, child_env
    env = child_env()
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("config/fastdds_localhost.xml")
    out = subprocess.run([sys.executable, "-m", "rsatalker_ros.cli.smoke", "--seconds", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert "XMLPARSER" not in text and "Error parsing" not in text, text
    assert out.returncode == 0 and "SMOKE OK" in text, text
