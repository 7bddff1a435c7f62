"""The render stage holds its deadline (no ROS): it loads the shipped avatar's trained levels once, renders the full
level when that fits, steps down to a coarser level (and then a render scale) when its renders are slow, says so
on its diagnostics, and keeps a pinned level whatever happens. Time is simulated: the stage's stamp clock and
render clock are one SimClock that only a render moves, by a time in proportion to the Gaussians x pixels it draws
(a starved CPU is a large factor), so what the stage decides does not depend on this machine's speed or load."""

import queue
import numpy as np
import pytest

from rsatalker_ros.stages import health, params
from support.assets import neutral_vertices

W, H = 64, 48


class SimClock:
    def __init__(self):
        self.t = 100.0           # seconds

    def now_ns(self) -> int:
        return int(round(self.t * 1e9))


def make_stage(**overrides):
    from rsatalker_ros.stages.render import RenderConfig, RenderStage
    cfg = params.build(RenderConfig, {"head": "default_older", "width": W, "height": H, "backend": "cpu",
                                      **overrides})
    clock = SimClock()
    stage = RenderStage(cfg, lambda cause, err: None, clock.now_ns, log=lambda s: None, render_clock=lambda: clock.t)
    stage.clock = clock
    return stage


def starve(stage, ms_per_full_frame: float) -> list:
    """Make every render take ``ms_per_full_frame`` of simulated time at the full level and full size, scaled by
    Gaussians x pixels. Returns the (level, image width) of each render, in order."""
    full = len(stage.first.levels["full"])
    used = []
    for level, renderer in stage.renderers.items():
        def timed(batch, renderer=renderer, level=level, inner=stage.renderers[level].__class__.render_tick):
            cams = [renderer.participants[name].camera for name in batch]
            share = sum(len(renderer.participants[n].avatar) * c.width * c.height for n, c in zip(batch, cams))
            stage.clock.t += ms_per_full_frame / 1e3 * share / (full * W * H)
            used.append((level, cams[0].width))
            return inner(renderer, batch)
        renderer.render_tick = timed
    return used


def feed(stage, frames: int) -> list:
    """Offer ``frames`` meshes one after another (each stamped now, each waited for); returns the images."""
    v, _ = neutral_vertices("default_older")
    got = queue.Queue()
    stage.start(lambda f: got.put(f.views[""][0].copy()))
    try:
        images = []
        for _ in range(frames):
            stage.clock.t += 0.04                       # the next frame, one 25 Hz period later
            stage.put_mesh(v, stage.clock.now_ns())
            images.append(got.get(timeout=60))
    finally:
        stage.stop()
    return images


def report(stage) -> health.Status:
    st = health.Status("")
    stage.report(st, now_s=stage.clock.t)
    return st


@pytest.fixture(scope="module")
def auto_stage():
    return make_stage(too_old_ms=300.0)


def test_levels_load_once_and_the_full_level_renders_when_it_fits(auto_stage):
    stage = auto_stage
    levels = stage.first.levels
    assert list(levels) == ["full", "12k", "6k"]
    assert len(levels["full"]) > len(levels["12k"]) > len(levels["6k"])
    assert set(stage.renderers) == {"full", "12k", "6k"}
    used = starve(stage, 0.0)
    images = feed(stage, 4)
    assert {lv for lv, _ in used} == {"full"} and all(w == W for _, w in used)
    assert all(img.shape == (H, W, 3) and img.std() > 5 for img in images)
    st = report(stage)
    assert st.values["level"] == "full" and st.values["scale"] == "1" and st.values["budget_ms"] == "150"
    assert int(st.values["published"]) == 4


def test_each_image_reports_where_its_latency_went(auto_stage):
    """Per published image, in publish order: its arrival, the render loop taking it and the end of its render,
    in ms after its stamp, beside stamp_to_publish_ms_each (bench_graph prints the path from these)."""
    stage = auto_stage
    report(stage)                                       # an empty window to start from
    starve(stage, 20.0)                                  # every full-level render takes 20 ms of simulated time
    feed(stage, 3)
    values = report(stage).values
    path = {step: [float(v) for v in values[f"stamp_to_{step}_ms_each"].split(",")]
            for step in ("receive", "take", "rendered", "publish")}
    assert all(len(each) == 3 for each in path.values()), values
    assert path["receive"] == path["take"] == [0.0] * 3     # put at its stamp, taken at once (simulated time)
    assert path["rendered"] == pytest.approx([20.0] * 3) and path["publish"] == pytest.approx([20.0] * 3)


def test_a_starved_renderer_steps_down_a_level_and_reports_it(auto_stage):
    """Each slowdown lowers the option within a few frames, only ever downwards (the window's mean render time
    must fit the period: the faster frames among the last rate_frames delay each step by up to that many frames)."""
    stage = auto_stage

    def only_down(used):
        rank = [stage.deadline.options.index((lv, round(w / W, 2) if w != W else 1.0)) for lv, w in used]
        return rank == sorted(rank)
    # full: 80 ms a frame, 12k ~36 ms, 6k ~18 ms: only 6k fits 0.85 x the 40 ms period at 25 Hz
    used = starve(stage, 80.0)
    images = feed(stage, 40)
    assert used[-4:] == [("6k", W)] * 4 and only_down(used), used
    assert images[-1].shape == (H, W, 3) and images[-1].std() > 5
    st = report(stage)
    assert st.values["level"] == "6k" and st.values["scale"] == "1", st.values
    # slower: 6k ~45 ms does not fit, 6k at scale 0.75 ~25 ms does (rendered smaller, upscaled to the output size)
    used = starve(stage, 200.0)
    images = feed(stage, 40)
    assert used[-4:] == [("6k", round(0.75 * W))] * 4 and only_down(used), used
    assert images[-1].shape == (H, W, 3) and images[-1].std() > 5
    st = report(stage)
    assert st.values["level"] == "6k" and st.values["scale"] == "0.75", st.values
    # starved: not even 6k at scale 0.5 (~56 ms) fits one frame period: it renders that and warns
    used = starve(stage, 1000.0)
    feed(stage, 40)
    assert used[-3:] == [("6k", round(0.5 * W))] * 3, used
    st = report(stage)
    assert st.level == health.WARN and "coarsest option (6k at scale 0.5)" in st.message, st.message


def test_a_pinned_level_stays_however_slow_the_renders():
    stage = make_stage(level="12k")
    used = starve(stage, 200.0)
    feed(stage, 4)
    assert used and all(u == ("12k", W) for u in used), used
    st = report(stage)
    assert st.values["level"] == "12k" and st.values["scale"] == "1"
    assert st.level == health.WARN and "pinned level 12k" in st.message, st.message


def test_a_pinned_level_the_avatar_lacks_is_refused():
    with pytest.raises(ValueError, match=r"level '3k': .* have the levels \['full', '12k', '6k'\]"):
        make_stage(level="3k")


def test_a_user_avatar_with_levels_beside_it_loads_them_and_steps_down(tmp_path):
    """Any avatar file, not only a shipped one: DIR/me.safetensors with me.12k / me.6k beside it (the photo tool's
    output) gives the stage and its controller the same levels as a shipped avatar."""
    import shutil
    from rsatalker_ros.avatar.avatar_io import AVATAR_DIR
    from rsatalker_ros.avatar.levels import level_file, level_path
    full = tmp_path / "me.safetensors"
    shutil.copy(AVATAR_DIR / "default_older.safetensors", full)
    alone = make_stage(avatar=str(full))
    assert list(alone.first.levels) == ["full"] and set(alone.renderers) == {"full"}
    for level in ("12k", "6k"):
        shutil.copy(level_path("default_older", level), level_file(full, level))
    stage = make_stage(avatar=str(full))
    levels = stage.first.levels
    assert list(levels) == ["full", "12k", "6k"] and set(stage.renderers) == {"full", "12k", "6k"}
    assert len(levels["full"]) > len(levels["12k"]) > len(levels["6k"])
    used = starve(stage, 80.0)                          # as for the shipped avatar: only 6k fits the frame period
    feed(stage, 6)
    assert used[-1] == ("6k", W), used
    assert report(stage).values["level"] == "6k"


def test_a_frame_too_old_to_be_published_in_time_is_dropped_and_counted(auto_stage):
    stage = auto_stage
    starve(stage, 0.0)
    # the queue keeps frames of any age in order (no "stale" drop): the 300 ms too_old_ms decides
    stage.reconfigure(params.update(stage.cfg, {"max_frame_age_ms": 60000.0}), {"max_frame_age_ms"})
    v, _ = neutral_vertices("default_older")
    stage.clock.t += 2.0                                        # after the earlier tests' frames (no out_of_order)
    before = stage.first.too_old
    got = queue.Queue()
    stage.put_mesh(v, stage.clock.now_ns() - 10**9)             # a frame whose audio is 1 s old already
    stage.put_mesh(v, stage.clock.now_ns())                     # and a fresh one behind it
    stage.start(lambda f: got.put(f.stamp_ns))
    try:
        fresh = got.get(timeout=60)
    finally:
        stage.stop()
    assert stage.first.too_old == before + 1 and fresh == stage.clock.now_ns()
    st = report(stage)
    assert st.values["dropped_too_old"] == before + 1
    assert np.isfinite(float(st.values["latency_p95_ms"]))
