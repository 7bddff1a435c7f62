"""Measured behaviour statistics of one participant in a clip (listening frames vs speaking frames).

Used to check that the synthetic generator's relationship priors show up in the motion, and usable on any
dataset in the ARKit layout (real or predicted motion) to compare social behaviour between relationship classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from rsatalker_ros.data.dataset import Clip
from rsatalker_ros.face.arkit import ARKIT52_INDEX as IX
from rsatalker_ros.motion.layout import MotionLayout


@dataclass
class BehaviourStats:
    listening_s: float          # seconds of listening frames (participant not speaking)
    nod_rate: float             # nods per minute while listening (see nod_frames)
    smile: float                # mean mouthSmile weight while listening
    duchenne: float             # mean cheekSquint / mean mouthSmile while listening (0 when no smile)
    gaze_at_partner: float      # fraction of listening frames with |eye pitch|, |eye yaw| < 0.08 rad
    blink_rate: float           # blinks per minute over the whole clip (eyeBlink peaks > 0.5)
    head_motion: float          # std of neck rotation while listening (rad, mean over 3 axes)


def nod_frames(neck_pitch: np.ndarray, fps: int, prominence: float = 0.02, merge_s: float = 0.8) -> np.ndarray:
    """Start frames of nods in a neck-pitch track [T] (rad, > 0 = down).

    The track is band-passed to the 1-4 Hz range of nods (difference of Gaussians, sigma 0.04 s and 0.24 s), its
    downward peaks with the given prominence are found, and peaks closer than ``merge_s`` (the cycles of one
    nod) count as one nod.
    """
    x = np.asarray(neck_pitch, np.float64)
    bp = gaussian_filter1d(x, 0.04 * fps, mode="nearest") - gaussian_filter1d(x, 0.24 * fps, mode="nearest")
    peaks, _ = find_peaks(bp, prominence=prominence, distance=max(1, int(0.25 * fps)))
    if peaks.size == 0:
        return peaks
    keep = [peaks[0]]
    last = peaks[0]
    for p in peaks[1:]:
        if p - last > merge_s * fps:   # otherwise: another cycle of the same nod
            keep.append(p)
        last = p
    return np.array(keep)


def behaviour_stats(clip: Clip, pid: str) -> BehaviourStats:
    """Statistics of participant ``pid`` (expression basis must be arkit52)."""
    if clip.basis != "arkit52":
        raise ValueError(f"behaviour statistics need the arkit52 basis, clip {clip.clip_id!r} uses {clip.basis!r}")
    lay = MotionLayout.for_basis(clip.basis)
    m = clip.motion[pid]
    listen = ~clip.speaking[pid]
    fps = clip.fps
    n_listen = int(listen.sum())
    minutes_listen = max(n_listen / fps / 60.0, 1e-9)
    neck = m[:, lay.neck]
    nods = nod_frames(neck[:, 0].astype(np.float64), fps)
    nod_rate = float(listen[nods].sum() / minutes_listen) if n_listen else 0.0
    smile_t = 0.5 * (m[:, IX["mouthSmileLeft"]] + m[:, IX["mouthSmileRight"]])
    cheek_t = 0.5 * (m[:, IX["cheekSquintLeft"]] + m[:, IX["cheekSquintRight"]])
    smile = float(smile_t[listen].mean()) if n_listen else 0.0
    duchenne = float(cheek_t[listen].mean() / smile) if smile > 1e-6 else 0.0
    eyes = m[:, lay.eyes]
    at = (np.abs(eyes[:, 0]) < 0.08) & (np.abs(eyes[:, 1]) < 0.08)
    gaze = float(at[listen].mean()) if n_listen else 0.0
    blink_t = 0.5 * (m[:, IX["eyeBlinkLeft"]] + m[:, IX["eyeBlinkRight"]])
    blinks, _ = find_peaks(blink_t, height=0.5, distance=3)
    blink_rate = float(len(blinks) / (m.shape[0] / fps / 60.0))
    head = float(neck[listen].std(axis=0).mean()) if n_listen > 1 else 0.0
    return BehaviourStats(n_listen / fps, nod_rate, smile, duchenne, gaze, blink_rate, head)


__all__ = ["BehaviourStats", "behaviour_stats", "nod_frames"]
