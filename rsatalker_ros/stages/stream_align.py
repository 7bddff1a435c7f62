"""Two audio streams on one sample clock, from their header stamps. Pure Python (no rclpy).

The motion node hears its own participant and the partner. Chunks arrive on two topics (best-effort QoS: some may
be lost, late or duplicated); each chunk's stamp is the capture time of its first sample. ``PairAligner`` places
every chunk on a common 16 kHz clock anchored at the first stamp seen, fills gaps with silence, drops samples it
already has, and hands out equal-length blocks of both streams as far as both have arrived. A stream that lags
the other by more than ``max_lag_s`` counts as absent and is filled with silence as the other advances (until
its audio returns), so one lost microphone does not stall the other participant. A jump forward of more than
``max_gap_s`` (a restarted source, a clock jump) restarts the clock; ``pop`` then reports ``restarted`` and
``restart_reason`` says which stream jumped how far. A chunk from more than ``max_gap_s`` in the past is dropped:
when it continues its own stream's earlier audio (or the stream has none yet) it is merely late (a starved sender or link delivers a burst; the
clock went on with silence meanwhile, ``late_samples`` counts it) and never restarts anything; when it lies more
than ``max_gap_s`` behind audio its own stream already delivered it is a straggler, and ``restart_after`` such
chunks in a row (a source whose clock went back) restart the clock.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class AlignConfig:
    sample_rate: int = 16000
    tolerance_samples: int = 16   # stamps within this many samples of the expected one count as contiguous
    max_lag_s: float = 0.2        # a stream further behind than this is treated as absent (silence)
    max_gap_s: float = 2.0        # a jump longer than this restarts the clock
    restart_after: int = 10       # this many chunks in a row from far in the past restart the clock


class PairAligner:
    def __init__(self, cfg: AlignConfig = AlignConfig()):
        self.cfg = cfg
        self.t0_ns = None                 # stamp of sample 0 of the common clock
        self._chunks = ([], [])           # per stream: pending arrays
        self._end = [0, 0]                # per stream: absolute index up to which the stream is filled
        self._consumed = 0                # absolute index of the next sample pop() returns
        self._absent = [False, False]
        self._restarted = False
        self._heard = [None, None]        # per stream: clock index where its last real chunk ended (not silence)
        self._backward = 0                # consecutive chunks from far behind their own stream's audio
        self.restart_reason = ""          # why the clock restarted last
        self.late_samples = 0             # continuous audio that came after the clock had passed it (dropped)
        self.dropped_samples = 0          # duplicate / late samples thrown away
        self.filled_samples = 0           # silence inserted for gaps or absent streams

    def _index(self, stamp_ns: int) -> int:
        return int(round((stamp_ns - self.t0_ns) * self.cfg.sample_rate / 1e9))

    def _reset(self, stamp_ns: int) -> None:
        self.t0_ns = int(stamp_ns)
        self._chunks = ([], [])
        self._end = [0, 0]
        self._consumed = 0
        self._absent = [False, False]
        self._heard = [None, None]

    def push(self, stream: int, samples: np.ndarray, stamp_ns: int) -> None:
        """stream 0 = own, 1 = partner; samples [n] float32 at sample_rate; stamp_ns: time of samples[0]."""
        x = np.asarray(samples, np.float32).reshape(-1)
        if self.t0_ns is None:
            self._reset(stamp_ns)
        start = self._index(stamp_ns)
        stop = start + x.shape[0]
        max_gap = int(self.cfg.max_gap_s * self.cfg.sample_rate)
        heard = self._heard[stream]
        if stop < self._consumed - max_gap:                      # far in the past
            if heard is None or stop >= heard - max_gap:         # late, but its own stream is continuous
                self.late_samples += x.shape[0]
                self.dropped_samples += x.shape[0]
                self._heard[stream] = stop if heard is None else max(heard, stop)
                return
            self._backward += 1
            if self._backward < self.cfg.restart_after:
                self.dropped_samples += x.shape[0]
                return
        rate, who, why = self.cfg.sample_rate, ("own", "partner")[stream], ""
        if start > self._end[stream] + max_gap:
            why = (f"{who} audio jumped {(start - self._end[stream]) / rate:.2f} s ahead of the audio so far (a "
                   f"restarted source or clock, or audio lost for that long)")
        elif self._backward >= self.cfg.restart_after:
            why = (f"{who} audio went {(self._consumed - stop) / rate:.2f} s back for {self._backward} chunks in a "
                   f"row (its source's clock went back)")
        if why:
            self.restart_reason = why
            self._reset(stamp_ns)
            self._restarted = True
            start, stop = 0, x.shape[0]
        self._backward = 0
        self._heard[stream] = stop if self._heard[stream] is None else max(self._heard[stream], stop)
        tol = self.cfg.tolerance_samples
        end = self._end[stream]
        if start > end + tol:                                   # gap: fill with silence
            self._append(stream, np.zeros(start - end, np.float32))
            self.filled_samples += start - end
        elif start < end - tol:                                 # overlap: drop what is already there
            cut = end - start
            self.dropped_samples += min(cut, x.shape[0])
            x = x[cut:]
        self._absent[stream] = False
        if x.shape[0]:
            self._append(stream, x)
        other = 1 - stream
        lag = self._end[stream] - self._end[other]
        if lag > self.cfg.max_lag_s * self.cfg.sample_rate:
            self._absent[other] = True
        if self._absent[other] and lag > 0:
            self._append(other, np.zeros(lag, np.float32))
            self.filled_samples += lag

    def _append(self, stream: int, x: np.ndarray) -> None:
        self._chunks[stream].append(x)
        self._end[stream] += x.shape[0]

    def _take(self, stream: int, n: int) -> np.ndarray:
        buf = np.concatenate(self._chunks[stream]) if self._chunks[stream] else np.zeros(0, np.float32)
        # the buffer starts at self._consumed
        out, rest = buf[:n], buf[n:]
        self._chunks[stream].clear()
        if rest.shape[0]:
            self._chunks[stream].append(rest)
        return out

    def pop(self) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """-> (own [m], partner [m], index of their first sample on the clock, restarted since the last pop)."""
        n = min(self._end) - self._consumed
        start, restarted = self._consumed, self._restarted
        self._restarted = False
        if n <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32), start, restarted
        own, par = self._take(0, n), self._take(1, n)
        self._consumed += n
        return own, par, start, restarted

    def end_index(self, stream: int) -> int:
        """Clock index up to which ``stream`` has arrived (or been filled with silence)."""
        return self._end[stream]

    def end_stamp_ns(self) -> int | None:
        """Capture time up to which both streams have arrived (None before any audio)."""
        return None if self.t0_ns is None else self.stamp_of(min(self._end))

    def stamp_of(self, sample_index: float) -> int:
        """Capture time [ns] of a (fractional) sample index on the common clock."""
        return self.t0_ns + int(round(sample_index * 1e9 / self.cfg.sample_rate))
