"""rsatalker-record and rsatalker-replay as processes over real DDS: the recorder takes a latched topic published
before it started and a best-effort audio stream, byte for byte with the publishers' QoS; the player refuses
what it cannot publish faithfully and says why."""

import subprocess
import sys

import numpy as np
import pytest

from support.processes import child_env

pytestmark = pytest.mark.ros


def test_recorder_writes_what_was_published_with_its_qos(tmp_path):
    import rclpy
    from rclpy.qos import ReliabilityPolicy
    from rosbags.highlevel import AnyReader
    from std_msgs.msg import String

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import audio_to_msg
    out = tmp_path / "rec.mcap"
    rclpy.init()
    node = rclpy.create_node("record_test_talker")
    try:
        info = node.create_publisher(String, "/rsatalker/alice/audio_info", qos.LATCHED)
        info.publish(String(data='{"rate": 16000}'))               # before the recorder exists: latched
        audio = node.create_publisher(AudioFrame, "/rsatalker/alice/audio", qos.AUDIO)
        rec = subprocess.Popen([sys.executable, "-m", "rsatalker_ros.cli.record", "-o", str(out), "--quiet",
                                "/rsatalker/alice/*", "--duration", "1.0"], env=child_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        rng = np.random.default_rng(0)
        sent, t0 = {}, 1_700_000_000_000_000_000
        i = 0
        while rec.poll() is None and i < 3000:
            x = rng.uniform(-0.5, 0.5, 320).astype(np.float32)
            m = audio_to_msg(x, 16000, "alice", t0 + i * 20_000_000)
            sent[t0 + i * 20_000_000] = bytes(m.data)
            audio.publish(m)
            rclpy.spin_once(node, timeout_sec=0.02)
            i += 1
        output = rec.communicate(timeout=30)[0]
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    assert rec.returncode == 0, output
    assert "wrote" in output
    with AnyReader([out]) as reader:
        conns = {c.topic: c for c in reader.connections}
        got = [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages()]
    assert {"/rsatalker/alice/audio", "/rsatalker/alice/audio_info"} <= set(conns)
    offered = "reliable" if qos.AUDIO.reliability == ReliabilityPolicy.RELIABLE else "best_effort"
    assert conns["/rsatalker/alice/audio"].ext.offered_qos_profiles[0].reliability.name.lower() == offered
    assert conns["/rsatalker/alice/audio_info"].ext.offered_qos_profiles[0].durability.name.lower() == \
        "transient_local"
    assert [m.data for t, m in got if t == "/rsatalker/alice/audio_info"] == ['{"rate": 16000}']
    frames = [m for t, m in got if t == "/rsatalker/alice/audio"]
    assert len(frames) >= 10
    for m in frames:          # each recorded chunk is one that was sent, unchanged
        stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        assert bytes(m.data) == sent[stamp]


def test_replay_refuses_unknown_types_and_changed_definitions(tmp_path):
    from rsatalker_ros.bag.msgdef import message_definition
    from rsatalker_ros.bag.writer import BagWriter, qos_dict
    path = tmp_path / "odd.mcap"
    with BagWriter(str(path)) as bag:
        bag.add_topic("/unknown", "no_such_pkg/msg/Thing", [qos_dict()], definition="int32 x\n")
        bag.add_topic("/changed", "std_msgs/msg/Bool", [qos_dict()], definition="int64 data\n")
        bag.add_topic("/fine", "std_msgs/msg/String", [qos_dict()],
                      definition=message_definition("std_msgs/msg/String"))
        for i in range(3):
            bag.write("/unknown", b"\x00\x01\x00\x00\x01\x00\x00\x00", 1000 + i)
            bag.write("/changed", b"\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", 1000 + i)
            bag.write("/fine", b"\x00\x01\x00\x00\x03\x00\x00\x00ok\x00", 1000 + i)
            bag.write("/fine", b"\x00\x01\x00\x00\xff\xff\xff\x7fxx", 1000 + i)     # a corrupt string length
    r = subprocess.run([sys.executable, "-m", "rsatalker_ros.cli.replay", str(path), "--quiet"], env=child_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not replaying /unknown: message type no_such_pkg/msg/Thing is not installed" in r.stderr
    assert "not replaying /changed: its recorded definition of std_msgs/msg/Bool differs" in r.stderr
    assert "skipped a message on /fine that does not decode" in r.stderr
    assert "replayed 3 messages on 1 topics; skipped 3 undecodable; refused 2 topics" in r.stdout
