"""The soak report of rsatalker-bench-graph: RSS slope per process, restarts (issue #11)."""

import mmap
import os

import numpy as np


from rsatalker_ros.cli.bench_graph import RssSoak


def test_rss_slope_measures_growth_per_minute_after_the_warm_up():
    soak, held = RssSoak(), []
    for i in range(40):                   # sample i stands for second i of a run; 1 MB more resident each
        # a fresh anonymous mapping, every page written: always new resident memory (a numpy array may instead
        # reuse heap pages that earlier tests of this worker freed and that are still resident)
        page = mmap.mmap(-1, 1 << 20)
        page.write(b"\x01" * (1 << 20))
        held.append(page)
        soak.sample(float(i), {"grower": os.getpid()})
    slope = soak.slopes(warmup_s=10.0)["grower"]
    assert 40 < slope < 80, slope         # 1 MB/s = 60 MB/min, give or take the interpreter's own allocations
    assert "grower: +" in soak.report(10.0) and "FAIL" in soak.report(10.0)


def test_a_restarted_or_vanished_process_is_reported():
    soak = RssSoak()
    for i in range(12):
        soak.sample(float(i), {"motion_alice": os.getpid() if i < 6 else os.getppid()})
    soak.sample(12.0, {})                 # the group is gone from the graph
    assert np.isnan(soak.mb["motion_alice"][-1])
    assert "restarted 1 time(s)" in soak.report(0.0)
