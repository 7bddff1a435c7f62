"""Frames waiting for the render loop: fresh ones are rendered in order, stale ones dropped and counted. Pure Python.

The renderer's subscription callback ``put``s every frame; the render loop ``take``s them oldest first. A frame is
*stale*, and dropped instead of rendered, when a newer frame is already waiting and the frame is older than
``max_age_ns`` (now minus its stamp, the audio clock): a renderer that fell behind skips ahead to the present
instead of working through a backlog, while a short hiccup upstream (two frames arriving together) costs no frame.
``max_age_ns = 0`` keeps only the newest frame. At most ``depth`` frames wait; beyond that the oldest is dropped.
A frame stamped before the newest one seen arrives out of order and is dropped, unless its stamp goes back by more
than ``restart_ns``: that is a restarted source, and the frames of the old one still waiting are dropped.
"""

import collections
import threading
from dataclasses import dataclass


@dataclass
class QueueStats:
    received: int = 0
    taken: int = 0
    dropped_stale: int = 0          # stale: a newer frame was waiting and this one was older than max_age
    dropped_overflow: int = 0      # more than `depth` frames were waiting
    dropped_out_of_order: int = 0  # arrived stamped before the newest frame seen

    @property
    def dropped(self) -> int:
        return self.dropped_stale + self.dropped_overflow + self.dropped_out_of_order


class FrameQueue:
    def __init__(self, max_age_ns: int, depth: int = 4, restart_ns: int = 2_000_000_000):
        if max_age_ns < 0 or depth < 1:
            raise ValueError(f"max_age_ns must be >= 0 and depth >= 1, got {max_age_ns} and {depth}")
        self.max_age_ns, self.depth, self.restart_ns = int(max_age_ns), int(depth), int(restart_ns)
        self._cond = threading.Condition()
        self._frames: collections.deque = collections.deque()   # (stamp_ns, item), oldest first
        self._newest = None
        self.stats = QueueStats()

    def put(self, item, stamp_ns: int) -> bool:
        """Offer a frame stamped ``stamp_ns``; returns False when it was dropped as out of order."""
        with self._cond:
            self.stats.received += 1
            if self._newest is not None and stamp_ns <= self._newest:
                if self._newest - stamp_ns < self.restart_ns:
                    self.stats.dropped_out_of_order += 1
                    return False
                self.stats.dropped_overflow += len(self._frames)   # a restarted source: the old stream's frames
                self._frames.clear()
            if self.max_age_ns == 0:                    # newest only: whatever waits is stale now
                self.stats.dropped_stale += len(self._frames)
                self._frames.clear()
            self._frames.append((stamp_ns, item))
            self._newest = stamp_ns
            while len(self._frames) > self.depth:
                self._frames.popleft()
                self.stats.dropped_overflow += 1
            self._cond.notify()
            return True

    def take(self, now_ns: int | None = None, timeout: float | None = None):
        """The oldest waiting frame that is not stale at ``now_ns`` (None: nothing is stale), waiting up to
        ``timeout`` s for one; -> (item, stamp_ns) or None."""
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            if not self._frames:
                return None
            while len(self._frames) > 1 and self._stale(self._frames[0][0], now_ns):
                self._frames.popleft()
                self.stats.dropped_stale += 1
            stamp, item = self._frames.popleft()
            self.stats.taken += 1
            return item, stamp

    def _stale(self, stamp_ns: int, now_ns: int | None) -> bool:
        if self.max_age_ns == 0:
            return True
        return now_ns is not None and now_ns - stamp_ns > self.max_age_ns

    def wake(self) -> None:
        """Wake a waiting ``take`` (shutdown)."""
        with self._cond:
            self._cond.notify_all()
