"""Avatar files: safetensors round trip and clear errors for corrupt files."""

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rsatalker_ros.avatar.avatar_io import FORMAT, load_avatar, save_avatar
from rsatalker_ros.avatar.gaussians import GaussianAvatar
from rsatalker_ros.avatar.meshes import icosphere


@pytest.fixture()
def avatar():
    v, f = icosphere(1, 0.1)
    rng = np.random.default_rng(0)
    return GaussianAvatar.init_from_mesh(v, f, per_triangle=2, sh_degree=2, colors=rng.uniform(size=(len(f), 3)),
                                         head="unit_sphere")


def _rewrite(path, out, change):
    """Load the raw tensors + metadata of an avatar file, apply change(tensors, meta), write to out."""
    tensors = load_file(str(path))
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        meta = json.loads(fh.read(n))["__metadata__"]
    change(tensors, meta)
    save_file(tensors, str(out), metadata=meta)


def test_roundtrip(tmp_path, avatar):
    p = tmp_path / "a" / "avatar.safetensors"
    save_avatar(p, avatar)
    b = load_avatar(p, faces=avatar.faces.numpy(), head="unit_sphere")
    for k in ("means", "log_scales", "quats", "opacity_logits", "sh", "parent", "faces"):
        assert torch.equal(getattr(b, k), getattr(avatar, k)), k
    assert b.head == "unit_sphere" and b.sh_degree == 2
    assert open(p, "rb").read(1) != b"\x80"  # not a pickle


@pytest.mark.parametrize("change, message", [
    (lambda t, m: t.pop("quats"), "missing tensor"),
    (lambda t, m: t.__setitem__("means", t["means"][:, :2].contiguous()), "means has shape"),
    (lambda t, m: t.__setitem__("sh", t["sh"][:, :5].contiguous()), "coefficients"),
    (lambda t, m: t["log_scales"].__setitem__((3, 1), float("nan")), "log_scales contains NaN"),
    (lambda t, m: t["parent"].__setitem__(7, 10_000), "parent triangle index out of range"),
    (lambda t, m: t["parent"].__setitem__(0, -1), "parent triangle index out of range"),
    (lambda t, m: t.__setitem__("parent", t["parent"].float()), "parent must hold integers"),
    (lambda t, m: m.__setitem__("format", "something_else"), "metadata format"),
    (lambda t, m: m.__setitem__("version", "99"), "version"),
])
def test_corrupt_files_raise_clear_errors(tmp_path, avatar, change, message):
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_avatar(good, avatar)
    _rewrite(good, bad, change)
    with pytest.raises(ValueError, match=message):
        load_avatar(bad)


def test_topology_and_head_mismatch(tmp_path, avatar):
    p = tmp_path / "avatar.safetensors"
    save_avatar(p, avatar)
    v2, f2 = icosphere(2, 0.1)
    with pytest.raises(ValueError, match="topology mismatch"):
        load_avatar(p, faces=f2)
    f_swapped = avatar.faces.numpy().copy()
    f_swapped[5] = f_swapped[5][[1, 0, 2]]
    with pytest.raises(ValueError, match="triangle 5 differs"):
        load_avatar(p, faces=f_swapped)
    with pytest.raises(ValueError, match="built for head 'unit_sphere'"):
        load_avatar(p, head="default_older")


def test_not_an_avatar_file(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\x80\x04not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_avatar(p)
    with pytest.raises(ValueError, match="does not exist"):
        load_avatar(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(other))
    with pytest.raises(ValueError, match="metadata format"):
        load_avatar(other)
    assert FORMAT == "rsatalker_ros.gaussian_avatar"


def test_save_refuses_invalid_avatar(tmp_path, avatar):
    avatar.opacity_logits = avatar.opacity_logits[:-1]
    with pytest.raises(ValueError, match="opacity_logits has shape"):
        save_avatar(tmp_path / "x.safetensors", avatar)
