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
