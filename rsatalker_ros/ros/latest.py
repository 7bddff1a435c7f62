"""Keep only the newest frame: a one-slot mailbox that counts what it threw away. Pure Python (no rclpy).

The renderer's subscription callback ``put``s every frame; the render loop ``take``s the newest. A frame replaced
before it was taken is dropped (counted), never queued; a frame older than ``max_age_ns`` (by its stamp, relative to
the newest stamp seen) is dropped on arrival, and a frame whose stamp goes backwards by more than ``restart_ns``
is taken as a restarted source rather than a stale frame.
"""

import threading
from dataclasses import dataclass


@dataclass
class SlotStats:
    received: int = 0
    taken: int = 0
    dropped_replaced: int = 0   # a newer frame arrived before this one was rendered
    dropped_stale: int = 0      # arrived older than the newest one seen

    @property
    def dropped(self) -> int:
        return self.dropped_replaced + self.dropped_stale


class LatestSlot:
    def __init__(self, restart_ns: int = 2_000_000_000):
        self._cond = threading.Condition()
        self._item = None
        self._stamp = None
        self._newest = None
        self.restart_ns = int(restart_ns)
        self.stats = SlotStats()

    def put(self, item, stamp_ns: int) -> bool:
        """Offer a frame stamped ``stamp_ns``; returns False when it was dropped as stale."""
        with self._cond:
            self.stats.received += 1
            if self._newest is not None and stamp_ns <= self._newest:
                if self._newest - stamp_ns < self.restart_ns:
                    self.stats.dropped_stale += 1
                    return False
            if self._item is not None:
                self.stats.dropped_replaced += 1
            self._item, self._stamp, self._newest = item, stamp_ns, stamp_ns
            self._cond.notify()
            return True

    def take(self, timeout: float | None = None):
        """The newest frame not yet taken, waiting up to ``timeout`` s; -> (item, stamp_ns) or None."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            if self._item is None:
                return None
            out = (self._item, self._stamp)
            self._item = None
            self.stats.taken += 1
            return out

    def wake(self) -> None:
        """Wake a waiting ``take`` (shutdown)."""
        with self._cond:
            self._cond.notify_all()
