"""Held-out PSNR / SSIM of every option the renderer's deadline controller can choose: each level of detail of the
shipped avatars at full render scale, and the coarsest level at the smaller render scales, rendered the way the
renderer node does it (8-bit CPU render at the scaled camera, then ``resize_bilinear_uint8`` up to the output
size), against painted-head ground truth at the output size.

    python scripts/eval_render_options.py [--heads default_older default_younger] [--size 512] [--views 16] \
        [--sheet docs/images/render_options.png]

The views are the stage-3 held-out set of ``config/train_stage3.yaml`` (same cameras and expressions: seed + 1000),
drawn at ``--size`` instead of the training size, so the figures describe the 512 x 512 images the graph
publishes. Prints one markdown table row per (head, level, scale); ``--sheet`` writes a PNG with, per head, the
ground truth of the first held-out view and each option's image of it, each over a 2x crop of the left eye and nose.
"""

import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm


def evaluate_option(avatar, head, views, scale: float, background) -> tuple[dict, np.ndarray]:
    """PSNR / SSIM (means over views) of ``avatar`` rendered at ``scale`` and upscaled to the views' size, and the
    image of the first view (uint8 [H, W, 3])."""
    from rsatalker_ros.avatar.gaussians import bind
    from rsatalker_ros.render.api import _cpu_inputs
    from rsatalker_ros.render.cpu_tiles import render_cpu
    from rsatalker_ros.render.resize import resize_bilinear_uint8
    from rsatalker_ros.train.ssim import psnr, ssim
    verts = head.from_motion(torch.from_numpy(views.motions.astype(np.float32)))
    bg = np.asarray(background, np.float32)
    ps, ss, first = [], [], None
    for i in range(len(views)):
        cam = views.camera(i)
        small = cam if scale == 1.0 else cam.with_size(max(1, round(cam.width * scale)),
                                                       max(1, round(cam.height * scale)))
        with torch.no_grad():
            image = render_cpu(*_cpu_inputs(bind(avatar, verts[i])), small, bg, uint8=True)
        image = resize_bilinear_uint8(image, cam.width, cam.height)
        first = image if first is None else first
        img = torch.from_numpy(image.astype(np.float32) / 255.0)
        tgt = views.image(i)
        ps.append(float(psnr(img, tgt)))
        ss.append(float(ssim(img, tgt)))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}, first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", nargs="+", default=["default_older", "default_younger"], help="default head names")
    ap.add_argument("--size", type=int, default=None,
                    help="output image width = height [px] (default: the renderer's published width, RenderConfig.width)")
    ap.add_argument("--views", type=int, default=16, help="held-out views per head")
    ap.add_argument("--config", default="config/train_stage3.yaml", help="YAML with 'stage3' and 'data' sections")
    ap.add_argument("--sheet", default="", help="PNG: per head the first view's ground truth and every option")
    args = ap.parse_args(argv)
    from rsatalker_ros.cli.finetune_avatars import published_size
    args.size = published_size() if args.size is None else args.size
    if args.size < 16 or args.views < 1:
        print(f"error: --size {args.size} (expected >= 16) / --views {args.views} (expected >= 1)", file=sys.stderr)
        return 2
    from rsatalker_ros.avatar.levels import available_levels, load_level
    from rsatalker_ros.cli.train_avatar import _view_kwargs, load_config
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.render.deadline import DeadlineConfig
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.train.stage3 import synthetic_views

    cfg, data = load_config(args.config)
    data = dict(data, size=args.size)
    rows, sheet_rows = [], []
    for name in args.heads:
        head = load_head(name)
        appearance = paint_head(head, size=int(data["texture_size"]))
        views = synthetic_views(head, appearance, args.views, seed=int(data["seed"]) + 1000, show_progress=True,
                                **_view_kwargs(data))
        levels = available_levels(name)
        options = [(lv, 1.0) for lv in levels] + [(levels[-1], s) for s in DeadlineConfig.scales if s < 1.0]
        images = [views.images[0]]
        for level, scale in tqdm(options, desc=f"{name} options"):
            avatar = load_level(name, level, faces=head.faces)
            m, image = evaluate_option(avatar, head, views, scale, cfg.background)
            rows.append((name, level, scale, len(avatar), m))
            images.append(image)
        sheet_rows.append(images)
    print(f"\nheld-out views at {args.size} x {args.size} ({args.views} per head), 8-bit CPU renders upscaled as the "
          "renderer node does:")
    print("| avatar | level | render scale | Gaussians | PSNR | SSIM |\n|---|---|---|---|---|---|")
    for name, level, scale, n, m in rows:
        print(f"| {name} | {level} | {scale:g} | {n:,} | {m['psnr']:.2f} dB | {m['ssim']:.4f} |")
    if args.sheet:
        write_sheet(args.sheet, sheet_rows)
        print(f"wrote {args.sheet} (columns: ground truth, then {', '.join(f'{lv} x{sc:g}' for lv, sc in options)})")
    return 0


def write_sheet(path, rows) -> None:
    """rows: per head [ground truth, option images...] uint8 [H, W, 3], at half size, over a 2x crop of each (the
    left eye and the nose in these views)."""
    from pathlib import Path

    from PIL import Image
    tiles = []
    for images in rows:
        h, w = images[0].shape[:2]
        y0, x0 = int(0.5 * h), int(0.375 * w)
        crop = [np.asarray(Image.fromarray(im[y0:y0 + h // 4, x0:x0 + w // 4]).resize((w // 2, h // 2),
                                                                                      Image.NEAREST))
                for im in images]
        top = np.concatenate([np.asarray(Image.fromarray(im).resize((w // 2, h // 2), Image.BILINEAR))
                              for im in images], axis=1)
        tiles += [top, np.concatenate(crop, axis=1)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)


if __name__ == "__main__":
    sys.exit(main())
