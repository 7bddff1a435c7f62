"""Train the compact levels of detail of a shipped avatar (stage 3 under a Gaussian budget) and evaluate every level.

    python -m rsatalker_ros.cli.train_levels --head default_older [--levels 12k 6k] [--iterations 400] \
        [--config config/train_stage3.yaml] [--work runs/levels_default_older] [--sheet docs/images/...png]

For each level (budget from ``avatar.levels.LEVEL_BUDGETS``): the full avatar is reduced to the budget by
significance (``reduce_to_budget``), then fine-tuned by stage 3 with ``gaussian_budget`` set, on the same synthetic
views as the full avatar (``data`` section of the config: same cameras, expressions and held-out set). Writes
``rsatalker_ros/assets/avatars/<head>.<level>.safetensors``, ``<work>/metrics.json`` with held-out PSNR / SSIM of
the full avatar, of each level as selected (before fine-tuning) and as trained, and a contact sheet PNG (held-out
ground truth, then the full avatar, then each level, one row each).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def level_sheet(views, rows: list[np.ndarray], path, columns: int = 5) -> None:
    """PNG: held-out ground truth on top, then one row of renders [M, H, W, 3] (0..1) per entry of ``rows``."""
    from PIL import Image
    n = min(len(views), columns)
    strips = [np.concatenate([views.images[i] for i in range(n)], axis=1)]
    for r in rows:
        strips.append(np.concatenate([(np.clip(r[i], 0, 1) * 255 + 0.5).astype(np.uint8) for i in range(n)], 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(strips, axis=0)).save(path)


def main(argv: list[str] | None = None) -> int:
    from rsatalker_ros.avatar.levels import LEVEL_BUDGETS
    ap = argparse.ArgumentParser(prog="rsatalker-train-levels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", default="default_older", help="default head name (its shipped avatar is the full level)")
    ap.add_argument("--levels", nargs="+", default=list(LEVEL_BUDGETS), help=f"levels to train, of {list(LEVEL_BUDGETS)}")
    ap.add_argument("--config", default="config/train_stage3.yaml", help="YAML with 'stage3' and 'data' sections")
    ap.add_argument("--iterations", type=int, default=400, help="fine-tuning steps per level")
    ap.add_argument("--work", default=None, help="folder for views and metrics (default runs/levels_<head>)")
    ap.add_argument("--sheet", default=None, help="contact sheet PNG (default <work>/levels.png)")
    ap.add_argument("--out-dir", default=None, help="where the level files go (default: beside the shipped avatars)")
    args = ap.parse_args(argv)
    bad = [lv for lv in args.levels if lv not in LEVEL_BUDGETS]
    if bad:
        print(f"error: unknown levels {bad}; expected some of {list(LEVEL_BUDGETS)}", file=sys.stderr)
        return 2

    import torch
    from rsatalker_ros.avatar.avatar_io import AVATAR_DIR
    from rsatalker_ros.avatar.levels import level_file, load_level, train_levels
    from rsatalker_ros.cli.train_avatar import load_config, make_views
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.train.stage3 import ViewSet, config_dict, evaluate

    try:
        cfg, data = load_config(args.config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.manual_seed(cfg.seed)
    head = load_head(args.head)
    work = Path(args.work or f"runs/levels_{head.name}")
    work.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out_dir) if args.out_dir else AVATAR_DIR
    if (work / "views_train.npz").is_file() and (work / "views_heldout.npz").is_file():
        train, held = ViewSet.load(work / "views_train.npz"), ViewSet.load(work / "views_heldout.npz")
    else:
        train, held = make_views(head, data)
        train.save(work / "views_train.npz")
        held.save(work / "views_heldout.npz")
    full = load_level(head.name, faces=head.faces)
    m_full, r_full = evaluate(full, head, held, background=cfg.background)
    metrics = {"head": head.name, "config": config_dict(cfg), "data": data,
               "levels": {"full": {"gaussians": len(full), **m_full}}}
    print(f"full: {len(full)} Gaussians, held-out PSNR {m_full['psnr']:.2f} dB, SSIM {m_full['ssim']:.4f}")
    full_path = out_dir / f"{head.name}.safetensors"
    trained, renders = train_levels(head, full, full_path, train, held, cfg, args.iterations, args.levels)
    metrics["iterations"] = args.iterations
    for level, m in trained.items():
        metrics["levels"][level] = m
        m_sel = m["selected_before_training"]
        print(f"{level}: {m['gaussians']} Gaussians, held-out PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} "
              f"(selected, untrained: {m_sel['psnr']:.2f} dB, {m_sel['ssim']:.4f}); {m['train_seconds']:.0f} s; "
              f"wrote {level_file(full_path, level)}")
    rows = [r_full] + [renders[level] for level in args.levels]
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    sheet = Path(args.sheet or work / "levels.png")
    level_sheet(held, rows, sheet)
    print(f"contact sheet {sheet} (rows: held-out ground truth, full, {', '.join(args.levels)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
