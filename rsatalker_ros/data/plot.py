"""Plot one clip's audio and motion trajectories for both participants (a quick visual check of a dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsatalker_ros.data.dataset import Clip
from rsatalker_ros.face.arkit import ARKIT52_INDEX as IX
from rsatalker_ros.motion.layout import SAMPLES_PER_FRAME, MotionLayout


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_clip(clip: Clip, path: str | Path, dpi: int = 90) -> Path:
    """Write a PNG with, per participant: waveform + speaking flag, jaw/lip channels, smile/blink/brow, neck
    rotation (nods) and gaze. ARKit channels are only drawn for the arkit52 basis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lay = MotionLayout.for_basis(clip.basis)
    t = np.arange(clip.n_frames) / clip.fps
    rows = 5
    fig, axes = plt.subplots(rows, 2, figsize=(14, 10), sharex=True)
    for col, pid in enumerate(clip.participants):
        m, sp = clip.motion[pid], clip.speaking[pid]
        role = clip.relation.direction_for(pid).name.lower()
        a = clip.audio[pid]
        ax = axes[0, col]
        ta = np.arange(a.shape[0]) / (SAMPLES_PER_FRAME * clip.fps)
        ax.plot(ta[::8], a[::8], lw=0.3, color="0.4")
        ax.fill_between(t, -1, 1, where=sp, color="tab:green", alpha=0.15, step="mid", label="speaking")
        ax.set_ylim(-1, 1)
        ax.set_title(f"{pid} ({role}) - {clip.relation.kinship.name.lower()}/{clip.relation.hierarchy.name.lower()}"
                     f" {clip.relation.label}")
        ax.legend(loc="upper right", fontsize=7)
        if clip.basis == "arkit52":
            ax = axes[1, col]
            for name in ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthPressLeft", "mouthStretchLeft"):
                ax.plot(t, m[:, IX[name]], lw=0.8, label=name)
            ax.set_ylabel("mouth")
            ax.legend(loc="upper right", fontsize=6, ncol=3)
            ax = axes[2, col]
            for name in ("mouthSmileLeft", "cheekSquintLeft", "eyeBlinkLeft", "browInnerUp"):
                ax.plot(t, m[:, IX[name]], lw=0.8, label=name)
            ax.set_ylabel("face")
            ax.legend(loc="upper right", fontsize=6, ncol=2)
        else:
            axes[1, col].plot(t, m[:, lay.expression][:, :6], lw=0.6)
            axes[1, col].set_ylabel("expr 0-5")
            axes[2, col].plot(t, m[:, lay.jaw], lw=0.8)
            axes[2, col].set_ylabel("jaw (rad)")
        ax = axes[3, col]
        for k, name in enumerate(("pitch (nod)", "yaw", "roll")):
            ax.plot(t, m[:, lay.neck][:, k], lw=0.8, label=name)
        ax.set_ylabel("neck (rad)")
        ax.legend(loc="upper right", fontsize=6, ncol=3)
        ax = axes[4, col]
        ax.plot(t, m[:, lay.eyes][:, 0], lw=0.8, label="eye pitch")
        ax.plot(t, m[:, lay.eyes][:, 1], lw=0.8, label="eye yaw")
        ax.set_ylabel("gaze (rad)")
        ax.set_xlabel("time (s)")
        ax.legend(loc="upper right", fontsize=6, ncol=2)
    fig.suptitle(f"clip {clip.clip_id}: {clip.n_frames} frames at {clip.fps} fps, basis {clip.basis}")
    return _save(fig, path, dpi)



def behaviour_table(root: str | Path, split: str = "train", max_clips: int = 200) -> dict[str, dict[str, float]]:
    """Mean behaviour statistics per (kinship, direction) over the clips of one split (arkit52 datasets)."""
    from dataclasses import asdict

    from rsatalker_ros.data.behaviour import behaviour_stats
    from rsatalker_ros.data.dataset import list_clips, load_clip
    acc: dict[str, list[dict]] = {}
    for d in list_clips(root, split)[:max_clips]:
        clip = load_clip(d)
        for pid in clip.participants:
            key = f"{clip.relation.kinship.name.lower()}/{clip.relation.direction_for(pid).name.lower()}"
            acc.setdefault(key, []).append(asdict(behaviour_stats(clip, pid)))
    return {k: {s: float(np.mean([v[s] for v in vs])) for s in vs[0]} | {"n": len(vs)} for k, vs in sorted(acc.items())}


def plot_behaviour(table: dict[str, dict[str, float]], path: str | Path, dpi: int = 90) -> Path:
    """Bar charts of listener statistics per (kinship, direction) from ``behaviour_table``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    stats = (("nod_rate", "nods / min (listening)"), ("gaze_at_partner", "gaze at partner (listening)"),
             ("smile", "mean smile (listening)"), ("duchenne", "cheek squint / smile"),
             ("head_motion", "head motion std (rad)"), ("blink_rate", "blinks / min"))
    keys = list(table)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (s, title) in zip(axes.ravel(), stats):
        ax.bar(range(len(keys)), [table[k][s] for k in keys],
               color=["tab:red" if k.startswith("blood") else "tab:blue" for k in keys])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(keys, rotation=35, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    n = sum(int(v["n"]) for v in table.values())
    fig.suptitle(f"synthetic listener behaviour per relationship and direction ({n} participant-clips)")
    return _save(fig, path, dpi)


__all__ = ["plot_clip", "behaviour_table", "plot_behaviour"]
