"""The deadline controller (render/deadline.py): level choice from measured render times, hysteresis, pinning,
drops by cause and the OK / WARN / ERROR status, driven by a simulated clock (no ROS, no sleeps)."""

import math

import pytest

from rsatalker_ros.render.deadline import ERROR, OK, WARN, DeadlineConfig, DeadlineController

COSTS = {"full": 27000, "12k": 12000, "6k": 6000}


def run(ctl, frames, ms_per_kgauss, period=0.04, upstream_ms=20.0, t0=100.0, publish_ms=0.0):
    """Simulate ``frames`` frames: each is taken ``upstream_ms`` after its stamp (a number, or one per frame),
    rendered in a time proportional to the option's cost, published ``publish_ms`` later. Returns the choices."""
    choices = []
    t = t0
    upstream = upstream_ms if hasattr(upstream_ms, "__len__") else [upstream_ms] * frames
    for k in range(frames):
        stamp = t
        now = stamp + upstream[k] / 1e3
        c = ctl.choose(now, stamp)
        choices.append(c)
        if c.render:
            render_s = ms_per_kgauss / 1e3 * COSTS[c.level] / 1000 * c.scale ** 2
            ctl.rendered(c, render_s, now + render_s + publish_ms / 1e3, stamp)
        t += period
    return choices


def test_fast_machine_keeps_full_level_and_reports_ok():
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    choices = run(ctl, 60, ms_per_kgauss=0.5)           # full level: 13.5 ms
    assert {c.level for c in choices} == {"full"} and all(c.scale == 1.0 for c in choices)
    st = ctl.status(100.0 + 60 * 0.04)
    assert st.level == OK and st.current_level == "full" and st.latency_p95_ms < 150
    assert st.rate_hz == pytest.approx(25.0, rel=0.01) and st.drops == {}


def test_slow_machine_steps_down_to_a_level_that_holds_rate_and_budget():
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    choices = run(ctl, 80, ms_per_kgauss=2.5)           # full 67 ms > one 40 ms period; 12k 30 ms fits
    warm_up = DeadlineConfig.warm_up
    assert all(c.level == "full" for c in choices[:warm_up])     # the first frames render the full level
    assert all(c.level == "12k" and c.scale == 1.0 for c in choices[warm_up:])
    st = ctl.status(100.0 + 80 * 0.04)
    assert st.level == OK and st.current_level == "12k"


def test_very_slow_machine_also_lowers_the_render_scale_and_warns_when_nothing_fits():
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    choices = run(ctl, 40, ms_per_kgauss=8.0)           # 6k: 48 ms; at scale 0.75: 27 ms fits
    assert (choices[-1].level, choices[-1].scale) == ("6k", 0.75)
    ctl2 = DeadlineController(DeadlineConfig(), COSTS)
    run(ctl2, 40, ms_per_kgauss=40.0)                   # 6k at scale 0.5: 60 ms, never fits
    st = ctl2.status(100.0 + 40 * 0.04)
    assert st.level == WARN and "coarsest option" in st.message
    assert (st.current_level, st.current_scale) == ("6k", 0.5)


def test_goes_finer_only_after_a_streak_of_fitting_frames():
    cfg = DeadlineConfig(upgrade_after=10)
    ctl = DeadlineController(cfg, COSTS)
    run(ctl, 60, ms_per_kgauss=2.5)                     # settles on 12k
    choices = run(ctl, 60, ms_per_kgauss=0.5, t0=110.0)  # machine gets fast: predictions use the window's quantile
    levels = [c.level for c in choices]
    first_full = levels.index("full")
    assert first_full >= cfg.upgrade_after               # no flicker: a streak first
    assert set(levels[first_full:]) == {"full"}


def test_one_late_frame_from_upstream_does_not_lower_the_level_but_lasting_lateness_does():
    """The time left for a render comes from a high quantile of the recent frames' ages, not the one frame's: a
    single frame delayed upstream (a motion node's hiccup) keeps the full level for it and the frames after it;
    frames that keep arriving late leave less time, so the level goes down, and when they arrive later than the
    budget allows at all, the status says upstream is late (not the render)."""
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    upstream = [60.0] * 100
    upstream[60] = 140.0                                   # one frame 140 ms late: no render can make 150 ms
    choices = run(ctl, 100, ms_per_kgauss=1.0, upstream_ms=upstream)   # full: 27 ms, fits 150 - 60 - 5
    assert {c.level for c in choices} == {"full"}
    assert choices[60].age_ms == pytest.approx(140.0)
    assert ctl.status(104.0).level == OK
    choices = run(ctl, 60, ms_per_kgauss=1.0, upstream_ms=120.0, t0=104.0)   # 30 ms left x 0.85: full does not fit
    assert choices[-1].level == "12k" and choices[-1].scale == 1.0
    run(ctl, 60, ms_per_kgauss=1.0, upstream_ms=160.0, t0=107.0)
    st = ctl.status(110.0)
    assert st.level == WARN and "upstream is late" in st.message and float(st.values()["age_ms"]) == 160.0


def test_the_publish_time_is_measured_and_leaves_less_time_for_the_render():
    ctl = DeadlineController(DeadlineConfig(publish_ms=5.0), COSTS)
    assert ctl.publish_ms() == 5.0                         # before anything was measured
    choices = run(ctl, 60, ms_per_kgauss=1.0, upstream_ms=100.0, publish_ms=20.0)
    assert ctl.publish_ms() == pytest.approx(20.0, abs=0.01)
    assert choices[-1].level == "12k"                      # 150 - 100 - 20 = 30 ms x 0.85: full's 27 ms do not fit
    assert ctl.status(103.0).values()["publish_ms"] == "20.0"


def test_relative_costs_are_learnt_so_a_renderer_that_stepped_down_goes_back_to_full():
    """Render time has a per-pixel part: here 12 ms x scale^2 + 0.4 ms per 1000 Gaussians (full 22.8 ms, 12k 16.8,
    6k 14.4). Proportional to the Gaussians, a renderer at 12k would predict full at 2.3 x 16.8 = 39 ms, over the
    34 ms a frame may take, and never go back up; the costs learnt from back-to-back frames of two options let it."""
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    t = 100.0

    def frames(n, slowdown):
        nonlocal t
        out = []
        for _ in range(n):
            c = ctl.choose(t + 0.06, t)
            render_s = slowdown * (12.0 * c.scale ** 2 + 0.4 * COSTS[c.level] / 1000) / 1e3
            ctl.rendered(c, render_s, t + 0.06 + render_s, t)
            out.append((c.level, c.scale))
            t += 0.04
        return out
    slow = frames(60, 3.0)                                  # a busy machine for 2.4 s: steps down
    assert slow[0] == ("full", 1.0) and slow[-1] != ("full", 1.0)
    fast = frames(200, 1.0)                                 # then idle again
    assert fast[-30:] == [("full", 1.0)] * 30
    assert ctl.predict_ms(0) == pytest.approx(22.8, rel=0.15)   # the full level predicted from the others' times


def test_pinned_level_never_changes_but_reports_the_missed_budget():
    ctl = DeadlineController(DeadlineConfig(pinned_level="full", budget_ms=100.0), COSTS)
    choices = run(ctl, 40, ms_per_kgauss=5.0)            # full: 135 ms every frame
    assert {(c.level, c.scale) for c in choices} == {("full", 1.0)}
    st = ctl.status(100.0 + 40 * 0.04 + 0.2)
    assert st.level == WARN and "over the 100 ms budget" in st.message and "pinned level full" in st.message


def test_old_frames_are_dropped_and_every_cause_is_reported():
    ctl = DeadlineController(DeadlineConfig(max_age_ms=200.0), COSTS)
    c = ctl.choose(now_s=10.5, stamp_s=10.0)
    assert not c.render and c.cause == "too_old"
    ctl.dropped("stale", 3)
    ctl.dropped("out_of_order")
    st = ctl.status(10.5)
    assert st.drops == {"too_old": 1, "stale": 3, "out_of_order": 1}
    assert st.values()["dropped_stale"] == "3"


def test_rate_warning_when_most_frames_are_dropped_and_error_when_publishing_stops():
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    run(ctl, 20, ms_per_kgauss=0.5)
    ctl.dropped("stale", 20)                              # half of the window's offered frames lost
    assert "rate not held" in ctl.status(100.8).message
    t = 100.8
    for _ in range(80):                                    # frames keep coming, nothing is published any more
        ctl.choose(t, t - 0.01)
        t += 0.04
    st = ctl.status(t)
    assert st.level == ERROR and "stopped" in st.message


def test_bad_config_and_costs_are_rejected_with_names():
    with pytest.raises(ValueError, match="budget_ms"):
        DeadlineController(DeadlineConfig(budget_ms=0), COSTS)
    with pytest.raises(ValueError, match="pinned_level"):
        DeadlineController(DeadlineConfig(pinned_level="3k"), COSTS)
    with pytest.raises(ValueError, match="6k"):
        DeadlineController(DeadlineConfig(), {"full": 1, "12k": 1})
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    assert math.isnan(ctl.predict_ms(0))


def simulate(ctl, frames, render_ms, age_ms, t0=100.0, publish_ms=2.0):
    """Frames 40 ms apart: ``render_ms(option level, scale, k)`` and ``age_ms(level, k)`` give frame k's render time
    and its age when taken (both may depend on what was chosen). Returns [(level, scale)] per frame."""
    out, t = [], t0
    for k in range(frames):
        c = ctl.choose(t + age_ms(ctl.options[ctl._current][0], k) / 1e3, t)
        render_s = render_ms(c.level, c.scale, k) / 1e3
        ctl.rendered(c, render_s, t + c.age_ms / 1e3 + render_s + publish_ms / 1e3, t)
        out.append((c.level, c.scale))
        t += 0.04
    return out


def test_a_machine_where_the_full_level_holds_gets_it_after_the_warm_up():
    """The 2-core case of #9: the full level renders in 24 ms, one frame in seven takes 42 ms (a busy core), and
    frames reach the render loop 70-90 ms after their stamp. Pinned, that holds 25 Hz at p95 ~120 ms of the 150 ms
    budget. A prediction from the p90 render time over 0.85 x the 40 ms period (42 / 0.85 = 49 ms > 40) kept it
    off; the replayed frames' p95 latency (~140 ms) and the mean time per frame (~29 ms) let it go back to full."""
    import random
    rng = random.Random(1)
    spikes = [rng.random() < 1 / 7 for _ in range(600)]
    ages = [rng.uniform(70.0, 90.0) for _ in range(600)]
    gauss = {"full": 1.0, "12k": 0.55, "6k": 0.4}            # render time relative to full (a per-pixel part)

    def render_ms(level, scale, k):
        return (42.0 if spikes[k] else 24.0) * gauss[level] * scale ** 2
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    used = simulate(ctl, 600, render_ms, lambda level, k: ages[k])
    assert used[-400:] == [("full", 1.0)] * 400
    st = ctl.status(100.0 + 600 * 0.04)
    assert st.level == OK and st.latency_p95_ms <= 150


def test_a_finer_level_that_slows_upstream_is_tried_less_and_less_often():
    """On one core a heavier render also delays the motion nodes: with the full level every frame arrives 90 ms
    later, which the replay of 12k frames cannot foresee. Each try of the full level ends within a few frames, and
    the streak before the next try doubles (25, 50, 100, ... up to 400 frames), so the level does not flicker."""
    ctl = DeadlineController(DeadlineConfig(), COSTS)
    used = simulate(ctl, 1500, lambda level, scale, k: 20.0 * COSTS[level] / 27000 * scale ** 2,
                    lambda level, k: 130.0 if level == "full" else 40.0)
    tries = [k for k in range(1, len(used)) if used[k] == ("full", 1.0) and used[k - 1] != ("full", 1.0)]
    assert 3 <= len(tries) <= 7, tries
    gaps = [b - a for a, b in zip(tries, tries[1:])]         # the streak + the window's flush of the late frames
    assert gaps == sorted(gaps) and gaps[-1] >= 16 * DeadlineConfig.upgrade_after, gaps
    assert sum(u == ("full", 1.0) for u in used) < 0.03 * len(used)
    assert used[-1] == ("12k", 1.0)


def test_a_level_that_held_a_whole_window_resets_the_streak():
    """After a failed try the streak is doubled, but once a finer level held for a window, the next upgrade needs
    only upgrade_after frames again."""
    cfg = DeadlineConfig(upgrade_after=10)
    ctl = DeadlineController(cfg, COSTS)
    slow = {"v": True}

    def render_ms(level, scale, k):
        return (3.0 if slow["v"] else 0.6) * COSTS[level] / 1000 * scale ** 2
    simulate(ctl, 40, render_ms, lambda level, k: 30.0)        # settles on 12k (full 81 ms does not fit)
    ctl._move_to(0)                                             # a try of full that fails at once
    simulate(ctl, 5, render_ms, lambda level, k: 30.0, t0=102.0)
    assert ctl._upgrade_need == 2 * cfg.upgrade_after
    slow["v"] = False
    used = simulate(ctl, 200, render_ms, lambda level, k: 30.0, t0=103.0)
    first = used.index(("full", 1.0))
    assert first >= 2 * cfg.upgrade_after and set(used[first:]) == {("full", 1.0)}
    assert ctl._upgrade_need == cfg.upgrade_after               # held a window: back to the plain streak
