"""Import DualTalk's on-disk layout (see /work/shared/DUALTALK.md) into this package's dataset format.

DualTalk: ``<src>/{train,test,ood}/<name>_speaker{1,2}.{wav,npz}``; npz keys ``exp`` [T,50], ``pose`` [T,6]
(pose[:, 0:3] head/neck rotation, pose[:, 3:6] jaw, axis-angle rad), ``shape`` [T,100], and others we ignore.
Conversion per clip (participants "speaker1", "speaker2"; basis "flame50", motion dim 62):
  - motion = [exp (50) | jaw = pose[:, 3:6] | neck = pose[:, 0:3] | eyes = 0 (6)], float32, 25 fps;
  - audio resampled to 16 kHz mono float32 if needed; frames cropped to the shortest of both speakers' motion and
    audio, audio cropped to exactly T * 640 samples;
  - speaking flags from voice activity on each speaker's own audio (DualTalk has none);
  - extras: ``shape_<pid>`` = the FLAME shape of frame 0 [100];
  - relation: DualTalk has no relationship labels. Pass ``relations`` (clip name -> Relation, or a JSON file
    {name: {"kinship": ..., "hierarchy": ..., "senior": "speaker1"|"speaker2"|"", "label": ...}}); clips
    without one get NON_BLOOD/EQUAL with label "unannotated" and confidence 0.0 (training code can skip them).
Split mapping (default): train -> train, test -> test, ood -> test with ids prefixed "ood-".

    python -m rsatalker_ros.data.dualtalk /path/to/DualTalk/data runs/dualtalk [--relations rel.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from tqdm import tqdm

from rsatalker_ros.audio.ring_buffer import resample
from rsatalker_ros.audio.voice_activity import CHUNK, VadConfig, VoiceActivityDetector
from rsatalker_ros.data.dataset import SPLITS, Clip, _load_npz, read_wav, save_clip
from rsatalker_ros.motion.layout import AUDIO_RATE, MOTION_FPS, SAMPLES_PER_FRAME, MotionLayout
from rsatalker_ros.social.relation import Hierarchy, Kinship, Relation

DEFAULT_SPLIT_MAP = {"train": ("train", ""), "test": ("test", ""), "ood": ("test", "ood-")}
UNANNOTATED = Relation(Kinship.NON_BLOOD, Hierarchy.EQUAL, "", "unannotated", 0.0)
PIDS = ("speaker1", "speaker2")
FLAME50 = MotionLayout.for_basis("flame50")


def find_dualtalk_clips(src: str | Path) -> dict[str, list[str]]:
    """{dualtalk split: sorted clip names} for the splits present under ``src`` (clips need all four files)."""
    src = Path(src)
    out = {}
    for split in ("train", "test", "ood"):
        d = src / split
        if not d.is_dir():
            continue
        names = sorted(p.name[: -len("_speaker1.npz")] for p in d.glob("*_speaker1.npz"))
        out[split] = [n for n in names if all((d / f"{n}_{pid}.{ext}").is_file()
                                              for pid in PIDS for ext in ("wav", "npz"))]
    if not out:
        raise ValueError(f"{src}: no DualTalk split folders (expected train/, test/ or ood/ with "
                         f"<name>_speaker1.wav/.npz and <name>_speaker2.wav/.npz)")
    return out


def _motion_from_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    z = _load_npz(path)
    for k in ("exp", "pose"):
        if k not in z:
            raise ValueError(f"{path}: missing DualTalk array {k!r} (has {sorted(z)})")
    exp, pose = np.asarray(z["exp"], np.float32), np.asarray(z["pose"], np.float32)
    if exp.ndim != 2 or exp.shape[1] < 50 or pose.ndim != 2 or pose.shape[1] != 6 or exp.shape[0] != pose.shape[0]:
        raise ValueError(f"{path}: expected exp [T, 50] and pose [T, 6], got {exp.shape} and {pose.shape}")
    m = np.zeros((exp.shape[0], FLAME50.dim), np.float32)
    m[:, FLAME50.expression] = exp[:, :50]
    m[:, FLAME50.jaw] = pose[:, 3:6]
    m[:, FLAME50.neck] = pose[:, 0:3]
    shape = np.asarray(z["shape"][0], np.float32) if "shape" in z and len(z["shape"]) else None
    return m, shape


def speaking_from_audio(wave: np.ndarray, n_frames: int, vad: VoiceActivityDetector) -> np.ndarray:
    """Per-frame speaking flags [n_frames] from a VAD run over the 16 kHz wave (chunk probabilities -> frames)."""
    probs = vad.probabilities(wave)
    if probs.size == 0:
        return np.zeros(n_frames, bool)
    centres = (np.arange(probs.size) + 0.5) * CHUNK
    frame_centres = (np.arange(n_frames) + 0.5) * SAMPLES_PER_FRAME
    p = np.interp(frame_centres, centres, probs)
    return p >= vad.cfg.threshold


def _relations_lookup(relations) -> Callable[[str], Relation]:
    if relations is None:
        return lambda name: UNANNOTATED
    if callable(relations):
        return relations
    if isinstance(relations, (str, Path)):
        p = Path(relations)
        try:
            table = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: unreadable relations JSON ({e})") from e
        parsed = {}
        for name, d in table.items():
            try:
                parsed[name] = Relation.parse(d["kinship"], d["hierarchy"], d.get("senior", ""), d.get("label", ""),
                                              float(d.get("confidence", 1.0)))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{p}: bad relation for {name!r}: {e}") from e
        relations = parsed
    if isinstance(relations, Mapping):
        return lambda name: relations.get(name, UNANNOTATED)
    raise ValueError("relations must be None, a mapping name -> Relation, a callable or a JSON file path")


def _clip_id(prefix: str, name: str) -> str:
    cid = prefix + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return cid if cid[0].isalnum() else "c" + cid


def import_dualtalk(src: str | Path, dst: str | Path, relations=None, split_map=None,
                    vad: VoiceActivityDetector | None = None, min_frames: int = 25) -> list[Path]:
    """Convert every DualTalk clip under ``src`` into clip folders under ``dst``. Returns the folders written.

    Clips shorter than ``min_frames`` after alignment are skipped (with a note in the progress bar).
    """
    split_map = dict(DEFAULT_SPLIT_MAP if split_map is None else split_map)
    for k, (to, _) in split_map.items():
        if to not in SPLITS:
            raise ValueError(f"split_map sends {k!r} to {to!r}; expected one of {SPLITS}")
    lookup = _relations_lookup(relations)
    vad = vad or VoiceActivityDetector(VadConfig())
    found = find_dualtalk_clips(src)
    jobs = [(s, n) for s, names in found.items() if s in split_map for n in names]
    written = []
    skipped = 0
    for split, name in tqdm(jobs, desc="DualTalk clips", unit="clip"):
        d = Path(src) / split
        motion, audio, shapes = {}, {}, {}
        for pid in PIDS:
            motion[pid], shapes[pid] = _motion_from_npz(d / f"{name}_{pid}.npz")
            x, rate = read_wav(d / f"{name}_{pid}.wav")
            audio[pid] = resample(x, rate, AUDIO_RATE) if rate != AUDIO_RATE else x
        t = min(min(m.shape[0] for m in motion.values()), min(a.shape[0] for a in audio.values()) // SAMPLES_PER_FRAME)
        if t < min_frames:
            skipped += 1
            continue
        n = t * SAMPLES_PER_FRAME
        audio = {p: np.clip(a[:n], -1.0, 1.0).astype(np.float32) for p, a in audio.items()}
        motion = {p: np.ascontiguousarray(m[:t]) for p, m in motion.items()}
        speaking = {p: speaking_from_audio(audio[p], t, vad) for p in PIDS}
        relation = lookup(name)
        to_split, prefix = split_map[split]
        clip = Clip(_clip_id(prefix, name), PIDS, audio, motion, speaking, relation, FLAME50.basis,
                    {p: "" for p in PIDS}, MOTION_FPS,
                    {f"shape_{p}": s for p, s in shapes.items() if s is not None},
                    {"source": "dualtalk", "dualtalk_split": split, "dualtalk_name": name})
        written.append(save_clip(clip, Path(dst) / to_split / clip.clip_id))
    if skipped:
        print(f"skipped {skipped} DualTalk clip(s) shorter than {min_frames} frames")
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Import a DualTalk data folder into the rsatalker_ros dataset format")
    ap.add_argument("src", help="DualTalk data folder holding train/, test/, ood/")
    ap.add_argument("dst", help="output dataset root")
    ap.add_argument("--relations", default=None, help="JSON {clip name: {kinship, hierarchy, senior, label}}")
    ap.add_argument("--vad", default="auto", choices=("auto", "silero", "energy"), help="speaking-flag VAD backend")
    args = ap.parse_args(argv)
    out = import_dualtalk(args.src, args.dst, args.relations, vad=VoiceActivityDetector(VadConfig(backend=args.vad)))
    print(f"wrote {len(out)} clips under {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["import_dualtalk", "find_dualtalk_clips", "speaking_from_audio", "UNANNOTATED", "DEFAULT_SPLIT_MAP"]
