"""Train a Gaussian avatar (stage 3) for a head, from synthetic textured-mesh views or from a view file.

    python -m rsatalker_ros.cli.train_avatar --head default_older \
        [--config config/train_stage3.yaml] [--views train.npz --eval-views heldout.npz] \
        [--out rsatalker_ros/assets/avatars/default_older.safetensors] [--work runs/avatar_default_older] \
        [--iterations N] [--png docs/images/avatar_default_older.png]

Without --views, the head's texture is painted (avatar/textures.py) and training / held-out views are drawn with
the textured-mesh rasteriser (different cameras and expressions for the held-out set). Writes the avatar
(safetensors), checkpoints, a PNG of held-out ground truth above the avatar's renders, and metrics.json with
PSNR / SSIM on the held-out views.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATA_DEFAULTS = {"n_views": 240, "n_eval": 16, "size": 160, "azimuth_deg": 75.0, "elevation_deg": [-15.0, 25.0],
                 "distance": 0.62, "fov_y_deg": 30.0, "supersample": 3, "texture_size": 512, "seed": 1,
                 "workers": 1}


def load_config(path):
    """(Stage3Config, data dict) from a YAML file with "stage3" and "data" sections (both optional)."""
    from rsatalker_ros.files import BadFileError, load_yaml
    from rsatalker_ros.train.stage3 import Stage3Config
    raw = load_yaml(path, "avatar training config") if path else {}
    unknown = sorted(set(raw) - {"stage3", "data"})
    if unknown:
        raise BadFileError(path, f"unknown sections {unknown}; expected 'stage3' and 'data'")
    data = dict(DATA_DEFAULTS)
    section = raw.get("data") or {}
    bad = sorted(set(section) - set(DATA_DEFAULTS)) if isinstance(section, dict) else ["(not a mapping)"]
    if bad:
        raise BadFileError(path, f"unknown data keys {bad}; expected some of {sorted(DATA_DEFAULTS)}")
    for key, value in section.items():
        like = DATA_DEFAULTS[key]
        ok = (isinstance(value, list) and len(value) == len(like) and all(_is_number(x) for x in value)
              if isinstance(like, list) else _is_number(value) and (isinstance(like, float) or value == int(value)))
        if not ok:
            want = f"a list of {len(like)} numbers" if isinstance(like, list) else "a number"
            raise BadFileError(path, f"data.{key} is {str(value)[:60]!r}; expected {want} like {like}")
    data.update(section)
    try:
        return Stage3Config.from_dict(raw.get("stage3") or {}), data
    except (ValueError, TypeError) as e:
        raise BadFileError(path, f"section 'stage3': {e}") from e


def below_minimum(values) -> bool:
    """For a CLI: print an error for the first (flag, value, least allowed) of ``values`` whose value is smaller, and
    say whether there was one."""
    for name, value, low in values:
        if value < low:
            print(f"error: --{name} must be at least {low}, got {value}", file=sys.stderr)
            return True
    return False


def config_and_head(config_path, head_spec):
    """For a CLI: (Stage3Config, data dict, head) from the config file and the head spec, or None after printing the
    error when either is not valid."""
    from rsatalker_ros.face.head_model import load_head
    try:
        cfg, data = load_config(config_path)
        return cfg, data, load_head(head_spec)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < float("inf")


def _view_kwargs(data: dict) -> dict:
    return dict(size=int(data["size"]), azimuth_deg=float(data["azimuth_deg"]),
                elevation_deg=tuple(float(x) for x in data["elevation_deg"]), distance=float(data["distance"]),
                fov_y_deg=float(data["fov_y_deg"]), supersample=int(data["supersample"]))


def _draw_chunk(job):
    """One worker's share of the views: (head spec, data, count, seed) -> ViewSet (runs in a fresh process)."""
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.train.stage3 import synthetic_views
    head_spec, data, n, seed = job
    head = load_head(head_spec)
    appearance = paint_head(head, size=int(data["texture_size"]))
    return synthetic_views(head, appearance, n, seed=seed, show_progress=False, **_view_kwargs(data))


def _views_in_parallel(head_spec: str, data: dict, workers: int, show_progress: bool):
    """The views drawn by ``workers`` processes, each its own chunk with its own seed (so the set differs from the
    one-process set of the same data seed, but is as random and as reproducible)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import numpy as np
    from tqdm import tqdm

    from rsatalker_ros.train.stage3 import ViewSet

    def split(n, base):  # chunk k of a set drawn with seed base + 10000 (k + 1)
        sizes = [n // workers + (k < n % workers) for k in range(workers)]
        return [(head_spec, data, m, base + 10000 * (k + 1)) for k, m in enumerate(sizes) if m > 0]
    seed = int(data["seed"])
    jobs = {"train": split(int(data["n_views"]), seed), "held": split(int(data["n_eval"]), seed + 1000)}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: [pool.submit(_draw_chunk, j) for j in js] for name, js in jobs.items()}
        every = [f for fs in futures.values() for f in fs]
        for _ in tqdm(as_completed(every), total=len(every),
                      desc=f"drawing views ({workers} processes)", disable=not show_progress):
            pass
        sets = {name: [f.result() for f in fs] for name, fs in futures.items()}
    return ViewSet.concat(sets["train"]), ViewSet.concat(sets["held"])


def make_views(head, data: dict, show_progress: bool = True, head_spec: str | None = None):
    """(train ViewSet, held-out ViewSet) drawn from the painted head; with ``data["workers"]`` > 1 (0 = one per
    core) and ``head_spec`` (what load_head takes) by that many processes."""
    import os
    workers = int(data.get("workers", 1)) or (os.cpu_count() or 1)
    if workers > 1 and head_spec is not None:
        return _views_in_parallel(head_spec, data, workers, show_progress)
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.train.stage3 import synthetic_views
    appearance = paint_head(head, size=int(data["texture_size"]))
    kw = dict(_view_kwargs(data), show_progress=show_progress)
    train = synthetic_views(head, appearance, int(data["n_views"]), seed=int(data["seed"]), **kw)
    held = synthetic_views(head, appearance, int(data["n_eval"]), seed=int(data["seed"]) + 1000, **kw)
    return train, held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rsatalker-train-avatar", description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", default="default_older", help="default head name, baked .npz or FLAME .pkl")
    ap.add_argument("--config", default="config/train_stage3.yaml", help="YAML with 'stage3' and 'data' sections")
    ap.add_argument("--views", default=None, help="training views (.npz ViewSet); default: synthetic views")
    ap.add_argument("--eval-views", default=None, help="held-out views (.npz ViewSet)")
    ap.add_argument("--out", default=None, help="avatar file (default rsatalker_ros/assets/avatars/<head>.safetensors)")
    ap.add_argument("--work", default=None, help="folder for checkpoints, views, metrics (default runs/avatar_<head>)")
    ap.add_argument("--iterations", type=int, default=None, help="override stage3.iterations")
    ap.add_argument("--png", default=None, help="also copy the held-out comparison PNG here")
    ap.add_argument("--init", default=None, help="continue from this avatar file")
    args = ap.parse_args(argv)

    import torch
    from rsatalker_ros.avatar.gaussians import load_avatar, save_avatar
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.train.stage3 import (ViewSet, comparison_sheet, config_dict, evaluate, train_stage3)

    try:
        cfg, data = load_config(args.config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.iterations is not None:
        cfg.iterations = args.iterations
        cfg.densify_until = min(cfg.densify_until, int(0.75 * args.iterations))
    torch.manual_seed(cfg.seed)
    head = load_head(args.head)
    name = head.name
    work = Path(args.work or f"runs/avatar_{name}")
    out = Path(args.out or Path(__file__).resolve().parent.parent / "assets" / "avatars" / f"{name}.safetensors")
    work.mkdir(parents=True, exist_ok=True)
    if args.views:
        train = ViewSet.load(args.views)
        held = ViewSet.load(args.eval_views) if args.eval_views else None
    else:
        train, held = make_views(head, data, head_spec=args.head)
        train.save(work / "views_train.npz")
        held.save(work / "views_heldout.npz")
    init = load_avatar(args.init, faces=head.faces) if args.init else None
    result = train_stage3(head, train, cfg, avatar=init, out_dir=work)
    save_avatar(out, result.avatar)
    metrics = {"head": name, "gaussians": len(result.avatar), "train_seconds": round(result.seconds, 1),
               "iterations": cfg.iterations, "train_views": len(train), "image_size": int(train.images.shape[1]),
               "file_mb": round(out.stat().st_size / 1e6, 2), "config": config_dict(cfg), "data": data}
    if held is not None:
        m, renders = evaluate(result.avatar, head, held, background=cfg.background)
        metrics["heldout"] = m
        comparison_sheet(held, renders, work / "heldout.png")
        if args.png:
            comparison_sheet(held, renders, args.png)
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (work / "history.json").write_text(json.dumps(result.history))
    print(f"wrote {out} ({metrics['file_mb']} MB, {metrics['gaussians']} Gaussians, "
          f"{metrics['train_seconds']} s)")
    if "heldout" in metrics:
        h = metrics["heldout"]
        print(f"held-out ({h['views']} views, other cameras and expressions): PSNR {h['psnr']:.2f} dB, "
              f"SSIM {h['ssim']:.4f}, PSNR inside the head silhouette {h['psnr_head']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
