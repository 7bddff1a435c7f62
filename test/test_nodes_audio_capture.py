"""audio_capture reads a real PortAudio device (an ALSA file-plugin device set up in a temporary HOME) and
publishes its exact samples, stamped on the capture clock; a wrong device fails with the list of devices found."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from support.processes import child_env

pytestmark = pytest.mark.ros


@pytest.fixture
def alsa_home(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(16000 * 3) / 16000.0
    wave = 0.4 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(t.size)
    raw = (wave * 32767).astype("<i2")
    (tmp_path / "speech.raw").write_bytes(raw.tobytes())
    (tmp_path / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; '
        f'infile "{tmp_path / "speech.raw"}"; format "raw" }}\n')
    return tmp_path, raw.astype(np.float32) / 32768.0


def start_capture(home, device):
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.audio_capture", "--ros-args", "-p", "source:=device",
           "-p", f"device:={device}", "-p", "participants:=[alice]", "-p", "device_sample_rate:=16000",
           "-p", "chunk_ms:=20.0"]
    return subprocess.Popen(cmd, env=child_env(HOME=str(home)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_device_samples_arrive_exactly_with_capture_stamps(alsa_home):
    import rclpy
    from std_msgs.msg import String

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import audio_from_msg, stamp_to_ns

    home, expected = alsa_home
    rclpy.init()
    node = rclpy.create_node("capture_tester")
    frames, infos = [], []
    node.create_subscription(AudioFrame, "/rsatalker/alice/audio", frames.append, qos.AUDIO)
    node.create_subscription(String, "/rsatalker/alice/audio_info", infos.append, qos.LATCHED)
    proc = start_capture(home, "filemic")
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and (len(frames) < 20 or not infos):
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        node.destroy_node()
        rclpy.try_shutdown()
    assert infos and len(frames) >= 20, f"got {len(frames)} frames, {len(infos)} infos; node output:\n{out[-2000:]}"
    info = json.loads(infos[0].data)
    assert info["sample_rate"] == 16000 and info["device"].startswith("filemic") and info["channels"] == 1
    t0 = stamp_to_ns(frames[0].header.stamp)
    for f in frames:
        x = audio_from_msg(f)[:, 0]
        assert f.sample_rate == 16000 and f.participant_id == "alice" and f.header.frame_id == "alice/mic"
        start = round((stamp_to_ns(f.header.stamp) - t0) * 16000 / 1e9)   # the capture clock places the chunk
        if start + x.size <= expected.size:
            np.testing.assert_allclose(x, expected[start:start + x.size], atol=1.5 / 32768)
    stamps = [stamp_to_ns(f.header.stamp) for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_wrong_device_fails_listing_the_devices_found(alsa_home):
    home, _ = alsa_home
    proc = start_capture(home, "no_such_microphone")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1
    assert "no_such_microphone" in out and "input devices found" in out and "filemic" in out
