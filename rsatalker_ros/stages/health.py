"""What a stage reports on /diagnostics, in the diagnostic_updater style, without rclpy.

Each report window (one diagnostics period) a stage says how it did against its targets:
  ``RateCheck``     events per second against a target rate (diagnostic_updater's FrequencyStatus): WARN below
                    ``warn_fraction`` of the target, ERROR below ``error_fraction`` (e.g. nothing at all);
  ``LatencyCheck``  p50 / p95 of a latency against a target (like TimeStampStatus): WARN when p95 exceeds it,
                    ERROR when p50 exceeds twice it;
  ``Rejections``    inputs refused, counted by cause (logged at most once a second per cause); WARN when any came
                    in the window;
  ``Drops``         frames dropped, counted by cause; WARN when more than ``warn_fraction`` of the window's frames.
A stage's ``status()`` returns one or more ``Status``; the lifecycle adapter turns them into DiagnosticStatus
(level OK/WARN/ERROR = 0/1/2, STALE = 3).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "ok", WARN: "warn", ERROR: "error", STALE: "stale"}


@dataclass
class Status:
    name: str                       # "" = the node's name; else "<node name>: <name>"
    level: int = OK
    message: str = "ok"
    values: dict = field(default_factory=dict)
    hardware_id: str = ""

    def add(self, level: int, problem: str = "") -> None:
        """Raise the level to at least ``level``, collecting what went wrong in the message."""
        if level > OK and problem:
            self.message = problem if self.level == OK else f"{self.message}; {problem}"
        self.level = max(self.level, level)


def percentile(sorted_values: list, q: float) -> float:
    """q-quantile of ascending values by nearest rank (no interpolation); 0.0 when empty."""
    if not sorted_values:
        return 0.0
    n = len(sorted_values)
    return float(sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))])


class RateCheck:
    """Counts events (thread-safe ``tick``); ``check(status, now_s)`` adds '<key>' (events/s over the window)."""

    def __init__(self, key: str, target_hz: float, warn_fraction: float = 0.8, error_fraction: float = 0.1):
        self.key, self.target_hz = key, float(target_hz)
        self.warn_fraction, self.error_fraction = warn_fraction, error_fraction
        self._n = 0
        self._since: float | None = None
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, n: int = 1) -> None:
        with self._lock:
            self._n += n
            self.total += n

    def check(self, status: Status, now_s: float | None = None) -> float:
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            n, self._n = self._n, 0
        since, self._since = self._since, now_s
        if since is None or now_s <= since:      # the first window starts now
            status.values[self.key] = 0.0
            return 0.0
        rate = n / (now_s - since)
        status.values[self.key] = rate
        status.values[f"{self.key}_target"] = self.target_hz
        if self.target_hz > 0:
            if rate < self.error_fraction * self.target_hz:
                status.add(ERROR, f"{self.key} {rate:.1f}, target {self.target_hz:g}")
            elif rate < self.warn_fraction * self.target_hz:
                status.add(WARN, f"{self.key} {rate:.1f} below target {self.target_hz:g}")
        return rate


class LatencyCheck:
    """Collects latencies [ms] (thread-safe ``add``); ``check`` adds '<key>_p50', '<key>_p95' and the target."""

    def __init__(self, key: str, target_ms: float):
        self.key, self.target_ms = key, float(target_ms)
        self._values: list = []
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._values.append(float(ms))

    def take(self) -> list:
        """This window's values in arrival order (and start a new window)."""
        with self._lock:
            each, self._values = self._values, []
        return each

    def check(self, status: Status, each: list | None = None) -> None:
        each = self.take() if each is None else each
        s = sorted(each)
        p50, p95 = percentile(s, 0.5), percentile(s, 0.95)
        status.values.update({f"{self.key}_p50": p50, f"{self.key}_p95": p95, f"{self.key}_target": self.target_ms})
        if s and self.target_ms > 0:
            if p50 > 2 * self.target_ms:
                status.add(ERROR, f"{self.key} p50 {p50:.0f} > 2 x target {self.target_ms:g}")
            elif p95 > self.target_ms:
                status.add(WARN, f"{self.key} p95 {p95:.0f} > target {self.target_ms:g}")


class Rejections:
    """Inputs refused, by cause. ``reject(cause, err)`` counts and logs (``log(text)``) each cause + error start at
    most once per ``period_s``, so a flood of bad messages cannot flood the log."""

    def __init__(self, log, period_s: float = 1.0):
        self.log, self.period_s = log, period_s
        self.counts: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, cause: str, err: Exception | str) -> None:
        key = f"{cause}: {str(err)[:28]}"
        now = time.monotonic()
        with self._lock:
            self.counts[cause] = self.counts.get(cause, 0) + 1
            n = self.counts[cause]
            due = now - self._last.get(key, -1e9) >= self.period_s
            if due:
                self._last[key] = now
        if due:
            self.log(f"rejected {cause}: {err} (the node keeps running; {n} rejected so far)")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def check(self, status: Status) -> None:
        """Totals per cause ('rejected: <cause>') and WARN when any came since the last check."""
        with self._lock:
            counts = dict(self.counts)
        new = {c: n - self._reported.get(c, 0) for c, n in counts.items() if n > self._reported.get(c, 0)}
        self._reported = counts
        status.values["rejected_inputs"] = sum(counts.values())
        for cause, n in counts.items():
            status.values[f"rejected: {cause}"] = n
        if new:
            status.add(WARN, "rejected " + ", ".join(f"{n} {c}" for c, n in new.items()))


class Drops:
    """Frames dropped by cause, out of ``frames`` handled; WARN when a window drops more than ``warn_fraction``."""

    def __init__(self, warn_fraction: float = 0.1):
        self.warn_fraction = warn_fraction
        self._last: dict[str, int] = {}
        self._last_frames = 0

    def check(self, status: Status, frames: int, dropped: dict) -> None:
        """``frames``: running total of frames received; ``dropped``: running totals by cause."""
        n = frames - self._last_frames
        new = {c: v - self._last.get(c, 0) for c, v in dropped.items()}
        self._last, self._last_frames = dict(dropped), frames
        for cause, v in dropped.items():
            status.values[f"dropped_{cause}"] = v
        lost = sum(new.values())
        if n > 0 and lost > self.warn_fraction * n:
            status.add(WARN, f"dropped {lost} of {n} frames (" + ", ".join(f"{v} {c}" for c, v in new.items() if v)
                       + ")")
