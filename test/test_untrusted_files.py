"""Crafted files against every loader: each raises BadFileError naming the file, and memory stays proportional.

Each case reproduces a failure found by the fault campaign of issue #11 (RecursionError, MemoryError,
ZeroDivisionError, struct.error, TypeError/RuntimeError, an uncaught YAML ConstructorError, or gigabytes
allocated from a few bytes). Peak memory is measured with tracemalloc (numpy and Python allocations) or, for
torch, as the peak RSS of a child process.
"""

import contextlib
import json
import os
import pickle
import struct
import sys
import tracemalloc
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rsatalker_ros.files import BadFileError

MB = 1 << 20


def peak_bytes(fn) -> tuple[int, BaseException | None]:
    """(peak traced bytes while running fn, the exception it raised or None)."""
    tracemalloc.start()
    err = None
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the test inspects what came out
        err = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, err


def assert_bad_file(err, path, *words):
    assert isinstance(err, BadFileError), f"expected BadFileError, got {type(err).__name__}: {err}"
    assert str(path) in str(err)
    for w in words:
        assert w in str(err), str(err)


# --- FLAME pickles --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def foreign_class(module: str, name: str):
    """A class that pickles as module.name (chumpy, scipy.sparse), so crafted files need neither package."""
    cls = type(name, (), {"__module__": module, "__qualname__": name})
    parts = module.split(".")
    added = [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m not in sys.modules]
    for m in added:
        sys.modules[m] = types.ModuleType(m)
    saved = getattr(sys.modules[module], name, None)
    setattr(sys.modules[module], name, cls)
    try:
        yield cls
    finally:
        if saved is not None:
            setattr(sys.modules[module], name, saved)
        for m in added:
            del sys.modules[m]


def _load_flame(path):
    from rsatalker_ros.face.flame_loader import load_flame
    return load_flame(path)


def test_flame_self_referential_chumpy_is_refused(tmp_path):
    """Was RecursionError: a chumpy object whose 'x' is itself."""
    with foreign_class("chumpy.ch", "Ch") as Ch:
        ch = Ch()
        ch.x = ch
        data = pickle.dumps({k: ch for k in ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
                                             "kintree_table")}, protocol=2)
    path = tmp_path / "selfref.pkl"
    path.write_bytes(data)
    assert len(data) < 400
    _, err = peak_bytes(lambda: _load_flame(path))
    assert_bad_file(err, path, "chumpy")


def test_flame_sparse_declaring_a_huge_shape_is_refused(tmp_path):
    """Was MemoryError: a sparse stand-in declaring a (1e8, 3, 400) matrix is densified."""
    small = np.zeros((4, 3))
    with foreign_class("scipy.sparse._csc", "csc_matrix") as Csc:
        jreg = Csc()
        jreg.__dict__.update(_shape=(100_000_000, 3, 400), data=np.zeros(1), indices=np.zeros(1, np.int32),
                             indptr=np.zeros(2, np.int32))
        data = pickle.dumps({"v_template": small, "f": np.zeros((1, 3), np.int64), "shapedirs": small,
                             "posedirs": small, "weights": small, "kintree_table": small, "J_regressor": jreg},
                            protocol=2)
    path = tmp_path / "sparse.pkl"
    path.write_bytes(data)
    peak, err = peak_bytes(lambda: _load_flame(path))
    assert_bad_file(err, path, "J_regressor")
    assert peak < 4 * MB


@pytest.mark.parametrize("name, data", [
    # was 1.25 GB from 46 bytes (builtins.bytearray was allowed); 256 MB here
    ("bytearray", b"\x80\x02cbuiltins\nbytearray\nJ\x00\x00\x00\x10\x85R."),
    # memo index 2^24 - 1: the C unpickler sizes its memo by it (268 MB from 9 bytes; 2^31 asks for 34 GB)
    ("memo", b"\x80\x02]r\xff\xff\xff\x00."),
    # an ndarray rebuilt from a declared shape of 1e8 bytes
    ("reconstruct", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xe1\xf5\x05\x85c_codecs"
                    b"\nencode\nX\x01\x00\x00\x00bX\x06\x00\x00\x00latin1\x86R\x87R."),
    # a dtype whose single element is 1 GB
    ("dtype", b"\x80\x02cnumpy\ndtype\nX\x0b\x00\x00\x00V1000000000\x85R."),
])
def test_small_pickles_cannot_allocate_large_memory(tmp_path, name, data):
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(data)
    peak, err = peak_bytes(lambda: _load_flame(path))
    assert_bad_file(err, path)
    assert peak < 4 * MB, f"{len(data)}-byte pickle allocated {peak / MB:.0f} MB"


# --- motion checkpoints ---------------------------------------------------------------------------------------
def _checkpoint(path, config, tensors=None, info="{}"):
    meta = {"format": "rsatalker_ros.motion", "format_version": "1", "config": config, "info": info}
    save_file(tensors or {"x": torch.zeros(1)}, str(path), metadata=meta)
    return path


def _config(**kw) -> str:
    from rsatalker_ros.motion.config import MotionModelConfig
    return json.dumps({**MotionModelConfig().to_dict(), **kw})


@pytest.mark.parametrize("config, words", [
    ("[" * 200_000 + "]" * 200_000, ("nested",)),          # was RecursionError
    (_config(d_model=2 ** 20), ("d_model",)),                # was RuntimeError (or gigabytes)
    (_config(d_model=-128), ("d_model",)),                   # was RuntimeError
    (_config(d_model=130.0), ("d_model",)),                  # was TypeError
    (_config(window=True), ("window",)),
    ("{\"d_model\": 64", ("JSON",)),
    ("[1, 2]", ("object",)),
])
def test_checkpoint_configs_out_of_bounds_are_refused(tmp_path, config, words):
    from rsatalker_ros.motion.checkpoint import load_model
    path = _checkpoint(tmp_path / "bad.safetensors", config)
    _, err = peak_bytes(lambda: load_model(path))
    assert_bad_file(err, path, *words)


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def test_tiny_checkpoint_with_a_large_config_allocates_nothing(tmp_path):
    """Was 3.6 GB RSS from a 492-byte file (d_model 4096: the model was built before its weights were checked)."""
    from rsatalker_ros.motion.checkpoint import load_model
    path = _checkpoint(tmp_path / "big.safetensors", _config(d_model=1024, n_heads=8))
    assert path.stat().st_size < 1000
    if not os.access("/proc/self/clear_refs", os.W_OK):    # writing 5 resets this process's peak RSS (VmHWM)
        pytest.skip("cannot reset this process's peak RSS (/proc/self/clear_refs)")
    with pytest.raises(BadFileError):
        load_model(path)         # the first call imports and sets up what the meta device needs
    Path("/proc/self/clear_refs").write_text("5")
    before = _peak_rss_mb()
    with pytest.raises(BadFileError) as err:
        load_model(path)
    grown = _peak_rss_mb() - before
    err = err.value
    assert_bad_file(err, path, "weights do not match")
    assert grown < 64, f"peak RSS grew by {grown:.0f} MB loading a {path.stat().st_size}-byte file"


def test_training_state_with_deep_json_is_refused(tmp_path):
    from rsatalker_ros.train.state import load_train_state
    path = tmp_path / "train_state.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": "rsatalker_ros.train_state",
                                                          "config": _config(), "optim_groups": "[]",
                                                          "extra": "{\"a\":" * 100_000 + "1" + "}" * 100_000})
    from rsatalker_ros.motion.config import MotionModelConfig
    from rsatalker_ros.motion.model import SocialMotionModel
    model = SocialMotionModel(MotionModelConfig(d_model=32, n_heads=2, window=8, n_query_tokens=2))
    # built before memory is traced: a process's first optimizer imports torch._dynamo, ~3 s of CPU that
    # tracemalloc's tracing made ~10 s
    optimizer = torch.optim.Adam(model.parameters())
    _, err = peak_bytes(lambda: load_train_state(path, model, optimizer))
    assert_bad_file(err, path)


# --- avatars --------------------------------------------------------------------------------------------------
def test_avatar_indexing_a_huge_vertex_is_refused(tmp_path):
    """Was: loads, and the renderer then held 2 GB and rejected every real mesh."""
    from rsatalker_ros.avatar.avatar_io import load_avatar, resolve_avatar
    from safetensors import safe_open
    src = resolve_avatar("default_older")
    with safe_open(str(src), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors["faces"][7, 1] = 50_000_000
    path = tmp_path / "avatar.safetensors"
    save_file(tensors, str(path), metadata=meta)
    _, err = peak_bytes(lambda: load_avatar(path))
    assert_bad_file(err, path, "faces index vertex 50000000")
    assert len(load_avatar(src)) > 0


# --- head .npz ------------------------------------------------------------------------------------------------
def _npy_header(shape, dtype="<f8") -> bytes:
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_head_npz_declaring_a_huge_array_is_refused(tmp_path):
    """Was MemoryError: np.load allocates the declared shape before reading."""
    from rsatalker_ros.face.head_data import HeadData
    path = tmp_path / "head.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("v_template.npy", _npy_header((10 ** 12, 3)) + b"\0" * 64)
    peak, err = peak_bytes(lambda: HeadData.load(path))
    assert_bad_file(err, path, "v_template")
    assert peak < 4 * MB


def test_head_npz_zip_bomb_is_refused(tmp_path):
    """64 MB of zeros in a 64 kB file: refused from the zip directory, before unpacking."""
    from rsatalker_ros.face.head_data import HeadData
    path = tmp_path / "head.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("v_template.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((64 * MB // 8,)))
            for _ in range(64):
                f.write(bytes(MB))
    peak, err = peak_bytes(lambda: HeadData.load(path))
    assert_bad_file(err, path, "MiB")
    assert peak < 4 * MB


def test_head_npz_with_deep_meta_json_is_refused(tmp_path):
    from rsatalker_ros.face.head_data import HeadData
    import rsatalker_ros
    arrays = dict(np.load(Path(rsatalker_ros.__file__).parent / "assets" / "heads" / "default_older.npz"))
    arrays["meta"] = np.array("[" * 100_000 + "]" * 100_000)
    path = tmp_path / "head.npz"
    np.savez(path, **arrays)
    _, err = peak_bytes(lambda: HeadData.load(path))
    assert_bad_file(err, path, "nested")


# --- wav ------------------------------------------------------------------------------------------------------
def _wav(rate=16000, channels=1, bits=16, block_align=None, n_bytes=32, tag=1, extra=b"") -> bytes:
    block_align = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * max(block_align, 1) & 0xFFFFFFFF, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", n_bytes) + \
        b"\0" * n_bytes + extra
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("name, data, words", [
    ("rate", _wav(rate=2 ** 31 - 1), ("sample rate",)),              # was MemoryError (when resampled)
    ("align0", _wav(block_align=0), ("block_align",)),                # was ZeroDivisionError
    ("channels", _wav(channels=65535, block_align=0), ("channels",)),  # was ZeroDivisionError
    ("short", _wav()[:20], ("bytes",)),                               # was struct.error
    ("truncated", _wav(n_bytes=32)[:-16], ("data",)),
    ("bits", _wav(bits=12), ("bits",)),
])
def test_bad_wav_headers_are_refused(tmp_path, name, data, words):
    from rsatalker_ros.audio.wav_io import read_wav
    path = tmp_path / f"{name}.wav"
    path.write_bytes(data)
    _, err = peak_bytes(lambda: read_wav(path))
    assert_bad_file(err, path, *words)


def test_good_wav_still_reads(tmp_path):
    from rsatalker_ros.audio.wav_io import read_wav
    path = tmp_path / "ok.wav"
    path.write_bytes(_wav(n_bytes=64))
    x, rate = read_wav(path)
    assert x.shape == (32, 1) and rate == 16000


# --- YAML configs and the graph description -------------------------------------------------------------------
PYTHON_TAG = "!!python/object/apply:os.system ['touch {marker}']"


def test_bringup_set_refuses_python_tags(tmp_path):
    """Was an uncaught ConstructorError from `rsatalker-bringup --set`."""
    from rsatalker_ros.cli.bringup import parse_overrides
    marker = tmp_path / "ran"
    with pytest.raises(BadFileError, match="--set renderer.width"):
        parse_overrides([f"renderer.width={PYTHON_TAG.format(marker=marker)}"])
    assert not marker.exists()
    assert parse_overrides(["renderer.width=256"]) == {"renderer": {"width": 256}}


def test_train_motion_set_refuses_python_tags(tmp_path):
    from rsatalker_ros.train.config import parse_overrides
    with pytest.raises(BadFileError, match="--set steps"):
        parse_overrides([f"steps={PYTHON_TAG.format(marker=tmp_path / 'ran')}"])


def test_config_files_refuse_python_tags_aliases_and_repeated_keys(tmp_path):
    from rsatalker_ros.cli.train_avatar import load_config
    from rsatalker_ros.train.config import TrainConfig
    marker = tmp_path / "ran"
    cases = {"tag.yaml": f"stage3: {PYTHON_TAG.format(marker=marker)}\n",
             "alias.yaml": "a: &x [1, 2]\nb: [*x, *x]\n",
             "repeat.yaml": "stage3:\n  iterations: 5\n  iterations: 6\n",
             "deep.yaml": "stage3: " + "[" * 5000 + "]" * 5000 + "\n"}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        for load in (load_config, TrainConfig.from_yaml):
            with pytest.raises(BadFileError) as err:
                load(path)
            assert name in str(err.value)
    assert not marker.exists()
    (tmp_path / "types.yaml").write_text("data:\n  size: big\n")
    with pytest.raises(BadFileError, match="data.size"):
        load_config(tmp_path / "types.yaml")


def test_graph_description_is_checked(tmp_path):
    """`rsatalker-bringup --config-dir`: graph.yaml and the parameter files are untrusted too."""
    import shutil

    from rsatalker_ros.ros import graph
    cfg = tmp_path / "config"
    shutil.copytree(graph.default_config_dir(), cfg)
    assert len(graph.describe(config_dir=cfg)) > 0
    text = (cfg / "graph.yaml").read_text()
    for bad, words in ((text.replace("yaw_deg: -90.0", "yaw_deg: left"), "yaw_deg"),
                       ("participants: 3\n", "participants"),
                       (text + f"\nextra: {PYTHON_TAG.format(marker=tmp_path / 'ran')}\n", "python")):
        (cfg / "graph.yaml").write_text(bad)
        with pytest.raises(BadFileError, match=words):
            graph.describe(config_dir=cfg)
    (cfg / "graph.yaml").write_text(text)
    (cfg / "motion.yaml").write_text("motion: [1, 2]\n")
    with pytest.raises(BadFileError, match="ros__parameters"):
        graph.describe(config_dir=cfg)
