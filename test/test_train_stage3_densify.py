"""Densification and pruning keep the binding: children inherit the parent's triangle, no triangle goes empty."""

import pytest
import torch

from rsatalker_ros.avatar.densify import (DensifyConfig, densify, faces_without_gaussians, fill_to_count,
                                          generator_on, prune)
from rsatalker_ros.avatar.gaussians import GaussianAvatar
from rsatalker_ros.avatar.meshes import icosphere


def _params(avatar):
    return {"means": avatar.means, "log_scales": avatar.log_scales, "quats": avatar.quats,
            "opacity_logits": avatar.opacity_logits, "sh": avatar.sh}


def _avatar():
    v, f = icosphere(1)
    return GaussianAvatar.init_from_mesh(v, f, per_triangle=2, seed=0)


def test_clone_and_split_children_inherit_parent_triangle():
    av = _avatar()
    n, F = len(av), av.faces.shape[0]
    params = _params(av)
    params["log_scales"][::4] = torch.log(torch.tensor(1.0))  # some large Gaussians (split), the rest small (clone)
    grad = torch.zeros(n)
    grad[::2] = 1.0  # every other Gaussian is "hot"
    cfg = DensifyConfig(grad_threshold=0.5, split_scale=0.6, max_gaussians=10 * n)
    out, parent, source, fresh = densify(params, av.parent, F, grad, cfg, torch.Generator().manual_seed(0))
    n_hot = int((grad >= 0.5).sum())
    assert parent.shape[0] == n + n_hot and out["means"].shape[0] == n + n_hot
    assert torch.equal(parent, av.parent[source])  # every Gaussian, new or old, sits on its source's triangle
    assert fresh.sum() == n_hot
    assert sorted(source[fresh].tolist()) == torch.nonzero(grad >= 0.5).squeeze(1).tolist()
    split = torch.zeros(n, dtype=torch.bool)
    split[::4] = True
    # split Gaussians shrink by the split factor (in place and in the child); clones keep their scale
    assert torch.allclose(out["log_scales"][:n][split], params["log_scales"][split] - torch.log(torch.tensor(1.6)))
    child_src = source[fresh]
    child_scales = out["log_scales"][n:]
    exp = params["log_scales"][child_src] - torch.log(torch.tensor(1.6)) * split[child_src][:, None]
    assert torch.allclose(child_scales, exp)
    # split children are moved away from the parent; clones sit exactly on it
    moved = (out["means"][n:] - params["means"][child_src]).norm(dim=1) > 0
    assert torch.equal(moved, split[child_src])


def test_densify_respects_the_budget():
    av = _avatar()
    n = len(av)
    grad = torch.rand(n, generator=torch.Generator().manual_seed(1))
    cfg = DensifyConfig(grad_threshold=0.0, max_gaussians=n + 7)
    out, parent, _, _ = densify(_params(av), av.parent, av.faces.shape[0], grad, cfg)
    assert parent.shape[0] == n + 7


def test_prune_never_leaves_a_triangle_empty():
    av = _avatar()
    F = av.faces.shape[0]
    params = _params(av)
    params["opacity_logits"][:] = -20.0  # everything transparent ...
    params["opacity_logits"][: len(av) // 2] = 5.0  # ... except the Gaussians of the first half of the triangles
    params["opacity_logits"][len(av) - 1] = -10.0  # the least transparent one of the last triangle
    out, parent, source, _ = prune(params, av.parent, F, DensifyConfig(min_opacity=0.01))
    assert faces_without_gaussians(parent, F).numel() == 0
    assert torch.equal(parent, av.parent[source])
    # opaque ones are all kept; from a fully transparent triangle exactly one survives, the most opaque
    per_face = torch.bincount(parent, minlength=F)
    assert (per_face[F // 2 + 1:] == 1).all()
    assert (len(av) - 1) in source.tolist() and (len(av) - 2) not in source.tolist()
    assert out["means"].shape[0] == parent.shape[0]


def test_fill_to_count_reaches_target_and_keeps_binding():
    av = _avatar()
    F = av.faces.shape[0]
    out, parent, source, fresh = fill_to_count(_params(av), av.parent, F, len(av) + 50, DensifyConfig())
    assert parent.shape[0] == len(av) + 50 and fresh.sum() == 50
    assert torch.equal(parent, av.parent[source])
    assert faces_without_gaussians(parent, F).numel() == 0


def test_fill_to_count_can_more_than_double():
    av = _avatar()
    F = av.faces.shape[0]
    out, parent, source, fresh = fill_to_count(_params(av), av.parent, F, 3 * len(av) + 1, DensifyConfig())
    assert parent.shape[0] == 3 * len(av) + 1 and int(fresh.sum()) == 2 * len(av) + 1
    assert torch.equal(parent, av.parent[source])  # grandchildren still sit on the original triangle


def test_generator_on_another_device_than_the_parameters_is_refused_before_any_work():
    """The CUDA crash of issue #13 (a CPU generator drawing for CUDA parameters), reproduced with the parameters on
    torch's 'meta' device, which exists on every machine: both functions name the two devices instead of failing
    deep inside torch.randn. (CPU alone cannot run the CUDA draw itself; scripts/gpu_check.py does.)"""
    av = _avatar()
    F = av.faces.shape[0]
    meta = {k: v.to("meta") for k, v in _params(av).items()}
    grad = torch.ones(len(av), device="meta")
    with pytest.raises(ValueError, match="generator is on cpu but the parameters are on meta"):
        densify(meta, av.parent.to("meta"), F, grad, DensifyConfig(), generator_on("cpu", 0))
    with pytest.raises(ValueError, match="generator is on cpu but the parameters are on meta"):
        fill_to_count(meta, av.parent.to("meta"), F, len(av) + 5, DensifyConfig(), generator_on("cpu", 0))
    g = generator_on("cpu", 3)
    assert g.device == torch.device("cpu") and g.initial_seed() == 3
    out, parent, _, _ = fill_to_count(_params(av), av.parent, F, len(av) + 5, DensifyConfig(), g)
    assert parent.shape[0] == len(av) + 5
