"""Levels of detail of a Gaussian avatar: compact avatars trained under a Gaussian budget, shipped beside the full one.

    levels = available_levels("default_older")         # ["full", "12k", "6k"]: most detailed first
    avatar = load_level("default_older", "6k")          # GaussianAvatar with ~6,000 Gaussians
    path = level_path("default_older", "12k")           # rsatalker_ros/assets/avatars/default_older.12k.safetensors

A level is made (``rsatalker_ros.cli.train_levels``) by reducing the full avatar to the budget with
``reduce_to_budget`` and fine-tuning it with stage 3 under ``Stage3Config.gaussian_budget`` (so the remaining
Gaussians grow, move and recolour to cover what the dropped ones drew, instead of leaving blotchy skin).

Selection (``reduce_to_budget``): every Gaussian gets the significance opacity x s_a x s_b, its opacity times the
area of its footprint (the two largest world-space scales on the neutral mesh), i.e. how much image it can cover;
the budget keeps the most significant ones, but first one per triangle in order of the triangle's best score, so
coverage is spread over the surface (with fewer Gaussians than triangles the smallest triangles go without).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from .avatar_io import AVATAR_DIR, load_avatar, resolve_avatar
from .gaussians import GaussianAvatar, bind, select

FULL = "full"
LEVEL_BUDGETS = {"12k": 12000, "6k": 6000}   # the compact levels shipped for each default avatar (name -> budget)
_LEVEL_NAME = re.compile(r"^[0-9]+k$")


def level_path(avatar: str, level: str = FULL):
    """File of a level of a shipped avatar (``<avatar>.safetensors`` for "full", ``<avatar>.<level>.safetensors``
    otherwise); ValueError naming the levels that exist when it is missing."""
    if level == FULL:
        return resolve_avatar(avatar)
    if not _LEVEL_NAME.match(level):
        raise ValueError(f"level {level!r} is not a level name; expected 'full' or like '12k', '6k'")
    p = AVATAR_DIR / f"{avatar}.{level}.safetensors"
    if not p.is_file():
        raise ValueError(f"avatar {avatar!r} has no level {level!r}; it has {available_levels(avatar)}")
    return p


def available_levels(avatar: str) -> list[str]:
    """Level names of a shipped avatar, most detailed first ("full" first, then by budget, descending)."""
    resolve_avatar(avatar)
    found = []
    for p in AVATAR_DIR.glob(f"{avatar}.*.safetensors"):
        name = p.name[len(avatar) + 1:-len(".safetensors")]
        if _LEVEL_NAME.match(name):
            found.append(name)
    return [FULL] + sorted(found, key=lambda n: -int(n[:-1]))


def load_level(avatar: str, level: str = FULL, faces=None) -> GaussianAvatar:
    """Read one level of a shipped avatar (validated like ``load_avatar``; ``faces`` [F, 3] checks the topology)."""
    return load_avatar(level_path(avatar, level), faces=faces)


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
