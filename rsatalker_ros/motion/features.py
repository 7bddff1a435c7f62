"""Audio features of the motion model: log-mel frames (rsatalker_ros.audio.features) grouped per 40 ms frame.

The model's feature frame t stacks the 4 mel frames 4t-1, 4t, 4t+1, 4t+2 (10 ms hops; mel frame -1 is silence):
one hop earlier than the motion frame's own hops (4t..4t+3). The log-mel extractor emits mel frame i 7.5 ms after
its hop ends, so feature frame t is complete 2.5 ms *before* the end of motion frame t, and with a look-ahead of
L frames the model needs audio up to L * 40 - 2.5 ms past the end of the frame it outputs (37.5 ms for L = 1,
77.5 ms for L = 2).
Batch (``frame_features``) and streaming (``FrameFeatureStream``) give the same numbers.
"""

import numpy as np
import torch

from rsatalker_ros.audio.features import LOG_FLOOR, MelConfig, StreamingLogMel, log_mel

MELS_PER_FRAME = 4
N_MELS = MelConfig().n_mels
FEATURE_DIM = MELS_PER_FRAME * N_MELS          # 320
SILENCE = float(np.log(LOG_FLOOR))             # log-mel value of digital silence
LATENCY_MS = 7.5 - 10.0                        # feature frame t is complete this long after motion frame t ends


def frame_features(wave) -> torch.Tensor:
    """wave [N] float32 16 kHz (N = 640 T) -> model features [T, 320] (see module docstring)."""
    mel = log_mel(wave)                                                     # [4T, 80]
    T = (mel.shape[0] + 1) // MELS_PER_FRAME
    shifted = torch.cat([torch.full((1, mel.shape[1]), SILENCE), mel])[:MELS_PER_FRAME * T]
    return shifted.reshape(T, FEATURE_DIM)


class FrameFeatureStream:
    """Streaming ``frame_features`` in float32 numpy: ``push(samples) -> [k, 320]`` new complete feature frames;
    ``flush()`` the frames of the rest of the signal (zero-padded like the batch function), then starts a new signal.
    ``channels`` c >= 1: c signals in step (both participants of a dyad in one pass), samples [c, n] -> [c, k, 320]."""

    def __init__(self, channels: int = 0):
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        self._mel = StreamingLogMel(MelConfig(), self.channels)
        lead = (self.channels,) if self.channels else ()
        self._buf = np.full((*lead, 1, N_MELS), SILENCE, np.float32)

    def _group(self, mels: torch.Tensor) -> np.ndarray:
        self._buf = np.concatenate([self._buf, mels.numpy()], -2)
        k = self._buf.shape[-2] // MELS_PER_FRAME
        out = self._buf[..., :k * MELS_PER_FRAME, :].reshape(*self._buf.shape[:-2], k, FEATURE_DIM)
        self._buf = self._buf[..., k * MELS_PER_FRAME:, :]
        return out

    def push(self, samples) -> np.ndarray:
        return self._group(self._mel.push(samples))

    def flush(self) -> np.ndarray:
        """Remaining whole frames of the signal (the extractor's zero-padded right edge), then reset."""
        out = self._group(self._mel.flush())
        self.reset()
        return out
