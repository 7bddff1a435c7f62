"""Metric functions on hand-made cases; region vertices equal the head model's; the relationship probe."""

import numpy as np
import pytest
import torch

from rsatalker_ros.eval.metrics import RegionVertices, fdd, frechet_distance, lve, mse, parameter_metrics
from rsatalker_ros.eval.probe import RelationProbe, confusion, listener_features
from rsatalker_ros.motion.layout import ARKIT_LAYOUT


def test_frechet_distance_hand_cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 5))
    assert abs(frechet_distance(x, x)) < 1e-6
    shift = np.array([1.0, 2.0, 0.0, 0.0, -2.0])
    assert frechet_distance(x + shift, x) == pytest.approx(9.0, rel=1e-6)   # only the means differ
    # 1-D Gaussians: (mu1 - mu2)^2 + (s1 - s2)^2
    a = rng.standard_normal((20000, 1))
    assert frechet_distance(3 * a + 1, a) == pytest.approx(1 + 4, rel=0.05)
    # a constant prediction has zero covariance: FD = |mu|^2 + Tr(S_g)
    g = rng.standard_normal((400, 3))
    fd = frechet_distance(np.zeros((400, 3)), g)
    assert fd == pytest.approx((g.mean(0) ** 2).sum() + np.trace(np.cov(g, rowvar=False)), rel=1e-4)
    with pytest.raises(ValueError, match="FD"):
        frechet_distance(np.zeros((1, 3)), g)


def test_lve_fdd_mse_hand_cases():
    T, L = 4, 6
    gt = np.zeros((T, L, 3))
    pred = gt.copy()
    pred[0, 2] = [3.0, 4.0, 0.0]        # 5 mm error at one vertex of frame 0
    pred[1, :, 0] = 1.0                 # 1 mm everywhere in frame 1
    assert lve(pred, gt) == pytest.approx((5 + 1 + 0 + 0) / 4)
    assert lve(gt, gt) == 0.0
    with pytest.raises(ValueError, match="LVE"):
        lve(pred[:, :3], gt)
    neutral = np.zeros((L, 3))
    moving = np.zeros((T, L, 3))
    moving[::2, :, 1] = 2.0             # upper face alternates 0 / 2 mm: squared displacement 0 / 4, std 2
    assert fdd(moving, moving, neutral) == 0.0
    assert fdd(np.zeros_like(moving), moving, neutral) == pytest.approx(2.0)
    assert fdd(moving * 0.5, moving, neutral) == pytest.approx(2.0 - 0.5)
    assert mse(np.ones((3, 2)), np.zeros((3, 2))) == 1.0
    assert mse(np.array([[2.0, 0.0]]), np.zeros((1, 2))) == 2.0


def test_parameter_metrics_groups():
    rng = np.random.default_rng(1)
    gt = rng.standard_normal((200, 64)).astype(np.float32)
    pred = gt.copy()
    pred[:, ARKIT_LAYOUT.jaw] += 0.5
    m = parameter_metrics(pred, gt, ARKIT_LAYOUT)
    assert set(m) == {"FD-exp", "FD-jaw", "FD-pose", "MSE-exp", "MSE-jaw", "MSE-pose"}
    assert m["MSE-exp"] == 0.0 and m["MSE-pose"] == 0.0 and m["MSE-jaw"] == pytest.approx(0.25)
    assert m["FD-jaw"] == pytest.approx(3 * 0.25, rel=1e-4) and abs(m["FD-exp"]) < 1e-6
    with pytest.raises(ValueError):
        parameter_metrics(pred[:, :60], gt[:, :60], ARKIT_LAYOUT)


def test_region_vertices_match_head_model():
    from rsatalker_ros.face.head_model import load_head
    head = load_head("default_older")
    rv = RegionVertices(head, scale=1000.0)
    rng = np.random.default_rng(2)
    motion = np.zeros((5, 64), np.float32)
    motion[:, :52] = rng.random((5, 52)) * 0.8
    motion[:, 52:] = rng.standard_normal((5, 12)) * 0.1
    out = rv(motion)
    with torch.no_grad():
        full = head.from_motion(torch.from_numpy(motion)).numpy() * 1000.0
    for r in ("lips", "upper_face"):
        np.testing.assert_allclose(out[r], full[:, head.regions[r].numpy()], atol=1e-3)
    # opening the jaw moves the lips by millimetres
    open_jaw = np.zeros((2, 64), np.float32)
    open_jaw[1, ARKIT_LAYOUT.jaw.start] = 0.3
    lips = rv(open_jaw)["lips"]
    assert lve(lips[1:], lips[:1]) > 3.0


def test_probe_learns_separable_listener_features():
    rng = np.random.default_rng(3)
    X, y = [], []
    for c in range(4):
        for _ in range(20):
            m = rng.standard_normal((200, 8)).astype(np.float32) * 0.1
            m[:, c] += 1.0                      # each class shifts a different dimension while listening
            speaking = np.zeros(200, bool)
            speaking[:50] = True
            m[:50] = 5.0                        # speaking frames are ignored
            X.append(listener_features(m, speaking))
            y.append(c)
    X, y = np.stack(X), np.array(y)
    probe = RelationProbe.fit(X[::2], y[::2])
    assert probe.accuracy(X[1::2], y[1::2]) == 1.0
    assert confusion(probe.predict(X[1::2]), y[1::2]).trace() == 40
    shuffled = RelationProbe.fit(X[::2], rng.permutation(y[::2]))
    assert shuffled.accuracy(X[1::2], y[1::2]) < 0.8
    with pytest.raises(ValueError, match="classes"):
        RelationProbe.fit(X, y + 4)
    with pytest.raises(ValueError, match="speaking"):
        listener_features(np.zeros((10, 3)), np.zeros(9, bool))
