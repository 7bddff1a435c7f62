"""Ctrl-C and SIGTERM end a running node process cleanly: exit code 0 and no traceback, while its threads are
publishing (a wav source feeding audio to a conversation node in one container process)."""

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from support.processes import spawn

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_process_with_exit_code_0_and_no_traceback(tmp_path, sig):
    import rclpy
    from scipy.io import wavfile

    from rsatalker_ros.msg import ConversationState
    from rsatalker_ros.ros import qos
    wavfile.write(tmp_path / "a.wav", 16000, (0.2 * np.random.default_rng(0).standard_normal(16000) * 32767)
                  .astype(np.int16))
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.container", "audio_capture:capture_sig",
           "conversation:conversation_sig", "--ros-args",
           "-p", "source:=wav", "-p", f"wav_files:=[{tmp_path / 'a.wav'}]", "-p", "participants:=[alice]",
           "-p", "loop:=true", "-p", "vad_backend:=energy", "-p", "diagnostics_period_s:=0.2"]
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    rclpy.init()
    node = rclpy.create_node("shutdown_tester")
    states = []
    node.create_subscription(ConversationState, "/rsatalker/conversation", states.append, qos.STATE)
    try:
        end = time.monotonic() + 60           # audio flowing through both nodes: the signal lands while they work
        while time.monotonic() < end and len(states) < 10 and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        assert len(states) >= 10, "".join(lines)[-3000:]
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)           # bounded only to fail a hang (a loaded machine is slow)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    out = "".join(lines)
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out and "RCLError" not in out, out[-3000:]
