"""Skinning against hand-computed cases (no ROS, no anny)."""

import math

import numpy as np
import pytest
import torch

from rsatalker_ros.face.head_data import PARENTS, HeadData
from rsatalker_ros.face.head_model import HeadModel
from rsatalker_ros.face.lbs import axis_angle_to_matrix
from rsatalker_ros.face.regions import REQUIRED_REGIONS
from rsatalker_ros.files import BadFileError

JAW = np.array([0.0, -0.02, 0.01])
NECK = np.array([0.0, -0.05, -0.01])


def tiny_head(posedirs=None) -> HeadData:
    """6 vertices: 0-1 rigid with the jaw, 2-3 rigid with the neck, 4 half jaw/half neck, 5 on the global joint."""
    v = np.array([[0.0, -0.05, 0.08], [0.02, -0.04, 0.07], [0.0, 0.05, 0.08], [0.03, 0.02, 0.06],
                  [0.0, -0.03, 0.085], [0.0, -0.12, 0.0]])
    w = np.zeros((6, 5))
    w[[0, 1], 2] = 1.0
    w[[2, 3], 1] = 1.0
    w[4, 1] = w[4, 2] = 0.5
    w[5, 0] = 1.0
    e = 50
    exprdirs = np.zeros((6, 3, e))
    exprdirs[0, 1, 0] = -0.01   # expression 0 pulls vertex 0 down by 1 cm per unit
    joints = np.stack([[0, -0.1, 0], NECK, JAW, [0.03, 0.03, 0.06], [-0.03, 0.03, 0.06]])
    return HeadData(
        basis="flame50", v_template=v, faces=np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5], [0, 2, 5]]),
        shapedirs=np.zeros((6, 3, 0)), exprdirs=exprdirs,
        posedirs=np.zeros((0, 18)) if posedirs is None else posedirs,
        j_template=joints, j_shapedirs=np.zeros((5, 3, 0)), j_exprdirs=np.zeros((5, 3, e)),
        weights=w, parents=np.asarray(PARENTS),
        regions={r: np.array([0, 1]) for r in REQUIRED_REGIONS},
    )


def rot_x(a):
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def pose(head, jaw=(0, 0, 0), neck=(0, 0, 0), expression=None, translation=None):
    b = 1
    expr = torch.zeros(b, head.layout.n_expression) if expression is None else expression
    t = lambda x: torch.tensor([x], dtype=torch.float32)  # noqa: E731
    return head(expr, t(jaw), t(neck), torch.zeros(b, 6),
                translation=None if translation is None else t(translation))[0].double().numpy()


def test_axis_angle_matches_rotation_matrix():
    r = axis_angle_to_matrix(torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, math.pi / 2]]))
    assert np.allclose(r[0].numpy(), rot_x(0.3), atol=1e-6)
    assert np.allclose(r[1].numpy(), np.eye(3), atol=1e-7)
    assert np.allclose(r[2].numpy() @ [1, 0, 0], [0, 1, 0], atol=1e-6)


def test_jaw_rotation_moves_only_jaw_vertices_about_jaw_joint():
    head = HeadModel(tiny_head())
    rest = head.neutral().double().numpy()
    a = 0.25
    out = pose(head, jaw=(a, 0, 0))
    expected = JAW + (rest[[0, 1]] - JAW) @ rot_x(a).T
    assert np.allclose(out[[0, 1]], expected, atol=1e-6)
    # rigid rotation about the jaw joint: distances to the joint kept, angle = a
    d0, d1 = rest[0] - JAW, out[0] - JAW
    assert math.isclose(np.linalg.norm(d0), np.linalg.norm(d1), rel_tol=1e-5)
    assert math.isclose(math.acos(np.dot(d0, d1) / np.dot(d0, d0)), a, rel_tol=1e-4)
    assert np.allclose(out[[2, 3, 5]], rest[[2, 3, 5]], atol=1e-7)        # not jaw-weighted: unchanged
    assert np.allclose(out[4], 0.5 * rest[4] + 0.5 * (JAW + rot_x(a) @ (rest[4] - JAW)), atol=1e-6)
    assert out[0, 1] < rest[0, 1]                                           # positive x-rotation opens (chin down)


def test_neck_rotation_carries_the_jaw_and_translation_adds():
    head = HeadModel(tiny_head())
    rest = head.neutral().double().numpy()
    out = pose(head, jaw=(0.2, 0, 0), neck=(0.1, 0, 0), translation=(0.0, 0.0, 1.0))
    jaw_posed = NECK + rot_x(0.1) @ (JAW - NECK)
    expected0 = jaw_posed + rot_x(0.3) @ (rest[0] - JAW) + [0, 0, 1.0]
    assert np.allclose(out[0], expected0, atol=1e-6)
    assert np.allclose(out[2], NECK + rot_x(0.1) @ (rest[2] - NECK) + [0, 0, 1.0], atol=1e-6)
    assert np.allclose(out[5], rest[5] + [0, 0, 1.0], atol=1e-6)


def test_expression_blendshape_and_pose_correctives():
    posedirs = np.zeros((36, 18))
    posedirs[9, 3 * 2 + 2] = 0.1    # the jaw's (R - I)[0, 0] entry pushes vertex 2 along z
    head = HeadModel(tiny_head(posedirs))
    rest = head.neutral().double().numpy()
    expr = torch.zeros(1, 50)
    expr[0, 0] = 2.0
    assert np.allclose(pose(head, expression=expr)[0], rest[0] + [0, -0.02, 0], atol=1e-6)
    out = pose(head, jaw=(0, 0.3, 0))           # yaw of the jaw: (R - I)[0, 0] = cos(0.3) - 1
    assert np.isclose(out[2, 2] - rest[2, 2], 0.1 * (math.cos(0.3) - 1), atol=1e-6)


def test_batched_matches_single_and_from_motion():
    head = HeadModel(tiny_head())
    motion = torch.zeros(3, head.layout.dim)
    motion[:, head.layout.jaw.start] = torch.tensor([0.0, 0.1, 0.3])
    motion[:, head.layout.neck.start + 1] = torch.tensor([0.2, 0.0, -0.1])
    batched = head.from_motion(motion)
    assert batched.shape == (3, 6, 3)
    for i in range(3):
        single = head.from_motion(motion[i:i + 1])
        assert torch.allclose(batched[i], single[0], atol=1e-6)
    with pytest.raises(ValueError, match="motion must be"):
        head.from_motion(torch.zeros(1, 64))
    with pytest.raises(ValueError, match="jaw"):
        head(torch.zeros(1, 50), torch.zeros(1, 2), torch.zeros(1, 3), torch.zeros(1, 6))


def test_head_data_validation_and_roundtrip(tmp_path):
    data = tiny_head()
    path = tmp_path / "tiny.npz"
    data.save(path)
    again = HeadData.load(path)
    assert np.allclose(again.v_template, data.v_template) and again.basis == "flame50"
    bad = tiny_head()
    bad.weights = bad.weights * 2
    with pytest.raises(ValueError, match="weights"):
        bad.validate()
    path.write_bytes(b"not a zip file")
    with pytest.raises(BadFileError, match=r"tiny\.npz: corrupt or not a readable \.npz file"):
        HeadData.load(path)
