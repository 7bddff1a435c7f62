"""Streaming audio input: any sample rate / format -> 16 kHz mono float32, and a fixed-size ring buffer.

``StreamingResampler`` converts chunks as they arrive (microphone callbacks, ROS audio messages) with a windowed-sinc
interpolator that keeps its own history, so the output of many small chunks equals the output of one big chunk
(to float rounding). Latency: ``half_taps`` input samples (16 by default: 0.33 ms at 48 kHz).

``AudioRingBuffer`` keeps the most recent ``capacity`` samples and counts every sample ever written, so readers can
ask for "everything since sample index k" and learn whether they fell behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsatalker_ros.audio.wav_io import pcm_to_float
from rsatalker_ros.motion.layout import AUDIO_RATE


def to_float_mono(samples: np.ndarray, channels: int = 1) -> np.ndarray:
    """Interleaved or [n, channels] int16 / int32 / uint8 / float samples -> mono float32 [n] in [-1, 1]."""
    a = pcm_to_float(samples)
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if a.ndim == 2:
        if a.shape[1] != channels and channels != 1:
            raise ValueError(f"got samples of shape {a.shape} but channels={channels}")
        return a.mean(axis=1).astype(np.float32)
    if a.ndim != 1:
        raise ValueError(f"expected samples of shape [n] or [n, channels], got {a.shape}")
    if channels > 1:
        if a.shape[0] % channels:
            raise ValueError(f"{a.shape[0]} interleaved samples is not a multiple of channels={channels}")
        return a.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return a


@dataclass
class ResamplerConfig:
    in_rate: int
    out_rate: int = AUDIO_RATE
    half_taps: int = 16        # sinc half-width in input samples (at the lower of the two rates)
    rolloff: float = 0.94      # cutoff as a fraction of the lower Nyquist frequency


class StreamingResampler:
    """Stateful band-limited resampler: push(chunk of in_rate samples) -> float32 samples at out_rate.

    Output sample j is the value of the band-limited input at time j / out_rate, computed once the input reaches
    j / out_rate + half_taps input periods. When in_rate == out_rate the samples pass through unchanged.
    """

    def __init__(self, in_rate: int, out_rate: int = AUDIO_RATE, half_taps: int = 16, rolloff: float = 0.94):
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got in_rate={in_rate}, out_rate={out_rate}")
        self.cfg = ResamplerConfig(int(in_rate), int(out_rate), int(half_taps), float(rolloff))
        g = math.gcd(self.cfg.in_rate, self.cfg.out_rate)
        self._up, self._down = self.cfg.out_rate // g, self.cfg.in_rate // g  # out j <-> in j * down / up
        ratio = min(1.0, self.cfg.out_rate / self.cfg.in_rate)
        self._cutoff = ratio * self.cfg.rolloff                                 # cycles per input sample * 2
        self._width = int(math.ceil(self.cfg.half_taps / ratio))                 # taps each side, in input samples
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(self._width, np.float32)  # input samples before index _hist_start
        self._hist_start = -self._width                  # absolute input index of _hist[0]
        self._n_in = 0
        self._next_out = 0

    @property
    def latency_samples_in(self) -> int:
        return 0 if self._up == self._down else self._width

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples: [n] float32 at in_rate. Returns the output samples now computable: [m] float32 at out_rate."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._up == self._down:
            return x.copy()
        self._hist = np.concatenate([self._hist, x])
        self._n_in += x.shape[0]
        # output j is computable when ceil(t_j) + width <= n_in - 1, t_j = j * down / up (input index units)
        last_ok = self._n_in - 1 - self._width
        if last_ok < 0:
            return np.zeros(0, np.float32)
        j_end = (last_ok * self._up) // self._down + 1
        out = self._compute(self._next_out, j_end)
        self._next_out = j_end
        # drop history no later output needs
        t_next = self._next_out * self._down / self._up
        keep_from = int(math.floor(t_next)) - self._width
        drop = keep_from - self._hist_start
        if drop > 0:
            self._hist = self._hist[drop:]
            self._hist_start += drop
        return out

    def flush(self) -> np.ndarray:
        """Pad with zeros to emit the output samples covering all input pushed so far, then reset."""
        n_out = (self._n_in * self._up) // self._down
        out = self.push(np.zeros(self._width + 1, np.float32)) if self._up != self._down else np.zeros(0, np.float32)
        done_before = self._next_out - out.shape[0]
        out = out[: max(0, n_out - done_before)]
        self.reset()
        return out

    def _compute(self, j0: int, j1: int) -> np.ndarray:
        if j1 <= j0:
            return np.zeros(0, np.float32)
        j = np.arange(j0, j1, dtype=np.int64)
        t = j * self._down / self._up                          # fractional input index
        base = np.floor(t).astype(np.int64)
        offs = np.arange(-self._width + 1, self._width + 1, dtype=np.int64)  # 2*width taps
        idx = base[:, None] + offs[None, :]                     # [m, taps] absolute input indices
        d = t[:, None] - idx                                    # distance in input samples
        w = self._cutoff * np.sinc(self._cutoff * d) * np.where(
            np.abs(d) < self._width, 0.5 + 0.5 * np.cos(np.pi * d / self._width), 0.0)  # Hann-windowed sinc
        rel = idx - self._hist_start
        vals = np.where(rel >= 0, self._hist[np.clip(rel, 0, self._hist.shape[0] - 1)], 0.0)
        return (w * vals).sum(axis=1).astype(np.float32)


def resample(wave: np.ndarray, in_rate: int, out_rate: int = AUDIO_RATE) -> np.ndarray:
    """Whole-signal resampling with scipy's polyphase filter: [n] -> [round(n * out/in)] float32."""
    from scipy.signal import resample_poly
    if in_rate == out_rate:
        return np.asarray(wave, np.float32)
    g = math.gcd(int(in_rate), int(out_rate))
    return resample_poly(np.asarray(wave, np.float64), out_rate // g, in_rate // g).astype(np.float32)


class AudioRingBuffer:
    """The last ``capacity`` samples of a float32 stream, addressed by absolute sample index.

    write(samples) appends; ``total_written`` counts every sample ever written; read(start, n) returns samples
    [start, start + n) if they are still held (ValueError otherwise); latest(n) returns the n most recent samples.
    """

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self.total_written = 0

    @property
    def oldest_index(self) -> int:
        return max(0, self.total_written - self.capacity)

    def __len__(self) -> int:
        return min(self.total_written, self.capacity)

    def write(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.shape[0] >= self.capacity:
            x_tail = x[-self.capacity:]
            start = (self.total_written + x.shape[0] - self.capacity) % self.capacity
            self._data[:] = np.roll(x_tail, start)
        else:
            pos = self.total_written % self.capacity
            first = min(x.shape[0], self.capacity - pos)
            self._data[pos:pos + first] = x[:first]
            self._data[: x.shape[0] - first] = x[first:]
        self.total_written += x.shape[0]

    def read(self, start: int, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if start < self.oldest_index or start + n > self.total_written:
            raise ValueError(f"samples [{start}, {start + n}) are not held; the buffer holds "
                             f"[{self.oldest_index}, {self.total_written})")
        idx = (np.arange(start, start + n) % self.capacity)
        return self._data[idx].copy()

    def latest(self, n: int) -> np.ndarray:
        n = min(int(n), len(self))
        return self.read(self.total_written - n, n)

    def read_since(self, start: int) -> tuple[np.ndarray, int]:
        """Samples from ``start`` (clamped to the oldest held) to now, and the index the returned block starts at."""
        s = max(int(start), self.oldest_index)
        return self.read(s, self.total_written - s), s


__all__ = ["to_float_mono", "StreamingResampler", "resample", "AudioRingBuffer", "ResamplerConfig"]
