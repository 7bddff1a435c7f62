"""The on-disk dataset format: one folder per two-person clip (documented in docs/dataset_format.md).

    <root>/<split>/<clip_id>/            split: "train", "val" or "test"
        clip.json                        metadata: format version, participants, fps, basis, relation, heads, ...
        <pid>.wav                        one mono 16 kHz wav per participant (16-bit PCM or 32-bit float),
                                         exactly n_frames * 640 samples, silence while the participant is silent
        <pid>.npz                        "motion" float32 [T, D] (rsatalker_ros.motion.layout order for ``basis``),
                                         "speaking" bool [T]
        images/<pid>/                    optional: per-frame images (000000.png, ...) or a video, for avatar training
        extras.npz                       optional: named arrays (e.g. a FLAME shape per participant)

Arrays are read with ``allow_pickle=False``; nothing in a clip folder can run code.
"""

from __future__ import annotations

import json
import re
import wave as wavmod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsatalker_ros.audio import wav_io
from rsatalker_ros.files import (MAX_CONFIG_BYTES, BadFileError, checked_size, parse_json_object,
                                 read_npz)
from rsatalker_ros.motion.layout import AUDIO_RATE, MOTION_FPS, SAMPLES_PER_FRAME, MotionLayout
from rsatalker_ros.social.relation import Hierarchy, Relation

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class Clip:
    clip_id: str
    participants: tuple[str, str]
    audio: dict[str, np.ndarray]       # pid -> [N] float32 in [-1, 1] at 16 kHz, N == T * 640
    motion: dict[str, np.ndarray]      # pid -> [T, D] float32
    speaking: dict[str, np.ndarray]    # pid -> [T] bool
    relation: Relation
    basis: str
    heads: dict[str, str]              # pid -> head/avatar name for rendering ("" = the default head)
    fps: int = MOTION_FPS
    extras: dict[str, np.ndarray] = field(default_factory=dict)   # optional named arrays
    meta: dict = field(default_factory=dict)                      # optional JSON-able info (source, voices, turns)

    @property
    def n_frames(self) -> int:
        return int(next(iter(self.motion.values())).shape[0])

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps

    def partner_of(self, pid: str) -> str:
        a, b = self.participants
        if pid not in (a, b):
            raise ValueError(f"{pid!r} is not a participant of clip {self.clip_id!r} ({a!r}, {b!r})")
        return b if pid == a else a

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistency."""
        where = f"clip {self.clip_id!r}"
        if not _ID_RE.match(str(self.clip_id)):
            raise ValueError(f"{where}: clip_id must match {_ID_RE.pattern}")
        if len(self.participants) != 2 or self.participants[0] == self.participants[1]:
            raise ValueError(f"{where}: expected two distinct participant ids, got {self.participants!r}")
        for pid in self.participants:
            if not _ID_RE.match(pid):
                raise ValueError(f"{where}: participant id {pid!r} must match {_ID_RE.pattern}")
        if self.fps != MOTION_FPS:
            raise ValueError(f"{where}: fps must be {MOTION_FPS}, got {self.fps}")
        layout = MotionLayout.for_basis(self.basis)
        if self.relation.hierarchy == Hierarchy.UNEQUAL and self.relation.senior not in self.participants:
            raise ValueError(f"{where}: relation senior {self.relation.senior!r} is not a participant "
                             f"{self.participants!r}")
        n_frames = None
        for pid in self.participants:
            for name, d in (("audio", self.audio), ("motion", self.motion), ("speaking", self.speaking)):
                if pid not in d:
                    raise ValueError(f"{where}: no {name} for participant {pid!r}")
            m, a, s = self.motion[pid], self.audio[pid], self.speaking[pid]
            if not (isinstance(m, np.ndarray) and m.dtype == np.float32 and m.ndim == 2 and m.shape[1] == layout.dim):
                raise ValueError(f"{where}: motion of {pid!r} must be float32 [T, {layout.dim}] for basis "
                                 f"{self.basis!r}, got {getattr(m, 'dtype', type(m))} {getattr(m, 'shape', '')}")
            if n_frames is None:
                n_frames = m.shape[0]
            if m.shape[0] != n_frames or n_frames == 0:
                raise ValueError(f"{where}: participants must have the same non-zero frame count, got "
                                 f"{m.shape[0]} vs {n_frames}")
            if not np.isfinite(m).all():
                raise ValueError(f"{where}: motion of {pid!r} has non-finite values")
            if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 1):
                raise ValueError(f"{where}: audio of {pid!r} must be float32 [N], got "
                                 f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}")
            if a.shape[0] != n_frames * SAMPLES_PER_FRAME:
                raise ValueError(f"{where}: audio of {pid!r} has {a.shape[0]} samples, expected exactly "
                                 f"{n_frames} frames * {SAMPLES_PER_FRAME} = {n_frames * SAMPLES_PER_FRAME}")
            if not (isinstance(s, np.ndarray) and s.dtype == np.bool_ and s.shape == (n_frames,)):
                raise ValueError(f"{where}: speaking of {pid!r} must be bool [{n_frames}], got "
                                 f"{getattr(s, 'dtype', type(s))} {getattr(s, 'shape', '')}")


def _relation_to_json(r: Relation) -> dict:
    return {"kinship": r.kinship.name.lower(), "hierarchy": r.hierarchy.name.lower(), "senior": r.senior,
            "label": r.label, "confidence": float(r.confidence), "class_index": r.class_index}


def _relation_from_json(d: dict, where: str) -> Relation:
    try:
        return Relation.parse(d["kinship"], d["hierarchy"], d.get("senior", ""), d.get("label", ""),
                              float(d.get("confidence", 1.0)))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: bad 'relation' entry {d!r}: {e}") from e


def _write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wavmod.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(AUDIO_RATE)
        w.writeframes(pcm.tobytes())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A wav file -> (float32 mono samples in [-1, 1], sample rate). Multi-channel files are averaged."""
    x, rate = wav_io.read_wav(path)
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0], rate


def save_clip(clip: Clip, directory: str | Path) -> Path:
    """Write ``clip`` into ``directory`` (created; files of the same names are replaced). Returns the folder."""
    clip.validate()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for pid in clip.participants:
        _write_wav(d / f"{pid}.wav", clip.audio[pid])
        np.savez(d / f"{pid}.npz", motion=clip.motion[pid], speaking=clip.speaking[pid])
    if clip.extras:
        np.savez(d / "extras.npz", **{k: np.asarray(v) for k, v in clip.extras.items()})
    meta = {
        "format_version": FORMAT_VERSION, "clip_id": clip.clip_id, "participants": list(clip.participants),
        "fps": clip.fps, "sample_rate": AUDIO_RATE, "n_frames": clip.n_frames, "basis": clip.basis,
        "motion_dim": MotionLayout.for_basis(clip.basis).dim, "relation": _relation_to_json(clip.relation),
        "heads": {p: clip.heads.get(p, "") for p in clip.participants}, "meta": clip.meta,
    }
    (d / "clip.json").write_text(json.dumps(meta, indent=1))
    return d


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    return read_npz(path, "clip arrays (.npz)", max_bytes=4 << 30)


def _load_json(path: Path, what: str = "clip metadata") -> dict:
    checked_size(path, what, max_bytes=MAX_CONFIG_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadFileError(path, f"{what} is not readable UTF-8 text ({e})") from e
    return parse_json_object(path, what, text)


def load_clip(directory: str | Path) -> Clip:
    """Read and validate one clip folder. Raises ValueError naming the bad file and what was expected."""
    d = Path(directory)
    js = d / "clip.json"
    if not js.is_file():
        raise ValueError(f"{d}: not a clip folder (no clip.json)")
    meta = _load_json(js)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{js}: format_version {version!r} not supported (expected {FORMAT_VERSION})")
    for key in ("clip_id", "participants", "basis", "relation", "n_frames"):
        if key not in meta:
            raise ValueError(f"{js}: missing key {key!r}")
    parts = meta["participants"]
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts)):
        raise ValueError(f"{js}: 'participants' must be a list of two ids, got {parts!r}")
    for p in parts:
        if not _ID_RE.match(p):
            raise ValueError(f"{js}: participant id {p!r} must match {_ID_RE.pattern}")
    relation = _relation_from_json(meta["relation"], str(js))
    audio, motion, speaking = {}, {}, {}
    for pid in parts:
        x, rate = read_wav(d / f"{pid}.wav") if (d / f"{pid}.wav").is_file() else (None, None)
        if x is None:
            raise ValueError(f"{d / (pid + '.wav')}: missing file")
        if rate != AUDIO_RATE:
            raise ValueError(f"{d / (pid + '.wav')}: sample rate {rate} Hz, expected {AUDIO_RATE}")
        z = _load_npz(d / f"{pid}.npz")
        for k in ("motion", "speaking"):
            if k not in z:
                raise ValueError(f"{d / (pid + '.npz')}: missing array {k!r} (has {sorted(z)})")
        audio[pid] = x
        motion[pid] = z["motion"]
        speaking[pid] = z["speaking"]
    extras = _load_npz(d / "extras.npz") if (d / "extras.npz").exists() else {}
    clip = Clip(str(meta["clip_id"]), (parts[0], parts[1]), audio, motion, speaking, relation, str(meta["basis"]),
                {p: str(meta.get("heads", {}).get(p, "")) for p in parts}, int(meta.get("fps", MOTION_FPS)),
                extras, meta.get("meta", {}) or {})
    try:
        clip.validate()
    except ValueError as e:
        raise ValueError(f"{d}: {e}") from e
    if clip.n_frames != int(meta["n_frames"]):
        raise ValueError(f"{js}: n_frames says {meta['n_frames']} but the motion has {clip.n_frames} frames")
    return clip


def list_clips(root: str | Path, split: str) -> list[Path]:
    """Sorted clip folders (those holding clip.json) of one split under ``root``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    d = Path(root) / split
    if not d.is_dir():
        return []
    return sorted(p.parent for p in d.glob("*/clip.json"))


def read_relation(directory: str | Path) -> Relation:
    """The relation of a clip folder without loading audio or motion (for balancing, probes, statistics)."""
    js = Path(directory) / "clip.json"
    meta = _load_json(js)
    return _relation_from_json(meta.get("relation", {}), str(js))


__all__ = ["Clip", "save_clip", "load_clip", "list_clips", "read_relation", "read_wav", "SPLITS", "FORMAT_VERSION"]
