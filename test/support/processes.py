"""Starting the project's own processes from tests: same interpreter, source tree first on the path, SIGINT's
default disposition."""

import contextlib
import os
import signal
import subprocess
import threading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def default_sigint() -> None:
    """(a ``preexec_fn``, run in the child before exec) SIGINT's default disposition."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(cmd: list, env: dict | None = None, **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd)`` for every process a test later stops with SIGINT (Ctrl-C): ``env`` default
    ``child_env()``; the child gets SIGINT's default disposition. A test run from a background job of a
    non-interactive shell (``nohup ... &``, as a CI runner may start it) inherits SIGINT ignored, and ROS 2's launch
    then leaves it ignored and never stops on SIGINT (a hung test); rclpy nodes install their own handler, but a
    process that is not yet (or never) an rclpy node would not stop either."""
    return subprocess.Popen(cmd, env=child_env() if env is None else env, preexec_fn=default_sigint, **popen_kwargs)


def interrupt(proc: subprocess.Popen, lines: list, timeout: float = 120.0) -> int:
    """Ctrl-C for a process ``spawn``ed with ``start_new_session=True``: SIGINT to its whole process group (as a
    terminal sends it); returns its exit code. Bounded only to fail a hang: after ``timeout`` s it is killed and an
    AssertionError carries the tail of ``lines`` (its output)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{proc.args[:3]} did not exit within {timeout:g} s of SIGINT:\n"
                             + "".join(lines)[-6000:]) from None


@contextlib.contextmanager
def node_process(cmd: list):
    """Start ``cmd`` (one of the project's processes, with ``spawn``); yields (Popen, the lines it has printed so
    far). A process still running at the end is killed; its output is read to the end."""
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
