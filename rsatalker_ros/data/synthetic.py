"""Synthetic dataset of two-person conversations (espeak-ng speech + relationship-conditioned face motion).

``generate_dataset`` writes ``<root>/{train,val,test}/<clip_id>/`` folders in the format of ``dataset.py`` plus
``<root>/dataset.json`` (counts, seed, settings). Relations are balanced over the 4 classes (kinship x hierarchy)
in every split, and for UNEQUAL clips the senior alternates between participants "A" and "B". Each clip draws
from its own generator seeded by (seed, split, index): the same command (same counts, seed and espeak-ng version)
rewrites the same dataset bit for bit. A clip regenerated alone gets the same relation, voices, text, turn order
and behaviour events, but its audio/motion may differ by a few milliseconds of timing, because libespeak-ng
carries state from one utterance to the next.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rsatalker_ros.data.acoustics import AcousticConfig
from rsatalker_ros.data.conversation import ConversationConfig, generate_conversation
from rsatalker_ros.data.dataset import SPLITS, Clip, save_clip
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation

LABELS = {
    (Kinship.BLOOD, Hierarchy.EQUAL): ("siblings", "cousins", "twins"),
    (Kinship.BLOOD, Hierarchy.UNEQUAL): ("parent-child", "grandparent-grandchild", "aunt-nephew"),
    (Kinship.NON_BLOOD, Hierarchy.EQUAL): ("friends", "colleagues", "neighbours"),
    (Kinship.NON_BLOOD, Hierarchy.UNEQUAL): ("manager-employee", "teacher-student", "doctor-patient"),
}
CLASS_ORDER = ((Kinship.BLOOD, Hierarchy.EQUAL), (Kinship.BLOOD, Hierarchy.UNEQUAL),
               (Kinship.NON_BLOOD, Hierarchy.EQUAL), (Kinship.NON_BLOOD, Hierarchy.UNEQUAL))


def relation_for_index(i: int, rng: np.random.Generator, participants=("A", "B")) -> Relation:
    """The balanced relation of clip ``i``: class i % 4; senior alternates every 4 clips for UNEQUAL."""
    kin, hier = CLASS_ORDER[i % 4]
    senior = "" if hier == Hierarchy.EQUAL else participants[(i // 4) % 2]
    return Relation(kin, hier, senior, str(rng.choice(LABELS[(kin, hier)])))


def generate_clip(split: str, i: int, seed: int, seconds: float, engines: tuple[str, ...] = ("espeak-ng",),
                  acoustics: AcousticConfig | None = None) -> Clip:
    """Clip ``i`` of ``split`` for dataset seed ``seed`` (deterministic), voices from ``engines``, clean audio or
    the room conditions of ``acoustics``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = np.random.default_rng([int(seed), SPLITS.index(split), int(i)])
    relation = relation_for_index(i, rng)
    clip = generate_conversation(relation, rng, f"{split}_{i:05d}", ConversationConfig(seconds=seconds, engines=tuple(engines),
                                                                                 acoustics=acoustics))
    clip.meta["seed"] = [int(seed), split, int(i)]
    return clip


def generate_dataset(root: str | Path, n_train: int, n_val: int, n_test: int, seconds_per_clip: float = 12.0,
                     seed: int = 0, engines: tuple[str, ...] = ("espeak-ng",),
                     acoustics: AcousticConfig | None = None) -> Path:
    """Write a synthetic dataset under ``root``; returns ``root``. Existing clips of the same ids are replaced.
    ``engines``: speech synthesizers (see ``synthesizers.py``); ``acoustics``: room conditions (None = clean)."""
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    for k, v in counts.items():
        if v < 0:
            raise ValueError(f"number of {k} clips must be >= 0, got {v}")
    if not 2.0 <= seconds_per_clip <= 600.0:
        raise ValueError(f"seconds_per_clip must lie in [2, 600], got {seconds_per_clip}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    per_class = {s: [0, 0, 0, 0] for s in SPLITS}
    with tqdm(total=sum(counts.values()), desc="synthetic clips", unit="clip") as bar:
        for split in SPLITS:
            for i in range(counts[split]):
                clip = generate_clip(split, i, seed, seconds_per_clip, engines, acoustics)
                save_clip(clip, root / split / clip.clip_id)
                per_class[split][clip.relation.class_index] += 1
                bar.update(1)
    (root / "dataset.json").write_text(json.dumps({
        "kind": "synthetic", "generator_version": 2, "seed": int(seed), "seconds_per_clip": seconds_per_clip,
        "engines": list(engines), "acoustics": asdict(acoustics) if acoustics is not None else None,
        "counts": counts, "clips_per_class": per_class,
        "class_names": ["blood/equal", "blood/unequal", "non_blood/equal", "non_blood/unequal"],
    }, indent=1))
    return root


__all__ = ["generate_dataset", "generate_clip", "relation_for_index", "LABELS"]
