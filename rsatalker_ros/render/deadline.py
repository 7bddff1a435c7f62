"""Per-frame choice of the level of detail (and render scale) that keeps audio stamp -> publish within a budget.
Pure Python, no ROS: the renderer node's adapter owns one ``DeadlineController`` and calls it around each render.

    ctl = DeadlineController(DeadlineConfig(budget_ms=150.0), costs={"full": 26694, "12k": 12000, "6k": 6000})
    choice = ctl.choose(now_s, stamp_s)        # before rendering the newest frame (stamp = its audio time)
    if choice.render:
        image = render(avatars[choice.level], camera.scaled(choice.scale))
        ctl.rendered(choice, render_s, publish_s, stamp_s)     # after publishing it (seconds)
    ctl.dropped("stale", n)                   # drops decided elsewhere (the frame queue): all causes in one place
    status = ctl.status(now_s)                # -> Status: level, scale, budget, p95 latency, rate, drops, OK/WARN/ERROR

Model: render time = (seconds per unit of cost) x cost(option), cost(level, scale) = costs[level] x scale^2 (Gaussians
x pixels, the rasteriser's two factors) to begin with. Render times are not proportional to the Gaussian count (a
frame has a per-pixel part: 6k Gaussians take about 40 %, not 22 %, of the full level's time), so the relative costs
are learnt: whenever the option changes, the ratio of the median render times of the last frames before the switch
(taken at the cost of the option before) and the first frames after it (measured back to back, under the same load)
sets the new option's cost relative to the other's, kept between its neighbours' costs and within what the
Gaussians x pixels prior allows. Without that a renderer that stepped down once would predict the finer levels far
too slow and never go back up.

After the first ``warm_up`` frames (rendered at the most detailed option: a first frame can be slow), each frame
gets the most detailed option (levels first, then scales, in config order) that passes two tests, both on the last
``window`` rendered frames whatever option they used (so a slow machine or a busy core moves every prediction at
once, and the first frame of a level it never used is already predicted):
- the budget: each of those frames is replayed at the option's cost, its age (audio stamp -> the render loop taking
  it) and publish time (render end -> publish) as they were, its render time scaled to the option's cost and
  divided by ``headroom``; the ``latency_quantile`` of these latencies must be within ``budget_ms``. The measured
  spread of ages, render times and publish times, and how they go together, is in that quantile; summing a high
  quantile of each (the ages' p95 + the renders' p90 + the publishes' p90, as this controller did before) counts
  the rare bad cases three times over and kept the full level off a 2-core machine where it held the budget;
- the rate: the mean render time of the last ``rate_frames`` frames at the option's cost, over ``headroom``, plus
  their mean publish time must fit one frame period. The render loop takes its frames from a queue, so one render
  longer than a period delays the next frame but loses none: what must fit is the time per frame on average (the
  latency test sees the delays), over recent frames so that a machine that gets slower is followed within them.
A single late frame from upstream (a motion node's hiccup) hardly moves the window's quantile, so it does not send
the level down for the next ``upgrade_after`` frames; upstream lateness that lasts does lower it (on a shared core a
cheaper render is also what lets the motion nodes run sooner), and when even no render at all would leave a frame
within the budget (the ``age_quantile`` of the window's ages alone is over the budget) the status says upstream is
late. Going coarser happens at once; going finer only after the finer option fitted ``upgrade_after`` frames in a
row, and that streak doubles (up to 16 x) each time a finer option had to be left again within ``window`` frames of
going to it (its replayed prediction held but the frames after the switch did not, e.g. on one core where a
heavier render also delays the motion nodes), back to ``upgrade_after`` once an option held for ``window`` frames:
no flicker between levels. Nothing is ever queued here: a frame is rendered now or dropped.
A frame already older than ``max_age_ms`` when the render loop takes it is dropped (cause "too_old"): it cannot
be published in time and would delay the next one. ``pinned_level`` fixes the level (scale 1) for those who want
fixed quality; the budget and rate are then still measured and reported.

Status, for /diagnostics (``Status.level`` uses diagnostic_msgs' values OK 0, WARN 1, ERROR 2):
- WARN when the p95 latency of the window is over the budget, when fewer than ``min_rate_fraction`` of the offered
  frames were published (the rate does not hold), or when even the coarsest option does not fit;
- ERROR when frames are offered but none was published for ``stall_s`` (the renderer stopped).

Wiring it into the renderer node (after the lifecycle restructuring, #10): declare one parameter per field of
``DeadlineConfig`` (descriptions from the comments below), build the controller in on_configure with
``costs = {level: len(avatar)}`` for the levels of ``avatar.levels.available_levels``; in the render loop call
``choose`` with the frame's stamp, render ``choice.level`` at ``choice.scale`` (upscale to the output size before
publishing), call ``rendered`` after publishing; forward ``FrameQueue.stats`` drops with ``dropped``; publish
``status(now)`` as the renderer's DiagnosticStatus (level, message, and ``Status.values()`` as key/values).
"""

from __future__ import annotations

import collections
import itertools
import math
import statistics
from dataclasses import dataclass, field

from rsatalker_ros.stages.health import percentile

OK, WARN, ERROR = 0, 1, 2   # diagnostic_msgs/DiagnosticStatus levels
PAIR_FRAMES = 5             # frames before and after a switch whose median render times set the relative cost


@dataclass
class DeadlineConfig:
    budget_ms: float = 150.0          # audio stamp -> publish target for the p95 latency (ms, > 0)
    rate_hz: float = 25.0             # frame rate to hold (Hz, > 0): a frame's render must also fit one period
    levels: tuple = ("full", "12k", "6k")  # level names, most detailed first (avatar.levels.available_levels)
    scales: tuple = (1.0, 0.75, 0.5)  # render scales tried, in order, once the coarsest level does not fit (0 < s <= 1)
    pinned_level: str = ""            # "" = automatic; else always this level at scale 1
    publish_ms: float = 5.0           # end of rendering -> publish (conversion, DDS) before any was measured, ms
    age_quantile: float = 0.95        # quantile of the frames' ages at take: over the budget alone = upstream is late
    latency_quantile: float = 0.95    # quantile of the window's latencies, replayed at an option's cost, that must fit
    headroom: float = 0.85            # predicted render times are divided by this (0..1]: the margin for a change
    quantile: float = 0.9             # quantile of render times and publish times reported (predicted_ms, publish_ms)
    window: int = 50                  # frames kept for predictions, p95 latency and rate (>= 5)
    rate_frames: int = 25             # the latest frames whose mean time per frame must fit the period (1..window)
    upgrade_after: int = 25           # frames a finer option must fit in a row before switching to it (>= 1)
    warm_up: int = 5                  # frames rendered at the first option before any change (>= 1)
    max_age_ms: float = 300.0         # frames older than this when taken are dropped as "too_old" (ms, > 0)
    min_rate_fraction: float = 0.9    # WARN when published / offered frames over the window falls below this
    stall_s: float = 2.0              # ERROR when frames are offered but none was published for this long (s)

    def validate(self) -> None:
        checks = [("budget_ms", self.budget_ms > 0, "> 0"), ("rate_hz", self.rate_hz > 0, "> 0"),
                  ("levels", len(self.levels) > 0, "at least one level name"),
                  ("scales", len(self.scales) > 0 and all(0 < s <= 1 for s in self.scales), "values in (0, 1]"),
                  ("headroom", 0 < self.headroom <= 1, "in (0, 1]"), ("quantile", 0 < self.quantile <= 1, "in (0, 1]"),
                  ("age_quantile", 0 < self.age_quantile <= 1, "in (0, 1]"),
                  ("latency_quantile", 0 < self.latency_quantile <= 1, "in (0, 1]"),
                  ("window", self.window >= 5, ">= 5"),
                  ("rate_frames", 1 <= self.rate_frames <= self.window, "in 1..window"),
                  ("upgrade_after", self.upgrade_after >= 1, ">= 1"),
                  ("warm_up", self.warm_up >= 1, ">= 1"),
                  ("max_age_ms", self.max_age_ms > 0, "> 0"), ("publish_ms", self.publish_ms >= 0, ">= 0"),
                  ("min_rate_fraction", 0 <= self.min_rate_fraction <= 1, "in [0, 1]"),
                  ("stall_s", self.stall_s > 0, "> 0")]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"deadline config {name} = {getattr(self, name)!r}; expected {expected}")
        if self.pinned_level and self.pinned_level not in self.levels:
            raise ValueError(f"pinned_level {self.pinned_level!r} is not one of the levels {list(self.levels)}")


@dataclass(frozen=True)
class Choice:
    render: bool                      # False: drop this frame (cause in `cause`)
    level: str                        # level of detail to render
    scale: float                      # render scale (1 = full resolution)
    predicted_ms: float               # predicted render time of this option, the window's ``quantile`` (nan before the
                                      # first measurement)
    available_ms: float               # time left for the render: budget - age (window's age_quantile) - publish
    cause: str = ""                   # why the frame is dropped ("too_old"), or "" when rendered
    age_ms: float = float("nan")      # this frame's audio stamp -> taken by the render loop


@dataclass
class Status:
    level: int                        # OK, WARN or ERROR
    message: str
    current_level: str
    current_scale: float
    budget_ms: float
    latency_p95_ms: float             # audio stamp -> publish over the window (nan before any frame)
    render_p95_ms: float              # render time over the window
    rate_hz: float                    # publish rate over the window (nan with fewer than 2 frames)
    published: int
    drops: dict = field(default_factory=dict)   # cause -> frames dropped since the start
    age_ms: float = float("nan")      # audio stamp -> taken by the render loop, the window's age_quantile
    publish_ms: float = float("nan")  # render end -> publish used for the choice

    def values(self) -> dict:
        """Key/value strings for a DiagnosticStatus."""
        d = {"level": self.current_level, "scale": f"{self.current_scale:g}", "budget_ms": f"{self.budget_ms:g}",
             "latency_p95_ms": f"{self.latency_p95_ms:.1f}", "render_p95_ms": f"{self.render_p95_ms:.1f}",
             "rate_hz": f"{self.rate_hz:.2f}", "published": str(self.published), "age_ms": f"{self.age_ms:.1f}",
             "publish_ms": f"{self.publish_ms:.1f}"}
        d.update({f"dropped_{k}": str(v) for k, v in sorted(self.drops.items())})
        return d


class DeadlineController:
    def __init__(self, config: DeadlineConfig, costs: dict):
        """costs: level name -> relative render cost (e.g. its Gaussian count), for every level in config.levels."""
        config.validate()
        missing = [lv for lv in config.levels if lv not in costs]
        if missing:
            raise ValueError(f"costs has no entry for levels {missing}; expected one positive cost per level")
        if any(not costs[lv] > 0 for lv in config.levels):
            raise ValueError(f"costs must be positive, got {costs}")
        self.cfg = config
        if config.pinned_level:
            self.options = [(config.pinned_level, 1.0)]
        else:
            self.options = [(lv, 1.0) for lv in config.levels] + [(config.levels[-1], s) for s in config.scales
                                                                  if s < 1.0]
        # relative cost per option (index into options), learnt from back-to-back frames of two options
        self.costs = [float(costs[lv]) * sc ** 2 for lv, sc in self.options]
        self.prior = list(self.costs)             # Gaussians x pixels, the bounds of what is learnt
        self._pair = None                         # (option before a switch, its median render s, option after,
                                                  #  render s of the first frames after it)
        self._current = 0                          # index into options
        self._fit_streak = 0                       # frames in a row the next finer option fitted
        self._upgrade_need = config.upgrade_after  # the streak needed now (doubled after a finer option failed)
        self._held = 0                             # frames chosen at the current option since going to it
        self._went_finer = False                   # the current option was reached by going finer
        # per rendered frame: (option index, render s, age at take ms, render end -> publish ms)
        self._renders = collections.deque(maxlen=config.window)
        self._per_cost_q = None                    # cached quantile of seconds per unit of cost (None: recompute)
        self._latency = collections.deque(maxlen=config.window)    # stamp -> publish seconds
        self._ages = collections.deque(maxlen=config.window)       # stamp -> taken by the render loop, ms
        self._publish = collections.deque(maxlen=config.window)    # render end -> publish, ms
        self._upstream_late = False                # the ages alone leave no time for any render
        self._published_at = collections.deque(maxlen=config.window)
        self._offered = collections.deque(maxlen=config.window)    # 1 published / 0 dropped, per offered frame
        self._too_coarse = False                   # the coarsest option did not fit the last frame
        self.published = 0
        self.drops: dict = {}
        self._last_publish_s = None
        self._last_offer_s = None
        self._first_offer_s = None

    # ------------------------------------------------------------------------------------------------ per frame
    def predict_ms(self, option_index: int) -> float:
        """Predicted render time (ms) of an option; nan before the first measured frame."""
        if not self._renders:
            return float("nan")
        if self._per_cost_q is None:
            self._per_cost_q = percentile(sorted(r[1] / self.costs[r[0]] for r in self._renders), self.cfg.quantile)
        return 1e3 * self._per_cost_q * self.costs[option_index]

    def predict_latency_ms(self, option_index: int) -> float:
        """The window's frames replayed at an option's cost (render time / headroom): their ``latency_quantile``
        [ms] (nan before the first measured frame)."""
        if not self._renders:
            return float("nan")
        scale = 1e3 * self.costs[option_index] / self.cfg.headroom
        return percentile(sorted(age + publish + scale * t / self.costs[i] for i, t, age, publish in self._renders),
                          self.cfg.latency_quantile)

    def predict_tick_ms(self, option_index: int) -> float:
        """Mean time per frame of the render loop at an option's cost over the last ``rate_frames`` frames:
        render / headroom + publish [ms] (nan before the first measured frame)."""
        if not self._renders:
            return float("nan")
        scale = 1e3 * self.costs[option_index] / self.cfg.headroom
        recent = list(itertools.islice(reversed(self._renders), self.cfg.rate_frames))
        return sum(scale * t / self.costs[i] + publish for i, t, _, publish in recent) / len(recent)

    def _fits(self, i: int) -> bool:
        if not self._renders:
            return True
        return (self.predict_latency_ms(i) <= self.cfg.budget_ms
                and self.predict_tick_ms(i) <= 1e3 / self.cfg.rate_hz)

    def choose(self, now_s: float, stamp_s: float) -> Choice:
        """Decide for the frame stamped ``stamp_s`` (audio clock, seconds), taken by the render loop at ``now_s``."""
        cfg = self.cfg
        self._offer(now_s)
        age_ms = 1e3 * (now_s - stamp_s)
        if age_ms > cfg.max_age_ms:
            self.dropped("too_old")
            lv, sc = self.options[self._current]
            return Choice(False, lv, sc, self.predict_ms(self._current), cfg.budget_ms - age_ms - self.publish_ms(),
                          "too_old", age_ms)
        self._ages.append(age_ms)
        waited = percentile(sorted(self._ages), cfg.age_quantile)
        available = cfg.budget_ms - waited - self.publish_ms()
        self._upstream_late = available <= 0
        n = len(self.options)
        i = self._current
        if len(self._renders) < cfg.warm_up:                    # a first frame can be slow (caches, start-up)
            self._too_coarse = bool(self._renders) and not self._fits(i)
            self._move_to(i)
            return Choice(True, *self.options[i], self.predict_ms(i), available, "", age_ms)
        while i < n - 1 and not self._fits(i):                   # coarser at once
            i += 1
        self._too_coarse = not self._fits(i)
        if i == self._current and i > 0 and self._fits(i - 1):   # finer only after a streak
            self._fit_streak += 1
            if self._fit_streak >= self._upgrade_need:
                i -= 1
        else:
            self._fit_streak = 0
        self._move_to(i)
        lv, sc = self.options[i]
        return Choice(True, lv, sc, self.predict_ms(i), available, "", age_ms)

    def _move_to(self, i: int) -> None:
        """Make option ``i`` the current one, keeping the anti-flicker state: a finer option left again within a
        window doubles the streak the next going finer needs; one held for a window resets it."""
        cfg = self.cfg
        if i == self._current:
            self._held += 1
            if self._went_finer and self._held >= cfg.window:    # the finer option held: plain streaks again
                self._upgrade_need = cfg.upgrade_after
            return
        if i > self._current and self._went_finer and self._held < cfg.window:
            self._upgrade_need = min(16 * cfg.upgrade_after, 2 * self._upgrade_need)
        self._went_finer = i < self._current
        self._current, self._held, self._fit_streak = i, 1, 0

    def publish_ms(self) -> float:
        """Render end -> publish [ms]: a high quantile of the measured ones (publish_ms before 5 were measured)."""
        if len(self._publish) < 5:
            return self.cfg.publish_ms
        return percentile(sorted(self._publish), self.cfg.quantile)

    def rendered(self, choice: Choice, render_s: float, now_s: float, stamp_s: float) -> None:
        """Record a published frame: its render time (s) and publish time ``now_s`` for the stamp ``stamp_s``
        (what is left of stamp -> publish after the frame's age at ``choose`` and its render is the publish time)."""
        if render_s < 0:
            raise ValueError(f"render_s must be >= 0, got {render_s}")
        age_ms = choice.age_ms if math.isfinite(choice.age_ms) else 1e3 * (now_s - stamp_s - render_s)
        publish_ms = max(0.0, 1e3 * (now_s - stamp_s - render_s) - age_ms)
        self._publish.append(publish_ms)
        i = self.options.index((choice.level, choice.scale))
        if self._renders and self._renders[-1][0] != i:     # the first frame of a new option: compare it with the
            j = self._renders[-1][0]                        # last PAIR_FRAMES frames, at the option before's cost
            before = [t * self.costs[j] / self.costs[o] for o, t, _, _ in itertools.islice(reversed(self._renders),
                                                                                             PAIR_FRAMES)]
            self._pair = (j, statistics.median(before), i, [])
        if self._pair is not None and self._pair[2] == i and len(self._pair[3]) < PAIR_FRAMES:
            self._pair[3].append(render_s)
            self._learn_cost(i, *self._pair[:2], statistics.median(self._pair[3]))
        self._renders.append((i, render_s, age_ms, publish_ms))
        self._per_cost_q = None
        self._latency.append(now_s - stamp_s)
        self._published_at.append(now_s)
        self._offered.append(1)
        self.published += 1
        self._last_publish_s = now_s

    def _learn_cost(self, i: int, j: int, t_j: float, t_i: float) -> None:
        """Option i's cost from the median render times of the frames just before (option j) and just after a
        switch: back to back, under the same load, their ratio is the ratio of the costs. Kept between the
        neighbouring options' costs, and a coarser option at no less than its Gaussians x pixels share of a finer
        one's cost (a render's time is a per-Gaussian, a per-pixel and a per-covered-pixel part, and none of them
        shrinks by more than that share): a slow frame at the switch cannot make a finer level look so slow that it
        is never tried again."""
        if t_j <= 0 or t_i <= 0:
            return
        shown = self.costs[j] * t_i / t_j
        bound = self.costs[j] * self.prior[i] / self.prior[j]       # i coarser: at least; i finer: at most
        shown = max(shown, bound) if i > j else min(shown, bound)
        finer = min(self.costs[:i], default=float("inf"))            # options run from the finest to the coarsest
        coarser = max(self.costs[i + 1:], default=0.0)
        self.costs[i] = min(finer, max(coarser, shown))

    def dropped(self, cause: str, count: int = 1) -> None:
        """Count ``count`` frames dropped for ``cause`` (e.g. the frame queue's "stale", "overflow", "out_of_order")."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count:
            self.drops[cause] = self.drops.get(cause, 0) + count
            self._offered.extend([0] * min(count, self.cfg.window))

    def _offer(self, now_s: float) -> None:
        self._last_offer_s = now_s
        if self._first_offer_s is None:
            self._first_offer_s = now_s

    # ---------------------------------------------------------------------------------------------------- status
    def status(self, now_s: float) -> Status:
        cfg = self.cfg
        lv, sc = self.options[self._current]
        nan = float("nan")
        lat = 1e3 * percentile(sorted(self._latency), 0.95) if self._latency else nan
        ren = 1e3 * percentile(sorted(r[1] for r in self._renders), 0.95) if self._renders else nan
        t = self._published_at
        rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else nan
        published_fraction = sum(self._offered) / len(self._offered) if self._offered else 1.0
        problems, state = [], OK
        since = self._last_publish_s if self._last_publish_s is not None else self._first_offer_s
        if self._last_offer_s is not None and since is not None and now_s - since > cfg.stall_s \
                and self._last_offer_s > since:
            state = ERROR
            problems.append(f"stopped: frames are offered but none was published for {now_s - since:.1f} s")
        if lat > cfg.budget_ms:
            problems.append(f"p95 latency {lat:.0f} ms over the {cfg.budget_ms:g} ms budget")
        if len(self._offered) >= 5 and published_fraction < cfg.min_rate_fraction:
            problems.append(f"rate not held: {100 * published_fraction:.0f} % of offered frames published")
        age = percentile(sorted(self._ages), cfg.age_quantile) if self._ages else nan
        if self._upstream_late and self._ages:
            problems.append(f"frames reach the render loop {age:.0f} ms "
                            f"after their audio stamp (p{100 * cfg.age_quantile:g}): no time is left for a render "
                            "within the budget (upstream is late)")
        elif self._too_coarse:
            what = f"pinned level {lv}" if cfg.pinned_level else f"coarsest option ({lv} at scale {sc:g})"
            problems.append(f"even the {what} is predicted over the time available")
        if problems and state == OK:
            state = WARN
        message = "; ".join(problems) if problems else (f"level {lv} at scale {sc:g} holds the "
                                                          f"{cfg.budget_ms:g} ms budget")
        return Status(state, message, lv, sc, cfg.budget_ms, lat, ren, rate, self.published, dict(self.drops), age,
                      self.publish_ms())
