"""Binding of Gaussians to triangles (GaussianAvatars frame), torch and numba paths."""

import math

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.binding import matrix_to_quat, quat_multiply, quat_to_matrix, triangle_frames
from rsatalker_ros.avatar.gaussians import FastBinder, GaussianAvatar, TorchBinder, bind
from rsatalker_ros.avatar.meshes import icosphere


def _random_rotation(rng):
    q = torch.as_tensor(rng.normal(size=4), dtype=torch.float64)
    return quat_to_matrix(q / q.norm())


def test_frame_of_hand_computed_triangle():
    v = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2]])
    R, k, T = triangle_frames(v, f)
    # a0 along v1 - v0, a1 the normal (+z for this winding), a2 = -(a1 x a0) = -y
    expect_R = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(R[0], expect_R)
    assert float(k[0]) == pytest.approx(1.5)  # (|v1-v0| + |a2.(v2-v0)|) / 2 = (2 + 1) / 2
    assert torch.allclose(T[0], torch.tensor([2 / 3, 1 / 3, 0.0], dtype=torch.float64))
    assert float(torch.det(R[0])) == pytest.approx(1.0)


def test_bind_hand_computed_positions_scales_rotations():
    v = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    f = torch.tensor([[0, 1, 2]])
    quats = torch.tensor([[1.0, 0, 0, 0], [math.cos(0.3), math.sin(0.3), 0, 0], [1.0, 0, 0, 0]])
    av = GaussianAvatar(means=torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]),
                        log_scales=torch.log(torch.tensor([[0.1, 0.2, 0.3]] * 3)), quats=quats,
                        opacity_logits=torch.zeros(3), sh=torch.zeros(3, 1, 3), parent=torch.zeros(3, dtype=torch.long),
                        faces=f)
    g = bind(av, v)
    T = torch.tensor([2 / 3, 1 / 3, 0.0])
    assert torch.allclose(g.means[0], T + torch.tensor([1.5, 0, 0]), atol=1e-6)     # along a0
    assert torch.allclose(g.means[1], T + torch.tensor([0, 0, 1.5]), atol=1e-6)     # along the normal
    assert torch.allclose(g.means[2], T + torch.tensor([0, -1.5, 0]), atol=1e-6)    # along a2
    assert torch.allclose(g.scales, torch.tensor([[0.15, 0.3, 0.45]] * 3), atol=1e-6)
    R_face = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    assert torch.allclose(quat_to_matrix(g.quats[0]), R_face, atol=1e-6)
    assert torch.allclose(quat_to_matrix(g.quats[1]), R_face @ quat_to_matrix(quats[1]), atol=1e-6)
    assert torch.allclose(g.opacities, torch.full((3,), 0.5))


def test_rotated_scaled_triangle_carries_gaussians_rigidly():
    rng = np.random.default_rng(1)
    v, f = icosphere(1, 0.2)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=3, seed=3)
    av.quats = torch.as_tensor(rng.normal(size=(len(av), 4)), dtype=torch.float32)
    av.means = av.means + torch.as_tensor(rng.normal(scale=0.2, size=(len(av), 3)), dtype=torch.float32)
    v64 = torch.as_tensor(v, dtype=torch.float64)
    av64 = GaussianAvatar(**{k: (getattr(av, k).double() if getattr(av, k).is_floating_point() else getattr(av, k))
                             for k in ("means", "log_scales", "quats", "opacity_logits", "sh", "parent", "faces")})
    Q = _random_rotation(rng)
    c, t = 1.7, torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    g0 = bind(av64, v64)
    g1 = bind(av64, c * v64 @ Q.T + t)
    assert torch.allclose(g1.means, c * g0.means @ Q.T + t, atol=1e-9)
    assert torch.allclose(g1.scales, c * g0.scales, atol=1e-9)
    assert torch.allclose(quat_to_matrix(g1.quats), Q @ quat_to_matrix(g0.quats), atol=1e-9)


def test_quaternion_helpers_roundtrip():
    rng = np.random.default_rng(2)
    q = torch.as_tensor(rng.normal(size=(200, 4)))
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    assert torch.allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-9)
    a, b = q[:100], q[100:]
    assert torch.allclose(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-9)


def test_numba_binder_matches_torch_and_batches():
    v, f = icosphere(2, 0.1)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=2, sh_degree=1)
    rng = np.random.default_rng(0)
    av.quats = torch.as_tensor(rng.normal(size=(len(av), 4)), dtype=torch.float32)
    posed = v * np.array([1.0, 1.2, 0.9], np.float32) + rng.normal(scale=0.002, size=v.shape).astype(np.float32)
    g = bind(av, torch.as_tensor(posed))
    h = FastBinder(av)(posed)
    assert np.allclose(h.means.numpy(), g.means.numpy(), atol=1e-6)
    assert np.allclose(h.scales.numpy(), g.scales.numpy(), rtol=1e-5)
    assert np.allclose(quat_to_matrix(h.quats).numpy(), quat_to_matrix(g.quats).numpy(), atol=1e-5)
    gb = bind(av, torch.stack([torch.as_tensor(v), torch.as_tensor(posed)]))
    assert gb.means.shape == (2, len(av), 3) and gb.sh.shape == (2, len(av), 4, 3)
    assert torch.allclose(gb[1].means, g.means, atol=1e-6)


def test_init_from_mesh_covers_every_triangle_on_its_plane():
    v, f = icosphere(2, 0.1)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=4, colors=np.tile([[1.0, 0.0, 0.0]], (len(f), 1)))
    av.validate(num_vertices=len(v))
    assert len(av) == 4 * len(f)
    assert torch.equal(torch.bincount(av.parent, minlength=len(f)), torch.full((len(f),), 4))
    assert torch.allclose(av.means[:, 1], torch.zeros(len(av)), atol=1e-5)  # in the triangle plane (normal = 0)
    g = bind(av, v)
    tri = torch.as_tensor(v)[torch.as_tensor(f)][av.parent]  # [N, 3, 3]
    # inside the triangle: barycentric coordinates all >= 0
    e1, e2, p = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], g.means - tri[:, 0]
    d00, d01, d11 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    d20, d21 = (p * e1).sum(-1), (p * e2).sum(-1)
    den = d00 * d11 - d01 * d01
    b1, b2 = (d11 * d20 - d01 * d21) / den, (d00 * d21 - d01 * d20) / den
    assert (b1 >= -1e-4).all() and (b2 >= -1e-4).all() and (b1 + b2 <= 1 + 1e-4).all()
    rgb = 0.28209479 * av.sh[:, 0] + 0.5
    assert torch.allclose(rgb, torch.tensor([1.0, 0.0, 0.0]).expand_as(rgb), atol=1e-5)


def test_bind_is_differentiable_and_rejects_bad_vertices():
    v, f = icosphere(1, 0.1)
    av = GaussianAvatar.init_from_mesh(v, f)
    av.means.requires_grad_(True)
    vt = torch.as_tensor(v).requires_grad_(True)
    g = bind(av, vt)
    (g.means.sum() + g.scales.sum() + g.quats[:, 1].sum()).backward()
    assert av.means.grad is not None and torch.isfinite(av.means.grad).all()
    assert vt.grad is not None and vt.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="vertices"):
        bind(av, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="expected"):
        bind(av, torch.zeros(len(v), 2))
    with pytest.raises(ValueError, match="per_triangle"):
        GaussianAvatar.init_from_mesh(v, f, per_triangle=0)


def test_thin_to_keeps_every_triangle_covered():
    from rsatalker_ros.avatar.gaussians import thin_to
    v, f = icosphere(1, 0.1)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=4)
    small = thin_to(av, 100, seed=1)
    assert len(small) == 100
    assert torch.equal(torch.unique(small.parent), torch.arange(len(f)))
    small.validate(num_vertices=len(v))
    with pytest.raises(ValueError, match="below"):
        thin_to(av, len(f) - 1)


def test_fused_torch_binder_matches_bind_single_and_batched():
    v, f = icosphere(2, 0.1)
    av = GaussianAvatar.init_from_mesh(v, f, per_triangle=3, sh_degree=1, seed=1)
    rng = np.random.default_rng(5)
    av.quats = torch.as_tensor(rng.normal(size=(len(av), 4)), dtype=torch.float32)
    av.means = av.means + torch.as_tensor(rng.normal(scale=0.3, size=(len(av), 3)), dtype=torch.float32)
    av.log_scales = av.log_scales + torch.as_tensor(rng.normal(scale=0.2, size=(len(av), 3)), dtype=torch.float32)
    posed = v * np.array([1.0, 1.2, 0.9], np.float32) + rng.normal(scale=0.004, size=v.shape).astype(np.float32)
    binder = TorchBinder(av, device="cpu")
    assert not binder.compiled and len(binder) == len(av)
    g, h = bind(av, torch.as_tensor(posed)), binder(posed)
    assert torch.allclose(h.means, g.means, atol=1e-6)
    assert torch.allclose(h.scales, g.scales, rtol=1e-5)
    assert torch.allclose(h.quats, g.quats, atol=1e-5)  # same sign convention: identical quaternions
    assert torch.allclose(h.opacities, torch.sigmoid(av.opacity_logits)) and torch.equal(h.sh, av.sh)
    gb = binder(torch.stack([torch.as_tensor(v), torch.as_tensor(posed)]))
    ref = bind(av, torch.as_tensor(v))
    assert gb.means.shape == (2, len(av), 3) and gb.sh.shape == (2, len(av), 4, 3) and gb.opacities.shape == (2, len(av))
    assert torch.allclose(gb[0].means, ref.means, atol=1e-6) and torch.allclose(gb[1].quats, g.quats, atol=1e-5)
    with pytest.raises(ValueError, match="vertices has shape"):
        binder(posed[:10])


def test_fused_bind_traces_as_one_graph_for_torch_compile():
    """TorchBinder compiles bind_fused on CUDA; here torch.compile's graph capture (dynamo, no code generation)
    must take it whole (fullgraph: no graph break) and give the eager results."""
    from rsatalker_ros.avatar.binding import bind_fused
    v, f = icosphere(1, 0.1)
    binder = TorchBinder(GaussianAvatar.init_from_mesh(v, f, per_triangle=2, seed=2), device="cpu")
    traced = torch.compile(bind_fused, fullgraph=True, backend="eager")
    verts = torch.as_tensor(v) * torch.tensor([1.0, 1.1, 0.9])
    eager = binder(verts)
    with torch.no_grad():
        got = traced(verts, binder.faces_flat, binder.parent, *binder.constants)
    for g, want in zip(got, (eager.means, eager.scales, eager.quats)):
        assert torch.allclose(g, want, atol=1e-6)
