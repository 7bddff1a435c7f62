"""The graph benchmark's image-rate figure: images per second of conversation, on the audio clock."""

import numpy as np

from rsatalker_ros.cli.bench_graph import audio_clock_rate

FRAME_NS = 40_000_000


def test_every_frame_rendered_is_exactly_25_hz_whatever_the_arrival_jitter():
    frames = 1_000_000_000 + 20_000_000 + FRAME_NS * np.arange(500)
    images = np.random.default_rng(0).permutation(frames)      # arrival order does not matter, stamps do
    rate, got, of = audio_clock_rate(images)
    assert rate == 25.0 and got == of == 500


def test_a_dropped_frame_brings_the_rate_under_25_hz():
    images = np.delete(FRAME_NS * np.arange(500), 250)
    rate, got, of = audio_clock_rate(images)
    assert rate < 25.0 and (got, of) == (499, 500)


def test_duplicates_count_once_and_too_few_images_give_zero():
    frames = FRAME_NS * np.arange(10)
    assert audio_clock_rate(np.concatenate([frames, frames[:3]]))[0] == 25.0
    assert audio_clock_rate(frames[:1])[0] == 0.0


def test_publish_latencies_gather_every_image_of_every_renderer_report():
    from rsatalker_ros.ros.probe import publish_latencies
    reports = [{"stamp_to_publish_ms_each": "100.0,110.5"}, {"stamp_to_publish_ms_each": ""}, {"images_per_s": "0"},
               {"stamp_to_publish_ms_each": "90.0"}]
    np.testing.assert_array_equal(publish_latencies(reports), [100.0, 110.5, 90.0])


def test_cpus_pin_is_inherited_by_children_and_load_processes_start_and_stop():
    """--cpus pins this process and what it starts; --load competitors run until stopped. In a child process, so
    the test runner's own affinity is left alone."""
    import subprocess
    import sys
    code = ("import os, subprocess, sys\n"
            "from rsatalker_ros.cli.bench_graph import pin_to_cpus, start_competitors, stop_competitors\n"
            "cpus = pin_to_cpus(1)\n"
            "child = subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'],"
            " capture_output=True, text=True, check=True).stdout.strip()\n"
            "procs = start_competitors(2)\n"
            "alive = [p.poll() is None for p in procs]\n"
            "stop_competitors(procs)\n"
            "print(cpus, child, alive, [p.poll() is not None for p in procs])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    line = out.stdout.strip()
    first = sorted(__import__("os").sched_getaffinity(0))[0]
    assert line == f"[{first}] [{first}] [True, True] [True, True]"


def test_bad_cpu_count_is_refused_with_the_allowed_range():
    import os

    import pytest

    from rsatalker_ros.cli.bench_graph import pin_to_cpus
    with pytest.raises(ValueError, match=r"expected 1\.\."):
        pin_to_cpus(len(os.sched_getaffinity(0)) + 1)
    with pytest.raises(ValueError, match=r"expected 1\.\."):
        pin_to_cpus(0)


def test_level_summary_shows_the_renderer_levels_or_a_dash():
    from rsatalker_ros.cli.bench_graph import level_summary
    assert level_summary([{"images_per_s": "25"}]) == "-"
    assert level_summary([{"level": "12k"}, {"level": "12k"}, {"level": "full"}, {}]) == "12k 67%, full 33%"
    assert level_summary([{"level": "6k", "scale": "0.5"}] * 3 + [{"level": "6k", "scale": "1"}]) == "6k x0.5 75%, 6k 25%"


def test_latency_path_prints_each_step_from_the_audio_stamp():
    """The benchmark's breakdown: audio at a subscriber, the mesh at a subscriber, then the renderer's own steps
    (per image, from its diagnostics) and the image at a subscriber, p50 / p95 per participant."""
    from rsatalker_ros.cli.bench_graph import format_latency_path
    from rsatalker_ros.ros.probe import TopicLog
    stamps = np.arange(100, dtype=np.int64) * FRAME_NS
    audio = {"/rsatalker/alice/audio": TopicLog(recv_ns=list(stamps + 21_000_000), stamp_ns=list(stamps))}
    timings = {"/rsatalker/alice/mesh": (stamps + 70_000_000, stamps),
               "/rsatalker/alice/image_raw": (stamps + 101_000_000, stamps)}
    diag = {"renderer_alice": [{"stamp_to_receive_ms_each": "71.0,71.0", "stamp_to_take_ms_each": "72.0,72.0",
                                "stamp_to_rendered_ms_each": "95.0,95.0", "stamp_to_publish_ms_each": "100.0,100.0"}]}
    text = format_latency_path(["alice"], diag, timings, audio)
    rows = {ln[:50].strip(): ln[50:].split() for ln in text.splitlines()[2:]}
    assert rows["audio chunk at a subscriber"] == ["21", "/", "21"]
    assert rows["mesh at a subscriber (motion node published)"] == ["70", "/", "70"]
    assert [rows[k][0] for k in ("mesh at the renderer", "render starts (queue wait)", "render done",
                                 "image published", "image at a subscriber")] == ["71", "72", "95", "100", "101"]


def test_move_threads_to_moves_every_thread_of_the_process():
    """bench-graph --cpus N moves its own subscriber (DDS's threads too) off the graph's cores."""
    import os
    import threading

    from rsatalker_ros.cli.bench_graph import move_threads_to
    allowed = sorted(os.sched_getaffinity(0))
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert move_threads_to(allowed[-1:])
        assert os.sched_getaffinity(other.native_id) == {allowed[-1]}
        assert os.sched_getaffinity(0) == {allowed[-1]}
    finally:
        move_threads_to(allowed)
        release.set()
        other.join()
