"""Load a user's FLAME model file (FLAME 2020 ``generic_model.pkl``, FLAME 2023) without running code from it.

FLAME files are Python 2 pickles of a dict of numpy arrays, a scipy sparse ``J_regressor`` and chumpy ``Ch``
arrays (``shapedirs``). ``SafeUnpickler`` resolves only an allow-list of globals: numpy's array/dtype/scalar
rebuilders, builtin containers, and stand-ins for chumpy and scipy.sparse classes that merely keep their pickled
state (so neither chumpy nor scipy code runs). Any other global (``os.system``, ``builtins.eval``, ...) raises.

Memory stays proportional to the file (docs/file_limits.md): before unpickling, ``pickletools`` walks the opcodes
and checks every declared length against the bytes that follow, every memo index against the opcodes so far and
the opcode count against MAX_PICKLE_OPCODES; the allowed callables refuse to create anything larger than their
pickled arguments (``bytearray(10**9)``, an ndarray of a declared shape, a dtype of a huge item size); a sparse
matrix is densified only within the file's budget. Every problem raises ``BadFileError`` (a ValueError).
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy as np

from rsatalker_ros.face.head_data import MAX_HEAD_VERTICES, PARENTS, HeadData
from rsatalker_ros.files import BadFileError, checked_size
from rsatalker_ros.motion.layout import MotionLayout

N_FLAME_SHAPE = 300
MAX_FLAME_BYTES = 1 << 30          # FLAME 2020's generic_model.pkl is about 53 MB
MAX_PICKLE_OPCODES = 1_000_000     # FLAME files hold a few thousand (arrays are single opcodes)
MAX_ITEMSIZE = 64                  # bytes per array element (numeric dtypes are at most 16)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list (it would run code or allocate beyond its size)."""


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
        raise UnsafePickleError(f"refusing to reconstruct a {type(cls).__name__}")
    return cls()


def _latin1_encode(text, encoding="latin1"):
    """_codecs.encode as Python 3 writes bytes in protocol-2 pickles: only str -> latin-1 bytes."""
    if not isinstance(text, str) or not isinstance(encoding, str) or \
            encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError("refusing _codecs.encode other than str -> latin-1 bytes")
    return text.encode("latin1")


def _from_data(cls):
    """bytes / bytearray from pickled data only: ``bytearray(10**9)`` would allocate from a few bytes."""
    def build(*args):
        if len(args) > 2 or (args and not isinstance(args[0], (bytes, bytearray, str, list))):
            raise UnsafePickleError(f"refusing {cls.__name__}() of a {type(args[0]).__name__}; expected pickled "
                                    "bytes, a string or a list")
        return cls(*args)
    return build


def _dtype(*args):
    """numpy.dtype restricted to plain element types of at most MAX_ITEMSIZE bytes (no sub-arrays or records)."""
    try:
        dt = np.dtype(*args)
    except (TypeError, ValueError) as e:
        raise UnsafePickleError(f"bad numpy dtype ({e})") from e
    if dt.subdtype is not None or dt.names is not None or not 0 < dt.itemsize <= MAX_ITEMSIZE:
        raise UnsafePickleError(f"refusing numpy dtype {dt.str!r} (item size {dt.itemsize}); expected a plain "
                                f"numeric type of 1..{MAX_ITEMSIZE} bytes")
    return dt


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    return _reconstruct, scalar


_NP_RECONSTRUCT, _NP_SCALAR = _numpy_reconstruct()


def _reconstruct(subtype, shape, dtype):
    """ndarray.__reduce__'s rebuilder: pickles always start from an empty array, then set its state from data."""
    if subtype is not np.ndarray or not isinstance(shape, tuple) or any(s != 0 for s in shape) or len(shape) > 32:
        raise UnsafePickleError("refusing an ndarray built from a declared shape; pickled arrays start empty")
    return _NP_RECONSTRUCT(subtype, shape, dtype)


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind == "O" or not isinstance(data, bytes) or \
            len(data) != dtype.itemsize:
        raise UnsafePickleError("refusing a numpy scalar whose bytes do not match its dtype")
    return _NP_SCALAR(dtype, data)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "set"): set, ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset, ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _from_data(bytes), ("builtins", "bytearray"): _from_data(bytearray),
    ("__builtin__", "object"): object, ("builtins", "object"): object,
}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


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


def check_opcodes(raw: bytes) -> int:
    """Walk the pickle's opcodes without building anything (pickletools): every declared length must fit in the
    bytes that follow, memo indices may not run ahead of the opcodes (the C unpickler sizes its memo by the
    largest index: 9 bytes could ask for gigabytes), at most MAX_PICKLE_OPCODES. Returns the opcode count."""
    n = 0
    for n, (op, arg, pos) in enumerate(pickletools.genops(io.BytesIO(raw)), 1):
        if n > MAX_PICKLE_OPCODES:
            raise UnsafePickleError(f"more than {MAX_PICKLE_OPCODES} opcodes; a FLAME file holds a few thousand")
        if op.name in _MEMO_PUTS and not 0 <= int(arg) <= n:
            raise UnsafePickleError(f"memo index {arg} at byte {pos} runs ahead of the {n} opcodes so far")
    return n


def safe_load_pickle(path: str | Path):
    """Unpickle ``path`` with ``SafeUnpickler`` (latin1 for Python 2 files); BadFileError if refused or corrupt."""
    checked_size(path, "FLAME pickle", MAX_FLAME_BYTES)
    raw = Path(path).read_bytes()
    try:
        check_opcodes(raw)
        return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except UnsafePickleError as exc:
        raise BadFileError(path, f"unsafe pickle refused: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError, RecursionError) as exc:
        raise BadFileError(path, f"not a readable pickle (corrupt or truncated?): {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from exc


def _plain_array(obj, name: str) -> np.ndarray:
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{name} is a {type(obj).__name__}; expected an array")
    if obj.dtype.kind not in "biuf" or obj.dtype.itemsize == 0:
        raise ValueError(f"{name} has dtype {obj.dtype}; expected numbers (bool, int or float)")
    return obj


def _index_array(state: dict, key: str, name: str, upper: int) -> np.ndarray:
    a = _plain_array(np.asarray(state[key]) if isinstance(state[key], (list, tuple)) else state[key], f"{name}.{key}")
    if a.dtype.kind not in "iu" or a.ndim != 1 or (a.size and (a.min() < 0 or a.max() > upper)):
        raise ValueError(f"{name}.{key} must be 1-D integer indices in 0..{upper}")
    return a


def to_array(obj, name: str, budget: int = 1 << 30) -> np.ndarray:
    """Turn an unpickled value (ndarray, chumpy stand-in, sparse stand-in, list) into a numeric ndarray.

    ValueError for anything else (a chumpy array's 'x' must itself be an array: no recursion through stand-ins)
    and for a sparse matrix whose dense form would exceed ``budget`` bytes."""
    if isinstance(obj, _ChumpyArray):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise ValueError(f"{name}: chumpy object without an 'x' array (derived chumpy expressions unsupported)")
        return _plain_array(state["x"], f"{name} (chumpy 'x')")
    if isinstance(obj, _SparseMatrix):
        state = obj.state if isinstance(obj.state, dict) else {}
        shape = state.get("_shape", state.get("shape"))
        if not isinstance(shape, tuple) or len(shape) != 2 or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise ValueError(f"{name}: sparse matrix without a 2-D shape (got a {type(shape).__name__})")
        if shape[0] * shape[1] * 8 > budget:
            raise ValueError(f"{name}: sparse matrix of shape {list(shape)} would need "
                             f"{shape[0] * shape[1] * 8 / 2**20:.0f} MiB dense, more than this file's budget of "
                             f"{budget / 2**20:.0f} MiB")
        try:
            if obj.format == "coo":
                row = _index_array(state, "row", name, shape[0] - 1)
                col = _index_array(state, "col", name, shape[1] - 1)
                data = _plain_array(state["data"], f"{name}.data")
                if not row.shape == col.shape == data.shape:
                    raise ValueError(f"{name}: coo row/col/data lengths differ")
                dense = np.zeros(shape, dtype=np.float64)
                np.add.at(dense, (row, col), data)
                return dense
            data = _plain_array(state["data"], f"{name}.data")
            indices = _index_array(state, "indices", name, (shape[0] if obj.format == "csc" else shape[1]) - 1)
            major = shape[1] if obj.format == "csc" else shape[0]
            indptr = _index_array(state, "indptr", name, data.size)
        except KeyError as e:
            raise ValueError(f"{name}: sparse matrix state lacks {e}") from e
        if len(indptr) != major + 1 or data.shape != indices.shape or np.any(np.diff(indptr) < 0):
            raise ValueError(f"{name}: sparse matrix indptr has {len(indptr)} entries, expected {major + 1} "
                             f"non-decreasing offsets into {data.size} values")
        dense = np.zeros(shape, dtype=np.float64)
        for j in range(major):
            sl = slice(int(indptr[j]), int(indptr[j + 1]))
            if obj.format == "csc":
                dense[indices[sl], j] += data[sl]
            else:
                dense[j, indices[sl]] += data[sl]
        return dense
    if isinstance(obj, (list, tuple)):
        if len(obj) > budget // 8:
            raise ValueError(f"{name}: a list of {len(obj)} items is larger than this file's budget")
        try:
            obj = np.asarray(obj)
        except (ValueError, TypeError, RecursionError) as e:
            raise ValueError(f"{name} is a list that is not a rectangular array of numbers") from e
    return _plain_array(obj, name)


def load_flame(path: str | Path, basis: str = "flame100") -> HeadData:
    """Read a FLAME 2020/2023 model file into ``HeadData`` (expression basis "flame100" or "flame50").

    Raises BadFileError (a ValueError) with the reason for a missing, corrupt, oversized or non-FLAME file.
    Memory: at most about 6 x the file's size (docs/file_limits.md).
    """
    layout = MotionLayout.for_basis(basis)
    if not basis.startswith("flame"):
        raise ValueError(f"a FLAME file needs a FLAME expression basis ('flame50' or 'flame100'), got {basis!r}")
    raw = safe_load_pickle(path)
    try:
        return _flame_from_dict(raw, path, layout, basis, budget=2 * Path(path).stat().st_size + (16 << 20))
    except BadFileError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise BadFileError(path, str(exc)) from exc


def _flame_from_dict(raw, path, layout: MotionLayout, basis: str, budget: int) -> HeadData:
    if not isinstance(raw, dict):
        raise ValueError(f"holds a {type(raw).__name__}; a FLAME model file holds a dict")
    need = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
    missing = [k for k in need if k not in raw]
    if missing:
        raise ValueError(f"not a FLAME model: missing keys {missing} (has {[str(k)[:40] for k in list(raw)[:12]]})")
    a = {k: to_array(raw[k], k, budget) for k in need}
    v = a["v_template"].astype(np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"v_template has shape {list(v.shape)}; expected [V, 3]")
    n_v = v.shape[0]
    if not 4 <= n_v <= MAX_HEAD_VERTICES:
        raise ValueError(f"v_template has {n_v} vertices; expected 4..{MAX_HEAD_VERTICES}")
    dirs = a["shapedirs"]
    if dirs.ndim != 3 or dirs.shape[:2] != (n_v, 3):
        raise ValueError(f"shapedirs has shape {list(dirs.shape)}; expected [{n_v}, 3, shape+expression]")
    if dirs.shape[2] < N_FLAME_SHAPE + layout.n_expression:
        raise ValueError(f"shapedirs has {dirs.shape[2]} directions; FLAME files hold {N_FLAME_SHAPE} shape + "
                         f"100 expression directions (need at least {N_FLAME_SHAPE + layout.n_expression})")
    shapedirs = dirs[:, :, :N_FLAME_SHAPE].astype(np.float64)
    exprdirs = dirs[:, :, N_FLAME_SHAPE:N_FLAME_SHAPE + layout.n_expression].astype(np.float64)
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
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and (faces.min() < 0 or faces.max() >= n_v)):
        raise ValueError(f"f has shape {list(faces.shape)}; expected [F, 3] vertex indices in 0..{n_v - 1}")
    data = HeadData(
        basis=basis, v_template=v, faces=faces, shapedirs=shapedirs, exprdirs=exprdirs,
        posedirs=posedirs.reshape(n_v * 3, 36).T.copy(),
        j_template=jreg @ v,
        j_shapedirs=np.einsum("kv,vic->kic", jreg, shapedirs),
        j_exprdirs=np.einsum("kv,vic->kic", jreg, exprdirs),
        weights=weights, parents=np.asarray(PARENTS, dtype=np.int64),
        meta={"source": "flame", "file": Path(path).name},
    )
    return data.validate()


def load_flame_masks(path: str | Path, n_vertices: int) -> dict[str, np.ndarray]:
    """Read FLAME's ``FLAME_masks.pkl`` (dict of vertex-index arrays) safely; BadFileError if it doesn't fit."""
    raw = safe_load_pickle(path)
    if not isinstance(raw, dict):
        raise BadFileError(path, f"holds a {type(raw).__name__}; a FLAME masks file holds a dict of vertex indices")
    masks = {}
    for key, value in raw.items():
        name = str(key)[:64]
        try:
            idx = to_array(value, name, budget=2 * Path(path).stat().st_size + (1 << 20)).astype(np.int64).ravel()
        except ValueError as exc:
            raise BadFileError(path, str(exc)) from exc
        if idx.size and (idx.min() < 0 or idx.max() >= n_vertices):
            raise BadFileError(path, f"mask {name!r} indexes vertices outside 0..{n_vertices - 1}")
        masks[name] = idx
    return masks
