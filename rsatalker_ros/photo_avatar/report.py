"""The report of an avatar made from a photo: images and the figures that say how close it is.

* ``report.png``: the photo (cropped to the head) beside the avatar rendered from the photo's camera and with the
  head turned by -45 and +45 degrees;
* ``visemes.png``: the avatar speaking a few visemes (mouth shapes from ``data.visemes``);
* ``landmarks.png``: the photo with the detected landmarks (green) and the fitted head's (red);
* PSNR inside the face polygon (jaw contour and brows) and SSIM over its bounding box, render against photo;
* identity distance (dlib's 128-d descriptor) between the photo and the render from the photo's camera, and the
  same for both shipped default avatars posed and framed identically (dlib: < 0.6 = the same person).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from rsatalker_ros.photo_avatar import detect

REPORT_VISEMES = ("AA", "OH", "WW", "PP", "FF", "IH")
TURNS_DEG = (-45.0, 45.0)


def turned(camera, center, yaw_deg: float):
    """The camera seeing the head turned by ``yaw_deg`` about its vertical axis through ``center``."""
    from dataclasses import replace
    a = math.radians(yaw_deg)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = center - rot @ center
    return replace(camera, world_to_cam=camera.world_to_cam @ m)


def render_avatar_image(avatar, head, motion: np.ndarray, camera, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """rgb uint8 [H, W, 3] of ``avatar`` on ``head`` posed by ``motion`` [D], CPU renderer."""
    from rsatalker_ros.avatar.gaussians import bind
    from rsatalker_ros.render.api import render
    with torch.no_grad():
        verts = head.from_motion(torch.as_tensor(motion, dtype=torch.float32)[None])[0]
        img = render(bind(avatar, verts), camera, np.asarray(background, np.float32), backend="cpu").image
    return (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def viseme_motions(head) -> dict[str, np.ndarray]:
    """{viseme: motion [D]} holding each viseme's mouth shape (coarticulation model of ``data.visemes``)."""
    from rsatalker_ros.data.visemes import PHONEME_VISEMES, mouth_blendshapes
    out = {}
    for v in REPORT_VISEMES:
        sym = next(p for p, vs in PHONEME_VISEMES.items() if vs == (v,))
        frames = mouth_blendshapes([(sym, 0, 16000)], np.full(16000, 0.3, np.float32), 25)
        m = np.zeros(head.layout.dim, np.float32)
        m[head.layout.expression] = frames[12]
        out[v] = m
    return out


def face_polygon_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """[size, size] bool inside the polygon of the jaw contour (0-16) and the brows (26..17)."""
    from PIL import Image, ImageDraw
    poly = np.concatenate([landmarks[0:17], landmarks[17:27][::-1]])
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).polygon([tuple(map(float, p)) for p in poly], fill=1)
    return np.asarray(im).astype(bool)


def face_metrics(render: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> dict:
    """PSNR (dB) inside ``mask`` and SSIM over its bounding box, of two rgb uint8 images."""
    from rsatalker_ros.train.ssim import ssim
    a, b = render.astype(np.float64) / 255.0, photo.astype(np.float64) / 255.0
    mse = float(((a - b)[mask] ** 2).mean())
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    s = float(ssim(torch.from_numpy(a[y0:y1, x0:x1]).float(), torch.from_numpy(b[y0:y1, x0:x1]).float()))
    return {"psnr_face_db": round(10 * math.log10(1.0 / max(mse, 1e-12)), 2), "ssim_face": round(s, 4),
            "face_pixels": int(mask.sum())}


def _descriptor_of_render(img: np.ndarray):
    found = detect.find_faces(img, threshold=-0.5)
    if not found:
        return None
    return detect.face_descriptor(img, found[0])


def identity_figures(photo: np.ndarray, face, renders: dict) -> dict:
    """{name: dlib distance photo <-> render} for rgb uint8 renders (None where dlib finds no face)."""
    ref = detect.face_descriptor(photo, face)
    out = {}
    for k, img in renders.items():
        d = _descriptor_of_render(img)
        out[k] = None if d is None else round(detect.identity_distance(ref, d), 4)
    return out


def _save(path, rows):
    from PIL import Image
    Image.fromarray(np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)).save(path)


def write_report(out: Path, photo: np.ndarray, face, head, avatar, camera, motion: np.ndarray, box, size: int,
                 background=(1.0, 1.0, 1.0)) -> dict:
    """Write report.png, visemes.png and landmarks.png into ``out``; returns the figures."""
    from rsatalker_ros.avatar.gaussians import load_avatar
    from rsatalker_ros.avatar.avatar_io import resolve_avatar
    from rsatalker_ros.face.head_model import DEFAULT_HEADS, load_head
    from rsatalker_ros.photo_avatar.pipeline import crop_camera, crop_image
    from rsatalker_ros.train.stage3 import head_center
    cam = crop_camera(camera, box, size)
    center = head_center(head)
    photo_crop = crop_image(photo, box, size)
    front = render_avatar_image(avatar, head, motion, cam, background)
    sides = [render_avatar_image(avatar, head, motion, turned(cam, center, a), background) for a in TURNS_DEG]
    _save(out / "report.png", [[photo_crop, front, *sides]])
    vis = viseme_motions(head)
    _save(out / "visemes.png", [[render_avatar_image(avatar, head, m, cam, background) for m in vis.values()]])
    # landmarks: detected (green) and fitted (red), on the crop
    s = size / box[2]
    lm_crop = (face.landmarks - np.array(box[:2])) * s
    from PIL import Image, ImageDraw
    im = Image.fromarray(photo_crop.copy())
    dr = ImageDraw.Draw(im)
    for x, y in lm_crop:
        dr.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(0, 255, 0))
    im.save(out / "landmarks.png")

    figures = {"report_images": ["report.png", "visemes.png", "landmarks.png", "texture.png"]}
    mask = face_polygon_mask(lm_crop, size)
    figures.update(face_metrics(front, photo_crop, mask))
    # identity: the photo against the render from its camera, and against both default avatars posed alike
    renders = {"fitted": front}
    for name in DEFAULT_HEADS:
        dh = load_head(name)
        da = load_avatar(resolve_avatar(name), faces=dh.faces)
        renders[name] = render_avatar_image(da, dh, motion, cam, background)
    _save(out / "defaults.png", [[photo_crop, *renders.values()]])
    figures["identity_distance"] = identity_figures(photo, face, renders)
    return figures
