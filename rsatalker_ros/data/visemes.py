"""espeak phonemes -> visemes -> ARKit mouth/jaw trajectories, with coarticulation.

Model (after Cohen & Massaro's dominance functions): every phoneme segment i has a viseme with articulator targets
(jaw opening, lip closure, press, funnel, pucker, stretch, lip rolls, lip raise/lower, tongue) and two dominance
strengths, one for the jaw/tongue and one for the lips. Its dominance over time t is
    D_i(t) = alpha_i * exp(-max(0, |t - c_i| - d_i / 2) / tau)          (flat inside the segment, then decays)
and each articulator's value is the dominance-weighted mean of the targets of all segments. Bilabials dominate the
lips strongly (the lips must close), alveolars and velars weakly (the lips take the neighbouring vowel's shape),
vowels dominate the jaw. Diphthongs are split into two halves (aI = AA then IH). The jaw opening is then scaled by
the local speech energy, and ARKit mouthClose is written as closure * jawOpen (ARKit's mouthClose closes the lips
*against* an open jaw, so it can never exceed jawOpen).

Everything is computed on a 100 Hz grid (one point per 160 samples of 16 kHz audio) and averaged to 25 fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsatalker_ros.face.arkit import ARKIT52_INDEX

GRID_HOP = 160          # samples of 16 kHz per grid point (10 ms)
GRID_PER_FRAME = 4      # grid points per 25 fps motion frame

ARTICULATORS = ("jaw", "closure", "press", "funnel", "pucker", "stretch", "roll_lower", "roll_upper",
                "upper_up", "lower_down", "tongue")
_A = {n: i for i, n in enumerate(ARTICULATORS)}

# viseme: (targets {articulator: value}, alpha_jaw, alpha_lips)
VISEMES: dict[str, tuple[dict[str, float], float, float]] = {
    "SIL": ({}, 0.8, 0.8),
    "PP": ({"jaw": 0.07, "closure": 1.0, "press": 0.45}, 1.0, 6.0),
    "FF": ({"jaw": 0.10, "roll_lower": 0.45, "upper_up": 0.20}, 0.7, 3.0),
    "TH": ({"jaw": 0.18, "tongue": 0.25, "lower_down": 0.10}, 0.6, 1.5),
    "DD": ({"jaw": 0.16, "lower_down": 0.10, "stretch": 0.05}, 0.7, 0.3),
    "LL": ({"jaw": 0.20, "tongue": 0.05, "lower_down": 0.05}, 0.6, 0.3),
    "KK": ({"jaw": 0.22}, 0.5, 0.2),
    "HH": ({"jaw": 0.25}, 0.2, 0.2),
    "CH": ({"jaw": 0.10, "funnel": 0.45, "pucker": 0.20, "upper_up": 0.15, "lower_down": 0.15}, 0.7, 2.0),
    "SS": ({"jaw": 0.06, "stretch": 0.30, "upper_up": 0.10, "lower_down": 0.15}, 0.9, 1.2),
    "RR": ({"jaw": 0.14, "funnel": 0.20, "pucker": 0.30}, 0.6, 1.0),
    "WW": ({"jaw": 0.08, "pucker": 0.80, "funnel": 0.30}, 0.8, 3.0),
    "YY": ({"jaw": 0.15, "stretch": 0.30}, 0.6, 0.6),
    "AA": ({"jaw": 0.62, "lower_down": 0.25, "stretch": 0.10}, 1.2, 1.0),
    "EH": ({"jaw": 0.40, "stretch": 0.25, "lower_down": 0.15}, 1.2, 1.0),
    "IH": ({"jaw": 0.20, "stretch": 0.40, "upper_up": 0.10}, 1.2, 1.0),
    "OH": ({"jaw": 0.45, "funnel": 0.60, "pucker": 0.20}, 1.2, 1.2),
    "UH": ({"jaw": 0.18, "pucker": 0.70, "funnel": 0.35}, 1.2, 1.2),
    "AX": ({"jaw": 0.28, "stretch": 0.05}, 0.6, 0.5),
    "ER": ({"jaw": 0.22, "funnel": 0.25, "pucker": 0.20}, 0.9, 0.9),
}
VISEME_NAMES = tuple(VISEMES)

# espeak-ng English phoneme mnemonics -> one viseme, or two for diphthongs
PHONEME_VISEMES: dict[str, tuple[str, ...]] = {
    **{p: ("PP",) for p in ("p", "b", "m")},
    **{p: ("FF",) for p in ("f", "v")},
    **{p: ("TH",) for p in ("T", "D")},
    **{p: ("DD",) for p in ("t", "d", "n", "t#", "d#", "?")},
    **{p: ("LL",) for p in ("l", "L", "l/", "@L")},
    **{p: ("KK",) for p in ("k", "g", "N", "x")},
    "h": ("HH",),
    **{p: ("CH",) for p in ("S", "Z", "tS", "dZ")},
    **{p: ("SS",) for p in ("s", "z")},
    **{p: ("RR",) for p in ("r", "r-", "*")},
    "w": ("WW",),
    **{p: ("YY",) for p in ("j", ";")},
    **{p: ("AA",) for p in ("a", "a#", "A:", "A@", "A", "V", "aa")},
    **{p: ("EH",) for p in ("E", "e", "e@", "E2", "E:")},
    **{p: ("IH",) for p in ("i", "i:", "I", "I2", "I#", "i@3")},
    **{p: ("OH",) for p in ("0", "O:", "O@", "o@", "O", "o")},
    **{p: ("UH",) for p in ("u:", "U", "U@", "u")},
    **{p: ("AX",) for p in ("@", "@2", "@5", "a2")},
    **{p: ("ER",) for p in ("3", "3:", "@r")},
    "aI": ("AA", "IH"), "aI@": ("AA", "IH"), "aU": ("AA", "UH"), "eI": ("EH", "IH"), "oU": ("OH", "UH"),
    "OI": ("OH", "IH"), "i@": ("IH", "AX"), "U@": ("UH", "AX"),
}

_VOWEL_CHARS = set("aeiouAEIOUV03@")


def visemes_for(symbol: str) -> tuple[str, ...]:
    """The viseme(s) of one espeak phoneme mnemonic; pauses -> SIL; unknown symbols by their first character."""
    if not symbol or symbol.startswith("_") or symbol in ("|", "||"):
        return ("SIL",)
    s = symbol.rstrip("'`,")
    if s in PHONEME_VISEMES:
        return PHONEME_VISEMES[s]
    return ("EH",) if s[0] in _VOWEL_CHARS else ("DD",)


@dataclass
class ArticulationConfig:
    tau_s: float = 0.035            # dominance decay outside a segment (s)
    energy_gain: float = 0.7        # how strongly local energy scales the jaw (0 = not at all)
    articulation: float = 1.0       # speaker's overall hypo/hyper-articulation scale
    lip_asymmetry: float = 0.0      # -0.1..0.1: left/right imbalance of lip actions


def segments_to_grid(segments: list[tuple[str, int, int]], n_grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand (symbol, start_sample, end_sample) phoneme segments into viseme segments on the grid.

    Returns centres [S], half-durations [S] (grid units) and viseme indices [S].
    """
    centres, halves, vis = [], [], []
    for sym, s, e in segments:
        a, b = s / GRID_HOP, e / GRID_HOP
        if b <= a:
            continue
        vs = visemes_for(sym)
        step = (b - a) / len(vs)
        for k, v in enumerate(vs):
            lo = a + k * step
            centres.append(lo + step / 2)
            halves.append(step / 2)
            vis.append(VISEME_NAMES.index(v))
    return np.array(centres), np.array(halves), np.array(vis, dtype=np.int64)


_TARGETS = np.array([[VISEMES[v][0].get(a, 0.0) for a in ARTICULATORS] for v in VISEME_NAMES], np.float32)
_ALPHA = np.array([[VISEMES[v][1], VISEMES[v][2]] for v in VISEME_NAMES], np.float32)
_JAW_GROUP = np.array([a in ("jaw", "tongue") for a in ARTICULATORS])


def articulator_tracks(segments: list[tuple[str, int, int]], n_samples: int,
                       cfg: ArticulationConfig = ArticulationConfig()) -> np.ndarray:
    """Coarticulated articulator values on the 100 Hz grid: [ceil(n_samples / 160), len(ARTICULATORS)].

    segments: phoneme segments (espeak symbol, start, end) in 16 kHz samples, absolute in the clip; time not
    covered by any segment is silence (rest pose).
    """
    n_grid = -(-n_samples // GRID_HOP)
    out = np.zeros((n_grid, len(ARTICULATORS)), np.float32)
    if not segments:
        return out
    c, h, v = segments_to_grid(segments, n_grid)
    tau = cfg.tau_s * 100.0
    t = np.arange(n_grid, dtype=np.float64) + 0.5
    # rest dominance everywhere (weak) so that uncovered time falls back to neutral
    num = np.zeros_like(out, dtype=np.float64)
    den = np.full((n_grid, 2), 0.05)
    window = int(np.ceil(8 * tau)) + 1
    for i in range(len(c)):  # segments are short: each touches a small window of the grid
        lo = max(0, int(c[i] - h[i]) - window)
        hi = min(n_grid, int(c[i] + h[i]) + window + 1)
        if hi <= lo:
            continue
        dist = np.maximum(0.0, np.abs(t[lo:hi] - c[i]) - h[i])
        d = np.exp(-dist / tau)[:, None] * _ALPHA[v[i]][None, :]            # [w, 2]
        dg = np.where(_JAW_GROUP[None, :], d[:, :1], d[:, 1:])               # [w, A]
        num[lo:hi] += dg * _TARGETS[v[i]][None, :]
        den[lo:hi] += d
    den_a = np.where(_JAW_GROUP[None, :], den[:, :1], den[:, 1:])
    out[:] = (num / den_a).astype(np.float32)
    return out


def energy_envelope(wave: np.ndarray) -> np.ndarray:
    """RMS per 10 ms grid point, normalised by the 95th percentile of the voiced points: [ceil(N / 160)]."""
    n_grid = -(-wave.shape[0] // GRID_HOP)
    x = np.zeros(n_grid * GRID_HOP, np.float32)
    x[: wave.shape[0]] = wave
    rms = np.sqrt((x.reshape(n_grid, GRID_HOP).astype(np.float64) ** 2).mean(axis=1))
    voiced = rms[rms > 1e-3]
    ref = np.percentile(voiced, 95) if voiced.size else 1.0
    kernel = np.array([0.25, 0.5, 0.25])
    return np.convolve(rms / max(ref, 1e-6), kernel, mode="same").astype(np.float32)


def mouth_blendshapes(segments: list[tuple[str, int, int]], wave: np.ndarray, n_frames: int,
                      cfg: ArticulationConfig = ArticulationConfig()) -> np.ndarray:
    """ARKit-52 mouth/jaw weights at 25 fps from phoneme segments and the speaker's own audio: [n_frames, 52].

    Only jaw, mouth and tongue channels are written (others are 0). wave: [>= n_frames * 640] float32 16 kHz.
    """
    n_samples = n_frames * GRID_HOP * GRID_PER_FRAME
    tr = articulator_tracks(segments, n_samples, cfg)[: n_frames * GRID_PER_FRAME]
    env = energy_envelope(np.asarray(wave[:n_samples], np.float32))
    env = np.pad(env, (0, max(0, tr.shape[0] - env.shape[0])))[: tr.shape[0]]
    jaw_scale = (1.0 - cfg.energy_gain) + cfg.energy_gain * np.clip(env, 0.0, 1.3)
    tr[:, _A["jaw"]] *= jaw_scale
    tr *= cfg.articulation
    fr = tr.reshape(n_frames, GRID_PER_FRAME, -1).mean(axis=1)             # [T, A]
    out = np.zeros((n_frames, 52), np.float32)
    left, right = 1.0 + cfg.lip_asymmetry, 1.0 - cfg.lip_asymmetry
    jaw = np.clip(fr[:, _A["jaw"]], 0.0, 1.0)
    out[:, ARKIT52_INDEX["jawOpen"]] = jaw
    out[:, ARKIT52_INDEX["mouthClose"]] = np.clip(fr[:, _A["closure"]], 0.0, 1.0) * jaw
    for name, art in (("mouthFunnel", "funnel"), ("mouthPucker", "pucker"), ("mouthRollLower", "roll_lower"),
                      ("mouthRollUpper", "roll_upper"), ("tongueOut", "tongue")):
        out[:, ARKIT52_INDEX[name]] = fr[:, _A[art]]
    for base, art in (("mouthPress", "press"), ("mouthStretch", "stretch"), ("mouthUpperUp", "upper_up"),
                      ("mouthLowerDown", "lower_down")):
        out[:, ARKIT52_INDEX[base + "Left"]] = fr[:, _A[art]] * left
        out[:, ARKIT52_INDEX[base + "Right"]] = fr[:, _A[art]] * right
    return np.clip(out, 0.0, 1.0)


__all__ = ["VISEMES", "VISEME_NAMES", "PHONEME_VISEMES", "ARTICULATORS", "ArticulationConfig", "visemes_for",
           "articulator_tracks", "energy_envelope", "mouth_blendshapes"]
