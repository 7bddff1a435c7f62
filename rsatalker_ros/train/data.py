"""Training data for the motion model: every clip seen from each participant's side, features precomputed.

A *sample* is one participant of one clip: own audio features, partner audio features (log-mel frame features
[T, 320]), own and partner motion [T, D], own speaking flags [T], the query index of the participant under the
clip's relationship (0..5) and the relationship class (0..3). Training draws random windows of these.
"""

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from rsatalker_ros.motion.features import frame_features
from rsatalker_ros.data.dataset import Clip, list_clips, load_clip


@dataclass
class Sample:
    clip_id: str
    participant: str
    partner: str
    own_feats: np.ndarray        # [T, 320] float32 log-mel frame features
    partner_feats: np.ndarray    # [T, 320]
    motion: np.ndarray           # [T, D] float32, this participant
    partner_motion: np.ndarray   # [T, D]
    speaking: np.ndarray         # [T] bool, this participant
    query_index: int             # 0..5
    class_index: int             # 0..3
    relation: object = None      # the clip's Relation
    basis: str = "arkit52"       # expression basis of the motion layout


def clip_features(clip: Clip) -> dict[str, np.ndarray]:
    """pid -> [T, 320] model features of the clip's audio (rsatalker_ros.motion.features)."""
    return {pid: frame_features(clip.audio[pid]).numpy() for pid in clip.participants}


def samples_from_clip(clip: Clip) -> list[Sample]:
    feats = clip_features(clip)
    out = []
    for pid in clip.participants:
        other = clip.partner_of(pid)
        out.append(Sample(clip.clip_id, pid, other, feats[pid], feats[other], clip.motion[pid],
                          clip.motion[other], clip.speaking[pid], clip.relation.query_index_for(pid),
                          clip.relation.class_index, clip.relation, clip.basis))
    return out


def load_split(root, split: str, limit: int | None = None, basis: str | None = None,
               progress: bool = True) -> list[Sample]:
    """All samples of one split (2 per clip). ValueError if the split is empty or mixes motion layouts."""
    dirs = list_clips(root, split)
    if limit is not None:
        dirs = dirs[:limit]
    if not dirs:
        raise ValueError(f"no clips in split {split!r} under {str(root)!r} (expected <root>/{split}/<clip>/clip.json;"
                         f" make one with python -m rsatalker_ros.cli.make_dataset)")
    samples = []
    for d in tqdm(dirs, desc=f"loading {split}", disable=not progress, leave=False):
        clip = load_clip(d)
        if basis is None:
            basis = clip.basis
        elif clip.basis != basis:
            raise ValueError(f"{d}: expression basis {clip.basis!r} differs from {basis!r} (one layout per run)")
        samples.extend(samples_from_clip(clip))
    return samples


def normalization_stats(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Per-dimension mean and std of audio features and motion over all frames of ``samples``."""
    f = np.concatenate([s.own_feats for s in samples])
    m = np.concatenate([s.motion for s in samples])
    return {"feat_mean": f.mean(0), "feat_std": f.std(0), "motion_mean": m.mean(0), "motion_std": m.std(0)}


def silence_features(n_frames: int) -> np.ndarray:
    """Log-mel frame features of silence [n_frames, 320] (what the model hears when there is no partner)."""
    return frame_features(np.zeros(n_frames * 640, np.float32)).numpy()


class WindowSampler:
    """Random training windows of ``frames`` frames (whole sample when shorter), as batched tensors."""

    def __init__(self, samples: list[Sample], frames: int, seed: int = 0):
        if not samples:
            raise ValueError("no training samples")
        self.samples, self.frames = samples, frames
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = self.rng.integers(0, len(self.samples), batch_size)
        T = min(self.frames, min(self.samples[i].motion.shape[0] for i in idx))
        cols = {k: [] for k in ("own_feats", "partner_feats", "motion", "partner_motion", "speaking")}
        for i in idx:
            s = self.samples[i]
            t0 = int(self.rng.integers(0, s.motion.shape[0] - T + 1))
            for k in cols:
                cols[k].append(getattr(s, k)[t0:t0 + T])
        out = {k: torch.from_numpy(np.stack(v)) for k, v in cols.items()}
        out["query_index"] = torch.tensor([self.samples[i].query_index for i in idx])
        out["class_index"] = torch.tensor([self.samples[i].class_index for i in idx])
        return out

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def fixed_batches(samples: list[Sample], frames: int, batch_size: int, seed: int = 1234) -> list[dict]:
    """Deterministic windows for validation losses (same every evaluation)."""
    sampler = WindowSampler(samples, frames, seed)
    n = max(1, min(8, (len(samples) + batch_size - 1) // batch_size))
    return [sampler.batch(batch_size) for _ in range(n)]
