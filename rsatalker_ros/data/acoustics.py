"""Room acoustics for the training and evaluation audio: noise, reverberation, microphone and level.

Every function takes its own ``numpy.random.Generator`` and is deterministic for a given generator state. All audio
is mono float32 at 16 kHz. Conditions (``AcousticConfig`` -> ``draw_condition`` -> ``RoomCondition``, stored in
each clip's meta under "acoustics" so that any clip can be reproduced and filtered):

  noise kinds (``NOISE_KINDS``, unit RMS from ``make_noise``):
    fan       mains hum (50 or 60 Hz and harmonics) + a blade-pass tone (80-300 Hz) with its harmonics + low-passed
              broadband airflow noise, slowly amplitude-modulated (fans, HVAC, motors)
    hvac      broadband noise with a pink (1/f) or brown (1/f^2) spectrum tilt, band-limited (air conditioning)
    babble    3-6 other voices talking at once (speech from ``speech_for_babble``), each at its own level
    music     notes of random chords: harmonic tones with decaying envelopes and a little vibrato, plus a soft
              percussive tick on the beat
    keyboard  clicks: short decaying broadband bursts at 3-9 per second in typing bursts (keyboards, mice, cutlery)
    white     flat-spectrum noise (the case the 2026-11-28 check measured)
  reverberation: a shoebox room from pyroomacoustics (image-source method), size 3x3x2.5 to 10x8x4 m, RT60
              0.15-0.9 s (Sabine), talker and microphone 0.3-2.5 m apart; applied to the speech, and to the noise
              with its own source position
  microphone: band limit of the source recording (sample rates 8/11.025/16/22.05/44.1/48 kHz -> low-pass at
              Nyquist; 8 kHz also high-passes at 300 Hz like a telephone), a high-pass roll-off at 40-200 Hz and one
              peaking band of +-6 dB at 400-5000 Hz
  level:      speech RMS (over its active samples) -38..-14 dBFS, and a slow gain ramp of up to +-6 dB across the
              clip (the talker moving, automatic gain control)
  SNR:        noise scaled against the speech's active RMS at ``snr_db`` (clean = no added noise)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import signal

from rsatalker_ros.motion.layout import AUDIO_RATE

NOISE_KINDS = ("fan", "hvac", "babble", "music", "keyboard", "white")
SOURCE_RATES = (8000, 11025, 16000, 22050, 44100, 48000)


def dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` in dB relative to a full-scale sine-free reference (RMS 1.0 = 0 dBFS)."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)).astype(np.float32)


def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f^exponent (0 white, 1 pink, 2 brown): [n]."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / AUDIO_RATE)
    spec *= 1.0 / np.maximum(f, 20.0) ** (exponent / 2)
    return np.fft.irfft(spec, n)


def _slow_modulation(rng: np.random.Generator, n: int, depth: float, rate_hz: float) -> np.ndarray:
    t = np.arange(n) / AUDIO_RATE
    return 1.0 + depth * np.sin(2 * np.pi * rate_hz * t + rng.uniform(0, 2 * np.pi))


def fan_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / AUDIO_RATE
    mains = float(rng.choice([50.0, 60.0]))
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) for k in (1, 2, 3))
    blade = rng.uniform(80.0, 300.0)
    x = x + sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * blade * k * t + rng.uniform(0, 6.3)) for k in (1, 2))
    air = signal.sosfilt(signal.butter(2, rng.uniform(800, 3000), "low", fs=AUDIO_RATE, output="sos"),
                         rng.standard_normal(n))
    x = _unit_rms(x) * rng.uniform(0.3, 1.0) + _unit_rms(air) * rng.uniform(0.5, 1.5)
    return x * _slow_modulation(rng, n, rng.uniform(0.0, 0.15), rng.uniform(0.1, 1.0))


def hvac_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    x = _coloured(rng, n, float(rng.choice([1.0, 2.0])))
    hi = rng.uniform(2000, 7500)
    return signal.sosfilt(signal.butter(3, [40.0, hi], "band", fs=AUDIO_RATE, output="sos"), x)


def babble_noise(rng: np.random.Generator, n: int, speech: list[np.ndarray]) -> np.ndarray:
    """Mix of the given utterances (16 kHz), each placed repeatedly at random offsets so the babble never stops."""
    if not speech:
        raise ValueError("babble noise needs at least one utterance of speech")
    x = np.zeros(n)
    n_voices = int(rng.integers(3, 7))
    for v in range(n_voices):
        gain = 10 ** (rng.uniform(-6, 0) / 20)
        pos = -int(rng.integers(0, AUDIO_RATE))
        while pos < n:
            u = speech[int(rng.integers(len(speech)))]
            a, b = max(0, pos), min(n, pos + u.shape[0])
            if b > a:
                x[a:b] += gain * _unit_rms(u)[a - pos:b - pos]
            pos += u.shape[0] + int(rng.uniform(0.05, 0.4) * AUDIO_RATE)
    return x


def music_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    beat = int(AUDIO_RATE * 60.0 / rng.uniform(70, 140))
    root = rng.uniform(110, 220)
    chords = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4))
    x = np.zeros(n + 4 * beat)
    t = np.arange(2 * beat) / AUDIO_RATE
    env = np.exp(-t * rng.uniform(2, 6))
    click = rng.standard_normal(int(0.02 * AUDIO_RATE)) * np.exp(-np.arange(int(0.02 * AUDIO_RATE)) / 60.0)
    chord = chords[0]
    for k, pos in enumerate(range(0, n, beat)):
        if k % 4 == 0:                                                # a new chord every bar of 4 beats
            chord = chords[int(rng.integers(len(chords)))]
        for semis in chord:
            f = root * 2 ** ((semis + 12 * int(rng.integers(0, 2))) / 12)
            vib = 1 + 0.003 * np.sin(2 * np.pi * 5.5 * t)
            tone = sum(0.6 ** h * np.sin(2 * np.pi * f * (h + 1) * vib * t) for h in range(4))
            x[pos:pos + tone.shape[0]] += rng.uniform(0.3, 1.0) * tone * env
        x[pos:pos + click.shape[0]] += 0.5 * click
    return x[:n]


def keyboard_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    x = 1e-3 * rng.standard_normal(n)
    L = int(0.015 * AUDIO_RATE)
    decay = np.exp(-np.arange(L) / rng.uniform(20, 60))
    pos = 0
    while pos < n:
        burst_end = pos + int(rng.uniform(0.5, 3.0) * AUDIO_RATE)
        rate = rng.uniform(3, 9)
        while pos < min(n, burst_end):
            click = rng.standard_normal(L) * decay * rng.uniform(0.3, 1.0)
            b = min(n, pos + L)
            x[pos:b] += click[:b - pos]
            pos += int(rng.exponential(1.0 / rate) * AUDIO_RATE) + L
        pos += int(rng.uniform(0.2, 2.0) * AUDIO_RATE)
    return signal.sosfilt(signal.butter(2, [300.0, 7000.0], "band", fs=AUDIO_RATE, output="sos"), x)


def make_noise(kind: str, rng: np.random.Generator, n: int, babble_speech: list[np.ndarray] | None = None
               ) -> np.ndarray:
    """Noise of ``kind`` (one of NOISE_KINDS), [n] float32 with RMS 1."""
    if n <= 0:
        raise ValueError(f"noise length must be > 0 samples, got {n}")
    if kind == "fan":
        x = fan_noise(rng, n)
    elif kind == "hvac":
        x = hvac_noise(rng, n)
    elif kind == "babble":
        x = babble_noise(rng, n, babble_speech or [])
    elif kind == "music":
        x = music_noise(rng, n)
    elif kind == "keyboard":
        x = keyboard_noise(rng, n)
    elif kind == "white":
        x = rng.standard_normal(n)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {NOISE_KINDS}")
    return _unit_rms(np.asarray(x, np.float64))


def shortest_rt60(room: tuple[float, float, float]) -> float:
    """Sabine's reverberation time (s) of a shoebox room [x, y, z] metres whose walls absorb everything: the
    shortest RT60 ``pyroomacoustics.inverse_sabine`` can give that room (it refuses a shorter one)."""
    x, y, z = (float(v) for v in room)
    volume, surface = x * y * z, 2.0 * (x * y + y * z + x * z)
    return 24.0 * np.log(10.0) / 343.0 * volume / surface


def room_impulse_response(rng: np.random.Generator, rt60: float, room: tuple[float, float, float],
                          distance: float) -> np.ndarray:
    """Impulse response [L] (16 kHz, direct path at the start, peak 1) of a shoebox room (pyroomacoustics)."""
    import pyroomacoustics as pra
    room = np.asarray(room, float)
    e_abs, max_order = pra.inverse_sabine(float(rt60), room)
    r = pra.ShoeBox(room, fs=AUDIO_RATE, materials=pra.Material(e_abs), max_order=min(int(max_order), 12))
    mic = np.array([rng.uniform(0.5, room[0] - 0.5), rng.uniform(0.5, room[1] - 0.5), rng.uniform(0.9, 1.6)])
    for _ in range(100):
        d = rng.standard_normal(3) * np.array([1.0, 1.0, 0.2])
        src = mic + distance * d / np.linalg.norm(d)
        if np.all(src > 0.2) and np.all(src < room - 0.2):
            break
    else:
        src = np.clip(mic + np.array([distance, 0.0, 0.0]), 0.2, room - 0.2)
    r.add_source(src)
    r.add_microphone(mic)
    r.compute_rir()
    h = np.asarray(r.rir[0][0], np.float64)
    h = h[max(0, int(np.argmax(np.abs(h))) - 8):]                    # keep the direct path at the start
    h = h[: int(1.2 * rt60 * AUDIO_RATE) + 64]
    return (h / (np.abs(h).max() + 1e-12)).astype(np.float32)


def microphone(x: np.ndarray, source_rate: int, highpass_hz: float, peak_hz: float, peak_db: float) -> np.ndarray:
    """Band limit of a ``source_rate`` recording, a high-pass roll-off and one peaking EQ band: [n] float32."""
    y = np.asarray(x, np.float64)
    if source_rate < AUDIO_RATE:
        y = signal.sosfilt(signal.butter(8, 0.45 * source_rate, "low", fs=AUDIO_RATE, output="sos"), y)
    if source_rate <= 8000:
        highpass_hz = max(highpass_hz, 300.0)
    y = signal.sosfilt(signal.butter(2, highpass_hz, "high", fs=AUDIO_RATE, output="sos"), y)
    # peaking EQ (RBJ cookbook biquad), Q = 1
    A, w0 = 10 ** (peak_db / 40), 2 * np.pi * peak_hz / AUDIO_RATE
    alpha = np.sin(w0) / 2.0
    b = np.array([1 + alpha * A, -2 * np.cos(w0), 1 - alpha * A])
    a = np.array([1 + alpha / A, -2 * np.cos(w0), 1 - alpha / A])
    return signal.lfilter(b / a[0], a / a[0], y).astype(np.float32)


def active_rms(speech: np.ndarray, active: np.ndarray | None = None) -> float:
    """RMS of ``speech`` over the samples where ``active`` (bool [n]) is set (all samples when None or empty)."""
    x = np.asarray(speech, np.float64)
    if active is not None and np.any(active):
        x = x[np.asarray(active, bool)]
    return float(np.sqrt(np.mean(x ** 2)) + 1e-12)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, active: np.ndarray | None = None
               ) -> np.ndarray:
    """speech + noise scaled so that active-speech RMS / noise RMS = ``snr_db``: [n] float32."""
    if speech.shape != noise.shape:
        raise ValueError(f"speech and noise must have the same shape, got {speech.shape} and {noise.shape}")
    g = active_rms(speech, active) / (np.sqrt(np.mean(np.square(noise, dtype=np.float64))) + 1e-12)
    return (speech + noise * g * 10 ** (-snr_db / 20)).astype(np.float32)


@dataclass
class AcousticConfig:
    """How often and how strongly each condition is drawn (dataset generator; ``make_dataset --acoustics``)."""
    clean_prob: float = 0.15            # share of tracks without added noise (noise floor only)
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    snr_db: tuple[float, float] = (0.0, 30.0)          # uniform SNR range for noisy tracks (dB)
    reverb_prob: float = 0.6            # share of tracks in a simulated room
    rt60_s: tuple[float, float] = (0.15, 0.9)
    mic_prob: float = 0.7               # share of tracks with microphone colouration / band limit
    level_dbfs: tuple[float, float] = (-38.0, -14.0)    # active speech RMS level
    gain_ramp_db: float = 6.0           # largest slow level change across a clip (dB)
    lead_in_s: tuple[float, float] = (0.1, 3.0)          # noise-only stretch before the first word (s)
    noise_only_prob: float = 0.1        # share of clips in which one participant says nothing at all

    def __post_init__(self):
        for name in ("clean_prob", "reverb_prob", "mic_prob", "noise_only_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"acoustics {name} must lie in [0, 1], got {getattr(self, name)}")
        bad = [k for k in self.noise_kinds if k not in NOISE_KINDS]
        if bad or not self.noise_kinds:
            raise ValueError(f"unknown noise kinds {bad}; expected a non-empty subset of {NOISE_KINDS}")


@dataclass
class RoomCondition:
    """One track's drawn condition (all JSON-serialisable; ``asdict`` goes into the clip's meta)."""
    noise: str = ""                     # "" = clean
    snr_db: float = float("inf")
    rt60_s: float = 0.0                 # 0 = no reverberation
    room_m: tuple = ()
    distance_m: float = 0.0
    source_rate: int = AUDIO_RATE
    highpass_hz: float = 0.0
    peak_hz: float = 1000.0
    peak_db: float = 0.0
    level_dbfs: float = -20.0
    gain_ramp_db: float = 0.0
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["snr_db"] = None if not np.isfinite(self.snr_db) else float(self.snr_db)
        return d


def draw_condition(rng: np.random.Generator, cfg: AcousticConfig) -> RoomCondition:
    c = RoomCondition(seed=int(rng.integers(2 ** 31)))
    if rng.random() >= cfg.clean_prob:
        c.noise = str(rng.choice(cfg.noise_kinds))
        c.snr_db = float(rng.uniform(*cfg.snr_db))
    if rng.random() < cfg.reverb_prob:
        c.rt60_s = float(rng.uniform(*cfg.rt60_s))
        c.room_m = (float(rng.uniform(3, 10)), float(rng.uniform(3, 8)), float(rng.uniform(2.5, 4)))
        c.distance_m = float(rng.uniform(0.3, 2.5))
        # a large room cannot be as dry as a small one: Sabine's RT60 with every wall fully absorbing is the floor
        c.rt60_s = max(c.rt60_s, 1.05 * shortest_rt60(c.room_m))
    if rng.random() < cfg.mic_prob:
        c.source_rate = int(rng.choice(SOURCE_RATES))
        c.highpass_hz = float(rng.uniform(40, 200))
        c.peak_hz = float(rng.uniform(400, 5000))
        c.peak_db = float(rng.uniform(-6, 6))
    c.level_dbfs = float(rng.uniform(*cfg.level_dbfs))
    c.gain_ramp_db = float(rng.uniform(-cfg.gain_ramp_db, cfg.gain_ramp_db))
    return c


def apply_condition(speech: np.ndarray, active: np.ndarray, cond: RoomCondition,
                    babble_speech: list[np.ndarray] | None = None, noise_floor: float = 1e-4) -> np.ndarray:
    """One participant's close-talk track in room ``cond``: [n] float32 in [-1, 1].

    speech: [n] clean speech of the participant (zeros where silent); active: bool [n] samples with speech (the
    SNR and level refer to them). Where there is no speech, the track holds only the room's noise.
    """
    rng = np.random.default_rng(cond.seed)
    n = speech.shape[0]
    x = np.asarray(speech, np.float64)
    noise = make_noise(cond.noise, rng, n, babble_speech).astype(np.float64) if cond.noise else None
    if cond.rt60_s > 0:
        h = room_impulse_response(rng, cond.rt60_s, cond.room_m, cond.distance_m)
        x = signal.fftconvolve(x, h)[:n]
        if noise is not None:
            hn = room_impulse_response(rng, cond.rt60_s, cond.room_m, float(rng.uniform(0.5, 3.0)))
            noise = _unit_rms(signal.fftconvolve(noise, hn)[:n])
    if cond.source_rate != AUDIO_RATE or cond.highpass_hz > 0:
        x = microphone(x, cond.source_rate, max(cond.highpass_hz, 1.0), cond.peak_hz, cond.peak_db)
        if noise is not None:
            noise = _unit_rms(microphone(noise, cond.source_rate, max(cond.highpass_hz, 1.0), cond.peak_hz,
                                         cond.peak_db))
    x = x * (10 ** (cond.level_dbfs / 20) / active_rms(x, active)) if np.any(active) else x
    if noise is not None:   # relative to the speech level drawn, so a track without speech gets the same room
        x = x + noise * 10 ** ((cond.level_dbfs - cond.snr_db) / 20)
    x = x * 10 ** (np.linspace(0.0, cond.gain_ramp_db, n) / 20)
    x = x + rng.normal(0.0, noise_floor, n)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


__all__ = ["NOISE_KINDS", "SOURCE_RATES", "AcousticConfig", "RoomCondition", "draw_condition", "apply_condition",
           "make_noise", "mix_at_snr", "room_impulse_response", "microphone", "dbfs", "active_rms"]
