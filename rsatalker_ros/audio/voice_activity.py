"""Streaming voice activity: 16 kHz float32 audio in, one speech probability per 32 ms chunk (512 samples) out.

Backends:
  - "silero": the Silero VAD v5 ONNX model shipped inside the ``silero-vad`` wheel (MIT), run with onnxruntime.
    The model file is located without importing ``silero_vad`` (whose import sets torch to one thread); nothing
    is downloaded.
  - "energy": a dependency-free fallback: log-energy of the chunk against an adaptive noise floor, mapped to a
    probability with a logistic curve. Good enough for clean/synthetic audio, weak in noise.
  - "auto" (default): silero when onnxruntime and the wheel are present, energy otherwise.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = 512                 # samples per decision at 16 kHz (32 ms)
SAMPLE_RATE = 16000
_CONTEXT = 64               # silero v5 prepends the last 64 samples of the previous chunk


def silero_model_path() -> Path | None:
    """Path of silero_vad.onnx inside the installed silero-vad wheel, or None (does not import the package)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "silero_vad.onnx"
        if p.is_file():
            return p
    return None


@dataclass
class VadConfig:
    backend: str = "auto"          # "auto", "silero" or "energy"
    threshold: float = 0.5         # probability above which a chunk counts as speech
    energy_margin_db: float = 12.0 # energy backend: dB above the noise floor that gives probability 0.5
    energy_slope_db: float = 3.0   # energy backend: dB per logistic unit
    energy_floor_db: float = -70.0 # energy backend: the lowest noise floor assumed


class _SileroBackend:
    def __init__(self, path: Path):
        import onnxruntime
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self):
        # every call reads and writes buffers allocated here (onnxruntime IO binding: no feed dict, no new output
        # arrays per call): the input [context | chunk], the probability, and two recurrent states that swap roles
        # each call (one read, the other written)
        self._input = np.zeros((1, _CONTEXT + CHUNK), np.float32)
        self._prob = np.zeros((1, 1), np.float32)
        self._states = (np.zeros((2, 1, 128), np.float32), np.zeros((2, 1, 128), np.float32))
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self._bindings = []
        for i in range(2):
            b = self.session.io_binding()
            b.bind_cpu_input("input", self._input)
            b.bind_cpu_input("sr", self._rate)
            b.bind_input("state", "cpu", 0, np.float32, [2, 1, 128], self._states[i].ctypes.data)
            b.bind_output("output", "cpu", 0, np.float32, [1, 1], self._prob.ctypes.data)
            b.bind_output("stateN", "cpu", 0, np.float32, [2, 1, 128], self._states[1 - i].ctypes.data)
            self._bindings.append(b)
        self._next = 0                            # the binding that reads the newest state

    def __call__(self, chunk: np.ndarray) -> float:
        self._input[0, _CONTEXT:] = chunk
        self.session.run_with_iobinding(self._bindings[self._next])
        self._next ^= 1
        self._input[0, :_CONTEXT] = self._input[0, -_CONTEXT:]          # the next call's context
        return float(self._prob[0, 0])


class _EnergyBackend:
    def __init__(self, cfg: VadConfig):
        self.cfg = cfg
        self.reset()

    def reset(self):
        self._floor_db = self.cfg.energy_floor_db + 20.0

    def __call__(self, chunk: np.ndarray) -> float:
        db = 10.0 * math.log10(float(np.mean(chunk.astype(np.float64) ** 2)) + 1e-12)
        # the noise floor follows quiet chunks quickly and loud ones very slowly
        rate = 0.2 if db < self._floor_db else 0.002
        self._floor_db = max(self.cfg.energy_floor_db, self._floor_db + rate * (db - self._floor_db))
        z = (db - self._floor_db - self.cfg.energy_margin_db) / self.cfg.energy_slope_db
        return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))


class VoiceActivityDetector:
    """Streaming VAD. push(samples [n] float32 16 kHz) -> probabilities [k] of the 512-sample chunks completed.

    ``is_speech(p)`` applies the threshold; ``backend_name`` says which backend runs.
    """

    def __init__(self, cfg: VadConfig = VadConfig()):
        if cfg.backend not in ("auto", "silero", "energy"):
            raise ValueError(f"unknown VAD backend {cfg.backend!r}; expected 'auto', 'silero' or 'energy'")
        self.cfg = cfg
        self._backend = None
        if cfg.backend in ("auto", "silero"):
            path = silero_model_path()
            have_ort = importlib.util.find_spec("onnxruntime") is not None
            if path is not None and have_ort:
                self._backend = _SileroBackend(path)
                self.backend_name = "silero"
            elif cfg.backend == "silero":
                raise ValueError("VAD backend 'silero' needs the silero-vad wheel and onnxruntime "
                                 "(pip install silero-vad onnxruntime); use backend='energy' without them")
        if self._backend is None:
            self._backend = _EnergyBackend(cfg)
            self.backend_name = "energy"
        self._chunk = np.zeros(CHUNK, np.float32)     # the chunk being filled (no allocation per pushed block)
        self._filled = 0

    def reset(self) -> None:
        self._backend.reset()
        self._filled = 0

    def process_chunk(self, chunk: np.ndarray) -> float:
        """One 512-sample chunk (float32 in [-1, 1]) -> speech probability in [0, 1]."""
        c = np.asarray(chunk, np.float32).reshape(-1)
        if c.shape[0] != CHUNK:
            raise ValueError(f"a VAD chunk is {CHUNK} samples of 16 kHz audio, got {c.shape[0]}")
        return self._backend(c)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples [n] float32 16 kHz (any length) -> probabilities [k] of the chunks they completed. The samples
        are copied into the chunk being filled, NaN/inf replaced and clamped to [-1, 1]: no input can poison the
        backend's state."""
        x = np.asarray(samples, np.float32).reshape(-1)
        # the whole block at once (a 20 ms block is one or two pieces of a chunk): clamp (NaN stays NaN), then NaN
        # -> 0; ufuncs called directly, np.clip's Python wrapper cost more than the clamping itself
        y = np.minimum(x, 1.0)
        np.maximum(y, -1.0, out=y)
        if np.isnan(y).any():
            np.nan_to_num(y, copy=False, nan=0.0)
        probs = []
        i = 0
        while i < y.shape[0]:
            n = min(CHUNK - self._filled, y.shape[0] - i)
            self._chunk[self._filled:self._filled + n] = y[i:i + n]
            self._filled += n
            i += n
            if self._filled == CHUNK:
                probs.append(self._backend(self._chunk))
                self._filled = 0
        return np.array(probs, np.float32)

    def is_speech(self, prob: float | np.ndarray):
        return np.asarray(prob) >= self.cfg.threshold

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """Whole signal -> [len // 512] probabilities (resets the stream state first and after)."""
        self.reset()
        p = self.push(wave)
        self.reset()
        return p


__all__ = ["VoiceActivityDetector", "VadConfig", "silero_model_path", "CHUNK"]
