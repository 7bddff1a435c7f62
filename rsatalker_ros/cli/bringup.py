"""rsatalker-bringup: start the rsatalker_ros graph as separate processes (what `ros2 launch rsatalker_ros
rsatalker.launch.py` starts on a real ROS 2 install; both read rsatalker_ros/ros/graph.py and config/).

    rsatalker-bringup                                        # microphone, participants/relationship from config/
    rsatalker-bringup --source wav --kinship blood --hierarchy unequal --senior alice --label mother-son
    rsatalker-bringup --processes single                     # the whole graph in one process (less memory)

Runs until Ctrl-C (or --seconds), then stops every process. A process that dies (non-zero exit code, or a signal
other than SIGINT / SIGTERM: rsatalker_ros.ros.respawn, as the launch files) is started again after
RESPAWN_DELAY_S, doubled for each further death within a minute; after --respawn-max deaths within a minute the
graph is stopped and the exit code is 1. A process that exits with code 0 (a finished wav) or is stopped with
SIGINT / SIGTERM is not restarted. A respawned group starts in a warm spare (rsatalker_ros.ros.warm_spare: a
process, started 30 s after the graph and 30 s after a respawn used the last one, so that it never competes with
their start-up, that has already imported torch, numba, rclpy and the nodes and warmed up), so it skips most of its
start-up; --no-warm-spare saves that process's memory. The renderer processes run at config/graph.yaml's
renderer_nice (rsatalker_ros.ros.priority: capture, conversation and motion go first). DDS stays on this machine unless
ROS_AUTOMATIC_DISCOVERY_RANGE is set otherwise (SUBNET on a robot network).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rsatalker_ros.files import parse_yaml
from rsatalker_ros.ros import graph
from rsatalker_ros.ros.dds import local_dds_defaults
from rsatalker_ros.ros.priority import lower_priority
from rsatalker_ros.ros.respawn import Respawn, describe_exit, died
from rsatalker_ros.ros.warm_spare import WarmSpare


def add_graph_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--participants", nargs="+", help="participant ids (default: config/graph.yaml)")
    ap.add_argument("--kinship", help="blood or non_blood")
    ap.add_argument("--hierarchy", help="equal or unequal")
    ap.add_argument("--senior", help="senior participant id (unequal)")
    ap.add_argument("--label", help="relationship label, e.g. mother-son")
    ap.add_argument("--source", choices=["device", "wav"], help="audio source")
    ap.add_argument("--wav", nargs="+", dest="wav_files", help="wav file per participant (source wav)")
    ap.add_argument("--device", help="PortAudio input device (name, part of it, or index)")
    ap.add_argument("--loop", action="store_true", default=None, help="loop the wav files")
    ap.add_argument("--processes", choices=graph.PROCESS_MODES, help="process layout (default: config/graph.yaml)")
    ap.add_argument("--set", nargs="+", default=[], metavar="NODE.PARAM=VALUE",
                    help="parameter overrides, e.g. renderer.width=256 motion_alice.checkpoint=/x.safetensors "
                         "(NODE is a node name or an executable; VALUE is YAML)")
    ap.add_argument("--config-dir", help="folder with graph.yaml and the node parameter files")


def parse_overrides(items) -> dict:
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, param = key.partition(".")
        if not sep or not dot or not node or not param:
            raise ValueError(f"override {item!r}: expected NODE.PARAM=VALUE")
        out.setdefault(node, {})[param] = parse_yaml(value, f"--set {key}")
    return out


def render_overrides(pids, size: int, checkpoint: str = "", avatars=None) -> dict:
    """Per-node parameter overrides the demo and the graph benchmark share: image size [px], motion checkpoint
    ("" = the shipped one) and one avatar file per participant (None = the shipped ones)."""
    overrides = {"renderer": {"width": size, "height": size}}
    if checkpoint:
        overrides["motion"] = {"checkpoint": checkpoint}
    for pid, av in zip(pids, avatars or []):
        overrides[f"renderer_{pid}"] = {"avatar": av}
    return overrides


def specs_from_args(args) -> list[graph.NodeSpec]:
    return graph.describe(participants=args.participants, kinship=args.kinship, hierarchy=args.hierarchy,
                          senior=args.senior, label=args.label, source=args.source, wav_files=args.wav_files,
                          device=args.device, loop=args.loop, processes=args.processes,
                          overrides=parse_overrides(args.set), config_dir=args.config_dir)


def process_commands(specs, params_file: str) -> list[tuple[str, list[str]]]:
    """[(group, argv)] : one process per group, every process reading the one parameter file."""
    cmds = []
    for grp, members in graph.groups(specs).items():
        argv = [sys.executable, "-m", "rsatalker_ros.nodes.container"]
        argv += [f"{s.executable}:{s.name}" for s in members]
        argv += ["--ros-args", "--params-file", params_file]
        cmds.append((grp, argv))
    return cmds


SPARE_DELAY_S = 30.0    # the warm spare starts this long after the graph, or after a respawn used the last one (not
                        # competing with their start-up)


class Graph:
    """The running graph: ``start()``, ``alive()``, ``pids()``, ``supervise()``, ``stop()``; usable as a context
    manager."""

    def __init__(self, specs, log_dir: str | None = None, env: dict | None = None, respawn: Respawn | None = None,
                 warm_spare: bool = False):
        self.specs = specs
        self.warm_spare = warm_spare                   # keep a pre-imported process for respawns
        self.spare: WarmSpare | None = None
        self._spare_due = float("inf")                 # monotonic time at which supervise starts the next spare
        self.respawn = respawn or Respawn()
        self.finished: set = set()                     # groups that ended without dying (not respawned)
        self._due: dict = {}                           # group -> monotonic time of its respawn
        self.tmp = tempfile.TemporaryDirectory(prefix="rsatalker_graph_")
        self.params_file = os.path.join(self.tmp.name, "graph_params.yaml")
        with open(self.params_file, "w") as f:
            yaml.safe_dump(graph.params_file_dict(specs), f, sort_keys=False)
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        local_dds_defaults(self.env)
        self.env["PYTHONUNBUFFERED"] = "1"
        root = str(graph.PACKAGE_DIR.parent)
        if (Path(root) / "rsatalker_ros").is_dir():
            self.env["PYTHONPATH"] = root + (os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else "")
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs = []

    def start_group(self, grp: str, warm: bool = True) -> subprocess.Popen:
        """Start process group ``grp``: in the warm spare when there is one and ``warm`` (then ``supervise`` starts
        a new spare for the next time SPARE_DELAY_S later, once this group's start-up is over), else as a new
        process."""
        argv = dict(process_commands(self.specs, self.params_file))[grp]
        log = None
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            log = os.path.join(self.log_dir, f"{grp}.log")
        p = None
        if warm and self.spare is not None and (self.spare.ready() or not self.spare.usable()):
            if self.spare.usable():                    # (one still warming up would be slower than a cold start)
                try:
                    p = self.spare.become(argv, log)
                except OSError:                        # the spare died just now: start the group cold
                    p = None
            self.spare = None
            self._spare_due = time.monotonic() + SPARE_DELAY_S    # a fresh one for the next respawn
        if p is None:
            out = open(log, "a") if log else None
            if out:
                self._logs.append(out)
            p = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                 start_new_session=True)
        nice = graph.group_nice(graph.groups(self.specs)[grp])
        if nice:                                       # the renderers: elastic, after capture and motion
            why = lower_priority(p.pid, nice)
            if why:
                print(f"[{grp}] runs at normal CPU priority ({why})", file=sys.stderr, flush=True)
        self.procs[grp] = p
        return p

    def audio_group(self) -> str:
        """The process group that runs audio_capture (the graph's clock source)."""
        return next((s.group or s.name) for s in self.specs if s.executable == "audio_capture")

    def start(self, skip=()) -> "Graph":
        """Start every process group except those in ``skip`` (e.g. the audio group, to start it last once the
        consumers are up: ``start(skip=[g.audio_group()])`` ... ``start_group(g.audio_group())``)."""
        for grp, _ in process_commands(self.specs, self.params_file):
            if grp not in skip:
                self.start_group(grp, warm=False)
        self._spare_due = time.monotonic() + SPARE_DELAY_S
        return self

    def start_spare(self) -> WarmSpare:
        """Start the warm spare now (``supervise`` does it SPARE_DELAY_S after ``start``: its imports and warm-up
        would otherwise take CPU from the nodes starting up)."""
        if self.spare is None:
            self.spare = WarmSpare.start(self.env, self.tmp.name)
        return self.spare

    def alive(self) -> dict[str, bool]:
        return {g: p.poll() is None for g, p in self.procs.items()}

    def pids(self) -> list[int]:
        """The running processes of the graph (the warm spare included)."""
        spare = [self.spare.proc] if self.spare is not None else []
        return [p.pid for p in list(self.procs.values()) + spare if p.poll() is None]

    def supervise(self, now: float | None = None, say=print) -> bool:
        """Respawn dead processes when due (call it every ~0.2 s); False once one died too often (given up)."""
        now = time.monotonic() if now is None else now
        if self.warm_spare and self.spare is None and now >= self._spare_due:
            self.start_spare()
        for grp, p in list(self.procs.items()):
            if p.poll() is None or grp in self._due or grp in self.finished:
                continue
            how = describe_exit(p.returncode)
            if not died(p.returncode):                 # exit code 0, or SIGINT / SIGTERM: asked to stop
                self.finished.add(grp)
                say(f"[{grp}] ended ({how}); not respawned")
                continue
            delay = self.respawn.after_death(grp, now)
            if delay is None:
                say(f"[{grp}] died ({how}) {len(self.respawn.deaths[grp])} times within "
                    f"{self.respawn.window_s:g} s; giving up")
                return False
            say(f"[{grp}] died ({how}); respawning in {delay:.1f} s")
            self._due[grp] = now + delay
        for grp, t in list(self._due.items()):
            if now >= t:
                del self._due[grp]
                say(f"[{grp}] respawned (pid {self.start_group(grp).pid})")
        return True

    def stop_group(self, grp: str, sig=signal.SIGINT, timeout: float = 10.0) -> None:
        p = self.procs.get(grp)
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def stop(self) -> None:
        if self.spare is not None:
            self.spare.stop()
            self.spare = None
        for grp in reversed(list(self.procs)):
            p = self.procs[grp]
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10.0
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for f in self._logs:
            f.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_graph_arguments(ap)
    ap.add_argument("--seconds", type=float, default=0.0, help="stop after this long [s]; 0 = until Ctrl-C")
    ap.add_argument("--print", action="store_true", help="print the processes and parameters, start nothing")
    ap.add_argument("--respawn-max", type=int, default=Respawn.max_restarts,
                    help="give up (stop the graph, exit code 1) when one process dies more often within a minute")
    ap.add_argument("--no-warm-spare", dest="warm_spare", action="store_false",
                    help="no pre-imported spare process for respawns (saves its memory; respawns take longer)")
    args = ap.parse_args(argv)
    try:
        specs = specs_from_args(args)
    except ValueError as err:
        ap.error(str(err))
    g = Graph(specs, respawn=Respawn(max_restarts=args.respawn_max), warm_spare=args.warm_spare)
    if args.print:
        for grp, cmd in process_commands(specs, g.params_file):
            print(f"[{grp}] {' '.join(cmd)}")
        print(yaml.safe_dump(graph.params_file_dict(specs), sort_keys=False))
        g.tmp.cleanup()
        return
    print(f"starting {len(g.specs)} nodes in {len(graph.groups(specs))} processes "
          f"(ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}); Ctrl-C stops them", flush=True)
    g.start()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    gave_up = False
    try:
        t0 = time.monotonic()
        while not args.seconds or time.monotonic() - t0 < args.seconds:
            if not g.supervise(say=say):
                gave_up = True
                break
            if g.finished == set(g.procs):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        g.stop()
    if gave_up:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
