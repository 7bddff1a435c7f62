"""Levels of detail of a Gaussian avatar: compact avatars trained under a Gaussian budget, shipped beside the full one.

    levels = available_levels("default_older")         # ["full", "12k", "6k"]: most detailed first
    avatar = load_level("default_older", "6k")          # GaussianAvatar with ~6,000 Gaussians
    path = level_path("default_older", "12k")           # rsatalker_ros/assets/avatars/default_older.12k.safetensors
    levels = available_levels("avatars/me/me.npz")      # any avatar file (or head file): its levels lie beside it

One naming rule for every avatar: the full level is ``DIR/<name>.safetensors``, a level
``DIR/<name>.<level>.safetensors`` (``level_file``); ``rsatalker-avatar-from-photo`` writes its levels that way too.

A level is made (``train_levels``, used by ``rsatalker_ros.cli.train_levels`` and the photo pipeline) by reducing
the full avatar to the budget with ``reduce_to_budget`` and fine-tuning it with stage 3 under
``Stage3Config.gaussian_budget`` (so the remaining Gaussians grow, move and recolour to cover what the dropped
ones drew, instead of leaving blotchy skin).

Selection (``reduce_to_budget``): every Gaussian gets the significance opacity x s_a x s_b, its opacity times the
area of its footprint (the two largest world-space scales on the neutral mesh), i.e. how much image it can cover;
the budget keeps the most significant ones, but first one per triangle in order of the triangle's best score, so
coverage is spread over the surface (with fewer Gaussians than triangles the smallest triangles go without).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np
import torch

from .avatar_io import load_avatar, resolve_avatar
from .gaussians import GaussianAvatar, bind, select

FULL = "full"
LEVEL_BUDGETS = {"12k": 12000, "6k": 6000}   # the compact levels shipped for each default avatar (name -> budget)
_LEVEL_NAME = re.compile(r"^[0-9]+k$")


def level_file(full, level: str) -> Path:
    """Where ``level`` of the avatar file ``full`` (``DIR/<name>.safetensors``) lies: ``DIR/<name>.<level>.safetensors``
    (the one naming rule, for shipped and user avatars alike; ``full`` itself for "full")."""
    full = Path(full)
    return full if level == FULL else full.with_name(f"{full.stem}.{level}.safetensors")


def level_path(avatar: str, level: str = FULL):
    """File of a level of an avatar (a shipped avatar name, an avatar file or a head file: ``resolve_avatar``). One
    naming rule for all: the full level is ``DIR/<name>.safetensors`` and a level ``DIR/<name>.<level>.safetensors``
    beside it. ValueError naming the levels that exist when it is missing."""
    full = resolve_avatar(avatar)
    if level == FULL:
        return full
    if not _LEVEL_NAME.match(level):
        raise ValueError(f"level {level!r} is not a level name; expected 'full' or like '12k', '6k'")
    p = level_file(full, level)
    if not p.is_file():
        raise ValueError(f"avatar {avatar!r} has no level {level!r}; it has {available_levels(avatar)}")
    return p


def available_levels(avatar: str) -> list[str]:
    """Level names of an avatar (see ``level_path``), most detailed first ("full" first, then by budget, descending)."""
    full = resolve_avatar(avatar)
    found = []
    for p in full.parent.glob(f"{glob.escape(full.stem)}.*.safetensors"):
        name = p.name[len(full.stem) + 1:-len(".safetensors")]
        if _LEVEL_NAME.match(name) and p.is_file():
            found.append(name)
    return [FULL] + sorted(found, key=lambda n: -int(n[:-1]))


def load_level(avatar: str, level: str = FULL, faces=None) -> GaussianAvatar:
    """Read one level of an avatar (validated like ``load_avatar``; ``faces`` [F, 3] checks the topology)."""
    return load_avatar(level_path(avatar, level), faces=faces)


def train_levels(head, full: GaussianAvatar, full_path, train, held, cfg, iterations: int, levels=None,
                 show_progress: bool = True) -> tuple[dict, dict]:
    """Train compact levels of the avatar ``full`` (whose file is ``full_path``) and write each beside it
    (``level_file``).

    head: the avatar's head model; train / held: ``train.stage3.ViewSet`` s to fine-tune on and to evaluate on;
    cfg: the ``Stage3Config`` the full avatar was trained with (not changed: each level gets a copy with
    ``iterations`` steps, the densification schedule fitted into them, and ``gaussian_budget`` set);
    levels: names of ``LEVEL_BUDGETS`` (default all). Each level: ``reduce_to_budget`` on the neutral mesh, then
    stage 3 under the budget. Returns ({level: metrics on ``held`` (gaussians, budget, psnr, ssim, psnr_head,
    selected_before_training, train_seconds, file_mb)}, {level: held-out renders [M, H, W, 3]})."""
    from dataclasses import replace

    from .gaussians import save_avatar
    from rsatalker_ros.train.stage3 import evaluate, train_stage3
    levels = list(LEVEL_BUDGETS) if levels is None else list(levels)
    bad = [lv for lv in levels if lv not in LEVEL_BUDGETS]
    if bad:
        raise ValueError(f"unknown levels {bad}; expected some of {list(LEVEL_BUDGETS)}")
    if iterations < 1:
        raise ValueError(f"iterations must be a positive step count, got {iterations}")
    level_cfg = replace(cfg, iterations=iterations, densify_from=min(cfg.densify_from, iterations // 4),
                        densify_every=max(1, min(cfg.densify_every, iterations // 4)),
                        densify_until=int(0.75 * iterations))
    with torch.no_grad():
        neutral = head.neutral()
    metrics, renders = {}, {}
    for level in levels:
        budget = LEVEL_BUDGETS[level]
        reduced = reduce_to_budget(full, neutral, budget)
        m_sel, _ = evaluate(reduced, head, held, background=cfg.background)
        result = train_stage3(head, train, replace(level_cfg, gaussian_budget=budget), avatar=reduced, out_dir=None,
                              show_progress=show_progress)
        path = level_file(full_path, level)
        save_avatar(path, result.avatar)
        m, renders[level] = evaluate(result.avatar, head, held, background=cfg.background)
        metrics[level] = {"gaussians": len(result.avatar), "budget": budget, **m,
                          "selected_before_training": m_sel, "train_seconds": round(result.seconds, 1),
                          "file_mb": round(path.stat().st_size / 1e6, 2)}
    return metrics, renders


def significance(avatar: GaussianAvatar, vertices) -> torch.Tensor:
    """[N] opacity x footprint area (product of the two largest world-space scales on ``vertices`` [V, 3])."""
    with torch.no_grad():
        g = bind(avatar, torch.as_tensor(vertices, dtype=torch.float32))
        s = torch.sort(g.scales, dim=1, descending=True).values
        return g.opacities * s[:, 0] * s[:, 1]


def reduce_to_budget(avatar: GaussianAvatar, vertices, budget: int) -> GaussianAvatar:
    """Keep ``budget`` Gaussians (see the module docstring): vertices [V, 3] the neutral mesh the scales are
    measured on. Returns the avatar unchanged when it already fits."""
    if budget < 1:
        raise ValueError(f"budget must be a positive Gaussian count, got {budget}")
    n = len(avatar)
    if n <= budget:
        return avatar
    score = significance(avatar, vertices).numpy().astype(np.float64)
    parent = avatar.parent.numpy()
    by_score = np.argsort(-score, kind="stable")
    # the best Gaussian of each triangle, those triangles in order of that best score
    _, first = np.unique(parent[by_score], return_index=True)
    best_of_triangle = by_score[np.sort(first)]
    keep = best_of_triangle[:budget]
    if len(keep) < budget:
        rest = by_score[~np.isin(by_score, keep)]
        keep = np.concatenate([keep, rest[:budget - len(keep)]])
    return select(avatar, torch.as_tensor(np.sort(keep)))
