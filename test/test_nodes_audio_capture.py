"""audio_capture reads a real PortAudio device (an ALSA file-plugin device set up in a temporary HOME) and
publishes its exact samples, stamped on the capture clock; a wrong device fails with the list of devices found."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from support.processes import child_env

pytestmark = pytest.mark.ros


def file_position(x, signal):
    """Where chunk x sits in signal (the subscriber may join after the first chunks went out)."""
    win = np.lib.stride_tricks.sliding_window_view(signal, x.size)
    err = np.abs(win - x[None]).max(axis=1)
    assert err.min() < 1.5 / 32768, "the chunk is not a stretch of the device's samples"
    return int(err.argmin())


@pytest.fixture
def alsa_home(tmp_path):
    """A capture device 'filemic' reading a raw stereo file: channel 0 a 300 Hz tone + noise, channel 1 a 700 Hz
    tone (mono readers get the interleaved samples as one channel)."""
    rng = np.random.default_rng(3)
    t = np.arange(16000 * 3) / 16000.0
    wave = 0.4 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(t.size)
    raw = (wave * 32767).astype("<i2")
    (tmp_path / "speech.raw").write_bytes(raw.tobytes())
    (tmp_path / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; '
        f'infile "{tmp_path / "speech.raw"}"; format "raw" }}\n')
    return tmp_path, raw.astype(np.float32) / 32768.0


def start_capture(home, device, participants="[alice]", channel_map="[-1]"):
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.audio_capture", "--ros-args", "-p", "source:=device",
           "-p", f"device:={device}", "-p", f"participants:={participants}", "-p", "device_sample_rate:=16000",
           "-p", "chunk_ms:=20.0", "-p", f"channel_map:={channel_map}"]
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
    base = file_position(audio_from_msg(frames[0])[:, 0], expected)
    for f in frames:
        x = audio_from_msg(f)[:, 0]
        assert f.sample_rate == 16000 and f.participant_id == "alice" and f.header.frame_id == "alice/mic"
        start = base + round((stamp_to_ns(f.header.stamp) - t0) * 16000 / 1e9)  # the capture clock places it
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


def test_channel_map_gives_each_participant_its_channel(alsa_home):
    """The same raw file read as 2 interleaved channels: channel_map [1, 0] gives alice channel 1, bob channel 0."""
    import rclpy

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import audio_from_msg, stamp_to_ns

    home, mono = alsa_home
    stereo = mono[: mono.size // 2 * 2].reshape(-1, 2)
    rclpy.init()
    node = rclpy.create_node("capture_tester_2ch")
    got = {"alice": [], "bob": []}
    for p in got:
        node.create_subscription(AudioFrame, f"/rsatalker/{p}/audio", got[p].append, qos.AUDIO)
    proc = start_capture(home, "filemic", "[alice, bob]", "[1, 0]")
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and min(len(v) for v in got.values()) < 10:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        node.destroy_node()
        rclpy.try_shutdown()
    assert min(len(v) for v in got.values()) >= 10, out[-2000:]
    for pid, ch in (("alice", 1), ("bob", 0)):
        t0 = stamp_to_ns(got[pid][0].header.stamp)
        base = file_position(audio_from_msg(got[pid][0])[:, 0], stereo[:, ch])
        for f in got[pid]:
            x = audio_from_msg(f)[:, 0]
            start = base + round((stamp_to_ns(f.header.stamp) - t0) * 16000 / 1e9)
            if start + x.size <= stereo.shape[0]:
                np.testing.assert_allclose(x, stereo[start:start + x.size, ch], atol=1.5 / 32768)


def test_wav_source_plays_in_real_time_and_stops_when_deactivated(tmp_path):
    import rclpy
    from rclpy.parameter import Parameter
    from scipy.io import wavfile

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.nodes.audio_capture import AudioCaptureNode
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import stamp_to_ns
    from support.ros_harness import Harness

    t = np.arange(44100) / 44100.0
    wavfile.write(tmp_path / "a.wav", 44100, (0.3 * np.sin(2 * np.pi * 200 * t) * 32767).astype(np.int16))
    wavfile.write(tmp_path / "b.wav", 22050, np.zeros(11025, np.int16))
    rclpy.init()
    node = AudioCaptureNode(parameter_overrides=[
        Parameter("source", value="wav"), Parameter("participants", value=["alice", "bob"]),
        Parameter("wav_files", value=[str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]),
        Parameter("loop", value=True), Parameter("chunk_ms", value=20.0)])
    h = Harness(node)
    try:
        frames = h.collect(AudioFrame, "/rsatalker/alice/audio", qos.AUDIO)
        assert node.autostart()
        t_wall = time.monotonic()
        assert h.spin_until(lambda: len(frames) >= 60, 20)
        elapsed = time.monotonic() - t_wall
        assert elapsed > 60 * 0.02 * 0.8, f"60 chunks of 20 ms arrived in {elapsed:.2f} s: faster than real time"
        st = [stamp_to_ns(f.header.stamp) for f in frames]
        assert set(np.diff(st)) <= {20_000_000}                         # contiguous 20 ms chunks
        assert all(f.sample_rate == 16000 and len(f.data) == 640 for f in frames)   # resampled from 44.1 kHz
        node.trigger_deactivate()
        h.spin(0.3)
        n = len(frames)
        h.spin(0.5)
        assert len(frames) == n                                          # inactive: nothing published
    finally:
        h.close()
        rclpy.try_shutdown()


def test_native_rate_is_resampled_to_16k(tmp_path):
    """A device opened at 48 kHz: the frames are 16 kHz and keep the signal (a 440 Hz tone)."""
    import rclpy

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import audio_from_msg

    t = np.arange(48000 * 3) / 48000.0
    (tmp_path / "tone48k.raw").write_bytes((0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes())
    (tmp_path / ".asoundrc").write_text(
        'pcm.filemic { type file; slave.pcm "null"; file "/dev/null"; '
        f'infile "{tmp_path / "tone48k.raw"}"; format "raw" }}\n')
    rclpy.init()
    node = rclpy.create_node("capture_tester_48k")
    frames = []
    node.create_subscription(AudioFrame, "/rsatalker/alice/audio", frames.append, qos.AUDIO)
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.audio_capture", "--ros-args", "-p", "source:=device",
           "-p", "device:=filemic", "-p", "participants:=[alice]", "-p", "device_sample_rate:=48000"]
    proc = subprocess.Popen(cmd, env=child_env(HOME=str(tmp_path)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and len(frames) < 30:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        node.destroy_node()
        rclpy.try_shutdown()
    assert len(frames) >= 30, out[-2000:]
    assert all(f.sample_rate == 16000 for f in frames)
    chunks = [audio_from_msg(f)[:, 0] for f in frames[5:25]]
    # the tone's frequency in each frame on its own (zero-padded spectrum), median over frames: a period the loaded
    # machine's ALSA null clock skipped between two frames cannot move it, a wrong resampling ratio would
    peaks = []
    for c in chunks:
        spectrum = np.abs(np.fft.rfft(c * np.hanning(c.size), n=1 << 16))
        peaks.append(spectrum.argmax() * 16000 / (1 << 16))
    peak_hz = float(np.median(peaks))
    x = np.concatenate(chunks)
    assert abs(peak_hz - 440) < 10 and 0.3 < np.abs(x).max() < 0.6, (peak_hz, peaks)


def test_quick_deactivate_activate_pairs_leave_one_player_and_a_deactivate_stops_start_up(tmp_path):
    """Issue #11 failure 4: five deactivate/activate pairs in a row (each activation waiting for subscribers before
    playing) left five players: 240 frames/s instead of 50, stamps going backwards. Now one player remains (stamps
    rise in 20 ms steps), deactivating joins it, and a deactivate during the start-up wait stops playback."""
    import threading

    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from scipy.io import wavfile

    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.nodes.audio_capture import AudioCaptureNode
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import stamp_to_ns
    from support.ros_harness import Harness

    OK = TransitionCallbackReturn.SUCCESS
    wavfile.write(tmp_path / "a.wav", 16000, (0.3 * np.sin(np.arange(16000) * 0.08) * 32767).astype(np.int16))
    rclpy.init()
    node = AudioCaptureNode(parameter_overrides=[
        Parameter("source", value="wav"), Parameter("participants", value=["alice"]),
        Parameter("wav_files", value=[str(tmp_path / "a.wav")]), Parameter("loop", value=True),
        Parameter("chunk_ms", value=20.0), Parameter("wait_for_subscribers", value=1),
        Parameter("wait_timeout_s", value=30.0)])
    h = Harness(node)

    def players():
        return [t for t in threading.enumerate() if t.name == "audio_capture_wav" and t.is_alive()]
    try:
        frames = h.collect(AudioFrame, "/rsatalker/alice/audio", qos.AUDIO)
        assert node.autostart()
        assert h.spin_until(lambda: frames, 20)
        for _ in range(5):
            assert node.trigger_deactivate() == OK and node.trigger_activate() == OK
        n0 = len(frames)
        assert h.spin_until(lambda: len(frames) >= n0 + 40, 20)
        steps = np.diff([stamp_to_ns(f.header.stamp) for f in frames[n0 + 5:]])    # after the restart settled
        assert (steps > 0).all() and (steps % 20_000_000 == 0).all(), sorted(set(steps.tolist()))[:8]
        assert len(players()) == 1
        node.trigger_deactivate()
        assert players() == []                                          # joined by the transition
        assert node.trigger_activate() == OK and node.trigger_deactivate() == OK   # during the wait
        n = len(frames)
        h.spin(0.6)                                                     # longer than the 0.3 s settle
        assert players() == [] and len(frames) == n
    finally:
        h.close()
        rclpy.try_shutdown()
