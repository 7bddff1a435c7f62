"""When each bag message is published on replay, and how its stamps move. Pure Python (integer nanoseconds).

A message logged at ``log`` is due at ``start_wall + (log - bag_start + k * period) / rate`` in loop ``k``
(period = the bag's duration + ``loop_gap_ns``). Re-stamped, its header stamp moves by
``start_wall - bag_start + k * period``: at rate 1 a stamp keeps its distance to the moment it is published, as
in the live graph, so nodes that judge frames by their age (the renderer) and pages that play audio against
images by stamp (the kiosk) work on replayed data as on live data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    bag_start_ns: int        # log time of the bag's first message
    bag_duration_ns: int     # last log time - first
    start_wall_ns: int       # wall-clock moment the first message is published
    rate: float = 1.0        # playback speed (2.0 = twice as fast)
    loop_gap_ns: int = 0     # pause between the end of one loop and the start of the next

    def __post_init__(self):
        if not self.rate > 0:
            raise ValueError(f"rate is {self.rate}; expected > 0 (1.0 = the original timing)")
        if self.bag_duration_ns < 0 or self.loop_gap_ns < 0:
            raise ValueError("bag duration and loop gap must be >= 0")

    @property
    def period_ns(self) -> int:
        return self.bag_duration_ns + self.loop_gap_ns

    def due_ns(self, log_time_ns: int, loop: int = 0) -> int:
        return self.start_wall_ns + round((log_time_ns - self.bag_start_ns + loop * self.period_ns) / self.rate)

    def stamp_shift_ns(self, loop: int = 0) -> int:
        return self.start_wall_ns - self.bag_start_ns + loop * self.period_ns
