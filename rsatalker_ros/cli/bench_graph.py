"""Benchmark of the whole graph: two participants, 512 x 512 images, real processes over DDS, in real time.

    python -m rsatalker_ros.cli.bench_graph [--seconds 20] [--processes separate|per_participant|single] \
        [--cpus N] [--load K] [--cpu-speed F [--cpu-period-ms P]]

Plays the bundled conversation (looped) through the full graph and prints, once:
  - each image topic's rate (target >= 25 Hz),
  - audio stamp -> image publish latency p50 / p95 (target p95 <= 150 ms; from the renderers' diagnostics) and
    audio stamp -> arrival at a subscriber,
  - resident memory of the whole graph (sum of the VmRSS of its processes; target <= 2.5 GB),
  - the machine's CPU count and load (other work on the machine inflates the figures),
  - the level of detail each renderer reports on /diagnostics (key "level"; "-" while the renderer reports none).
``--cpus N`` pins the benchmark and the whole graph to N cores (CPU affinity, inherited by every process it starts);
``--load K`` starts K busy competitor processes on those cores for the run and stops them afterwards. The
benchmark's own subscriber (every image, mesh and audio chunk of the graph) moves to the other cores once the
graph has started, where there are any (not with ``--kill``), so that it does not take the pinned cores' time from
the graph; its CPU use is printed next to the graph's.
``--cpu-speed F`` (0 < F <= 1) emulates cores F times as fast as this host's: the whole graph and the ``--load``
competitors run in a CPU cgroup whose CFS bandwidth quota is F x (cores used) x ``--cpu-period-ms`` per period
(cli/cpu_speed.py says why the competitors are inside and the period short; ``scripts/check_cpu_speed.py``
measures how well fixed work slows down). The benchmark's own subscriber stays outside the quota (it is in the
group only while it starts processes). Needs root (cgroup v1's cpu controller or cgroup v2's cpu.max); the output
gives the quota and how often and how long the group was throttled (cpu.stat) in the measured span. ``--cpus 2
--cpu-speed 0.5`` is the issue's 2-core machine at half this host's core speed.
With ``--out DIR`` it also writes DIR/timings.npz (per topic: receive time and stamp of every message [ns]) and
DIR/latency.png (latency distribution per stage and the images' arrival intervals).

Soak mode: a long run (``--seconds 1800``) also reports each process's resident-memory slope [MB/min], fitted
to one sample a second after ``--rss-warmup`` seconds (target < 0.2 MB/min), and any restarted process (its pid
changed); with ``--out`` the RSS of each process over time goes to DIR/rss.png.

Respawn: ``--kill GROUP ...`` (process groups as rsatalker-bringup names them: motion_alice, renderer_bob, ...)
kills each group with SIGKILL after the measured run, one after another; rsatalker-bringup's supervision starts it
again (after its respawn delay) and the benchmark prints the seconds from the respawned process's start to its
first new output (a motion node's mesh, a renderer's image; for a motion node also its participant's next image)
and the node's own start-up line from its log (imports + DDS vs. models, assets and warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import time

import numpy as np


from rsatalker_ros.cli.cpu_speed import CgroupUnavailable, CpuGroup, format_throttling

# --cpu-period-ms's default. scripts/check_cpu_speed.py, 1 core at x0.5 (load average 2.2): fixed work took 2.0-2.5x
# the wall time at every period, the group got 0.50 of the core from 5 ms up (0.46 at 2 ms: throttling overhead),
# and a 1 ms chunk of work stalled up to (p99) 5 / 7 / 8 / 13 / 47 ms at periods of 2 / 5 / 10 / 20 / 100 ms
# (0.9 ms outside the group): 10 ms keeps the stalls well inside a 40 ms frame.
CPU_PERIOD_MS = 10.0


def rss_mb(pids, field: str = "VmRSS") -> float:
    """Sum of one /proc/PID/status memory field [MB] over ``pids``: VmRSS (all resident memory) or RssShmem (its
    shared-memory part: here Fast DDS's shared-memory segments, whose pages count once written or read)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":"))
        except (OSError, StopIteration):
            pass
    return total / 1024.0


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process so far [s]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def pin_to_cpus(n: int) -> list[int]:
    """Restrict this process (and every process it starts from now on) to the first ``n`` of the CPUs it may use;
    returns them. ValueError when n is not in 1..available."""
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= n <= len(allowed):
        raise ValueError(f"--cpus {n}: expected 1..{len(allowed)} (the CPUs this process may use: {allowed})")
    cpus = allowed[:n]
    os.sched_setaffinity(0, cpus)
    return cpus


def move_threads_to(cpus) -> bool:
    """Every thread of this process (DDS's included) onto ``cpus``; False when one could not be moved."""
    ok = True
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            ok = False
    return ok


def start_competitors(k: int) -> list:
    """K busy processes (a pure-Python spin loop each, on the CPUs this process may use), each in a session of its
    own like any other program on the machine (and like each node bringup starts): with autogroup scheduling a
    competitor in the benchmark's session would share the benchmark's CPU weight, so a benchmark started at a
    raised or lowered priority would change what the competitor takes from the graph. Stop with
    ``stop_competitors``."""
    import subprocess
    import sys
    if k < 0:
        raise ValueError(f"--load {k}: expected a count >= 0")
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                             start_new_session=True)
            for _ in range(k)]


def stop_competitors(procs) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait(timeout=10)


def level_summary(rows) -> str:
    """The levels a renderer reported over the run (diagnostics keys "level" and "scale": "6k" at scale 1, "6k x0.5"
    at scale 0.5), with their share of the reports."""
    levels = [r["level"] + ("" if r.get("scale", "1") == "1" else f" x{r['scale']}") for r in rows if "level" in r]
    if not levels:
        return "-"
    names, counts = np.unique(levels, return_counts=True)
    order = np.argsort(-counts)
    return ", ".join(f"{names[i]} {100 * counts[i] / len(levels):.0f}%" for i in order)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured run length [s] after a 3 s warm-up")
    ap.add_argument("--rss-warmup", type=float, default=60.0, help="seconds of the measured run left out of the "
                    "RSS slope (start-up caches, JIT); at most a third of --seconds")
    ap.add_argument("--size", type=int, default=512, help="image width = height [px]")
    ap.add_argument("--processes", default="separate", choices=["separate", "per_participant", "single"])
    ap.add_argument("--checkpoint", default="", help="motion checkpoint (default: the shipped one)")
    ap.add_argument("--avatars", nargs=2, help="avatar files for alice and bob (default: the shipped ones)")
    ap.add_argument("--set", nargs="+", default=[], metavar="NODE.PARAM=VALUE", help="extra parameter overrides")
    ap.add_argument("--out", default="", help="folder for timings.npz and latency.png ('' = print only)")
    ap.add_argument("--cpus", type=int, default=0, help="pin the whole graph to this many cores (0 = all)")
    ap.add_argument("--load", type=int, default=0, help="busy competitor processes during the run")
    ap.add_argument("--cpu-speed", type=float, default=1.0, help="emulate cores this fraction of the host's speed "
                    "(0 < F <= 1; 1 = as they are): the graph and the competitors run under a CFS quota of F x cores "
                    "per period in a CPU cgroup (needs root)")
    ap.add_argument("--cpu-period-ms", type=float, default=CPU_PERIOD_MS, help="the quota's CFS period [ms], "
                    "1..1000: short, so that the slower cores are not emulated as full speed then a long stall")
    ap.add_argument("--renderer-nice", type=int, default=None, help="the renderer processes' CPU niceness 0..19 "
                    "(default: config/graph.yaml's renderer_nice; 0 = as the other nodes)")
    ap.add_argument("--kill", nargs="+", default=[], metavar="GROUP", help="after the run, kill these process "
                    "groups (e.g. renderer_alice motion_bob) one by one and time their respawn to the first output")
    ap.add_argument("--no-warm-spare", dest="warm_spare", action="store_false", help="as rsatalker-bringup "
                    "--no-warm-spare: no pre-imported spare process for respawns (its memory is in the graph's)")
    ap.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID of the benchmarked graph, 0..101 "
                    "(default: one picked at random from 30..101, so that the benchmark neither hears nor disturbs "
                    "another graph on this host, e.g. a running bringup in domain 0)")
    args = ap.parse_args(argv)
    domain = random.SystemRandom().randint(30, 101) if args.domain_id is None else args.domain_id
    if not 0 <= domain <= 101:
        raise SystemExit(f"error: --domain-id {domain}: expected 0..101 (the domain IDs whose DDS ports are valid "
                         "on Linux)")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    print(f"bench-graph: ROS_DOMAIN_ID={domain}", flush=True)
    allowed = sorted(os.sched_getaffinity(0))          # (before pinning)
    try:
        cpus = pin_to_cpus(args.cpus) if args.cpus else allowed
        if args.load < 0:
            raise ValueError(f"--load {args.load}: expected a count >= 0")
        group = (CpuGroup.create(args.cpu_speed, len(cpus), round(args.cpu_period_ms * 1000))
                 if args.cpu_speed != 1.0 else None)
    except (ValueError, CgroupUnavailable) as e:
        raise SystemExit(f"error: {e}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))   # (the finally below cleans up)
    try:
        run(args, allowed, cpus, group)
    finally:
        if group is not None:
            group.remove()


def run(args, allowed: list, cpus: list, group) -> None:
    """The benchmark after the command line was checked: ``group`` is the CpuGroup (``--cpu-speed``) or None."""
    from rsatalker_ros.ros.dds import local_dds_defaults
    local_dds_defaults()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from rsatalker_ros.cli.bringup import Graph, parse_overrides, render_overrides
    from rsatalker_ros.ros import graph, topics
    from rsatalker_ros.ros.probe import GraphProbe, format_summary, publish_latencies

    pids = ["alice", "bob"]
    overrides = render_overrides(pids, args.size, args.checkpoint, args.avatars)
    for k, v in parse_overrides(args.set).items():
        overrides.setdefault(k, {}).update(v)
    try:
        specs = graph.describe(participants=pids, source="wav", loop=True, processes=args.processes,
                               overrides=overrides, renderer_nice=args.renderer_nice)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    unknown = sorted(set(args.kill) - set(graph.groups(specs)))
    if unknown:
        raise SystemExit(f"error: --kill {unknown}: expected process groups of this graph {sorted(graph.groups(specs))}")
    rclpy.init()
    probe = GraphProbe(pids, keep_messages=False)
    diag = {}
    probe.create_subscription(DiagnosticArray, "/diagnostics",
                              lambda m: [diag.setdefault(s.name, []).append({kv.key: kv.value for kv in s.values})
                                         for s in m.status], 50)
    audio = watch_audio(probe, pids)
    g = Graph(specs, log_dir="runs/bench_graph_logs", warm_spare=args.warm_spare)
    competitors = []
    in_group = group.entered if group is not None else contextlib.nullcontext
    try:
        with in_group():                               # what starts here is born in the quota's group
            competitors = start_competitors(args.load)
            g.start()
        if group is not None:
            group.set_weight(len(g.pids()) + len(competitors))
        # (the graph's processes keep the pinned cores; with --kill the respawns, started from here, need them too)
        others = [c for c in allowed if c not in cpus and not args.kill]
        probe_where = "on the graph's cores"
        if others and move_threads_to(others):
            probe_where = f"moved to core(s) {others}"
        if not probe.spin_for(120, lambda: all(probe.count(topics.participant(p, "image_raw")) > 0 for p in pids)):
            raise SystemExit("no images within 120 s; see runs/bench_graph_logs")
        probe.spin_for(3.0)
        for log in list(probe.logs.values()) + list(audio.values()):
            log.recv_ns.clear()
            log.stamp_ns.clear()
        diag.clear()
        rss, t0 = [], time.monotonic()
        soak = RssSoak()
        cpu0 = {grp: cpu_seconds(p.pid) for grp, p in g.procs.items()}
        probe_cpu0 = cpu_seconds(os.getpid())
        throttle0 = group.stat() if group is not None else None
        while time.monotonic() - t0 < args.seconds:
            probe.spin_for(1.0)
            rss.append(rss_mb(g.pids()))
            soak.sample(time.monotonic() - t0, {grp: p.pid for grp, p in g.procs.items()})
        wall = time.monotonic() - t0
        cpu = {grp: (cpu_seconds(p.pid) - cpu0[grp]) / wall for grp, p in g.procs.items()}
        probe_cpu = (cpu_seconds(os.getpid()) - probe_cpu0) / wall
        throttling = format_throttling(throttle0, group.stat(), wall) if group is not None else ""
        # the renderers' reports of the measured span (a --kill respawn and the spare's start-up come after it: a
        # respawned renderer's counters start again from 0)
        measured = {name: list(rows) for name, rows in diag.items()}
        summary = probe.summary()
        timings = {topic: (np.asarray(log.recv_ns, np.int64), np.asarray(log.stamp_ns, np.int64))
                   for topic, log in probe.logs.items()}
        alive = g.alive()
        spare_mb = 0.0
        if args.warm_spare and args.kill:       # as rsatalker-bringup has it by then; not during the measured run
            spare = g.start_spare()
            probe.spin_for(600, spare.ready)
            spare_mb = rss_mb([spare.proc.pid])
        with in_group():                               # the respawned processes belong in the quota's group
            respawns = [kill_and_time(g, probe, grp, output_topics(specs, grp)) for grp in args.kill]
    finally:
        g.stop()
        stop_competitors(competitors)
        probe.destroy_node()
        rclpy.try_shutdown()

    print(f"graph: 2 participants, {args.size} x {args.size}, processes={args.processes} "
          f"({len(graph.groups(specs))} processes), {args.seconds:.0f} s measured; machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; graph pinned to {len(cpus)} core(s) {cpus}, "
          f"{args.load} busy competitor process(es); renderer niceness {max(s.nice for s in specs)}")
    if group is not None:
        print(f"{group.describe()}; the graph and the {args.load} competitor(s) inside it, the benchmark's "
              f"subscriber outside; {throttling}")
    print(format_summary(summary))
    print("\nrenderer diagnostics (audio stamp -> image publish, every image of the measured span):")
    ok = all(alive.values())
    publish = {}
    for pid in pids:
        rows = measured.get(f"renderer_{pid}", [])
        publish[pid] = each = publish_latencies(rows)
        delta = {k: int(float(rows[-1][k])) - int(float(rows[0][k])) if len(rows) > 1 else 0
                 for k in ("frames_received", "frames_rendered", "dropped_stale", "dropped_overflow",
                           "dropped_out_of_order")}
        rms = [float(r["render_ms_p50"]) for r in rows if float(r.get("images_per_s", 0)) > 0]
        p50, p95 = (np.percentile(each, 50), np.percentile(each, 95)) if each.size else (float("nan"),) * 2
        print(f"  {pid}: publish latency p50 {p50:.0f} ms, p95 {p95:.0f} ms ({each.size} images); "
              f"render {np.median(rms) if rms else 0:.0f}"
              f" ms/image; in {len(rows) - 1} s: {delta['frames_received']} frames received, "
              f"{delta['frames_rendered']} rendered, dropped: {delta['dropped_stale']} stale, "
              f"{delta['dropped_overflow']} queue full, {delta['dropped_out_of_order']} out of order; "
              f"level {level_summary(rows)}")
    print("\n" + format_latency_path(pids, measured, timings, audio))
    print("\nCPU use per process [cores] (what the graph itself needs, whatever else runs on the machine):")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + f"; total {sum(cpu.values()):.2f}")
    print(f"  (the benchmark's own subscriber: {probe_cpu:.2f} cores, {probe_where})")
    print(f"\nresident memory of the graph: max {max(rss):.0f} MB, mean {np.mean(rss):.0f} MB (sum of VmRSS"
          + (f"; rsatalker-bringup's warm spare for respawns adds {spare_mb:.0f} MB)" if spare_mb else ")"))
    print("\nimage rate on the audio clock (images per second of conversation: exactly 25.0 when every 40 ms motion "
          "frame became an image; a receive-clock rate also carries the arrival jitter of the first and last image):")
    rates = {}
    for pid in pids:
        rates[pid] = audio_clock_rate(timings[topics.participant(pid, "image_raw")][1])
        r, got, of = rates[pid]
        print(f"  {pid}: {r:.2f} Hz; {got} of the {of} motion frames in that span arrived as images")
    print("\ntargets:")
    for pid in pids:
        s = summary[topics.participant(pid, "image_raw")]
        r = rates[pid][0]
        print(f"  {pid} image_raw >= 25 Hz (audio clock): {r:.2f} Hz -> {'PASS' if r >= 25.0 - 1e-6 else 'FAIL'} "
              f"(receive clock {s['rate_hz']:.2f} Hz)")
        p95 = np.percentile(publish[pid], 95) if publish[pid].size else float("nan")
        print(f"  {pid} audio stamp -> image publish p95 <= 150 ms: {p95:.0f} ms -> {'PASS' if p95 <= 150 else 'FAIL'} "
              f"(at the subscriber, transport included: {s['latency_ms_p95']:.0f} ms)")
    print(f"  graph memory <= 2500 MB: {max(rss):.0f} MB -> {'PASS' if max(rss) <= 2500 else 'FAIL'}")
    print(soak.report(min(args.rss_warmup, args.seconds / 3)))
    if not ok:
        print(f"  processes died during the run: {alive}")
    if respawns:
        print("\nrespawn after SIGKILL (target: a respawned renderer or motion node publishes within 3 s of its "
              "start):")
        for r in respawns:
            print("  " + format_respawn(r))
    print("\nREADME row (cores | competitors | per participant: image rate on the audio clock, publish p95, level "
          "chosen | CPU per process | graph RSS max):")
    speed = f" at x{group.quota.speed:g} speed" if group is not None else ""
    print(f"| {len(cpus)}{speed} | {args.load} | " + "; ".join(
        f"{pid} {rates[pid][0]:.1f} Hz, p95 {np.percentile(publish[pid], 95) if publish[pid].size else float('nan'):.0f} ms, "
        f"{level_summary(measured.get(f'renderer_{pid}', []))}" for pid in pids)
        + " | " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + f" (total {sum(cpu.values()):.2f}) | "
        f"{max(rss):.0f} MB |")
    if args.out:
        written = write_timings(args.out, timings, pids) + [soak.plot(args.out)]
        print(f"\nwrote {', '.join(str(p) for p in written)}")


def watch_audio(probe, pids) -> dict:
    """Subscribe ``probe`` to every participant's audio (best effort, as the nodes take it): {topic: TopicLog}
    with each chunk's receive time and stamp (its first sample's capture time)."""
    from rsatalker_ros.msg import AudioFrame
    from rsatalker_ros.ros import qos, topics
    from rsatalker_ros.ros.convert import stamp_to_ns
    from rsatalker_ros.ros.probe import TopicLog
    logs = {}
    for pid in pids:
        log = logs[topics.audio(pid)] = TopicLog()

        def on(msg, log=log):
            log.recv_ns.append(probe.get_clock().now().nanoseconds)
            log.stamp_ns.append(stamp_to_ns(msg.header.stamp))
        probe.create_subscription(AudioFrame, topics.audio(pid), on, qos.SENSOR_IN)
    return logs


def each_value(rows, key: str) -> np.ndarray:
    """Every value of a comma-separated diagnostics key ("..._each") over a renderer's reports."""
    return np.array([float(v) for r in rows for v in r.get(key, "").split(",") if v])


def format_latency_path(pids, diag: dict, timings: dict, audio: dict) -> str:
    """Where audio stamp -> image publish went, step by step, p50 / p95 [ms] after the audio stamp: the audio chunk
    at a subscriber (stamped with its first sample, so it is one chunk old on arrival), the motion node's mesh at a
    subscriber (frames are stamped at their centre and need the model's look-ahead after their end), the mesh at
    the renderer (decoded and checked), the render loop taking it (queue wait), the end of its render, the publish
    and the image at a subscriber."""
    from rsatalker_ros.ros import topics

    def pct(ms: np.ndarray) -> str:
        return f"{np.percentile(ms, 50):5.0f} / {np.percentile(ms, 95):4.0f}" if ms.size else "    - /    -"
    steps = ["audio chunk at a subscriber", "mesh at a subscriber (motion node published)", "mesh at the renderer",
             "render starts (queue wait)", "render done", "image published", "image at a subscriber"]
    cols = {}
    for pid in pids:
        rows = diag.get(f"renderer_{pid}", [])
        recv_a, stamp_a = (np.asarray(x, np.int64) for x in (audio[topics.audio(pid)].recv_ns,
                                                              audio[topics.audio(pid)].stamp_ns))
        mesh_r, mesh_s = timings[topics.participant(pid, "mesh")]
        img_r, img_s = timings[topics.participant(pid, "image_raw")]
        cols[pid] = [(recv_a - stamp_a) / 1e6, (mesh_r - mesh_s) / 1e6, each_value(rows, "stamp_to_receive_ms_each"),
                     each_value(rows, "stamp_to_take_ms_each"), each_value(rows, "stamp_to_rendered_ms_each"),
                     each_value(rows, "stamp_to_publish_ms_each"), (img_r - img_s) / 1e6]
    lines = ["latency path: ms after the audio stamp, p50 / p95 (renderer steps: published images only)",
             f"  {'step':48s}" + "".join(f"{pid:>16s}" for pid in pids)]
    for i, step in enumerate(steps):
        lines.append(f"  {step:48s}" + "".join(f"{pct(cols[pid][i]):>16s}" for pid in pids))
    return "\n".join(lines)


def output_topics(specs, grp: str) -> list[str]:
    """What a process group publishes that shows it works again: each motion node's mesh (then its participant's
    image) and each renderer's images."""
    from rsatalker_ros.ros import topics
    out = []
    for s in specs:
        if (s.group or s.name) != grp:
            continue
        if s.executable == "motion":
            out += [topics.participant(s.parameters["participant"], leaf) for leaf in ("mesh", "image_raw")]
        elif s.executable == "renderer":
            served = [p for p in s.parameters.get("participants", [""]) if p] or [s.parameters["participant"]]
            out += [topics.participant(p, "image_raw") for p in served]
    return list(dict.fromkeys(out))


def kill_and_time(g, probe, grp: str, watched: list[str], timeout_s: float = 180.0) -> dict:
    """SIGKILL process group ``grp`` of the running Graph ``g``, let ``g.supervise`` respawn it and time (on
    the monotonic clock, polled every 20 ms) the first new message on each ``watched`` topic after the respawn."""
    events = {}

    def say(text: str) -> None:
        if text.startswith(f"[{grp}] respawned"):
            events["respawned"] = time.monotonic()
    events["killed"] = time.monotonic()
    g.stop_group(grp, sig=signal.SIGKILL)
    first, seen = {}, None
    while time.monotonic() - events["killed"] < timeout_s and len(first) < len(watched):
        g.supervise(say=say)
        if "respawned" in events and seen is None:
            seen = {t: probe.count(t) for t in watched}
        probe.spin_for(0.02)
        now = time.monotonic()
        for t in watched if seen is not None else ():
            if t not in first and probe.count(t) > seen[t]:
                first[t] = now
    return {"group": grp, "events": events, "first": first, "watched": watched,
            "startup_line": last_startup_line(g.log_dir, grp)}


def last_startup_line(log_dir: str | None, grp: str) -> str:
    """The node's own "start-up: ..." log line of the newest process of ``grp`` ('' without logs)."""
    if not log_dir:
        return ""
    try:
        with open(os.path.join(log_dir, f"{grp}.log"), errors="replace") as f:
            lines = [ln.strip() for ln in f if "start-up: active" in ln]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def format_respawn(r: dict) -> str:
    ev = r["events"]
    if "respawned" not in ev:
        return f"{r['group']}: not respawned"
    parts = [f"{t}: {r['first'][t] - ev['respawned']:.1f} s" if t in r["first"] else f"{t}: none"
             for t in r["watched"]]
    text = (f"{r['group']}: respawned process start -> first new message " + ", ".join(parts)
            + f" (SIGKILL -> respawn {ev['respawned'] - ev['killed']:.1f} s)")
    return text + (f"\n    {r['startup_line']}" if r["startup_line"] else "")


class RssSoak:
    """Resident memory of each process of the graph over a run, and its slope after a warm-up."""

    def __init__(self):
        self.t: list[float] = []                  # seconds since the measured span began
        self.mb: dict[str, list[float]] = {}      # process group -> VmRSS [MB] at each t (NaN while gone)
        self.shm: dict[str, list[float]] = {}     # process group -> RssShmem [MB] (DDS segments) at each t
        self.pids: dict[str, set] = {}            # process group -> every pid seen (more than one: restarted)

    def sample(self, t: float, pids: dict[str, int]) -> None:
        self.t.append(t)
        for grp, pid in pids.items():
            self.mb.setdefault(grp, [float("nan")] * (len(self.t) - 1)).append(rss_mb([pid]) or float("nan"))
            self.shm.setdefault(grp, [float("nan")] * (len(self.t) - 1)).append(rss_mb([pid], "RssShmem"))
            self.pids.setdefault(grp, set()).add(pid)
        for series in (self.mb, self.shm):
            for values in series.values():
                if len(values) < len(self.t):
                    values.append(float("nan"))

    def slopes(self, warmup_s: float, series: dict | None = None) -> dict[str, float]:
        """{group: RSS slope [MB/min]} by least squares over the samples after warmup_s (NaN if < 10 samples);
        ``series``: another per-group series than VmRSS (e.g. ``self.shm``)."""
        t = np.asarray(self.t)
        out = {}
        for grp, values in (self.mb if series is None else series).items():
            v = np.asarray(values)
            keep = (t >= warmup_s) & np.isfinite(v)
            out[grp] = float(np.polyfit(t[keep] / 60.0, v[keep], 1)[0]) if keep.sum() >= 10 else float("nan")
        return out

    def report(self, warmup_s: float, target: float = 0.2) -> str:
        slopes, shm = self.slopes(warmup_s), self.slopes(warmup_s, self.shm)
        span = (self.t[-1] - warmup_s) if self.t else 0.0
        lines = [f"\nRSS slope per process after a {warmup_s:.0f} s warm-up ({span:.0f} s fitted, one sample a "
                 f"second; target < {target} MB/min; short runs are dominated by noise):"]
        for grp, slope in slopes.items():
            last = next((x for x in reversed(self.mb[grp]) if np.isfinite(x)), float("nan"))
            restarts = len(self.pids[grp]) - 1
            verdict = "PASS" if slope < target else "FAIL"
            lines.append(f"  {grp}: {slope:+.3f} MB/min (now {last:.0f} MB; of the slope {shm.get(grp, np.nan):+.3f} "
                         f"shared memory: DDS segments, at most their size) -> {verdict}"
                         + (f"; restarted {restarts} time(s)" if restarts else ""))
        return "\n".join(lines)

    def plot(self, out: str):
        from pathlib import Path

        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4))
        for grp, values in self.mb.items():
            line, = ax.plot(np.asarray(self.t) / 60.0, values, label=grp)
            ax.plot(np.asarray(self.t) / 60.0, self.shm[grp], ":", color=line.get_color())
        ax.set(xlabel="minutes into the measured run", ylabel="VmRSS [MB]",
               title="resident memory per process (dotted: its shared memory, the DDS segments)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(out) / "rss.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path


def audio_clock_rate(image_stamps: np.ndarray, fps: float = 25.0) -> tuple[float, int, int]:
    """image_stamps [ns] (the audio clock: motion frames are 1/fps apart) -> (images per second of audio between
    the first and last image's stamps, images received in that span, motion frames in it)."""
    img = np.unique(image_stamps)
    if img.size < 2:
        return 0.0, int(img.size), int(img.size)
    span = (img[-1] - img[0]) / 1e9
    return float((img.size - 1) / span), int(img.size), int(round(span * fps)) + 1


def write_timings(out: str, timings: dict, pids) -> list:
    """timings: topic -> (receive ns [M], stamp ns [M]) -> out/timings.npz and out/latency.png."""
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rsatalker_ros.ros import topics
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "timings.npz", **{f"{k.strip('/').replace('/', '.')}.{w}": v[i]
                                          for k, v in timings.items() for i, w in enumerate(("recv_ns", "stamp_ns"))})
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4))
    for pid in pids:
        for leaf, style in (("mesh", ":"), ("image_raw", "-")):
            recv, stamp = timings[topics.participant(pid, leaf)]
            if recv.size:
                lat = np.sort((recv - stamp) / 1e6)
                ax0.plot(lat, np.linspace(0, 1, lat.size), style, label=f"{pid} {leaf}")
        recv = timings[topics.participant(pid, "image_raw")][0]
        if recv.size > 1:
            ax1.hist(np.diff(recv) / 1e6, bins=np.arange(0, 121, 2), histtype="step", label=pid)
    ax0.axvline(150, color="0.5", lw=0.8)
    ax0.set(xlabel="audio stamp -> arrival at a subscriber [ms]", ylabel="fraction of messages",
            title="latency (CDF); grey: the 150 ms target")
    ax1.axvline(40, color="0.5", lw=0.8)
    ax1.set(xlabel="interval between images [ms]", ylabel="images", title="image arrival intervals (40 ms = 25 Hz)")
    for ax in (ax0, ax1):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=90)
    plt.close(fig)
    return [folder / "timings.npz", folder / "latency.png"]


if __name__ == "__main__":
    main()
