"""CPU of the motion node processes in a running graph, old code against new, interleaved in one run.

    python scripts/ab_motion_graph.py --roots /work/main . [--rounds 3] [--seconds 15] [--profile alice]

Each round starts, for every root in turn (or all at once with ``--concurrent``; a checkout: its ``rsatalker_ros`` comes first on PYTHONPATH), the
audio side of the demo graph (audio_capture looping the demo wavs, conversation, motion_alice, motion_bob; no
renderers unless ``--renderers``; a probe subscribes to each mesh and motion topic as a renderer would) on its own ROS domain, waits for
meshes, then measures each motion process's user + system CPU over ``--seconds`` [cores], the meshes received
[Hz] and from both the CPU it takes per 25 meshes a second (a process starved by a busy machine makes fewer). Prints each run and, per root, the median over rounds and its ratio to the first root. The machine may be
shared: only the ratios of one run mean something. ``--profile PATH/py-spy`` samples motion_alice with py-spy
during each measured span and prints its functions by share of the samples. ``--instrument`` runs motion_alice
with CPU accounting (``instrumented_node``): its callbacks, the stage's push_audio, the input decoding, every
publish, and each of the process's threads by name (the executor's main thread, Fast DDS's), in cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def child(seconds: float, profile: str, out: str, renderers: bool, instrument: bool) -> None:
    """One measured graph of the rsatalker_ros on sys.path (the root under test)."""
    import json

    from rsatalker_ros.ros.dds import local_dds_defaults
    local_dds_defaults()
    import rclpy

    from rsatalker_ros.cli.bench_graph import cpu_seconds
    from rsatalker_ros.cli.bringup import Graph
    from rsatalker_ros.ros import graph, topics
    from rsatalker_ros.ros.probe import GraphProbe

    pids = ["alice", "bob"]
    specs = [s for s in graph.describe(participants=pids, source="wav", loop=True, processes="separate")
             if renderers or s.executable != "renderer"]
    rclpy.init()
    probe = GraphProbe(pids, keep_messages=False, extra=("motion", "mesh"))
    g = Graph(specs, log_dir=None)
    try:
        g.start(skip=["motion_alice"] if instrument else [])
        if instrument:       # motion_alice through instrumented_node() below
            from rsatalker_ros.cli.bringup import process_commands
            argv = dict(process_commands(specs, g.params_file))["motion_alice"]
            argv = argv[:1] + [__file__, "--instrumented-node", f"{out}.split"] + argv[3:]
            g.procs["motion_alice"] = subprocess.Popen(argv, env=g.env, start_new_session=True)
        mesh = [topics.participant(p, "mesh") for p in pids]
        wait = mesh + ([topics.participant(p, "image_raw") for p in pids] if renderers else [])
        if not probe.spin_for(300, lambda: all(probe.count(t) > 25 for t in wait)):
            raise SystemExit("no meshes (or images) within 300 s")
        probe.spin_for(2.0)
        n0 = {t: probe.count(t) for t in mesh}
        motion = {grp: p.pid for grp, p in g.procs.items() if grp.startswith("motion_")}
        cpu0 = {grp: cpu_seconds(pid) for grp, pid in motion.items()}
        spy = None
        if profile:          # py-spy samples the process from outside (no slow-down inside it)
            spy = subprocess.Popen([profile, "record", "--nonblocking", "--format", "raw", "--rate", "200",
                                    "--duration", str(int(seconds)), "--pid", str(motion["motion_alice"]),
                                    "--output", f"{out}.stacks"], stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        probe.spin_for(seconds)
        wall = time.monotonic() - t0
        res = {grp: (cpu_seconds(pid) - cpu0[grp]) / wall for grp, pid in motion.items()}
        res.update({f"{t.split('/')[2]}_mesh_hz": (probe.count(t) - n0[t]) / wall for t in mesh})
        # a starved process (a busy machine) makes fewer frames: its CPU per 25 frames is what it needs at 25 Hz
        res.update({f"{grp}_at_25hz": res[grp] * 25.0 / max(res[f"{grp[7:]}_mesh_hz"], 1e-9) for grp in motion})
        if spy is not None:
            spy.wait(timeout=seconds + 60)
    finally:
        g.stop()
        probe.destroy_node()
        rclpy.try_shutdown()
    with open(out, "w") as f:
        json.dump(res, f)
    if profile:
        print_profile(f"{out}.stacks")
    if instrument:
        with open(f"{out}.split") as f:
            res.update(json.load(f))
        with open(out, "w") as f:
            json.dump(res, f)


def instrumented_node(out: str, argv: list) -> None:
    """rsatalker_ros.nodes.container's main with CPU accounting per second of wall time, from 3 s after the
    first published frame on (imports, models and the start of the stream left out): the motion node's callbacks, the stage's push_audio and the process's
    threads by name (the executor's main thread, DDS's threads); written to ``out`` (json) once a second (the
    process ends with os._exit: nothing runs at exit)."""
    import json
    import threading

    from rsatalker_ros.nodes import container
    from rsatalker_ros.nodes.motion import MotionNode
    from rsatalker_ros.stages.motion import MotionStage
    acc: dict = {}
    mark: dict = {}
    publishing = threading.Event()

    def timed(label, fn):
        def wrapper(*a, **k):
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                if mark:
                    acc[label] = acc.get(label, 0.0) + time.thread_time() - t
        return wrapper

    def thread_cpu() -> dict:
        """CPU seconds per thread name (comm) of this process: user + system clock ticks from /proc."""
        res: dict = {}
        tick = os.sysconf("SC_CLK_TCK")
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = "main" if tid == str(os.getpid()) else stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            res[name] = res.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        return res

    def dump_every_second():
        publishing.wait()
        time.sleep(3.0)
        threads0 = thread_cpu()
        mark.update(wall=time.monotonic(), process=time.process_time())
        while True:
            time.sleep(1.0)
            wall = time.monotonic() - mark["wall"]
            res = {f"cpu {k}": v / wall for k, v in list(acc.items())}
            res["cpu process"] = (time.process_time() - mark["process"]) / wall
            res.update({f"thread {k}": (v - threads0.get(k, 0.0)) / wall for k, v in thread_cpu().items()})
            with open(out + ".tmp", "w") as f:
                json.dump(res, f)
            os.replace(out + ".tmp", out)

    for name in ("_on_audio", "_on_conversation", "_publish_frames", "_publish_marker", "_publish_diagnostics"):
        if hasattr(MotionNode, name):
            setattr(MotionNode, name, timed(name, getattr(MotionNode, name)))
    publish = MotionNode._publish_frames
    MotionNode._publish_frames = lambda self, frames: (publishing.set(), publish(self, frames))[1]
    MotionStage.push_audio = timed("stage.push_audio", MotionStage.push_audio)
    from rclpy.publisher import Publisher

    from rsatalker_ros.nodes import motion
    Publisher.publish = timed("Publisher.publish", Publisher.publish)
    for name in ("mono_audio_from_msg", "mesh_to_msg"):
        if hasattr(motion, name):
            setattr(motion, name, timed(name, getattr(motion, name)))
    threading.Thread(target=dump_every_second, daemon=True).start()
    sys.argv = argv
    container.main()


def print_profile(path: str, top: int = 40) -> None:
    """Own and inclusive share of the samples per function from py-spy's raw (collapsed) stacks."""
    own, incl, total = {}, {}, 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            n = int(n)
            total += n
            frames = stack.split(";")
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + n
    for name, d in (("inclusive", incl), ("own", own)):
        print(f"--- motion_alice, {name} share of {total} samples")
        for fr, n in sorted(d.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {100 * n / total:5.1f}%  {fr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roots", nargs="+", default=[], help="checkouts to compare (the first is the reference)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0, help="measured span of each run [s]")
    ap.add_argument("--profile", default="", help="py-spy executable: sample motion_alice during each measured span and print its profile")
    ap.add_argument("--renderers", action="store_true", help="the whole graph: renderers too (512 x 512)")
    ap.add_argument("--domain", type=int, default=73, help="ROS_DOMAIN_ID of the runs (away from other work)")
    ap.add_argument("--concurrent", action="store_true", help="run the checkouts' graphs at the same time (each "
                    "on its own ROS domain), so that they share whatever else loads the machine")
    ap.add_argument("--instrument", action="store_true", help="motion_alice with CPU accounting per callback")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    if len(sys.argv) > 2 and sys.argv[1] == "--instrumented-node":
        instrumented_node(sys.argv[2], [sys.argv[0]] + sys.argv[3:])
        return
    args = ap.parse_args()
    if args.child:
        child(args.seconds, args.profile, args.child, args.renderers, args.instrument)
        return
    import json
    import tempfile

    import numpy as np
    roots = [str(Path(r).resolve()) for r in args.roots]
    rows: dict = {r: [] for r in roots}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            runs = []
            for i, root in enumerate(roots):
                env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain + (i if args.concurrent else 0)),
                           PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
                out = os.path.join(tmp, f"{rnd}_{i}.json")
                cmd = [sys.executable, __file__, "--child", out, "--seconds", str(args.seconds), "--profile",
                       args.profile] + (["--renderers"] if args.renderers else []) + \
                    (["--instrument"] if args.instrument else [])
                runs.append((root, out, subprocess.Popen(cmd, env=env, cwd=root)))
                if not args.concurrent:
                    runs[-1][2].wait()
            for root, out, p in runs:
                if p.wait() != 0:
                    raise SystemExit(f"the run of {root} failed")
                with open(out) as f:
                    r = json.load(f)
                rows[root].append(r)
                print(f"round {rnd} {root}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
    ref = None
    for root in roots:
        med = {k: float(np.median([r[k] for r in rows[root]])) for k in rows[root][0]}
        cores = np.mean([v for k, v in med.items() if k.endswith("_at_25hz")])
        ref = cores if ref is None else ref
        print(f"{root}: median " + ", ".join(f"{k} {v:.3f}" for k, v in med.items())
              + f"; mean motion process {cores:.3f} cores per 25 frames/s, {cores / ref:.2f}x the first root")


if __name__ == "__main__":
    main()
