"""rsatalker.launch.py under ROS 2's real launch / launch_ros (what `ros2 launch` runs; here from the pure-Python
sources in ../shared/third_party, see scripts/env.sh): its six nodes start as processes, the relationship given as
launch arguments reaches them, /tf_static places the heads, and Ctrl-C stops every process cleanly.

Skipped where launch_ros is not importable (a user's clone without ../shared and without ROS 2), except under
RSATALKER_REQUIRE_ROS=1 when ../shared/third_party exists: then it must run."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from support.processes import REPO, interrupt, spawn

pytestmark = [pytest.mark.ros, pytest.mark.slow]
THIRD_PARTY = os.environ.get("RSATALKER_THIRD_PARTY", os.path.join(REPO, "..", "shared", "third_party"))

# Ctrl-C reaches launch through the signal wakeup fd its AsyncSafeSignalManager sets; Python's default SIGINT
# handler would also raise KeyboardInterrupt wherever the main thread is, inside asyncio's internals too, where it
# can leave a pending task destroyed ("Task was destroyed but it is pending!") and launch's exception handler then
# exits with code 1 (seen once in a clean-clone CI run). A no-op Python handler keeps the wakeup fd working.
LAUNCH_SCRIPT = """
import signal
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
path, args = sys.argv[1], dict(a.split(":=", 1) for a in sys.argv[2:])
ls = LaunchService()
ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(path), launch_arguments=args.items())]))
signal.signal(signal.SIGINT, lambda *_: None)
sys.exit(ls.run())
"""


class Output:
    """A process's output lines as they arrive (a reader thread); ``wait_for`` blocks until they show something."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self._arrived = proc, [], threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._arrived:
                self.lines.append(line)
                self._arrived.notify_all()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, predicate, what: str, timeout: float = 120.0):
        """Block until ``predicate(output so far)`` is truthy (bounded only to fail a hang); returns its value."""
        with self._arrived:
            self._arrived.wait_for(lambda: predicate(self.text()) or self.proc.poll() is not None, timeout)
            value = predicate(self.text())
        assert value, f"launch: no {what}:\n" + self.text()[-4000:]
        return value


@contextlib.contextmanager
def launched(path: str, *arguments: str):
    """``ros2 launch path arguments...`` (LAUNCH_SCRIPT) in its own session, SIGINT's default restored (``spawn``:
    inherited ignored, launch would never stop on Ctrl-C); yields (Popen, Output). Still running at the end: killed."""
    proc = spawn([sys.executable, "-c", LAUNCH_SCRIPT, path, *arguments], stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = Output(proc)
    try:
        yield proc, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.reader.join(timeout=5)


def launch_available() -> str | None:
    try:
        import composition_interfaces.srv  # noqa: F401
        import launch  # noqa: F401
        import launch_ros.actions  # noqa: F401
    except ImportError as err:
        return str(err)
    return None


@pytest.fixture
def real_launch():
    why = launch_available()
    if why is not None:
        if os.environ.get("RSATALKER_REQUIRE_ROS") == "1" and os.path.isdir(THIRD_PARTY):
            pytest.fail(f"{THIRD_PARTY} exists but launch_ros does not import ({why}): run scripts/bootstrap.sh "
                        "(it builds composition_interfaces) and source scripts/env.sh")
        pytest.skip(f"ROS 2 launch is not importable ({why})")


def small_config(tmp_path) -> str:
    """config/ with 64 x 64 images and no marker, so six processes start quickly on two cores."""
    cfg = tmp_path / "config"
    shutil.copytree(os.path.join(REPO, "config"), cfg)
    for exe, changes in (("renderer", {"width": 64, "height": 64}), ("motion", {"marker_rate_hz": 0.0})):
        doc = yaml.safe_load((cfg / f"{exe}.yaml").read_text())
        doc[exe]["ros__parameters"].update(changes)
        (cfg / f"{exe}.yaml").write_text(yaml.safe_dump(doc))
    return str(cfg)


def test_two_participant_launch_file_runs_the_graph(real_launch, tmp_path):
    with launched(os.path.join(REPO, "launch", "rsatalker.launch.py"), "source:=wav", "kinship:=blood",
                  "hierarchy:=unequal", "senior:=alice", "label:=mother-son",
                  f"config_dir:={small_config(tmp_path)}") as (proc, output):
        rc = run_the_graph_then_interrupt(proc, output)
    out = output.text()
    assert rc == 0, out[-4000:]
    assert "Traceback" not in out and "process has died" not in out, out[-4000:]
    assert out.count("process has finished cleanly") == 6, out[-4000:]


def run_the_graph_then_interrupt(proc, output) -> int:
    """Until every node reports, the relationship is published and /tf_static places both heads; then Ctrl-C.
    Returns launch's exit code."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from tf2_msgs.msg import TFMessage

    from rsatalker_ros.msg import ConversationState
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.tf import TF_STATIC_LISTENER_QOS
    lines = output.lines
    rclpy.init()
    node = rclpy.create_node("launch_tester")
    states, tf, spinning = [], {}, set()
    node.create_subscription(ConversationState, "/rsatalker/conversation", states.append, qos.STATE)
    node.create_subscription(DiagnosticArray, "/diagnostics",     # each node reports once it is up and spinning
                             lambda m: spinning.update(s.name.split(":")[0] for s in m.status), 50)
    node.create_subscription(TFMessage, "/tf_static", lambda m: tf.update({t.child_frame_id: t for t in m.transforms}),
                             TF_STATIC_LISTENER_QOS)
    expected = {"audio_capture", "conversation", "motion_alice", "motion_bob", "renderer_alice", "renderer_bob"}
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end and proc.poll() is None and not (
                expected <= spinning and states and states[-1].relation.label == "mother-son"
                and {"alice/head", "bob/head"} <= set(tf)):
            rclpy.spin_once(node, timeout_sec=0.1)
        assert expected <= spinning, f"reporting: {sorted(spinning)}\n" + "".join(lines)[-4000:]
        assert states and states[-1].relation.label == "mother-son", "".join(lines)[-4000:]
        assert states[-1].relation.senior_participant_id == "alice" and states[-1].relation.kinship == 0
        assert {"alice/head", "bob/head"} <= set(tf), sorted(tf)
        assert tf["alice/head"].header.frame_id == "world" and tf["alice/head"].transform.translation.y == 0.45
        return interrupt(proc, lines)      # Ctrl-C (launch escalates to SIGTERM / SIGKILL after 5 + 10 s a process)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


RESPAWN_LAUNCH = '''
import sys
from launch import LaunchDescription
from rsatalker_ros.ros.launch_respawn import respawning_node
from rsatalker_ros.ros.respawn import Respawn

# each stand-in node says "up <name> <pid>", then waits for a signal (Ctrl-C from launch: exit code 0) or, as
# "finisher", exits with code 0 at once
CHILD = (
    "import os, signal, sys; name = sys.argv[1]; print('up', name, os.getpid(), flush=True)\\n"
    "if name == 'finisher': raise SystemExit(0)\\n"
    "signal.signal(signal.SIGINT, lambda *a: sys.exit(0)); signal.pause()")


def generate_launch_description():
    return LaunchDescription([a for name in ("crasher", "finisher", "stopped") for a in respawning_node(
        Respawn(delay_s=0.2), executable=sys.executable, name=name, arguments=["-c", CHILD, name],
        output="screen")])
'''


def test_launch_respawns_a_node_that_died_but_not_one_that_ended(real_launch, tmp_path):
    """The launch files' respawn (rsatalker_ros.ros.launch_respawn) under the real launch: a node killed with
    SIGKILL comes back; one that exits with code 0, or that SIGTERM ends, does not (launch_ros's respawn=True would
    restart all three). Stand-in nodes (a few lines of Python, run as launch_ros Nodes) keep it light; the launch
    files build their nodes with the same respawning_node (test_launch_files checks that)."""
    path = tmp_path / "respawn.launch.py"
    path.write_text(RESPAWN_LAUNCH)

    def pids(name):
        """The pids the stand-in ``name`` has said "up" from, in order (launch may log a line again when its
        process exits)."""
        return lambda out: list(dict.fromkeys(int(x.split()[-1]) for x in out.splitlines() if f"up {name} " in x))

    with launched(str(path)) as (proc, output):
        first = output.wait_for(pids("crasher"), "first crasher")[0]
        stopped = output.wait_for(pids("stopped"), "'stopped' node")[0]
        output.wait_for(lambda out: "[finisher] ended (exit code 0); not respawned" in out, "finisher end")
        os.kill(stopped, signal.SIGTERM)
        output.wait_for(lambda out: "[stopped] ended (signal SIGTERM); not respawned" in out, "'stopped' end")
        os.kill(first, signal.SIGKILL)
        output.wait_for(lambda out: "[crasher] died (signal SIGKILL); respawning in 0.2 s" in out, "respawn message")
        second = output.wait_for(lambda out: pids("crasher")(out)[1:], "respawned crasher")[0]
        assert second != first
        rc = interrupt(proc, output.lines)
    out = output.text()
    assert rc == 0, out[-4000:]
    assert len(pids("crasher")(out)) == 2 and len(pids("finisher")(out)) == 1 and len(pids("stopped")(out)) == 1, out
    assert "nodes with the name" not in out, out         # the respawned node does not count as a second one
