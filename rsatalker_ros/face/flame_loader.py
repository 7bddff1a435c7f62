"""Load a user's FLAME model file (FLAME 2020 ``generic_model.pkl``, FLAME 2023) without running code from it.

FLAME files are Python 2 pickles of a dict of numpy arrays, a scipy sparse ``J_regressor`` and chumpy ``Ch``
arrays (``shapedirs``). ``SafeUnpickler`` resolves only an allow-list of globals: numpy's array/dtype/scalar
rebuilders, builtin containers, and stand-ins for chumpy and scipy.sparse classes that merely keep their pickled
state (so neither chumpy nor scipy code runs). Any other global (``os.system``, ``builtins.eval``, ...) raises.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from rsatalker_ros.face.head_data import PARENTS, HeadData
from rsatalker_ros.motion.layout import MotionLayout

N_FLAME_SHAPE = 300


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list (it would run code)."""


class _StateHolder:
    """Stand-in for an allowed foreign class: keeps the pickled state, runs nothing."""

    kind = "object"

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):  # never re-pickled
        raise TypeError("stand-in objects cannot be pickled")


class _ChumpyArray(_StateHolder):
    kind = "chumpy"


class _SparseMatrix(_StateHolder):
    kind = "sparse"


def _reconstructor(cls, base, state):
    """copy_reg._reconstructor restricted to our stand-ins (protocol 0/1 pickles of new-style objects)."""
    if not (isinstance(cls, type) and issubclass(cls, _StateHolder)) or base is not object:
        raise UnsafePickleError(f"refusing to reconstruct {cls!r}")
    return cls()


def _latin1_encode(text, encoding="latin1"):
    """_codecs.encode as Python 3 writes bytes in protocol-2 pickles: only str -> latin-1 bytes."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError("refusing _codecs.encode other than str -> latin-1 bytes")
    return text.encode("latin1")


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    return _reconstruct, scalar


_RECONSTRUCT, _SCALAR = _numpy_reconstruct()
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "set"): set, ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset, ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): bytes, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "object"): object, ("builtins", "object"): object,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, builtin containers and inert stand-ins for chumpy/scipy.sparse."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyArray
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return type(name, (_SparseMatrix,), {"format": name[:3]})
        raise UnsafePickleError(f"refusing to load global {module}.{name} (not a numpy/chumpy/sparse array)")

    def persistent_load(self, pid):
        raise UnsafePickleError("persistent ids are not allowed")


def safe_load_pickle(path: str | Path):
    """Unpickle ``path`` with ``SafeUnpickler`` (latin1 for Python 2 files); ValueError if refused or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"FLAME file {str(path)!r} does not exist")
    raw = path.read_bytes()
    try:
        return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except UnsafePickleError as exc:
        raise ValueError(f"{str(path)!r}: unsafe pickle refused: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable pickle (corrupt or truncated?): {exc!r}") from exc


def to_array(obj, name: str) -> np.ndarray:
    """Turn an unpickled value (ndarray, chumpy stand-in, sparse stand-in) into a dense float/int ndarray."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, _ChumpyArray):
        state = getattr(obj, "state", None)
        state = state if isinstance(state, dict) else {}
        if "x" not in state:
            raise ValueError(f"{name}: chumpy object without an 'x' array (derived chumpy expressions unsupported)")
        return to_array(state["x"], name)
    if isinstance(obj, _SparseMatrix):
        state = getattr(obj, "state", None)
        state = state if isinstance(state, dict) else {}
        shape = state.get("_shape", state.get("shape"))
        if shape is None:
            raise ValueError(f"{name}: sparse matrix without a shape")
        dense = np.zeros(tuple(int(s) for s in shape), dtype=np.float64)
        if obj.format == "coo":
            dense[np.asarray(state["row"]), np.asarray(state["col"])] += np.asarray(state["data"])
            return dense
        data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
        major = dense.shape[1] if obj.format == "csc" else dense.shape[0]
        if len(indptr) != major + 1:
            raise ValueError(f"{name}: sparse matrix indptr has {len(indptr)} entries, expected {major + 1}")
        for j in range(major):
            sl = slice(int(indptr[j]), int(indptr[j + 1]))
            if obj.format == "csc":
                dense[indices[sl], j] += data[sl]
            else:
                dense[j, indices[sl]] += data[sl]
        return dense
    if isinstance(obj, (list, tuple)):
        return np.asarray(obj)
    raise ValueError(f"{name} is a {type(obj).__name__}; expected an array")


def load_flame(path: str | Path, basis: str = "flame100") -> HeadData:
    """Read a FLAME 2020/2023 model file into ``HeadData`` (expression basis "flame100" or "flame50").

    Raises ValueError with the reason for a missing, corrupt or non-FLAME file.
    """
    layout = MotionLayout.for_basis(basis)
    if not basis.startswith("flame"):
        raise ValueError(f"a FLAME file needs a FLAME expression basis ('flame50' or 'flame100'), got {basis!r}")
    raw = safe_load_pickle(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{str(path)!r} holds a {type(raw).__name__}; a FLAME model file holds a dict")
    need = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
    missing = [k for k in need if k not in raw]
    if missing:
        raise ValueError(f"{str(path)!r} is not a FLAME model: missing keys {missing} (has {sorted(raw)[:12]})")
    a = {k: to_array(raw[k], k) for k in need}
    v = a["v_template"].astype(np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"v_template has shape {list(v.shape)}; expected [V, 3]")
    n_v = v.shape[0]
    dirs = a["shapedirs"].astype(np.float64)
    if dirs.ndim != 3 or dirs.shape[:2] != (n_v, 3):
        raise ValueError(f"shapedirs has shape {list(dirs.shape)}; expected [{n_v}, 3, shape+expression]")
    if dirs.shape[2] < N_FLAME_SHAPE + layout.n_expression:
        raise ValueError(f"shapedirs has {dirs.shape[2]} directions; FLAME files hold {N_FLAME_SHAPE} shape + "
                         f"100 expression directions (need at least {N_FLAME_SHAPE + layout.n_expression})")
    shapedirs = dirs[:, :, :N_FLAME_SHAPE]
    exprdirs = dirs[:, :, N_FLAME_SHAPE:N_FLAME_SHAPE + layout.n_expression]
    kin = a["kintree_table"].astype(np.int64)
    if kin.shape != (2, 5):
        raise ValueError(f"kintree_table has shape {list(kin.shape)}; expected [2, 5] (FLAME's 5 joints)")
    parents = [int(p) if 0 <= p < 5 else -1 for p in kin[0]]
    if tuple(parents) != PARENTS or list(kin[1]) != [0, 1, 2, 3, 4]:
        raise ValueError(f"kintree_table {kin.tolist()} is not FLAME's (parents {list(PARENTS)})")
    jreg = a["J_regressor"].astype(np.float64)
    if jreg.shape != (5, n_v):
        raise ValueError(f"J_regressor has shape {list(jreg.shape)}; expected [5, {n_v}]")
    posedirs = a["posedirs"].astype(np.float64)
    if posedirs.shape != (n_v, 3, 36):
        raise ValueError(f"posedirs has shape {list(posedirs.shape)}; expected [{n_v}, 3, 36]")
    weights = a["weights"].astype(np.float64)
    if weights.shape != (n_v, 5):
        raise ValueError(f"weights has shape {list(weights.shape)}; expected [{n_v}, 5]")
    faces = a["f"].astype(np.int64)
    data = HeadData(
        basis=basis, v_template=v, faces=faces, shapedirs=shapedirs, exprdirs=exprdirs,
        posedirs=posedirs.reshape(n_v * 3, 36).T.copy(),
        j_template=jreg @ v,
        j_shapedirs=np.einsum("kv,vic->kic", jreg, shapedirs),
        j_exprdirs=np.einsum("kv,vic->kic", jreg, exprdirs),
        weights=weights, parents=np.asarray(PARENTS, dtype=np.int64),
        meta={"source": "flame", "file": Path(path).name},
    )
    try:
        data.validate()
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from exc
    return data


def load_flame_masks(path: str | Path, n_vertices: int) -> dict[str, np.ndarray]:
    """Read FLAME's ``FLAME_masks.pkl`` (dict of vertex-index arrays) safely; ValueError if it doesn't fit."""
    raw = safe_load_pickle(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{str(path)!r} is not a FLAME masks file (a dict of vertex indices)")
    masks = {}
    for key, value in raw.items():
        idx = to_array(value, str(key)).astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n_vertices):
            raise ValueError(f"{str(path)!r}: mask {key!r} indexes vertices outside 0..{n_vertices - 1}")
        masks[str(key)] = idx
    return masks
