"""Speech features: 16 kHz log-mel spectrograms in plain torch, batch and streaming, plus an optional local
pretrained encoder.

Framing (shared by the batch and the streaming paths, so they agree frame for frame):
  - one mel frame per hop of 160 samples (10 ms); frame i describes the hop [160 i, 160 (i+1)) and is computed on a
    400-sample (25 ms) Hann window centred on the middle of that hop, i.e. on samples [160 i - 120, 160 i + 280);
    samples before the start of the signal are zeros;
  - a signal of N samples gives N // 160 frames (samples past the end are zeros, as for the left edge);
  - 4 mel frames per 40 ms motion frame (25 fps): motion frame t owns mel frames 4t .. 4t+3.
Values: natural log of the mel-filtered power spectrum, floored at 1e-5 (log >= -11.51).

The streaming extractor emits frame i once sample 160 i + 279 has arrived: 120 samples (7.5 ms) after the end of
its hop. That, plus waiting for the hop itself (up to 10 ms), is all the latency the features add.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsatalker_ros.motion.layout import AUDIO_RATE, SAMPLES_PER_FRAME

MEL_FRAMES_PER_MOTION_FRAME = 4
LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 50.0
    f_max: float = 7600.0

    def __post_init__(self):
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, f_max={self.f_max}")
        if self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("hop_length and n_mels must be positive")

    @property
    def left_pad(self) -> int:
        """Zeros before sample 0 so that frame i starts at padded index i * hop (frame centred on the hop's middle)."""
        return self.n_fft // 2 - self.hop_length // 2

    @property
    def lookahead(self) -> int:
        """Samples past the end of a hop that its frame's window still covers (120 for the defaults)."""
        return self.win_length // 2 - self.hop_length + self.hop_length // 2


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


_CACHE: dict = {}


def mel_filterbank(cfg: MelConfig) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, unnormalised (peak 1): [n_fft//2 + 1, n_mels] float32."""
    key = ("fb", cfg)
    if key not in _CACHE:
        n_freqs = cfg.n_fft // 2 + 1
        freqs = np.linspace(0.0, cfg.sample_rate / 2, n_freqs)
        edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.f_min), _hz_to_mel(cfg.f_max), cfg.n_mels + 2))
        lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        up = (freqs[None] - lower) / (centre - lower)
        down = (upper - freqs[None]) / (upper - centre)
        fb = np.clip(np.minimum(up, down), 0.0, None)  # [n_mels, n_freqs]
        _CACHE[key] = torch.from_numpy(fb.T.astype(np.float32))
    return _CACHE[key]


def _window(cfg: MelConfig) -> torch.Tensor:
    key = ("win", cfg)
    if key not in _CACHE:
        w = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float32)
        left = (cfg.n_fft - cfg.win_length) // 2
        _CACHE[key] = torch.nn.functional.pad(w, (left, cfg.n_fft - cfg.win_length - left))
    return _CACHE[key]


def _as_wave(wave) -> torch.Tensor:
    if isinstance(wave, np.ndarray):
        wave = torch.from_numpy(np.ascontiguousarray(wave))
    if not isinstance(wave, torch.Tensor):
        raise ValueError(f"expected a 1-D float waveform (torch.Tensor or numpy array), got {type(wave).__name__}")
    if wave.dim() != 1:
        raise ValueError(f"expected a mono waveform of shape [N], got shape {tuple(wave.shape)}")
    if not wave.is_floating_point():
        raise ValueError(f"expected float samples in [-1, 1], got dtype {wave.dtype} (convert int16 with /32768)")
    return wave.to(torch.float32)


def _frames_to_log_mel(frames: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """frames [..., F, n_fft] (already aligned) -> log-mel [..., F, n_mels]."""
    spec = torch.fft.rfft(frames * _window(cfg), dim=-1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = power @ mel_filterbank(cfg)
    return torch.log(torch.clamp(mel, min=LOG_FLOOR))


def _frames_to_log_mel_np(frames: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """``_frames_to_log_mel`` in float32 numpy (the streaming extractor's few frames at a time)."""
    key = ("np", cfg)
    if key not in _CACHE:
        _CACHE[key] = (_window(cfg).numpy(), mel_filterbank(cfg).numpy())
    window, fb = _CACHE[key]
    spec = np.fft.rfft(frames * window, axis=-1)
    power = spec.real ** 2 + spec.imag ** 2                                         # [..., F, n_fft/2 + 1]
    mel = (power.reshape(-1, 1, power.shape[-1]) @ fb).reshape(*power.shape[:-1], fb.shape[1])  # row by row
    return np.log(np.maximum(mel, np.float32(LOG_FLOOR)))


def log_mel(wave, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Log-mel spectrogram of a 16 kHz mono waveform.

    wave: [N] float32 in [-1, 1] (torch.Tensor or numpy array).  Returns [N // hop, n_mels] float32 (one frame
    per 10 ms with the defaults; see the module docstring for the exact framing).
    """
    x = _as_wave(wave)
    n_frames = x.shape[0] // cfg.hop_length
    if n_frames == 0:
        return torch.zeros(0, cfg.n_mels)
    need = (n_frames - 1) * cfg.hop_length + cfg.n_fft
    padded = torch.nn.functional.pad(x, (cfg.left_pad, max(0, need - cfg.left_pad - x.shape[0])))[:need]
    frames = padded.unfold(0, cfg.n_fft, cfg.hop_length)  # [F, n_fft]
    return _frames_to_log_mel(frames, cfg)


def motion_frame_features(mel: torch.Tensor) -> torch.Tensor:
    """Stack the 4 mel frames of each 40 ms motion frame: [4T, n_mels] -> [T, 4 * n_mels] (320 for 80 mels).

    Feature order within a motion frame: mel frame 4t (all bins), then 4t+1, 4t+2, 4t+3.
    """
    if not isinstance(mel, torch.Tensor) or mel.dim() != 2:
        raise ValueError(f"expected a log-mel tensor [4T, n_mels], got {getattr(mel, 'shape', type(mel))}")
    if mel.shape[0] % MEL_FRAMES_PER_MOTION_FRAME:
        raise ValueError(f"mel frame count {mel.shape[0]} is not a multiple of {MEL_FRAMES_PER_MOTION_FRAME} "
                         f"(expected 4 mel frames per motion frame: audio of T*{SAMPLES_PER_FRAME} samples)")
    return mel.reshape(mel.shape[0] // MEL_FRAMES_PER_MOTION_FRAME, MEL_FRAMES_PER_MOTION_FRAME * mel.shape[1])


class StreamingLogMel:
    """Incremental log-mel: feed audio in chunks of any size, get the newly completed frames.

    Every frame returned equals (to float rounding, < 1e-4) the same frame of ``log_mel`` on the whole signal.
    Frame i is returned as soon as sample 160 i + 279 has been pushed (7.5 ms after its hop ends, with the
    defaults). ``flush()`` returns the remaining frames of the signal so far, zero-padded on the right exactly as
    the batch function pads the end of a signal; after a flush the extractor starts a new signal.
    """

    def __init__(self, cfg: MelConfig = MelConfig(), channels: int = 0):
        self.cfg = cfg
        self.channels = channels     # 0: one signal, samples [n]; c >= 1: c signals in step, samples [c, n]
        win_left = (cfg.n_fft - cfg.win_length) // 2
        self._needed_len = win_left + cfg.win_length  # padded samples with non-zero window weight, from frame start
        self.reset()

    def reset(self) -> None:
        lead = (self.channels,) if self.channels else ()
        # padded signal from the start of the next frame to emit (numpy: a live stream pushes 20 ms at a time,
        # and numpy's small ops cost a fraction of torch's)
        self._buf = np.zeros((*lead, self.cfg.left_pad), np.float32)
        self._n_samples = 0      # samples pushed since the start of the signal
        self._n_emitted = 0      # frames emitted since the start of the signal

    @property
    def frames_emitted(self) -> int:
        return self._n_emitted

    def push(self, samples) -> torch.Tensor:
        """samples: [n] float32 in [-1, 1] ([channels, n] for several signals in step). Returns the newly
        completed frames [k, n_mels] ([channels, k, n_mels]; k may be 0)."""
        if self.channels:
            x = samples.numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
            if x.ndim != 2 or x.shape[0] != self.channels or not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"expected float samples [{self.channels}, n], got {x.dtype} {tuple(x.shape)}")
        else:
            x = _as_wave(samples).numpy()
        self._buf = np.concatenate([self._buf, x.astype(np.float32, copy=False)], -1)
        self._n_samples += x.shape[-1]
        hop = self.cfg.hop_length
        k = 0
        if self._buf.shape[-1] >= self._needed_len:
            k = (self._buf.shape[-1] - self._needed_len) // hop + 1
        # never emit past N // hop for the signal so far (the batch function has no frame there)
        k = min(k, self._n_samples // hop - self._n_emitted)
        return self._emit(max(k, 0))

    def flush(self) -> torch.Tensor:
        """Emit the frames that batch log_mel would still produce (zero-padded right edge), then reset."""
        k = self._n_samples // self.cfg.hop_length - self._n_emitted
        out = self._emit(max(k, 0))
        self.reset()
        return out

    def _emit(self, k: int) -> torch.Tensor:
        cfg = self.cfg
        if k <= 0:
            return torch.zeros(*self._buf.shape[:-1], 0, cfg.n_mels)
        need = (k - 1) * cfg.hop_length + cfg.n_fft
        buf = self._buf
        if buf.shape[-1] < need:  # samples beyond the window's non-zero part: zero weight, pad with zeros
            buf = np.concatenate([buf, np.zeros((*buf.shape[:-1], need - buf.shape[-1]), np.float32)], -1)
        if k <= 8:               # a live chunk's few frames: slices (sliding_window_view costs ~20 us of Python)
            frames = np.stack([buf[..., i * cfg.hop_length:i * cfg.hop_length + cfg.n_fft] for i in range(k)], -2)
        else:
            frames = np.lib.stride_tricks.sliding_window_view(buf[..., :need], cfg.n_fft, -1)[..., ::cfg.hop_length, :]
        self._buf = self._buf[..., k * cfg.hop_length:]
        self._n_emitted += k
        return torch.from_numpy(_frames_to_log_mel_np(frames, cfg))                 # [(channels,) k, n_mels]


class PretrainedSpeechEncoder:
    """Optional speech encoder from a *local* wav2vec 2.0 (or HuBERT-style) directory, loaded with transformers.

    Nothing is ever downloaded: ``path`` must be a directory holding ``config.json`` and the weights
    (``model.safetensors`` or ``pytorch_model.bin``), e.g. one saved with ``save_pretrained``. Output features are
    averaged to 25 fps (wav2vec 2.0 yields 50 frames/s): ``encode(wave [N]) -> [N // 640, hidden]``.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ValueError(f"pretrained speech encoder directory {str(p)!r} does not exist; expected a local "
                             f"directory with config.json and model weights (nothing is downloaded)")
        if not (p / "config.json").is_file():
            raise ValueError(f"{str(p)!r} has no config.json; expected a directory written by save_pretrained()")
        try:
            import transformers  # noqa: F401
        except ImportError as e:
            raise ValueError("the pretrained speech encoder needs the 'transformers' package "
                             "(pip install transformers); the default log-mel features do not") from e
        from transformers import AutoModel
        self.model = AutoModel.from_pretrained(str(p), local_files_only=True).to(device).eval()
        self.device = device
        self.hidden_size = int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, wave) -> torch.Tensor:
        """wave [N] float32 16 kHz -> features [N // 640, hidden] at 25 fps (zero-mean/unit-variance input)."""
        x = _as_wave(wave)
        t = x.shape[0] // SAMPLES_PER_FRAME
        x = (x - x.mean()) / (x.std() + 1e-7)
        h = self.model(x[None].to(self.device)).last_hidden_state[0].float().cpu()  # [~50 fps, H]
        h = torch.nn.functional.interpolate(h.T[None], size=max(t, 1), mode="linear", align_corners=False)[0].T
        return h[:t]


__all__ = ["MelConfig", "log_mel", "motion_frame_features", "StreamingLogMel", "mel_filterbank",
           "PretrainedSpeechEncoder", "MEL_FRAMES_PER_MOTION_FRAME", "AUDIO_RATE"]
