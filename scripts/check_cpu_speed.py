"""Does ``rsatalker-bench-graph --cpu-speed F`` emulate cores F times as fast? Fixed work, timed outside and inside
the CPU cgroup that the benchmark makes, for several CFS periods (needs root, like the benchmark's option).

    python scripts/check_cpu_speed.py [--speed 0.5] [--cpus 2] [--periods-ms 2 5 10 20 100] [--rounds 2]

Per period: ``--cpus`` worker processes (each pinned to its core, as a graph on that many cores could use them all)
each run the same fixed work, a pure-Python loop cut into chunks of about 1 ms; first outside the group, then
inside it, alternately ``--rounds`` times. Printed: the wall-time ratio inside / outside (1 / F when the emulation
is right: the same work at F of the speed), each worker's CPU time / wall time inside (at most F: what the quota
lets through; F on a host idle enough to give it), and the chunk times outside and inside (p50, p99, max): a long
chunk inside is the stall a frame's work can meet when the quota is used up early in a period. A real slower core
shows no stall; the period should make it small against a 40 ms frame. On a busy machine the outside times are
contended too: compare the ratio and the CPU share, measured back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from tqdm import tqdm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rsatalker_ros.cli.cpu_speed import CgroupUnavailable, CpuGroup  # noqa: E402

WORKER = """
import json, os, sys, time
os.sched_setaffinity(0, [int(sys.argv[1])])
chunks, times = int(sys.argv[2]), []
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(chunks):
    t = time.perf_counter()
    for _ in range(15000):
        pass
    times.append(time.perf_counter() - t)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "times": times}))
"""


def run_workers(cpus: list, chunks: int) -> list[dict]:
    """One worker per core, started together; their results (wall seconds, seconds per chunk)."""
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(c), str(chunks)], stdout=subprocess.PIPE, text=True)
             for c in cpus]
    return [json.loads(p.communicate()[0]) for p in procs]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed", type=float, default=0.5, help="emulated core speed, a fraction of the host's (0, 1]")
    ap.add_argument("--cpus", type=int, default=2, help="cores used (the first ones this process may use)")
    ap.add_argument("--periods-ms", type=float, nargs="+", default=[2, 5, 10, 20, 100], help="CFS periods tried [ms]")
    ap.add_argument("--chunks", type=int, default=1500, help="chunks of about 1 ms of work per worker")
    ap.add_argument("--rounds", type=int, default=2, help="outside / inside pairs per period")
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))[:args.cpus]
    if len(cpus) < args.cpus:
        raise SystemExit(f"error: --cpus {args.cpus}: this process may use only {len(cpus)} core(s)")
    rows = []
    for period_ms in tqdm(args.periods_ms, desc="periods"):
        try:
            group = CpuGroup.create(args.speed, len(cpus), round(period_ms * 1000))
        except (ValueError, CgroupUnavailable) as e:
            raise SystemExit(f"error: {e}")
        try:
            out_wall, in_wall, out_chunk, in_chunk, in_cpu = [], [], [], [], []
            stat0 = group.stat()
            for _ in range(args.rounds):
                res = run_workers(cpus, args.chunks)
                out_wall += [r["wall"] for r in res]
                out_chunk += [t for r in res for t in r["times"]]
                with group.entered():
                    res = run_workers(cpus, args.chunks)
                in_wall += [r["wall"] for r in res]
                in_cpu += [r["cpu"] for r in res]
                in_chunk += [t for r in res for t in r["times"]]
            stat = group.stat()
        finally:
            group.remove()
        out_chunk.sort()
        in_chunk.sort()
        med = out_chunk[len(out_chunk) // 2]
        p99 = int(0.99 * (len(in_chunk) - 1))
        rows.append((period_ms, group.quota.quota_us, sum(in_wall) / sum(out_wall), sum(in_cpu) / sum(in_wall),
                     med * 1e3, out_chunk[p99] * 1e3, out_chunk[-1] * 1e3, in_chunk[p99] * 1e3, in_chunk[-1] * 1e3,
                     stat["throttled"] - stat0["throttled"], stat["periods"] - stat0["periods"]))
        time.sleep(0.1)
    print(f"\n{len(cpus)} core(s) {cpus} at x{args.speed:g} speed (expected wall ratio {1 / args.speed:.2f}); load "
          f"average {os.getloadavg()[0]:.2f} (a busy machine inflates the outside times too)")
    print(f"{'period ms':>9s} {'quota us':>9s} {'wall in/out':>11s} {'CPU/wall in':>11s} {'chunk ms: out p50':>17s} "
          f"{'p99':>6s} {'max':>6s} {'in p99':>7s} {'max':>6s} {'throttled periods':>18s}")
    for p, q, ratio, share, med, o99, omx, i99, imx, thr, per in rows:
        print(f"{p:9g} {q:9d} {ratio:11.2f} {share:11.2f} {med:17.2f} {o99:6.2f} {omx:6.2f} {i99:7.2f} {imx:6.2f} "
              f"{thr:>8d} of {per:<8d}")


if __name__ == "__main__":
    main()
