"""Photo -> head + Gaussian avatar + report, the library form of ``rsatalker-avatar-from-photo``.

    from rsatalker_ros.photo_avatar.pipeline import avatar_from_photo
    report = avatar_from_photo("me.jpg", "avatars/me")          # -> avatars/me/me.npz, me.safetensors, report.*

Steps: detect the face and 68 landmarks (``detect``); find where those landmarks sit on the head mesh by
detecting them on renders of the painted default head (``correspondence``); fit anny's phenotype, the face's
local shape changes, the expression, the head pose and the focal length to them (``fit``); bake the fitted head
like the default heads (``face.anny_bake``); texture it from the photo (``texture``); train a stage-3 Gaussian
avatar on views of the textured head plus the photo itself (``train.stage3``); train its compact levels of detail
(12k and 6k Gaussians, ``avatar.levels.train_levels`` as for the shipped avatars) on the same views and measure
every level on held-out synthetic views plus the photo; write the report (``report``).

The head file ``<name>.npz`` and the avatar ``<name>.safetensors`` lie side by side, so a graph participant with
``head: DIR/<name>.npz`` finds its avatar without more settings (``avatar_io.resolve_avatar``), and its levels
``<name>.12k.safetensors`` / ``<name>.6k.safetensors`` beside those (``avatar.levels``), which the renderer steps
down to when its renders get slow, as for the shipped avatars.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rsatalker_ros.photo_avatar.fit import FitConfig
from rsatalker_ros.train.stage3 import Stage3Config

CORRESPONDENCE_HEAD = "default_younger"   # the default head whose renders give the landmark anchors


def _stage3_defaults() -> Stage3Config:
    return Stage3Config(iterations=500, densify_from=100, densify_until=400, densify_every=100, min_gaussians=20000,
                        checkpoint_every=0)


@dataclass
class PhotoAvatarConfig:
    name: str = ""                    # head/avatar name; "" = from the photo's file name
    texture_size: int = 512           # texels per side of the head's UV texture
    n_views: int = 120                # synthetic training views of the textured head (stage 3)
    view_size: int = 160              # stage-3 image size, pixels
    photo_share: float = 0.12         # fraction of the stage-3 views that are the photo itself
    azimuth_deg: float = 75.0         # synthetic views within +-this of the front
    report_size: int = 256            # report images, pixels
    levels: tuple = ("12k", "6k")     # levels of detail trained after stage 3 (names of avatar.levels.LEVEL_BUDGETS)
    level_iterations: int = 150       # stage-3 steps per level
    heldout_views: int = 8            # synthetic held-out views (plus the photo) every level's PSNR is measured on
    seed: int = 0
    fit: FitConfig = field(default_factory=FitConfig)
    stage3: Stage3Config = field(default_factory=_stage3_defaults)


def safe_name(photo: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", photo.stem).strip("_") or "photo"
    return name if name[0].isalpha() else "photo_" + name


def crop_camera(camera, box, size: int):
    """The camera of a square crop ``box`` (left, top, side) of ``camera``'s image, resized to ``size`` pixels."""
    from rsatalker_ros.render.camera import Camera
    x0, y0, side = box
    s = size / side
    return Camera(size, size, camera.fx * s, camera.fy * s, (camera.cx - x0 + 0.5) * s - 0.5,
                  (camera.cy - y0 + 0.5) * s - 0.5, camera.world_to_cam)


def crop_image(image: np.ndarray, box, size: int, fill=255) -> np.ndarray:
    """Square crop (left, top, side) of an rgb uint8 image, padded with ``fill`` outside, resized to ``size``."""
    from PIL import Image
    x0, y0, side = (int(round(v)) for v in box)
    h, w = image.shape[:2]
    canvas = np.full((side, side, 3), fill, np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.LANCZOS))


def head_box(vertices: np.ndarray, camera, margin: float = 0.08):
    """Square box (left, top, side) around the projection of ``vertices`` [V, 3], integer pixels."""
    uv, _ = camera.project(vertices)
    lo, hi = uv.min(0), uv.max(0)
    side = float((hi - lo).max()) * (1 + 2 * margin)
    c = 0.5 * (lo + hi)
    return (int(round(c[0] - side / 2)), int(round(c[1] - side / 2)), int(round(side)))


def with_photo_view(synth, photo_view: np.ndarray, motion: np.ndarray, camera, copies: int):
    """``synth`` (a ViewSet) plus ``copies`` of the photo's view (photo_view [S, S, 3] uint8, motion [D], the crop's
    camera)."""
    from rsatalker_ros.train.stage3 import ViewSet
    return ViewSet(np.concatenate([synth.images, np.repeat(photo_view[None], copies, 0)]),
                   np.concatenate([synth.motions, np.repeat(motion[None], copies, 0)]),
                   np.concatenate([synth.world_to_cam, np.repeat(camera.world_to_cam[None], copies, 0)]),
                   np.concatenate([synth.K, np.repeat(camera.K[None], copies, 0)]))


def avatar_from_photo(photo, out_dir, cfg: PhotoAvatarConfig | None = None, show_progress: bool = True) -> dict:
    """Make ``<out_dir>/<name>.npz`` (head), ``<name>.safetensors`` (avatar), its levels ``<name>.<level>.safetensors``
    and the report from one portrait.

    photo: a file path or an rgb uint8 array [H, W, 3]. Raises ``detect.PhotoError`` for a photo that cannot make
    an avatar (unreadable, no face, several faces, a tiny or turned-away face). Returns the report dict (also
    written to ``<out_dir>/report.json``)."""
    from rsatalker_ros.avatar.gaussians import save_avatar
    from rsatalker_ros.avatar.levels import train_levels
    from rsatalker_ros.avatar.textures import HeadAppearance, paint_head
    from rsatalker_ros.face.anny_bake import Participant, bake_anny_head
    from rsatalker_ros.face.head_model import HeadModel, load_head
    from rsatalker_ros.photo_avatar import detect, report as rep
    from rsatalker_ros.photo_avatar.correspondence import find_anchors
    from rsatalker_ros.photo_avatar.fit import build_face_model, fit_head
    from rsatalker_ros.photo_avatar.texture import photo_texture
    from rsatalker_ros.render.camera import Camera
    from rsatalker_ros.render.mesh_raster import render_mesh
    from rsatalker_ros.train.stage3 import evaluate, synthetic_views, train_stage3

    cfg = cfg or PhotoAvatarConfig()
    t_start = time.time()
    timings = {}
    if isinstance(photo, (str, Path)):
        image = detect.load_photo(photo)
        label = str(photo)
        name = cfg.name or safe_name(Path(photo))
    else:
        image = np.asarray(photo)
        label = "the photo"
        name = cfg.name or "photo"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ValueError(f"name {name!r}: expected letters, digits and '_', starting with a letter")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=8, desc="avatar from photo", unit="step", disable=not show_progress)

    def done(key):
        timings[key] = round(time.time() - t_start - sum(timings.values()), 1)
        steps.update()

    steps.set_postfix_str("face detection")
    face = detect.detect_face(image, label)
    done("detect_s")

    steps.set_postfix_str("landmark anchors on the default head")
    ref_head = load_head(CORRESPONDENCE_HEAD)
    anchors = find_anchors(ref_head, paint_head(ref_head, size=cfg.texture_size))
    done("anchors_s")

    steps.set_postfix_str("fit the head")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = build_face_model()
    fit = fit_head(face, (image.shape[1], image.shape[0]), anchors, model, ref_head.faces.numpy(), cfg.fit,
                   show_progress=show_progress)
    head_data = bake_anny_head(model, Participant(name, fit.phenotype, f"fitted to {Path(label).name}",
                                                  fit.local_changes))
    head_path = out / f"{name}.npz"
    head_data.save(head_path)
    head = HeadModel(head_data, name=name)
    del model
    motion = np.zeros(head.layout.dim, np.float32)
    motion[head.layout.expression] = fit.expression
    h, w = image.shape[:2]
    camera = Camera(w, h, fit.focal, fit.focal, fit.principal[0], fit.principal[1], fit.world_to_cam)
    with torch.no_grad():
        posed = head.from_motion(torch.from_numpy(motion)[None])[0].numpy().astype(np.float64)
    # the error of the baked head (what the avatar uses), not of the fitting model
    lm_px, _ = camera.project(anchors.points(posed, head.faces.numpy()))
    err = np.linalg.norm(lm_px - face.landmarks, axis=1)
    done("fit_s")

    steps.set_postfix_str("texture")
    chin_y = float(anchors.points(head.neutral().detach().numpy(), head.faces.numpy())[8, 1])
    texture, palette, tex_stats = photo_texture(head, image, camera, motion, cfg.texture_size, below_y=chin_y)
    ref = paint_head(head, palette, size=16)        # eyes per pixel, as for the default heads
    appearance = HeadAppearance(texture=texture, uvs=ref.uvs, face_uvs=ref.face_uvs, faces=ref.faces,
                                rest_vertices=ref.rest_vertices, eye_faces=ref.eye_faces,
                                eye_centers=ref.eye_centers, palette=palette)
    from PIL import Image
    Image.fromarray((texture * 255 + 0.5).astype(np.uint8)).save(out / "texture.png")
    done("texture_s")

    steps.set_postfix_str("stage-3 views")
    box = head_box(posed, camera)
    cam_crop = crop_camera(camera, box, cfg.view_size)
    alpha = render_mesh(posed, head.faces.numpy(), cam_crop, albedo_fn=appearance.albedo, supersample=3).alpha
    photo_view = crop_image(image, box, cfg.view_size).astype(np.float32)
    photo_view = (alpha[..., None] * photo_view + (1 - alpha[..., None]) * 255.0 * np.asarray(cfg.stage3.background))
    photo_view = np.clip(photo_view + 0.5, 0, 255).astype(np.uint8)
    synth = synthetic_views(head, appearance, cfg.n_views, size=cfg.view_size, seed=cfg.seed + 1,
                            azimuth_deg=cfg.azimuth_deg, background=cfg.stage3.background,
                            show_progress=show_progress)
    reps = max(1, int(round(cfg.photo_share * cfg.n_views / (1 - cfg.photo_share))))
    views = with_photo_view(synth, photo_view, motion, cam_crop, reps)
    held = with_photo_view(synthetic_views(head, appearance, cfg.heldout_views, size=cfg.view_size,
                                           seed=cfg.seed + 2, azimuth_deg=cfg.azimuth_deg,
                                           background=cfg.stage3.background, show_progress=False),
                           photo_view, motion, cam_crop, 1)
    done("views_s")

    steps.set_postfix_str("stage 3")
    result = train_stage3(head, views, cfg.stage3, show_progress=show_progress)
    avatar_path = out / f"{name}.safetensors"
    save_avatar(avatar_path, result.avatar)
    done("stage3_s")

    steps.set_postfix_str("levels of detail")
    m_full, _ = evaluate(result.avatar, head, held, background=cfg.stage3.background)
    trained, _ = train_levels(head, result.avatar, avatar_path, views, held, cfg.stage3, cfg.level_iterations,
                              cfg.levels, show_progress=show_progress)
    levels = {"full": {"gaussians": len(result.avatar), **m_full}, **trained}
    done("levels_s")

    steps.set_postfix_str("report")
    report = {
        "photo": label, "name": name, "head": str(head_path), "avatar": str(avatar_path),
        "image_size": [w, h], "face_box": [round(float(x), 1) for x in face.box],
        "inter_ocular_px": round(face.inter_ocular, 2),
        "landmark_error_px": round(float(err.mean()), 3),
        "landmark_error_iod_percent": round(100 * float(err.mean()) / face.inter_ocular, 3),
        "landmark_error_max_px": round(float(err.max()), 3),
        "fit_error_px": round(fit.error_px, 3), "focal_px": round(fit.focal, 1),
        "phenotype": fit.phenotype, "local_changes": len(fit.local_changes),
        "texture": tex_stats, "stage3": {"iterations": cfg.stage3.iterations, "views": len(views),
                                         "photo_views": reps, "gaussians": len(result.avatar),
                                         "final_psnr": result.history[-1][2] if result.history else None},
        "levels": levels, "levels_eval_views": len(held),    # held-out synthetic views + the photo
    }
    report.update(rep.write_report(out, image, face, head, result.avatar, camera, motion, box, cfg.report_size,
                                   background=cfg.stage3.background))
    done("report_s")
    steps.close()
    report["seconds"] = {**timings, "total_s": round(time.time() - t_start, 1)}
    report["config"] = json.loads(json.dumps(asdict(cfg), default=str))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
