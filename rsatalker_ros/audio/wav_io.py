"""PCM samples and wav files -> float32 in [-1, 1]: the one conversion every reader in the package uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 / int32 / uint8 / float samples of any shape -> float32 of the same shape in [-1, 1]."""
    a = np.asarray(samples)
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:
        return a.astype(np.float32) / 2147483648.0
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    raise ValueError(f"unsupported sample dtype {a.dtype}; expected int16, int32, uint8 or float")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A wav file -> (samples [n, C] float32 in [-1, 1], sample rate [Hz]).
    ValueError naming the file when it is missing, unreadable, of an unsupported sample type or empty."""
    from scipy.io import wavfile
    try:
        rate, data = wavfile.read(str(path))
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable wav file ({e})") from e
    try:
        x = pcm_to_float(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] == 0:
        raise ValueError(f"{path}: the wav file holds no samples")
    return x, int(rate)
