"""Densification and pruning of triangle-bound Gaussians, with binding inheritance.

Adaptive density control as in 3D Gaussian Splatting, done in each Gaussian's local triangle frame
(GaussianAvatars): a Gaussian whose accumulated screen-space position gradient is large is

- cloned (copied in place) when it is small (max local scale <= ``split_scale``), or
- split into two children sampled from it, each with scales divided by ``split_factor``, when it is large;

Gaussians with opacity below ``min_opacity`` or local scale above ``max_scale`` are pruned. Children always
inherit the parent's triangle (``parent`` index), and pruning never leaves a triangle without Gaussians: the
most opaque Gaussian of a triangle that would lose all of its Gaussians is kept.

Everything here works on a plain dict of per-Gaussian tensors (first dimension N), so it is independent of the
avatar class and can also re-index optimiser state: every function returns ``source`` [N_new], the index of
the old Gaussian each new one comes from, and ``fresh`` [N_new] bool, True for newly created children.

Random draws (the split children's offsets) come from ``generator``, which must live on the parameters' device
(``generator_on(device, seed)``): torch refuses a CPU generator for CUDA tensors, so a mismatch is reported here,
before any work, naming both devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rsatalker_ros.avatar.binding import quat_to_matrix


@dataclass
class DensifyConfig:
    grad_threshold: float = 2e-4   # mean screen-space position-gradient norm (per pixel unit, image in 0..1) to densify
    split_scale: float = 0.6       # local scale (units of the triangle's size k) above which a Gaussian is split
    split_factor: float = 1.6      # children's scales = parent's / split_factor
    min_opacity: float = 0.005     # prune below this opacity
    max_scale: float = 3.0         # prune Gaussians whose largest local scale exceeds this
    max_gaussians: int = 60000     # never grow past this many Gaussians


def generator_on(device, seed: int) -> torch.Generator:
    """A generator seeded with ``seed`` on ``device`` (a torch.device or name such as "cuda"), for ``densify``
    and ``fill_to_count`` on parameters that live there."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def _same_device(a: torch.device, b: torch.device) -> bool:
    """True when tensors on ``a`` may draw from a generator on ``b`` (same type; same index when both have one)."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _check(params: dict, parent: torch.Tensor, n_faces: int, generator: torch.Generator | None = None) -> int:
    if generator is not None and "means" in params and not _same_device(params["means"].device, generator.device):
        raise ValueError(f"the generator is on {generator.device} but the parameters are on "
                         f"{params['means'].device}; make it with generator_on(<the parameters' device>, seed)")
    n = parent.shape[0]
    for name, t in params.items():
        if t.shape[0] != n:
            raise ValueError(f"param {name!r} has {t.shape[0]} rows, expected {n} (one per Gaussian)")
    for name in ("means", "log_scales", "quats", "opacity_logits"):
        if name not in params:
            raise ValueError(f"params must contain {name!r}; got {sorted(params)}")
    if n and (int(parent.min()) < 0 or int(parent.max()) >= n_faces):
        raise ValueError(f"parent indices must be in 0..{n_faces - 1}")
    return n


def _gather(params: dict, source: torch.Tensor) -> dict:
    return {k: v[source] for k, v in params.items()}


def densify(params: dict, parent: torch.Tensor, n_faces: int, grad: torch.Tensor, cfg: DensifyConfig,
            generator: torch.Generator | None = None):
    """Clone small and split large Gaussians whose mean gradient ``grad`` [N] exceeds the threshold.

    params: dict of [N, ...] tensors with at least means [N,3] (local), log_scales [N,3], quats [N,4] wxyz,
    opacity_logits [N]. parent: [N] long triangle index. Returns (params, parent, source, fresh); the originals
    come first (a split Gaussian's first child replaces it in place) and new children are appended.
    """
    n = _check(params, parent, n_faces, generator)
    if grad.shape != (n,):
        raise ValueError(f"grad must be [N] = [{n}], got {tuple(grad.shape)}")
    with torch.no_grad():
        big = params["log_scales"].exp().max(dim=1).values > cfg.split_scale
        hot = grad >= cfg.grad_threshold
        room = max(cfg.max_gaussians - n, 0)
        cand = torch.nonzero(hot).squeeze(1)
        if cand.numel() > room:  # keep the hottest ones within the budget
            cand = cand[torch.argsort(grad[cand], descending=True)[:room]]
        clone_idx = cand[~big[cand]]
        split_idx = cand[big[cand]]
        new = {k: v.clone() for k, v in params.items()}
        if split_idx.numel():
            s = params["log_scales"][split_idx].exp()
            R = quat_to_matrix(params["quats"][split_idx])
            offs = []
            for _ in range(2):
                z = torch.randn(s.shape, generator=generator, dtype=s.dtype, device=s.device) * s
                offs.append((R @ z[..., None]).squeeze(-1))
            shrink = math.log(cfg.split_factor)
            new["means"][split_idx] = params["means"][split_idx] + offs[0]
            new["log_scales"][split_idx] = params["log_scales"][split_idx] - shrink
        children_src = torch.cat([clone_idx, split_idx])
        child = _gather(new, children_src)
        if split_idx.numel():
            k = clone_idx.numel()
            child["means"][k:] = params["means"][split_idx] + offs[1]
        out = {name: torch.cat([new[name], child[name]]) for name in params}
        source = torch.cat([torch.arange(n, device=parent.device), children_src])
        fresh = torch.zeros(source.shape[0], dtype=torch.bool, device=parent.device)
        fresh[n:] = True
        return out, parent[source], source, fresh


def prune(params: dict, parent: torch.Tensor, n_faces: int, cfg: DensifyConfig):
    """Remove transparent or oversized Gaussians, keeping at least one Gaussian on every triangle that had one.

    Returns (params, parent, source, fresh) like ``densify`` (``fresh`` is all False).
    """
    n = _check(params, parent, n_faces)
    with torch.no_grad():
        opacity = torch.sigmoid(params["opacity_logits"].reshape(n))
        drop = (opacity < cfg.min_opacity) | (params["log_scales"].exp().max(dim=1).values > cfg.max_scale)
        keep = ~drop
        kept_per_face = torch.bincount(parent[keep], minlength=n_faces)
        orphan_face = (kept_per_face == 0) & (torch.bincount(parent, minlength=n_faces) > 0)
        if orphan_face.any():
            # rescue the most opaque Gaussian of each orphaned triangle
            best = torch.full((n_faces,), -1.0, dtype=opacity.dtype, device=opacity.device)
            best = best.scatter_reduce(0, parent, opacity, reduce="amax")
            is_best = (opacity == best[parent]) & orphan_face[parent]
            # several Gaussians may tie for the maximum: keep only the first of each triangle
            idx = torch.nonzero(is_best).squeeze(1)
            first = torch.full((n_faces,), n, dtype=torch.long, device=parent.device)
            first = first.scatter_reduce(0, parent[idx], idx, reduce="amin")
            keep[first[orphan_face]] = True
        source = torch.nonzero(keep).squeeze(1)
        fresh = torch.zeros(source.shape[0], dtype=torch.bool, device=parent.device)
        return _gather(params, source), parent[source], source, fresh


def fill_to_count(params: dict, parent: torch.Tensor, n_faces: int, target: int, cfg: DensifyConfig,
                  generator: torch.Generator | None = None):
    """Split the largest Gaussians (by world-independent local volume) until there are at least ``target``.

    Used to guarantee a minimum Gaussian count for the shipped avatars. Returns (params, parent, source, fresh).
    ``generator`` must live on the parameters' device (``generator_on``).
    """
    n = _check(params, parent, n_faces, generator)
    source = torch.arange(n, device=parent.device)
    fresh = torch.zeros(n, dtype=torch.bool, device=parent.device)
    while parent.shape[0] < target:  # each round at most doubles the count
        m = parent.shape[0]
        with torch.no_grad():
            volume = params["log_scales"].sum(dim=1)
            order = torch.argsort(volume, descending=True)
            grad = torch.zeros(m, dtype=params["means"].dtype, device=parent.device)
            grad[order[: target - m]] = 1.0
        forced = DensifyConfig(grad_threshold=0.5, split_scale=-1.0, split_factor=cfg.split_factor,
                               min_opacity=cfg.min_opacity, max_scale=cfg.max_scale, max_gaussians=target)
        params, parent, src, fr = densify(params, parent, n_faces, grad, forced, generator)
        source, fresh = source[src], fresh[src] | fr
    return params, parent, source, fresh


def faces_without_gaussians(parent: torch.Tensor, n_faces: int) -> torch.Tensor:
    """Indices of triangles that no Gaussian is bound to (should be empty for a trained avatar)."""
    return torch.nonzero(torch.bincount(parent, minlength=n_faces) == 0).squeeze(1)
