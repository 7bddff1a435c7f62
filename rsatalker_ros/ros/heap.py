"""Give the C heap's free memory back to the operating system now and then (glibc ``malloc_trim``).

A long-running node frees as much as it allocates (messages, tensors, arrays), yet its resident size grew: glibc
keeps the freed chunks that lie inside its heap mapped and only returns the top of the heap by itself. Measured in
a motion node of the running graph (issue #11's soak: 0.5-1.5 MB/min after the first minute), the heap in use
stayed at 104 MB while its free part grew from 0 to 25 MB in four minutes, and the resident size with it; with
``malloc_trim(0)`` every 20 s the free part stayed at 3-5 MB and the resident size flat. Every StageNode calls
``HeapTrimmer.maybe_trim`` from its diagnostics timer (at most once per ``period_s``). Elsewhere than glibc (musl,
macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import time

TRIM_PERIOD_S = 10.0


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_heap() -> bool:
    """Return the free pages of every malloc arena to the OS now; True when some memory was released."""
    return bool(_TRIM is not None and _TRIM(0))


class HeapTrimmer:
    """``maybe_trim()`` releases the free heap when ``period_s`` has passed since the last time."""

    def __init__(self, period_s: float = TRIM_PERIOD_S, clock=time.monotonic):
        self.period_s, self.clock = period_s, clock
        self._last = clock()
        self.trims = 0

    def maybe_trim(self) -> bool:
        now = self.clock()
        if _TRIM is None or now - self._last < self.period_s:
            return False
        self._last = now
        self.trims += 1
        return release_free_heap()
