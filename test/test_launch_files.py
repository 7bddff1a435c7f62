"""The launch files (real ROS 2 installs) and rsatalker-bringup (here) start the same nodes with the same
parameters, both from rsatalker_ros/ros/graph.py and config/; and the config files document every parameter."""

import os
import re
import signal

import pytest
import yaml

from rsatalker_ros.cli import bringup
from rsatalker_ros.ros import graph
from support import fake_launch
from support.processes import REPO

LAUNCH = os.path.join(REPO, "launch")


def bringup_nodes(argv):
    ap = bringup.argparse.ArgumentParser()
    bringup.add_graph_arguments(ap)
    specs = bringup.specs_from_args(ap.parse_args(argv))
    return {s.name: (s.executable, s.parameters) for s in specs}


def launch_nodes(path, **arguments):
    out = {}
    for node in fake_launch.evaluate(path, **arguments):
        kw = node.kwargs
        assert kw["package"] == "rsatalker_ros"
        assert len(kw["parameters"]) == 1
        # a dead node comes back (issue #11, 5), through an OnProcessExit handler, not launch_ros's respawn=True
        # (that restarts a node after any exit)
        assert node.on_exit is not None and "respawn" not in kw
        out[kw["name"]] = (kw["executable"], kw["parameters"][0])
    return out


def test_two_participant_launch_matches_bringup():
    args = dict(kinship="blood", hierarchy="unequal", senior="bob", label="father-son", source="wav")
    from_launch = launch_nodes(os.path.join(LAUNCH, "rsatalker.launch.py"), **args)
    from_bringup = bringup_nodes(["--kinship", "blood", "--hierarchy", "unequal", "--senior", "bob",
                                  "--label", "father-son", "--source", "wav"])
    assert sorted(from_launch) == ["audio_capture", "conversation", "motion_alice", "motion_bob", "renderer_alice",
                                   "renderer_bob"]
    assert from_launch == from_bringup
    assert from_launch["motion_alice"][1]["relation_senior"] == "bob"
    assert from_launch["conversation"][1]["relation_kinship"] == "blood"
    assert from_launch["motion_bob"][1]["partner"] == "alice"
    # the two participants' frames (and renders) are staggered by half a frame
    assert (from_launch["motion_alice"][1]["frame_phase_ms"], from_launch["motion_bob"][1]["frame_phase_ms"]) == \
        (0.0, 20.0)
    # and without arguments: the defaults of config/graph.yaml on both sides
    assert launch_nodes(os.path.join(LAUNCH, "rsatalker.launch.py")) == bringup_nodes([])


def test_avatar_launch_matches_bringup_for_one_participant():
    from_launch = launch_nodes(os.path.join(LAUNCH, "avatar.launch.py"), participant="carol", kinship="non_blood",
                               hierarchy="unequal", senior="carol")
    from_bringup = bringup_nodes(["--participants", "carol", "--kinship", "non_blood", "--hierarchy", "unequal",
                                  "--senior", "carol"])
    assert sorted(from_launch) == ["audio_capture", "motion_carol", "renderer_carol"]
    assert from_launch == from_bringup
    assert from_launch["motion_carol"][1]["relation_source"] == "parameters"   # no conversation node to follow


def test_launch_respawns_a_node_only_when_it_died():
    """The launch files' OnProcessExit handler: after SIGKILL / a crash (exit code 1) a TimerAction starts a new Node
    with the same arguments (and its own handler) after graph.RESPAWN_DELAY_S, doubling; after exit code 0,
    SIGINT / SIGTERM, or during launch's shutdown, nothing. (test_launch_real runs it under the real launch.)"""
    import types

    nodes = {n.kwargs["name"]: n for n in fake_launch.evaluate(os.path.join(LAUNCH, "avatar.launch.py"))}
    running = types.SimpleNamespace(is_shutdown=False, locals=types.SimpleNamespace())
    exited = lambda code: types.SimpleNamespace(returncode=code, action=None)  # noqa: E731
    saved = fake_launch.install()
    try:
        motion = nodes["motion_alice"]
        for code in (0, -signal.SIGINT, -signal.SIGTERM):
            (log,) = motion.on_exit(exited(code), running)
            assert "not respawned" in log.msg
        assert motion.on_exit(exited(-signal.SIGKILL), types.SimpleNamespace(is_shutdown=True)) is None
        delays = []
        for code in (-signal.SIGKILL, 1, -signal.SIGSEGV):
            log, timer = motion.on_exit(exited(code), running)
            assert "respawning" in log.msg, log.msg
            delays.append(timer.period)
            handler, motion = timer.actions
            assert isinstance(motion, fake_launch.Node) and motion.kwargs == nodes["motion_alice"].kwargs
            assert handler.event_handler.target_action is motion and handler.event_handler.handle_once
        assert delays == [graph.RESPAWN_DELAY_S, 2 * graph.RESPAWN_DELAY_S, 4 * graph.RESPAWN_DELAY_S]
        assert "signal SIGSEGV" in log.msg
    finally:
        fake_launch.restore(saved)


def test_respawn_decision_and_messages():
    from rsatalker_ros.ros import respawn
    assert [respawn.died(c) for c in (0, -signal.SIGINT, -signal.SIGTERM)] == [False, False, False]
    assert [respawn.died(c) for c in (1, 3, -signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT)] == [True] * 5
    assert respawn.describe_exit(-signal.SIGKILL) == "signal SIGKILL" and respawn.describe_exit(3) == "exit code 3"
    with pytest.raises(TypeError, match="returncode"):
        respawn.died(None)                             # a process still running has no exit status


def test_graph_rejects_unknown_relationships_and_bad_ids():
    with pytest.raises(ValueError, match="kinship"):
        graph.describe(kinship="cousins")
    with pytest.raises(ValueError, match="senior"):
        graph.describe(hierarchy="unequal", senior="zed")
    with pytest.raises(ValueError, match="not a valid name"):
        graph.describe(participants=["Alice", "bob"])


def test_a_whole_number_override_of_a_float_parameter_is_a_float():
    # ROS 2 refuses an integer for a double parameter: "--set audio_capture.chunk_ms=40" stopped the node
    from rsatalker_ros.cli.bringup import parse_overrides
    specs = graph.describe(overrides=parse_overrides(["audio_capture.chunk_ms=40", "motion.max_lag_ms=0",
                                                      "renderer.width=64"]))
    by_name = {s.name: s.parameters for s in specs}
    assert by_name["audio_capture"]["chunk_ms"] == 40.0 and type(by_name["audio_capture"]["chunk_ms"]) is float
    assert type(by_name["motion_alice"]["max_lag_ms"]) is float and by_name["motion_alice"]["max_lag_ms"] == 0.0
    assert type(by_name["renderer_alice"]["width"]) is int            # an integer parameter stays one


def test_process_layouts_group_the_same_nodes():
    for mode, n_proc in (("separate", 6), ("per_participant", 3), ("single", 1)):
        specs = graph.describe(processes=mode)
        assert [s.name for s in specs] == [s.name for s in graph.describe()]
        assert len(graph.groups(specs)) == n_proc
        cmds = bringup.process_commands(specs, "/tmp/p.yaml")
        started = sorted(a.split(":")[1] for _, argv in cmds for a in argv if ":" in a and not a.startswith("/"))
        assert started == sorted(s.name for s in specs)


def test_every_config_parameter_is_commented_and_declared_by_its_node():
    from rsatalker_ros.stages import params
    from rsatalker_ros.stages.write_config import SECTIONS
    cfg = os.path.join(REPO, "config")
    for exe in graph.EXECUTABLES:
        text = open(os.path.join(cfg, f"{exe}.yaml")).read()
        lines = text.splitlines()
        declared = {s.name for s in params.specs(SECTIONS[exe][0]) + params.specs(params.LifecycleFields)}
        for name in yaml.safe_load(text)[exe]["ros__parameters"]:
            i = next(i for i, ln in enumerate(lines) if re.match(rf"\s+{name}:", ln))
            assert lines[i - 1].strip().startswith("#"), f"config/{exe}.yaml: parameter {name} has no comment"
            assert name in declared, f"{exe} does not declare parameter {name} that config/{exe}.yaml sets"
    text = open(os.path.join(cfg, "graph.yaml")).read()
    documented = set()
    for ln in text.splitlines():
        m = re.match(r"\s*(?:-\s*)?(\w+):", ln)
        if not m or ln.strip().startswith("#"):
            continue
        if "#" in ln:
            documented.add(m.group(1))
        assert m.group(1) in documented, f"config/graph.yaml: {m.group(1)} is not commented: {ln!r}"


def test_bringup_command_line_refuses_an_unknown_relationship_and_prints_the_plan():
    import subprocess
    import sys

    from support.processes import child_env
    bad = subprocess.run([sys.executable, "-m", "rsatalker_ros.cli.bringup", "--kinship", "cousins", "--print"],
                         capture_output=True, text=True, env=child_env(), timeout=60)
    assert bad.returncode == 2 and "unknown kinship 'cousins'" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "rsatalker_ros.cli.bringup", "--source", "wav", "--processes",
                         "per_participant", "--set", "renderer.width=256", "--print"],
                        capture_output=True, text=True, env=child_env(), timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("rsatalker_ros.nodes.container") == 3
    assert "motion:motion_alice renderer:renderer_alice" in ok.stdout and "width: 256" in ok.stdout


def test_bringup_respawns_a_dead_process_with_back_off_and_gives_up_when_it_keeps_dying(monkeypatch):
    """Issue #11 failure 5: one dead child stopped the whole graph (exit code 0). Now a dead process is started
    again after a doubling delay, a finished one (exit code 0) or one stopped with SIGTERM is left alone, and one
    that keeps dying makes supervise() give up (main() then stops the graph and exits with code 1). Real child
    processes stand in for the nodes: one that exits with code 3 at once, one that exits cleanly, one that SIGTERMs
    itself."""
    import subprocess
    import sys

    respawn = bringup.Respawn(max_restarts=3, delay_s=1.0, window_s=60.0)
    assert [respawn.after_death("m", t) for t in (0.0, 1.0, 3.0, 7.0)] == [1.0, 2.0, 4.0, None]
    assert bringup.Respawn(max_restarts=3).after_death("m", 100.0) == graph.RESPAWN_DELAY_S   # a fresh window

    g = bringup.Graph(graph.describe(participants=["alice"]), respawn=bringup.Respawn(max_restarts=2, delay_s=0.0))
    starts = []

    def start_group(grp):
        end = {"audio_capture": "raise SystemExit(0)", "renderer_alice": "import os; os.kill(os.getpid(), 15)",
               "motion_alice": "raise SystemExit(3)"}[grp]
        starts.append(grp)
        g.procs[grp] = subprocess.Popen([sys.executable, "-c", end])
        return g.procs[grp]
    monkeypatch.setattr(g, "start_group", start_group)
    try:
        for grp in ("audio_capture", "renderer_alice", "motion_alice"):
            start_group(grp)
        lines, now = [], 0.0
        while g.supervise(now, lines.append):
            for p in g.procs.values():
                p.wait()
            now += 1.0
            assert now < 20, lines
    finally:
        g.stop()
    assert starts.count("motion_alice") == 3, starts
    assert starts.count("audio_capture") == 1 and starts.count("renderer_alice") == 1, starts
    assert "[audio_capture] ended (exit code 0); not respawned" in lines
    assert "[renderer_alice] ended (signal SIGTERM); not respawned" in lines
    assert sum("[motion_alice] died (exit code 3); respawning" in line for line in lines) == 2
    assert "giving up" in lines[-1] and lines[-1].startswith("[motion_alice]")


def test_bringup_starts_the_next_warm_spare_only_after_the_respawned_group_has_started(monkeypatch):
    """A respawn that uses the warm spare does not start the next spare at once (its imports and warm-up would take
    CPU from the respawned group's start-up): supervise starts it SPARE_DELAY_S later, as it does the first one after
    the graph's start. Stand-ins for the spare and the processes (no child is started)."""
    import time

    class Proc:
        def poll(self):
            return None                                # running

    class Spare:
        def __init__(self, *args):
            self.became = []

        def ready(self):
            return True

        def usable(self):
            return True

        def become(self, argv, log):
            self.became.append(argv)
            return Proc()
    started = []
    monkeypatch.setattr(bringup.WarmSpare, "start", lambda *args: started.append(Spare()) or started[-1])
    g = bringup.Graph(graph.describe(participants=["alice"]), warm_spare=True)
    try:
        g.spare = first = Spare()                      # the spare started after the graph, ready
        assert g.start_group("motion_alice") is not None and first.became       # the group starts in the spare
        assert g.spare is None and not started                                  # and no new spare yet
        now = time.monotonic()
        assert g.supervise(now, print) and not started
        g.supervise(now + bringup.SPARE_DELAY_S + 1.0, print)
        assert len(started) == 1 and g.spare is started[0]
    finally:
        g.spare, g.procs = None, {}                    # (the stand-ins have nothing to stop)
        g.stop()
