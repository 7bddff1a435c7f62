"""The hand-vectorised C++ binning and compositing kernel of the live CPU rasteriser (``raster_kernel.cpp``): built
on first use with the system's g++ into a per-user cache, loaded with ctypes, called on numpy buffers.

    lib = load()            # a ctypes.CDLL, or None (the reason is logged once; cpu_tiles then uses numba)
    reason()                # why load() gave None ("" when it loaded)

Build: ``g++ -O3 -shared -fPIC`` plus ``-mavx2 -mfma`` when this CPU has both (asked of llvmlite, numba's
compiler), never ``-march=native``. The library goes to ``$RSATALKER_KERNEL_CACHE`` (default
``~/.cache/rsatalker_ros/kernels``) under a name keyed by a hash of the source, the compiler's version, the flags
and the instruction set, written to a temporary name and renamed into place, so processes building at once do not
collide and a cache shared between machines never hands one a library built for another CPU. Writing a new build
removes the cached builds of other keys (older sources) that no process has loaded for a day (``prune``): the
cache stays bounded, and a library another process may be loading at that moment is never removed.
``RSATALKER_RASTER=numba`` skips the C kernel (the numba kernels in ``cpu_tiles`` do the same work).
``scripts/bootstrap.sh`` builds it once (``python -m rsatalker_ros.render.raster_c``).
"""

import ctypes
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SOURCE = Path(__file__).with_name("raster_kernel.cpp")
BASE_FLAGS = ("-O3", "-shared", "-fPIC", "-std=gnu++17", "-ffp-contract=fast", "-fno-math-errno", "-fno-exceptions",
              "-fno-rtti", "-Wno-psabi")
STRIP = 8    # raster_kernel.cpp's strip width SW in pixels
RECORD = 16  # and its record length REC (floats per Gaussian); load() checks both against the library
MAX_HEIGHT = 32767  # rows are packed in 16 bits (rs_bin); taller images take the numba path
STALE_AFTER_S = 86400.0  # a new build removes the cached builds of other hashes unused for this long (prune)
_log = logging.getLogger(__name__)
_state = {}  # "lib": CDLL or None, "reason": str
_lock = threading.Lock()


def cache_dir() -> Path:
    env = os.environ.get("RSATALKER_KERNEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rsatalker_ros" / "kernels"


def isa_flags() -> tuple:
    """("-mavx2", "-mfma") when this CPU has AVX2 and FMA, else () (SSE2 baseline on x86-64, plain elsewhere)."""
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
        if features.get("avx2") and features.get("fma"):
            return ("-mavx2", "-mfma")
    except Exception:  # noqa: BLE001 - no feature query: the baseline build is correct everywhere
        pass
    return ()


def build(out_dir: Path | None = None) -> Path:
    """The shared library for this source, compiler and CPU: built unless already cached; raises with the
    compiler's message when it cannot be built."""
    cxx = os.environ.get("CXX", "g++")
    flags = BASE_FLAGS + isa_flags()
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30,
                                 check=True).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        raise RuntimeError(f"no C++ compiler {cxx!r} ({e}); install g++ (scripts/bootstrap.sh does)") from e
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, version.encode(), " ".join(flags).encode()])).hexdigest()[:20]
    out_dir = Path(out_dir or cache_dir())
    path = out_dir / f"raster_kernel_{key}.so"
    if path.exists():
        try:
            os.utime(path)  # its age is the time since it was last used (prune)
        except OSError:
            pass  # a read-only cache: still usable
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        res = subprocess.run([cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"{cxx} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
        os.replace(tmp, path)  # atomic: a parallel build of the same key writes the same bytes
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    prune(out_dir, keep=path)
    return path


def prune(out_dir: Path, keep: Path, max_age_s: float = STALE_AFTER_S) -> list:
    """Remove the kernel builds in out_dir (other source hashes, compilers or flags: ``raster_kernel_*.so``, and
    temporary files of builds that died) not used for max_age_s, except ``keep``; returns the removed paths. A build
    used within that time (build() touches it on each load) is left: another process may be about to load it."""
    removed = []
    cutoff = time.time() - max_age_s
    for old in [*out_dir.glob("raster_kernel_*.so"), *out_dir.glob("raster_kernel_*.tmp")]:
        try:
            if old != keep and old.stat().st_mtime < cutoff:
                old.unlink()
                removed.append(old)
        except OSError:  # gone already (another process pruned it) or not ours to remove: leave it
            continue
    return removed


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
    lib.rs_bin.argtypes = [p, p, p, i32, i32, p, p, i64]
    lib.rs_bin.restype = i64
    lib.rs_layout.argtypes = [p]
    lib.rs_layout.restype = None
    lib.rs_project.argtypes = [p, p, p, p, p, p, p, p, i32, i32, i64, p, p, p, p]
    lib.rs_records.argtypes = [p, p, i64, p, p]
    lib.rs_records.restype = None
    lib.rs_project.restype = None
    lib.rs_raster.argtypes = [p, p, p, i32, i32, i32, p, i32, p, p, p, p, p, i32]
    lib.rs_raster.restype = None
    lib.rs_isa.argtypes = []
    lib.rs_isa.restype = ctypes.c_char_p
    return lib


def load():
    """The loaded kernel library (ctypes.CDLL) or None; built on first use (once per process, under a lock)."""
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" not in _state:
            _load()
    return _state["lib"]


def _load() -> None:
    lib, why = None, ""
    if os.environ.get("RSATALKER_RASTER", "").lower() == "numba":
        why = "RSATALKER_RASTER=numba"
    else:
        try:
            loaded = _bind(ctypes.CDLL(str(build())))
            layout = (ctypes.c_int32 * 2)()
            loaded.rs_layout(layout)
            if tuple(layout) != (STRIP, RECORD):
                raise RuntimeError(f"the library's strip and record {tuple(layout)} are not {(STRIP, RECORD)}")
            lib = loaded
        except Exception as e:  # noqa: BLE001 - any failure leaves the numba kernels, with the reason said once
            why = f"{type(e).__name__}: {e}"
    if lib is None:
        _log.warning("CPU rasteriser: the C++ kernel is not used (%s); using the numba kernels (slower)", why)
    _state["reason"] = why
    _state["lib"] = lib


def reason() -> str:
    load()
    return _state["reason"]


def main() -> int:
    """Build (or find) the library and say where; exit code 1 with the reason when it cannot be built."""
    try:
        path = build()
    except Exception as e:  # noqa: BLE001 - said; the renderers would fall back to numba
        print(f"the C++ rasteriser kernel cannot be built ({e}); the renderers will use the numba kernels",
              file=sys.stderr)
        return 1
    lib = _bind(ctypes.CDLL(str(path)))
    print(f"C++ rasteriser kernel ({lib.rs_isa().decode()}): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
