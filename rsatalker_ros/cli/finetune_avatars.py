"""Fine-tune an avatar and its levels of detail at the image size the renderer publishes (stage 3, counts kept).

    python -m rsatalker_ros.cli.finetune_avatars --head default_older [--levels full 12k 6k] [--size 512] \
        [--iterations 300] [--views 96] [--open-mouth-share 0.25] [--scales 1 1 0.75 0.5 0.3125] \
        [--work runs/finetune_<head>] [--out-dir DIR]

The shipped avatars were trained on ``data.size`` (160 px) views, but the graph publishes ``RenderConfig.width``
(512 px) images, where their Gaussians draw grain the smooth ground truth lacks. This draws training views of the
painted head at ``--size`` (default: the renderer's published width, ``published_size``), a share of them with the
mouth open (``avatar_add_teeth.draw_views``: the teeth and mouth interior stay supervised), and fine-tunes every
level from its file with stage 3 (config/train_stage3.yaml) without densification or fill: each level keeps its
Gaussian count, so render speed stays comparable. Each step renders at one of ``--scales`` of ``--size``
(``Stage3Config.train_scales``; default ``default_scales``: the published size twice, the renderer's smaller render
scales and ``data.size``): the rasterisers' 0.3 px low-pass is fixed in pixels, so an avatar fitted at 512 px alone
loses 8 dB at 160 px, as one fitted at 160 px alone loses 8 dB at 512 px. Before and after, each level is evaluated
on the held-out views (``train_avatar``'s: seed + 1000) at ``--size`` and at ``data.size``, and on the open-mouth
and mouth close-up held-out sets of ``avatar_add_teeth --refit-mouth`` at ``data.size``. A level is written (over
its file, or into ``--out-dir``) only if its held-out PSNR at ``--size`` rises and at ``data.size`` stays at least
``--min-psnr`` (30 dB, the held-out target of docs/eval_avatar.md); otherwise the old file stays. Metrics go to
``<work>/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path


def published_size() -> int:
    """Width (= height) in pixels of the images the renderer node publishes by default (``RenderConfig.width``)."""
    from rsatalker_ros.stages.render import RenderConfig
    return int(next(f.default for f in fields(RenderConfig) if f.name == "width"))


def default_scales(size: int, train_size: int) -> tuple:
    """Render scales of the fine-tuning steps: 1 (the published size, listed twice to weigh it double), the smaller
    render scales of the renderer's deadline controller (``DeadlineConfig.scales``) and ``train_size / size``."""
    from rsatalker_ros.render.deadline import DeadlineConfig
    return (1.0,) + tuple(DeadlineConfig.scales) + ((min(1.0, train_size / size),) if train_size < size else ())


def heldout_sets(head, appearance, data: dict, size: int) -> dict:
    """The held-out sets (ViewSet each): "heldout" at ``size``, and at ``data["size"]`` "heldout_train_size",
    "heldout_open" (open mouth) and "heldout_mouth" (close-ups of the open mouth), with the seeds of
    ``train_avatar`` and ``avatar_add_teeth --refit-mouth``."""
    from rsatalker_ros.cli.avatar_add_teeth import draw_views, mouth_closeups
    from rsatalker_ros.cli.train_avatar import _view_kwargs
    from rsatalker_ros.train.stage3 import synthetic_views
    seed, n = int(data["seed"]), int(data["n_eval"])
    return {"heldout": synthetic_views(head, appearance, n, seed=seed + 1000, show_progress=False,
                                       **dict(_view_kwargs(data), size=size)),
            "heldout_train_size": synthetic_views(head, appearance, n, seed=seed + 1000, show_progress=False,
                                                  **_view_kwargs(data)),
            "heldout_open": draw_views(head, appearance, 8, data, seed + 2000, close_share=0.0),
            "heldout_mouth": mouth_closeups(head, appearance, 8, data, seed + 3000)}


def training_views(head, appearance, data: dict, size: int, n_views: int, open_mouth_share: float):
    """``n_views`` training views at ``size``: ``open_mouth_share`` of them with the mouth open (half of those at
    0.4 m), the rest drawn like ``train_avatar``'s (seeds apart from its training and held-out sets)."""
    from rsatalker_ros.cli.avatar_add_teeth import draw_views
    from rsatalker_ros.cli.train_avatar import _view_kwargs
    from rsatalker_ros.train.stage3 import ViewSet, synthetic_views
    sized = dict(data, size=size)
    seed = int(data["seed"])
    n_open = int(round(open_mouth_share * n_views))
    parts = [synthetic_views(head, appearance, n_views - n_open, seed=seed + 21, **_view_kwargs(sized))]
    if n_open:
        parts.append(draw_views(head, appearance, n_open, sized, seed + 23))
    return ViewSet.concat(parts)


def finetune_head(head, avatar_name: str, cfg, data: dict, size: int, n_views: int, open_mouth_share: float,
                  iterations: int, min_psnr: float, work: Path, out_dir: Path | None, levels=None,
                  scales=None) -> dict:
    """Fine-tune ``levels`` of ``avatar_name`` (default all it has) as the module docstring says, each step at one of
    ``scales`` (default ``default_scales``) of ``size``; returns metrics."""
    from rsatalker_ros.avatar.gaussians import save_avatar
    from rsatalker_ros.avatar.levels import available_levels, level_file, level_path, load_level
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.train.stage3 import ViewSet, evaluate, train_stage3
    scales = tuple(scales or default_scales(size, int(data["size"])))
    t0 = time.time()
    appearance = paint_head(head, size=int(data["texture_size"]))
    work.mkdir(parents=True, exist_ok=True)
    names = ("train", "heldout", "heldout_train_size", "heldout_open", "heldout_mouth")
    files = [work / f"views_{k}.npz" for k in names]
    if all(f.is_file() for f in files):                  # a second run with the same work folder reuses them
        sets = dict(zip(names, (ViewSet.load(f) for f in files)))
    else:
        sets = {"train": training_views(head, appearance, data, size, n_views, open_mouth_share),
                **heldout_sets(head, appearance, data, size)}
        for f, k in zip(files, names):
            sets[k].save(f)
    print(f"{head.name}: {' + '.join(str(len(v)) for v in sets.values())} views in {time.time() - t0:.0f} s")

    def scores(avatar):
        return {k: evaluate(avatar, head, sets[k], background=cfg.background)[0] for k in names[1:]}

    out_full = (out_dir / level_path(avatar_name).name) if out_dir else level_path(avatar_name)
    metrics = {"head": head.name, "size": size, "check_size": int(data["size"]), "iterations": iterations,
               "scales": list(scales), "views": {k: len(v) for k, v in sets.items()},
               "open_mouth_share": open_mouth_share, "min_psnr_at_check_size": min_psnr, "levels": {}}
    for level in levels or available_levels(avatar_name):
        old = load_level(avatar_name, level, faces=head.faces)
        before = scores(old)
        run = replace(cfg, iterations=iterations, train_scales=tuple(scales), densify_from=iterations + 1,
                      densify_until=iterations, min_gaussians=0, gaussian_budget=len(old), checkpoint_every=0)
        result = train_stage3(head, sets["train"], run, avatar=old)
        after = scores(result.avatar)
        gain = after["heldout"]["psnr"] - before["heldout"]["psnr"]
        accepted = gain > 0 and after["heldout_train_size"]["psnr"] >= min_psnr
        path = level_file(out_full, level)
        if accepted:
            save_avatar(path, result.avatar)
        metrics["levels"][level] = {"gaussians": len(result.avatar), "train_seconds": round(result.seconds, 1),
                                    "accepted": accepted, "file": str(path) if accepted else None,
                                    "before": before, "after": after}
        (work / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        print(f"{head.name} {level}: " + "; ".join(f"{k} PSNR {before[k]['psnr']:.2f} -> {after[k]['psnr']:.2f} dB"
                                                  for k in names[1:])
              + f"; {result.seconds:.0f} s; " + (f"wrote {path}" if accepted else "NOT accepted, old file kept"),
              flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rsatalker-finetune-avatars", description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", default="default_older", help="default head name or baked .npz")
    ap.add_argument("--avatar", default=None, help="avatar name or file (default: the head's shipped avatar)")
    ap.add_argument("--levels", nargs="+", default=None, help="levels to fine-tune (default all the avatar has)")
    ap.add_argument("--config", default="config/train_stage3.yaml", help="YAML with 'stage3' and 'data' sections")
    ap.add_argument("--size", type=int, default=None,
                    help="training image width = height [px] (default: the renderer's published width, "
                         "RenderConfig.width)")
    ap.add_argument("--iterations", type=int, default=300, help="fine-tuning steps per level")
    ap.add_argument("--views", type=int, default=96, help="training views per head")
    ap.add_argument("--open-mouth-share", type=float, default=0.25, help="share of the views with the mouth open")
    ap.add_argument("--scales", type=float, nargs="+", default=None,
                    help="render scales of the steps, shares of --size in (0, 1], equally likely (default: 1 1 0.75 "
                         "0.5 and data.size / --size)")
    ap.add_argument("--min-psnr", type=float, default=30.0,
                    help="accept a level only if its held-out PSNR at data.size stays at least this [dB]")
    ap.add_argument("--work", default=None, help="views and metrics (default runs/finetune_<head>)")
    ap.add_argument("--out-dir", default=None, help="where accepted avatar files go (default: over the input ones)")
    args = ap.parse_args(argv)
    size = args.size if args.size is not None else published_size()
    from rsatalker_ros.cli.train_avatar import below_minimum, config_and_head
    if below_minimum((("size", size, 16), ("iterations", args.iterations, 1), ("views", args.views, 1))):
        return 2
    if args.scales and not all(0.0 < x <= 1.0 for x in args.scales):
        print(f"error: --scales must be shares in (0, 1], got {args.scales}", file=sys.stderr)
        return 2
    if not 0.0 <= args.open_mouth_share <= 1.0:
        print(f"error: --open-mouth-share must lie in [0, 1], got {args.open_mouth_share}", file=sys.stderr)
        return 2
    loaded = config_and_head(args.config, args.head)
    if loaded is None:
        return 2
    cfg, data, head = loaded
    import torch
    torch.manual_seed(cfg.seed)
    finetune_head(head, args.avatar or head.name, cfg, data, size, args.views, args.open_mouth_share,
                  args.iterations, args.min_psnr, Path(args.work or f"runs/finetune_{head.name}"),
                  Path(args.out_dir) if args.out_dir else None, args.levels, args.scales)
    return 0


if __name__ == "__main__":
    sys.exit(main())
