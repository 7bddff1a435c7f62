"""The live skinning path (numpy + three torch products) poses every head exactly like HeadModel.from_motion."""

import numpy as np
import pytest
import torch
from test_face_flame_loader import _write_flame_like

from rsatalker_ros.face import load_head
from rsatalker_ros.face.live_skin import LiveSkinner


def _motions(dim: int, n_expression: int) -> np.ndarray:
    """Frames a stream can hold: neutral, tiny angles (the Taylor branch), typical and extreme ones, clamped
    blendshape weights at 0 and 1."""
    rng = np.random.default_rng(3)
    m = np.zeros((6, dim), np.float32)
    m[1, n_expression:] = 1e-6                                       # below the small-angle threshold
    m[2] = rng.normal(0.0, 0.2, dim)
    m[3, :n_expression] = rng.random(n_expression)
    m[3, n_expression:] = rng.normal(0.0, 1.5, 12)                  # large rotations of neck, jaw and eyes
    m[4, :n_expression] = 1.0
    m[5, n_expression:n_expression + 3] = [0.4, 0.0, 0.0]          # mouth open only
    return m


@pytest.mark.parametrize("name", ["default_older", "default_younger"])
def test_live_skin_equals_head_model_on_the_default_heads(name):
    head = load_head(name)
    skin = LiveSkinner(head)
    m = _motions(head.layout.dim, head.layout.n_expression)
    with torch.inference_mode():
        ref = head.from_motion(torch.from_numpy(m)).numpy()
    out = skin(m)
    assert out.dtype == np.float32 and out.shape == ref.shape == (6, head.n_vertices, 3)
    assert np.abs(out - ref).max() < 1e-6                           # metres: a micrometre
    assert np.abs(skin(m[3:4])[0] - ref[3]).max() < 1e-6            # one frame at a time, as live


def test_live_skin_applies_pose_correctives_of_a_flame_file(tmp_path):
    path = tmp_path / "generic_model.pkl"
    _write_flame_like(path, np.random.default_rng(1))
    head = load_head(str(path))
    assert head.posedirs.shape[0] == 36 and head.n_shape > 0
    m = _motions(head.layout.dim, head.layout.n_expression)
    with torch.inference_mode():
        ref = head.from_motion(torch.from_numpy(m)).numpy()
    assert np.abs(LiveSkinner(head)(m) - ref).max() < 1e-6


def test_live_skin_refuses_a_motion_of_the_wrong_layout():
    skin = LiveSkinner(load_head("default_older"))
    with pytest.raises(ValueError, match=r"motion must be \[B, 64\] \(arkit52 layout\), got \[1, 62\]"):
        skin(np.zeros((1, 62), np.float32))
