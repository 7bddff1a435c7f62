"""Levels of detail: the shipped levels and their loader, the budget selection, and stage 3 under a budget."""

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.gaussians import GaussianAvatar
from rsatalker_ros.avatar.levels import (LEVEL_BUDGETS, available_levels, level_path, load_level, reduce_to_budget,
                                         significance)
from rsatalker_ros.train.stage3 import Stage3Config, evaluate, train_stage3
from test_train_stage3 import SphereHead, _sphere_views


@pytest.mark.parametrize("head", ["default_older", "default_younger"])
def test_every_shipped_avatar_has_its_levels_within_budget_on_the_same_mesh(head):
    from rsatalker_ros.face.head_model import load_head
    assert available_levels(head) == ["full", "12k", "6k"]
    faces = load_head(head).faces
    full = load_level(head, faces=faces)
    for level, budget in LEVEL_BUDGETS.items():
        av = load_level(head, level, faces=faces)         # validated, same topology as the head
        assert 0.9 * budget <= len(av) <= budget < len(full)
        assert level_path(head, level).stat().st_size < 2e6


def test_unknown_levels_are_refused_with_the_levels_that_exist():
    with pytest.raises(ValueError, match=r"has no level '3k'; it has \['full', '12k', '6k'\]"):
        level_path("default_older", "3k")
    with pytest.raises(ValueError, match="not a level name"):
        level_path("default_older", "../../etc")
    with pytest.raises(ValueError, match="no avatar"):
        available_levels("nobody")


def test_a_user_avatar_finds_its_levels_beside_it_by_the_same_rule(tmp_path):
    """DIR/me.safetensors with DIR/me.12k.safetensors and DIR/me.6k.safetensors beside it (what the photo tool
    writes); the head file DIR/me.npz leads to the same levels; other files there are not levels of it."""
    import shutil
    from rsatalker_ros.avatar.avatar_io import AVATAR_DIR
    from rsatalker_ros.avatar.levels import level_file
    full = tmp_path / "me.safetensors"
    shutil.copy(AVATAR_DIR / "default_older.safetensors", full)
    assert available_levels(str(full)) == ["full"]
    for level in ("6k", "12k"):
        shutil.copy(level_path("default_older", level), level_file(full, level))
    (tmp_path / "me.notes.safetensors").write_bytes(b"")             # not a level name
    (tmp_path / "me_2.6k.safetensors").write_bytes(b"")              # another avatar's level
    assert level_file(AVATAR_DIR / "default_older.safetensors", "6k") == level_path("default_older", "6k")
    assert available_levels(str(full)) == ["full", "12k", "6k"]
    assert available_levels(str(tmp_path / "me.npz")) == ["full", "12k", "6k"]
    assert level_path(str(full), "12k") == tmp_path / "me.12k.safetensors"
    assert level_path(str(full), "full") == full
    assert len(load_level(str(full), "6k")) == len(load_level("default_older", "6k"))
    with pytest.raises(ValueError, match=r"has no level '3k'; it has \['full', '12k', '6k'\]"):
        level_path(str(full), "3k")


def _sphere_avatar(per_triangle=3, seed=0):
    head = SphereHead()
    av = GaussianAvatar.init_from_mesh(head.v.numpy(), head.faces.numpy(), per_triangle=per_triangle, head="sphere",
                                       seed=seed)
    g = torch.Generator().manual_seed(seed)
    av.opacity_logits = torch.randn(len(av), generator=g)
    av.log_scales = av.log_scales + 0.5 * torch.randn(av.log_scales.shape, generator=g)
    return head, av


def test_reduce_to_budget_spreads_over_triangles_then_keeps_the_most_significant():
    head, av = _sphere_avatar()
    n_faces = head.faces.shape[0]
    score = significance(av, head.neutral()).numpy()
    # budget above the triangle count: every triangle keeps one, the rest are the highest scores
    out = reduce_to_budget(av, head.neutral(), n_faces + 50)
    assert len(out) == n_faces + 50
    assert torch.bincount(out.parent, minlength=n_faces).min() == 1
    best = np.array([score[av.parent.numpy() == f].max() for f in range(n_faces)])
    kept_scores = significance(out, head.neutral()).numpy()
    assert np.isclose(np.sort(kept_scores)[-50:], np.sort(score)[-50:]).sum() >= 40
    assert set(np.round(best, 7)) <= set(np.round(kept_scores, 7))
    # budget below the triangle count: the triangles whose best Gaussian matters most
    small = reduce_to_budget(av, head.neutral(), 100)
    assert len(small) == 100 and len(torch.unique(small.parent)) == 100
    assert np.allclose(np.sort(significance(small, head.neutral()).numpy()), np.sort(best)[-100:])
    assert reduce_to_budget(av, head.neutral(), len(av)) is av
    with pytest.raises(ValueError, match="budget"):
        reduce_to_budget(av, head.neutral(), 0)


@pytest.mark.slow
def test_stage3_under_a_budget_never_exceeds_it_and_improves_the_reduced_avatar():
    torch.manual_seed(0)
    head = SphereHead()
    train = _sphere_views(head, 6, 32, seed=0)
    held = _sphere_views(head, 3, 32, seed=1)
    fit = train_stage3(head, train, Stage3Config(iterations=40, min_gaussians=0, densify_from=1000, seed=0,
                                                 init_colors_from_views=False, lr_sh=0.03), show_progress=False).avatar
    budget = head.faces.shape[0] // 2                      # fewer Gaussians than triangles
    reduced = reduce_to_budget(fit, head.neutral(), budget)
    cfg = Stage3Config.from_dict({"iterations": 40, "gaussian_budget": budget, "min_gaussians": 10 * budget,
                                  "densify_from": 10, "densify_until": 30, "densify_every": 10, "seed": 0,
                                  "lr_sh": 0.03, "densify": {"grad_threshold": 0.0, "max_gaussians": 10 * budget}})
    before, _ = evaluate(reduced, head, held)
    out = train_stage3(head, train, cfg, avatar=reduced, show_progress=False).avatar
    after, _ = evaluate(out, head, held)
    assert len(out) <= budget                              # no densification past it, no fill to min_gaussians
    assert after["psnr"] > before["psnr"] + 0.5, (before, after)
    with pytest.raises(ValueError, match="more than gaussian_budget"):
        train_stage3(head, train, Stage3Config(iterations=1, gaussian_budget=budget), avatar=fit, show_progress=False)


def test_finetune_at_the_published_size_keeps_each_count_and_writes_only_accepted_levels(tmp_path):
    """rsatalker-finetune-avatars: the default size is the renderer's published width; a level fine-tuned at a new
    size (its steps at the default scales) keeps its Gaussian count, and its file is written only if its held-out
    PSNR at that size rose and at the config's training size stays at least min_psnr."""
    from rsatalker_ros.avatar.gaussians import load_avatar
    from rsatalker_ros.cli.finetune_avatars import finetune_head, published_size
    from rsatalker_ros.cli.train_avatar import load_config
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.stages.render import RenderConfig
    assert published_size() == RenderConfig().width == RenderConfig().height
    config = tmp_path / "tiny.yaml"
    config.write_text("data: {size: 24, n_eval: 2, supersample: 1, texture_size: 64}\n")
    cfg, data = load_config(config)
    head = load_head("default_older")
    old = load_level("default_older", "6k", faces=head.faces)
    for min_psnr in (0.0, 100.0):
        out = tmp_path / f"out{min_psnr:.0f}"
        m = finetune_head(head, "default_older", cfg, data, size=40, n_views=3, open_mouth_share=1 / 3,
                          iterations=2, min_psnr=min_psnr, work=tmp_path / "work", out_dir=out, levels=["6k"])
        entry = m["levels"]["6k"]
        assert m["views"] == {"train": 3, "heldout": 2, "heldout_train_size": 2, "heldout_open": 8,
                              "heldout_mouth": 8}
        gain = entry["after"]["heldout"]["psnr"] - entry["before"]["heldout"]["psnr"]
        assert entry["gaussians"] == len(old)
        assert m["scales"] == [1.0, 1.0, 0.75, 0.5, 0.6]           # published size twice, the renderer's, 24 / 40
        assert entry["accepted"] == (gain > 0 and entry["after"]["heldout_train_size"]["psnr"] >= min_psnr) \
            == (min_psnr == 0)                                      # 2 steps raise it at 40 px
        path = out / "default_older.6k.safetensors"
        assert path.is_file() == entry["accepted"]
        if entry["accepted"]:
            new = load_avatar(path, faces=head.faces)
            assert len(new) == len(old) and not torch.equal(new.sh, old.sh)
    assert not (tmp_path / "out100").exists() or not any((tmp_path / "out100").iterdir())
