"""Give an existing Gaussian avatar (full level and its compact levels) Gaussians on the teeth of its grown head.

    python -m rsatalker_ros.cli.avatar_add_teeth --head default_older [--avatar default_older] \
        [--iterations 150] [--level-iterations 100] [--views 96] [--work runs/teeth_default_older] [--out-dir DIR]
    python -m rsatalker_ros.cli.avatar_add_teeth --head default_older --refit-mouth \
        --iterations 600 --level-iterations 600
    python -m rsatalker_ros.cli.avatar_add_teeth --sheet docs/images/teeth_default_heads.png \
        --heads default_older default_younger          # contact sheet only: mouth closed / open / wide

A head baked with teeth (``face/teeth.py``) keeps every old triangle and appends the teeth after them, so an avatar
made before still loads and renders (the teeth just have no Gaussians). This adds them without retraining the rest:
1. views of the painted head (``avatar/textures.py``: enamel, gums, a mouth interior darkening with depth) with
   the mouth open in most frames (jawOpen 0.15-0.8 or a jaw rotation), half of them closer to the face;
2. one Gaussian on every teeth triangle of the full avatar, coloured from the views; a level gets as many as its
   share of the full avatar's Gaussians allows (on the teeth triangles seen most), the rest of the level reduced
   to make room (``levels.reduce_to_budget``), so it stays within its budget;
3. stage 3 with a focus on the teeth and the mouth interior (teeth, mouth inside, tongue triangles): the Gaussians
   elsewhere stay frozen (``lr_scale_unfocused``), no densification;
4. held-out PSNR / SSIM before and after on the standard held-out views (``train_avatar``'s: other cameras and
   expressions, seed + 1000) and on open-mouth held-out views, into ``<work>/metrics.json``.

``--refit-mouth`` redoes the mouth of avatars that already have teeth Gaussians, at the cause of a mouth that
stayed lighter and redder than the painted one: the mouth Gaussians kept the colours learnt from the old texture
(pink, lit tongue), and Adam moves a degree-0 colour by at most SH_C0 x lr_sh = 0.003 per step, so 100 steps could
not darken it by the 0.3 needed. The mouth Gaussians visible in open-mouth views are first recoloured from the
ground-truth pixels under them (``recolor_from_views``), then stage 3 fine-tunes them (the rest frozen) with an
extra L1 on the mouth's pixels (``lambda_region``) on open-mouth views (3/8 of ``--views``), close-ups of the open
mouth (3/8) and ``train_avatar``'s views (1/4, mostly closed or slightly open: they keep the large mouth Gaussians
behind the lips from darkening the lip line); held-out figures now include close-ups of the open mouth
(``mouth_closeups``, seed + 3000).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

MOUTH_LABELS = ("teeth", "mouth_inside", "tongue")


def open_mouth_motions(n: int, layout, rng: np.random.Generator, open_share: float = 0.8) -> np.ndarray:
    """``random_motions`` with the mouth open in ``open_share`` of the frames: jawOpen 0.15-0.8 (two thirds) or a
    jaw rotation of 0.1-0.3 rad."""
    from rsatalker_ros.face.arkit import ARKIT52_INDEX
    from rsatalker_ros.train.stage3 import random_motions
    m = random_motions(n, layout, rng)
    for i in np.flatnonzero(rng.random(n) < open_share):
        if rng.random() < 2 / 3:
            m[i, layout.expression.start + ARKIT52_INDEX["jawOpen"]] = rng.uniform(0.15, 0.8)
        else:
            m[i, layout.jaw.start] = rng.uniform(0.1, 0.3)
    return m


def draw_views(head, appearance, n: int, data: dict, seed: int, close_share: float = 0.5):
    """Open-mouth views: ``n`` frames, ``close_share`` of them at 0.4 m instead of ``data["distance"]``."""
    from rsatalker_ros.cli.train_avatar import _view_kwargs
    from rsatalker_ros.train.stage3 import ViewSet, synthetic_views
    rng = np.random.default_rng(seed)
    n_close = int(round(close_share * n))
    sets = []
    for count, dist, s in ((n - n_close, float(data["distance"]), seed), (n_close, 0.4, seed + 1)):
        if count:
            kw = dict(_view_kwargs(data), distance=dist)
            sets.append(synthetic_views(head, appearance, count, seed=s, show_progress=False,
                                        motions=open_mouth_motions(count, head.layout, rng), **kw))
    return ViewSet.concat(sets)


def lips_center(head) -> np.ndarray:
    """Centre [3] of the neutral head's lips (metres, head frame)."""
    import torch
    with torch.no_grad():
        return head.neutral()[head.regions["lips"]].mean(0).numpy().astype(np.float64)


def mouth_closeups(head, appearance, n: int, data: dict, seed: int, distance: float = 0.25):
    """``n`` close-ups of the open mouth: cameras ``distance`` metres (+-8 %) from the lips' centre, within +-45 deg
    of the front and -10..20 deg of elevation, the jaw open in every frame; the image size and field of view of
    ``data``."""
    from rsatalker_ros.cli.train_avatar import _view_kwargs
    from rsatalker_ros.train.stage3 import synthetic_views
    motions = open_mouth_motions(n, head.layout, np.random.default_rng(seed), open_share=1.0)
    kw = dict(_view_kwargs(data), distance=distance, azimuth_deg=45.0, elevation_deg=(-10.0, 20.0))
    return synthetic_views(head, appearance, n, seed=seed, show_progress=False, motions=motions,
                           center=lips_center(head), **kw)


def visible_surface(head, views, i: int):
    """(face_id [H, W] int, -1 empty; depth [H, W] metres) of the posed mesh of view ``i`` at the view's pixels."""
    import torch
    from rsatalker_ros.render.mesh_raster import camera_arrays, project, rasterize_triangles
    with torch.no_grad():
        verts = head.from_motion(torch.from_numpy(views.motions[i:i + 1].astype(np.float32)))[0].numpy()
    view, K, w, h = camera_arrays(views.camera(i))
    fid, _, zbuf = rasterize_triangles(project(verts.astype(np.float64), view, K), head.faces.numpy(), w, h)
    return fid, zbuf


def region_masks(head, views, focus: np.ndarray, grow_px: int = 2) -> np.ndarray:
    """Float [M, H, W]: 1 where a view's visible surface is a ``focus`` triangle (bool [F]), grown by ``grow_px``
    pixels (the lip edge around the mouth's opening, where lip and mouth Gaussians meet), else 0."""
    from scipy.ndimage import binary_dilation
    out = np.zeros(views.images.shape[:3], np.float32)
    for i in range(len(views)):
        fid, _ = visible_surface(head, views, i)
        mask = (fid >= 0) & focus[np.maximum(fid, 0)]
        out[i] = binary_dilation(mask, iterations=grow_px) if grow_px and mask.any() else mask
    return out


def recolor_from_views(avatar, head, views, focus: np.ndarray, depth_tolerance: float = 0.003):
    """The avatar with its Gaussians on ``focus`` triangles (bool [F]) recoloured (SH degree 0; higher bands zeroed)
    to the mean ground-truth pixel under their posed centre, over the views where that pixel shows a focus triangle
    within ``depth_tolerance`` metres plus one pixel's footprint (centres are rounded to pixels) of the centre's
    depth. Gaussians never seen so (behind the lips or skin, or hidden by the teeth) keep their colour. Returns
    (avatar, number recoloured)."""
    import torch
    from rsatalker_ros.avatar.gaussians import GaussianAvatar, bind, rgb_to_sh0, select
    from rsatalker_ros.render.mesh_raster import camera_arrays, project
    pick = torch.from_numpy(np.flatnonzero(focus[avatar.parent.numpy()]))
    part = select(avatar, pick)
    sums = np.zeros((len(pick), 3))
    counts = np.zeros(len(pick))
    with torch.no_grad():
        verts = head.from_motion(torch.from_numpy(views.motions.astype(np.float32)))
        for i in range(len(views)):
            fid, zbuf = visible_surface(head, views, i)
            view, K, w, h = camera_arrays(views.camera(i))
            p = project(bind(part, verts[i]).means.numpy().astype(np.float64), view, K)
            x, y = np.round(p[:, 0]).astype(int), np.round(p[:, 1]).astype(int)
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            ok = np.zeros(len(pick), bool)
            f = fid[y[inside], x[inside]]
            tolerance = depth_tolerance + p[inside, 2] / K[0, 0]
            ok[inside] = (f >= 0) & focus[np.maximum(f, 0)] & (np.abs(zbuf[y[inside], x[inside]] - p[inside, 2])
                                                               < tolerance)
            sums[ok] += views.images[i][y[ok], x[ok]] / 255.0
            counts[ok] += 1
    seen = counts > 0
    sh = avatar.sh.detach().clone()
    rows = pick[torch.from_numpy(seen)]
    sh[rows] = 0.0
    sh[rows, 0] = rgb_to_sh0(torch.from_numpy((sums[seen] / counts[seen, None]).astype(np.float32)))
    return GaussianAvatar(avatar.means, avatar.log_scales, avatar.quats, avatar.opacity_logits, sh, avatar.parent,
                          avatar.faces, avatar.head), int(seen.sum())


def mouth_focus(head) -> np.ndarray:
    """Bool [F]: triangles with a corner labelled teeth, mouth inside or tongue."""
    from rsatalker_ros.face.regions import LABEL_INDEX
    labels = head.vertex_labels.numpy()[head.faces.numpy()]
    return np.isin(labels, [LABEL_INDEX[n] for n in MOUTH_LABELS]).any(1)


def with_teeth(avatar, head, counts: np.ndarray, colors: np.ndarray, share: float, budget: int = 0):
    """``avatar`` on the head's grown topology with one Gaussian on each of the ``share`` x (teeth triangles)
    most-seen teeth triangles (``counts`` [F] pixels seen); under a ``budget`` the old Gaussians are reduced first."""
    import torch
    from rsatalker_ros.avatar.gaussians import extend_to_faces
    from rsatalker_ros.avatar.levels import reduce_to_budget
    n_old = avatar.faces.shape[0]
    new = np.arange(n_old, len(head.faces))
    n_add = max(1, min(len(new), int(round(share * len(new)))))
    pick = np.sort(new[np.argsort(-counts[new], kind="stable")[:n_add]])
    with torch.no_grad():
        neutral = head.neutral()
    if budget:
        avatar = reduce_to_budget(avatar, neutral, budget - n_add)
    return extend_to_faces(avatar, neutral.numpy(), head.faces.numpy(), pick, colors[pick])


def add_teeth_to_avatar(head, avatar_name: str, cfg, data: dict, n_views: int, iterations: int,
                        level_iterations: int, work: Path, out_dir: Path | None, levels=None) -> dict:
    """Steps 1-4 of the module docstring for ``levels`` of ``avatar_name`` (default all it has); returns the
    metrics."""
    import torch
    from rsatalker_ros.avatar.gaussians import save_avatar
    from rsatalker_ros.avatar.levels import LEVEL_BUDGETS, available_levels, level_file, level_path, load_level
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.cli.train_avatar import _view_kwargs
    from rsatalker_ros.train.stage3 import ViewSet, evaluate, synthetic_views, train_stage3, triangle_pixels
    appearance = paint_head(head, size=int(data["texture_size"]))
    seed = int(data["seed"])
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    files = [work / f"views_{k}.npz" for k in ("train", "heldout", "heldout_open")]
    if all(f.is_file() for f in files):                  # a second run with the same work folder reuses them
        train, held, held_open = (ViewSet.load(f) for f in files)
    else:
        train = draw_views(head, appearance, n_views, data, seed + 7)
        held = synthetic_views(head, appearance, int(data["n_eval"]), seed=seed + 1000, show_progress=False,
                               **_view_kwargs(data))
        held_open = draw_views(head, appearance, 8, data, seed + 2000, close_share=0.0)
        for f, v in zip(files, (train, held, held_open)):
            v.save(f)
    print(f"{head.name}: {len(train)} + {len(held)} + {len(held_open)} views in {time.time() - t0:.0f} s")
    sums, counts = triangle_pixels(head, train, max_views=len(train))
    colors = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    colors[counts == 0] = np.asarray(appearance.palette.teeth, np.float32)
    focus = torch.from_numpy(mouth_focus(head))
    full_path = level_path(avatar_name)
    out_full = (out_dir / full_path.name) if out_dir else full_path
    full = load_level(avatar_name, faces=head.faces)
    metrics = {"head": head.name, "train_views": len(train), "heldout_views": len(held),
               "heldout_open_views": len(held_open), "levels": {}}
    n_full = len(full)
    for level in levels or available_levels(avatar_name):
        old = full if level == "full" else load_level(avatar_name, level, faces=head.faces)
        if old.faces.shape[0] == len(head.faces):
            raise ValueError(f"avatar {avatar_name!r} level {level} already covers every triangle of the head")
        budget = LEVEL_BUDGETS.get(level, 0)
        grown = with_teeth(old, head, counts, colors, 1.0 if not budget else budget / n_full, budget)
        steps = iterations if level == "full" else level_iterations
        path = level_file(out_full, level)
        entry = {"gaussians_before": len(old), "budget": budget, "steps": steps, "file": str(path)}
        if steps == 0:          # teeth Gaussians as initialised from the views, nothing trained or evaluated
            save_avatar(path, grown)
            metrics["levels"][level] = {**entry, "gaussians": len(grown),
                                        "teeth_gaussians": int((grown.parent >= old.faces.shape[0]).sum())}
            print(f"{head.name} {level}: {len(grown)} Gaussians, teeth initialised only; wrote {path}")
            continue
        before, _ = evaluate(old, head, held, background=cfg.background)
        before_open, _ = evaluate(old, head, held_open, background=cfg.background)
        run = replace(cfg, iterations=steps, densify_from=steps + 1, densify_until=steps, min_gaussians=0,
                      gaussian_budget=budget, lr_scale_unfocused=0.0, checkpoint_every=0)
        result = train_stage3(head, train, run, avatar=grown, focus=focus)
        save_avatar(path, result.avatar)
        after, _ = evaluate(result.avatar, head, held, background=cfg.background)
        after_open, _ = evaluate(result.avatar, head, held_open, background=cfg.background)
        metrics["levels"][level] = {
            **entry, "gaussians": len(result.avatar),
            "teeth_gaussians": int((result.avatar.parent >= old.faces.shape[0]).sum()),
            "train_seconds": round(result.seconds, 1), "heldout_before": before, "heldout_after": after,
            "open_mouth_before": before_open, "open_mouth_after": after_open}
        print(f"{head.name} {level}: held-out PSNR {before['psnr']:.2f} -> {after['psnr']:.2f} dB "
              f"(inside head {before['psnr_head']:.2f} -> {after['psnr_head']:.2f}); open mouth "
              f"{before_open['psnr_head']:.2f} -> {after_open['psnr_head']:.2f} dB inside head; wrote {path}")
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return metrics


def refit_mouth(head, avatar_name: str, cfg, data: dict, n_views: int, iterations: int, level_iterations: int,
                work: Path, out_dir: Path | None, levels=None, lambda_region: float = 1.0) -> dict:
    """``--refit-mouth`` (module docstring) for ``levels`` of ``avatar_name`` (default all it has), which must already
    have teeth Gaussians; returns the metrics (held-out before, after recolouring, after fine-tuning)."""
    import torch
    from rsatalker_ros.avatar.gaussians import save_avatar
    from rsatalker_ros.avatar.levels import LEVEL_BUDGETS, available_levels, level_file, level_path, load_level
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.cli.train_avatar import _view_kwargs
    from rsatalker_ros.train.stage3 import ViewSet, evaluate, synthetic_views, train_stage3
    appearance = paint_head(head, size=int(data["texture_size"]))
    seed = int(data["seed"])
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    names = ("train", "heldout", "heldout_open", "heldout_mouth")
    files = [work / f"views_{k}.npz" for k in names]
    if all(f.is_file() for f in files):                  # a second run with the same work folder reuses them
        sets = dict(zip(names, (ViewSet.load(f) for f in files)))
    else:
        n_plain, n_close = n_views // 4, (3 * n_views) // 8
        parts = (draw_views(head, appearance, n_views - n_plain - n_close, data, seed + 7),
                 mouth_closeups(head, appearance, n_close, data, seed + 9),
                 synthetic_views(head, appearance, n_plain, seed=seed + 11, show_progress=False, **_view_kwargs(data)))
        sets = {"train": ViewSet.concat(parts),
                "heldout": synthetic_views(head, appearance, int(data["n_eval"]), seed=seed + 1000,
                                           show_progress=False, **_view_kwargs(data)),
                "heldout_open": draw_views(head, appearance, 8, data, seed + 2000, close_share=0.0),
                "heldout_mouth": mouth_closeups(head, appearance, 8, data, seed + 3000)}
        for f, k in zip(files, names):
            sets[k].save(f)
    train = sets["train"]
    print(f"{head.name}: {' + '.join(str(len(v)) for v in sets.values())} views in {time.time() - t0:.0f} s")
    focus_np = mouth_focus(head)
    weights = region_masks(head, train, focus_np)
    focus = torch.from_numpy(focus_np)
    out_full = (out_dir / level_path(avatar_name).name) if out_dir else level_path(avatar_name)

    def scores(avatar):
        return {k: evaluate(avatar, head, sets[k], background=cfg.background)[0] for k in names[1:]}

    metrics = {"head": head.name, "views": {k: len(v) for k, v in sets.items()}, "lambda_region": lambda_region,
               "levels": {}}
    for level in levels or available_levels(avatar_name):
        old = load_level(avatar_name, level, faces=head.faces)
        if old.faces.shape[0] != len(head.faces):
            raise ValueError(f"avatar {avatar_name!r} level {level} has no teeth Gaussians yet: run without "
                             "--refit-mouth first")
        steps = iterations if level == "full" else level_iterations
        before = scores(old)
        recoloured, n_recoloured = recolor_from_views(old, head, train, focus_np)
        mid = scores(recoloured)
        run = replace(cfg, iterations=steps, densify_from=steps + 1, densify_until=steps, min_gaussians=0,
                      gaussian_budget=LEVEL_BUDGETS.get(level, 0), lr_scale_unfocused=0.0, checkpoint_every=0,
                      lambda_region=lambda_region)
        result = train_stage3(head, train, run, avatar=recoloured, focus=focus, region_weights=weights) \
            if steps else None
        final = result.avatar if result else recoloured
        path = level_file(out_full, level)
        save_avatar(path, final)
        after = scores(final)
        metrics["levels"][level] = {"gaussians": len(final), "recoloured": n_recoloured, "steps": steps,
                                    "train_seconds": round(result.seconds, 1) if result else 0.0, "file": str(path),
                                    "before": before, "recoloured_only": mid, "after": after}
        print(f"{head.name} {level}: {n_recoloured} recoloured; " + "; ".join(
            f"{k} PSNR {before[k]['psnr']:.2f} -> {mid[k]['psnr']:.2f} -> {after[k]['psnr']:.2f} dB"
            for k in names[1:]) + f"; wrote {path}")
    (work / "metrics_refit.json").write_text(json.dumps(metrics, indent=2, default=str))
    return metrics


SHEET_POSES = {"closed": {}, "open": {"jawOpen": 0.35}, "wide": {"jawOpen": 0.75}}


def mouth_sheet(heads: list[str], path, size: int = 180, levels=("full", "12k", "6k"), avatar_dir=None) -> Path:
    """PNG: per head one row of textured-mesh ground truth and one per avatar level, columns mouth closed / open /
    wide, each from the front and from 35 degrees, framed on the lower face, then a close crop of the open mouth
    from the front. avatar_dir: a folder with ``<head>.safetensors`` and its levels (default the shipped ones)."""
    import torch
    from PIL import Image, ImageDraw
    from rsatalker_ros.avatar.gaussians import bind
    from rsatalker_ros.avatar.levels import load_level
    from rsatalker_ros.avatar.textures import paint_head
    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.face.preview import arkit_motion
    from rsatalker_ros.render.api import render
    from rsatalker_ros.render.mesh_raster import render_mesh
    from rsatalker_ros.train.stage3 import orbit_camera
    rows = []
    for name in heads:
        head = load_head(name)
        appearance = paint_head(head, size=512)
        source = str(Path(avatar_dir) / f"{name}.safetensors") if avatar_dir else name
        avatars = {lv: load_level(source, lv, faces=head.faces) for lv in levels}
        lips = lips_center(head)
        strips = {"mesh": []} | {lv: [] for lv in levels}
        shots = [(pose, az, lips + np.array([0.0, 0.02, 0.0]), 0.25) for pose in SHEET_POSES.values()
                 for az in (0.0, 35.0)] + [(SHEET_POSES["open"], 0.0, lips, 0.1)]
        for pose, az, centre, distance in shots:
            with torch.no_grad():
                v = head.from_motion(arkit_motion(head, pose))[0]
            cam = orbit_camera(centre, az, 0.0, distance, size, 30.0)
            mesh = render_mesh(v.numpy(), head.faces.numpy(), cam, albedo_fn=appearance.albedo, supersample=2)
            strips["mesh"].append(mesh.image)
            for lv, av in avatars.items():
                img = render(bind(av, v), cam, np.ones(3, np.float32), backend="cpu").image
                strips[lv].append(img.clamp(0, 1).numpy())
        for key, imgs in strips.items():
            strip = Image.fromarray((np.concatenate(imgs, 1) * 255 + 0.5).astype(np.uint8))
            ImageDraw.Draw(strip).text((4, 4), f"{name}: {'textured mesh (ground truth)' if key == 'mesh' else 'avatar ' + key}",
                                       fill=(0, 0, 0))
            rows.append(np.asarray(strip))
    header = Image.new("RGB", (rows[0].shape[1], 18), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for k, pose in enumerate(SHEET_POSES):
        for j, az in enumerate(("front", "35 deg")):
            draw.text(((2 * k + j) * size + 4, 3), f"{pose}, {az}", fill=(0, 0, 0))
    draw.text((2 * len(SHEET_POSES) * size + 4, 3), "open, mouth crop", fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([np.asarray(header)] + rows, 0)).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rsatalker-avatar-add-teeth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", default="default_older", help="head with teeth: default head name or baked .npz")
    ap.add_argument("--avatar", default=None, help="avatar name or file (default: the head's shipped avatar)")
    ap.add_argument("--config", default="config/train_stage3.yaml", help="YAML with 'stage3' and 'data' sections")
    ap.add_argument("--iterations", type=int, default=150, help="fine-tuning steps of the full avatar")
    ap.add_argument("--level-iterations", type=int, default=100,
                    help="fine-tuning steps of each compact level (0: teeth Gaussians initialised only, no evaluation)")
    ap.add_argument("--views", type=int, default=96, help="training views (mouth mostly open)")
    ap.add_argument("--work", default=None,
                    help="views and metrics (default runs/teeth_<head>; with --refit-mouth, runs/mouth_<head>)")
    ap.add_argument("--out-dir", default=None,
                    help="where the avatar files go (default: over the input ones); with --sheet, the avatars drawn")
    ap.add_argument("--levels", nargs="+", default=None, help="levels to do (default all the avatar has)")
    ap.add_argument("--refit-mouth", action="store_true",
                    help="avatars that already have teeth: recolour the mouth Gaussians from the views and fine-tune "
                         "the mouth with a mouth-weighted loss")
    ap.add_argument("--lambda-region", type=float, default=1.0,
                    help="with --refit-mouth: weight of the extra L1 over the mouth's pixels (>= 0)")
    ap.add_argument("--sheet", default=None, help="only write this contact sheet PNG of --heads")
    ap.add_argument("--heads", nargs="+", default=["default_older", "default_younger"], help="heads of the sheet")
    args = ap.parse_args(argv)
    if args.sheet:
        print(f"wrote {mouth_sheet(args.heads, args.sheet, avatar_dir=args.out_dir)}")
        return 0
    from rsatalker_ros.cli.train_avatar import below_minimum, config_and_head
    if below_minimum((("iterations", args.iterations, 1), ("level-iterations", args.level_iterations, 0),
                      ("views", args.views, 1))):
        return 2
    loaded = config_and_head(args.config, args.head)
    if loaded is None:
        return 2
    cfg, data, head = loaded
    import torch
    if "upper_teeth" not in head.regions:
        print(f"error: head {args.head!r} has no teeth (regions upper_teeth / lower_teeth); bake it again",
              file=sys.stderr)
        return 2
    torch.manual_seed(cfg.seed)
    if args.refit_mouth:
        if args.lambda_region < 0:
            print(f"error: --lambda-region must be >= 0, got {args.lambda_region}", file=sys.stderr)
            return 2
        refit_mouth(head, args.avatar or head.name, cfg, data, args.views, args.iterations, args.level_iterations,
                    Path(args.work or f"runs/mouth_{head.name}"), Path(args.out_dir) if args.out_dir else None,
                    args.levels, args.lambda_region)
        return 0
    add_teeth_to_avatar(head, args.avatar or head.name, cfg, data, args.views, args.iterations,
                        args.level_iterations, Path(args.work or f"runs/teeth_{head.name}"),
                        Path(args.out_dir) if args.out_dir else None, args.levels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
