"""PCM samples and wav files -> float32 in [-1, 1]: the one conversion every reader in the package uses."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from rsatalker_ros.files import BadFileError, checked_size

MAX_WAV_BYTES = 4 << 30                   # RIFF's own limit
WAV_RATE_RANGE = (1000, 384_000)          # accepted sample rates [Hz]
MAX_WAV_CHANNELS = 32
WAV_SAMPLE_BITS = (8, 16, 24, 32, 64)
_FORMAT_PCM, _FORMAT_FLOAT, _FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


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


def check_wav_header(path: str | Path) -> dict:
    """Walk the RIFF chunks of a wav file without reading its samples; BadFileError unless it is PCM / float
    with a sample rate, channel count and sample width inside the documented bounds (WAV_RATE_RANGE,
    MAX_WAV_CHANNELS, WAV_SAMPLE_BITS), a consistent block_align and a data chunk that fits in the file.
    Returns {"rate", "channels", "bits", "format", "data_bytes"}."""
    size = checked_size(path, "wav file", MAX_WAV_BYTES, min_bytes=44)
    fmt, data_bytes = None, None
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            raise BadFileError(path, f"starts with {head[:4]!r}...{head[8:12]!r}; a wav file starts with "
                                     "'RIFF' <size> 'WAVE'")
        order = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size and data_bytes is None:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack(order + "4sI", f.read(8))
            if pos + 8 + chunk_size > size and chunk_id != b"data":
                raise BadFileError(path, f"chunk {chunk_id!r} at byte {pos} declares {chunk_size} bytes; only "
                                         f"{size - pos - 8} follow (truncated file?)")
            if chunk_id == b"fmt ":
                if chunk_size < 16:
                    raise BadFileError(path, f"'fmt ' chunk has {chunk_size} bytes; expected at least 16")
                raw = f.read(min(chunk_size, 40))
                tag, channels, rate, _, block_align, bits = struct.unpack(order + "HHIIHH", raw[:16])
                if tag == _FORMAT_EXTENSIBLE and len(raw) >= 26:
                    tag = struct.unpack(order + "H", raw[24:26])[0]   # the sub-format GUID's first two bytes
                fmt = {"format": tag, "channels": channels, "rate": rate, "bits": bits, "block_align": block_align}
            elif chunk_id == b"data":
                if fmt is None:
                    raise BadFileError(path, "the 'data' chunk comes before any 'fmt ' chunk; expected 'fmt ' first")
                if chunk_size > size - pos - 8:
                    raise BadFileError(path, f"the 'data' chunk declares {chunk_size} bytes; only {size - pos - 8} "
                                             "follow (truncated file, or a header never finalised)")
                data_bytes = chunk_size
            pos += 8 + chunk_size + (chunk_size & 1)
    if fmt is None or data_bytes is None:
        raise BadFileError(path, f"no {'fmt ' if fmt is None else 'data'!r} chunk; a wav file needs both")
    if fmt["format"] not in (_FORMAT_PCM, _FORMAT_FLOAT):
        raise BadFileError(path, f"sample format tag {fmt['format']:#x}; expected PCM (1) or IEEE float (3)")
    if not 1 <= fmt["channels"] <= MAX_WAV_CHANNELS:
        raise BadFileError(path, f"{fmt['channels']} channels; expected 1..{MAX_WAV_CHANNELS}")
    lo, hi = WAV_RATE_RANGE
    if not lo <= fmt["rate"] <= hi:
        raise BadFileError(path, f"sample rate {fmt['rate']} Hz; expected {lo}..{hi} Hz")
    if fmt["bits"] not in WAV_SAMPLE_BITS:
        raise BadFileError(path, f"{fmt['bits']} bits per sample; expected one of {WAV_SAMPLE_BITS}")
    if fmt["block_align"] != fmt["channels"] * fmt["bits"] // 8:
        raise BadFileError(path, f"block_align {fmt['block_align']}; expected channels x bytes per sample = "
                                 f"{fmt['channels'] * fmt['bits'] // 8}")
    if data_bytes < fmt["block_align"]:
        raise BadFileError(path, "the wav file holds no samples")
    fmt["data_bytes"] = data_bytes
    return fmt


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A wav file -> (samples [n, C] float32 in [-1, 1], sample rate [Hz]).
    BadFileError (a ValueError) naming the file when it is missing, unreadable, outside the bounds of
    ``check_wav_header``, of an unsupported sample type or empty. Memory: at most 4 x the data chunk + its copy."""
    from scipy.io import wavfile
    check_wav_header(path)
    try:
        rate, data = wavfile.read(str(path))
    except (ValueError, OSError, EOFError, struct.error, ZeroDivisionError) as e:
        raise BadFileError(path, f"not a readable wav file ({type(e).__name__}: {e})") from e
    try:
        x = pcm_to_float(data)
    except ValueError as e:
        raise BadFileError(path, str(e)) from e
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] == 0:
        raise BadFileError(path, "the wav file holds no samples")
    return x, int(rate)
