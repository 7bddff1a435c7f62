"""rsatalker_ros.ros.spin.run: a stop request (Ctrl-C) ends the process even while a callback outlives it, as a
first numba kernel load inside an audio callback did (a KeyboardInterrupt raised in llvmlite's ctypes callbacks is
printed and swallowed; SIGTERM only shuts the context down again): the process then waited for launch's SIGKILL.
Now the stop watchdog says what did not finish and ends the process (exit code 0: it was asked to stop)."""

import signal
import subprocess
import sys

import pytest

from support.processes import child_env, spawn

pytestmark = pytest.mark.ros

BUSY_NODE = """
import signal
import time
from rclpy.node import Node
from rsatalker_ros.ros.spin import run

# Ctrl-C reaches Python as nothing more than this line (rclpy chains to the handler it finds), as a
# KeyboardInterrupt swallowed by a ctypes callback did; rclpy still shuts the context down
signal.signal(signal.SIGINT, lambda *_: print("interrupt swallowed", flush=True))


class Busy(Node):
    def __init__(self):
        super().__init__("busy_callback")
        self.create_timer(0.01, self.work)

    def work(self):
        print("busy", flush=True)
        while True:                      # a callback that never returns
            time.sleep(0.05)


run([Busy])
"""


def interrupt_when_running(script: str, first_line: str):
    """Start ``script`` (stop limit 0.5 s), wait for its first line, Ctrl-C it; -> (returncode, stdout, stderr)."""
    proc = spawn([sys.executable, "-c", script], env=child_env(RSATALKER_STOP_LIMIT_S="0.5"),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == first_line, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)     # bounded only to fail a hang (before: no end at all)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_a_callback_that_outlives_ctrl_c_does_not_keep_the_process_alive():
    returncode, out, err = interrupt_when_running(BUSY_NODE, "busy")
    assert "interrupt swallowed" in out              # the situation the watchdog is for
    assert returncode == 0, err
    assert "[ERROR] [busy_callback]: still running 0.5 s after the stop request" in err, err
    assert "a callback of the executor (spin) did not finish" in err, err
    assert "in work" in err, err                     # every thread's stack, the busy callback's among them


GIL_HOLDING_TEARDOWN = """
import ctypes
from rclpy.node import Node
from rsatalker_ros.ros.spin import run


class StuckInC(Node):
    def __init__(self):
        super().__init__("stuck_in_c")
        self.create_timer(0.01, self.ready)

    def ready(self):
        print("spinning", flush=True)

    def shutdown(self):
        # a C call that keeps the interpreter lock (PyDLL does not release it): no Python thread can run
        ctypes.PyDLL(None).sleep(600)


run([StuckInC])
"""


def test_a_teardown_blocked_in_c_with_the_interpreter_lock_still_ends_the_process():
    returncode, _, err = interrupt_when_running(GIL_HOLDING_TEARDOWN, "spinning")   # (without the backstop: 600 s)
    assert returncode == 1, err                      # faulthandler's exit: not a clean stop, and said so
    assert "Timeout" in err and "in shutdown" in err, err   # every thread's stack, the blocked teardown among them
