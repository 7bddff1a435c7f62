"""rsatalker_ros.ros.heap: a node's freed C heap goes back to the OS (issue #11: motion nodes' resident size grew
0.5-1.5 MB/min in a soak while the memory they used stayed the same)."""

import pytest

from rsatalker_ros.ros import heap


def rss_anon_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("RssAnon:")) / 1024


@pytest.mark.skipif(heap._TRIM is None, reason="malloc_trim is glibc's; elsewhere the heap is left alone")
def test_freed_memory_inside_the_heap_is_released():
    # a heap like a long-running node's: mid-sized chunks (2 kB: messages, small arrays), most freed, but the
    # ones still alive scattered over the heap, so glibc cannot shrink it from the top by itself
    chunks = [bytearray(2000) for _ in range(60000)]
    kept = chunks[7::8]
    del chunks
    before = rss_anon_mb()
    assert heap.release_free_heap()
    after = rss_anon_mb()
    assert before - after > 40, (before, after)          # about 100 MB freed, in runs of 7 chunks (14 kB)
    assert all(len(c) == 2000 for c in kept)             # what is alive stays


def test_the_trimmer_trims_at_most_once_per_period():
    now = [0.0]
    trimmer = heap.HeapTrimmer(period_s=10.0, clock=lambda: now[0])
    calls = []
    for t in (1.0, 9.0, 10.5, 12.0, 21.0):
        now[0] = t
        trimmer.maybe_trim()
        calls.append(trimmer.trims)
    assert calls == ([0, 0, 1, 1, 2] if heap._TRIM is not None else [0] * 5)
