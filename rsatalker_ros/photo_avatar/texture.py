"""A UV texture for a fitted head from its photo.

Per texel of the head's UV map (``textures.texel_attributes`` layout, 0..1 rgb, row 0 is v = 1):
1. photo: the texel's surface point on the head posed as in the photo is projected with the fitted camera; where
   it is the visible surface (z-buffer of the posed mesh, 3 mm tolerance) and faces the camera, the photo's colour
   is taken, divided by the renderer's own Lambert term there (so a render with the same light gives back the
   photo), with a weight that falls off towards grazing angles;
2. mirror: where a texel is hidden and its mirror image across the face's symmetry plane (x -> -x in the head
   frame) is seen, the mirror's photo colour is used;
3. default: everything else (back, sides, under the chin) is the painted default texture (``textures``), with a
   palette from the photo's skin and lips and its colours matched per channel (mean and spread) to the seen skin;
4. eyes, mouth interior, tongue and teeth always come from the default texture.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from rsatalker_ros.avatar.textures import Palette, _dilate, paint_texture, palette_for
from rsatalker_ros.face.regions import LABEL_INDEX
from rsatalker_ros.render.mesh_raster import camera_arrays, project, rasterize_triangles, vertex_normals

NEVER_FROM_PHOTO = ("eye_white", "iris", "pupil", "mouth_inside", "tongue", "teeth", "eye_socket")
DEPTH_TOLERANCE_M = 0.003
LIGHT = dict(light_dir=(0.3, 0.5, 1.0), ambient=0.45, diffuse=0.55)   # the mesh_raster defaults


def uv_layout(head, size: int):
    """Texel -> surface: (covered [S, S] bool, face [S, S] int triangle, bary [S, S, 3])."""
    uvs = np.asarray(head.uvs, np.float64)
    screen = np.stack([uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5, np.ones(len(uvs))], axis=1)
    fid, bary, _ = rasterize_triangles(screen, np.asarray(head.face_uvs, np.int64), size, size)
    return fid >= 0, np.where(fid >= 0, fid, 0), bary.astype(np.float64)


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    im = image.astype(np.float64)
    return ((im[y0, x0] * (1 - fx) + im[y0, x0 + 1] * fx) * (1 - fy)
            + (im[y0 + 1, x0] * (1 - fx) + im[y0 + 1, x0 + 1] * fx) * fy)


def _match_gain(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel gain [3] that maps the median colour of ``src`` [n, 3] onto that of ``ref`` [m, 3]."""
    return np.clip(np.median(ref, 0) / np.maximum(np.median(src, 0), 1e-3), 0.3, 3.0)


def photo_texture(head, photo: np.ndarray, camera, motion: np.ndarray, size: int = 512,
                  below_y: float | None = None):
    """(texture [S, S, 3] float32 0..1, palette, stats dict) for ``head`` (HeadModel with UVs and labels) seen in
    ``photo`` (rgb uint8) by ``camera`` (render.camera.Camera, head frame = world) with the head posed by
    ``motion`` [D] (head layout). ``below_y``: rest-pose height (m) under which the photo is not used (the neck
    below the chin, often hidden by clothes)."""
    faces = np.asarray(head.faces, np.int64)
    labels = np.asarray(head.vertex_labels, np.int64)
    with torch.no_grad():
        posed = head.from_motion(torch.as_tensor(motion, dtype=torch.float32)[None])[0].numpy().astype(np.float64)
        rest = head.neutral().numpy().astype(np.float64)
    view, K, w, h = camera_arrays(camera)
    screen = project(posed, view, K)
    _, _, zbuf = rasterize_triangles(screen, faces, w, h)

    covered, fid, bary = uv_layout(head, size)
    f = fid[covered]
    b = bary[covered]
    tri = faces[f]
    p = np.einsum("nk,nkc->nc", b, posed[tri])
    p_rest = np.einsum("nk,nkc->nc", b, rest[tri])
    normals = vertex_normals(posed, faces)
    n = np.einsum("nk,nkc->nc", b, normals[tri])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    s = project(p, view, K)
    cam_centre = -view[:3, :3].T @ view[:3, 3]
    to_cam = cam_centre - p
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    facing = (n * to_cam).sum(1)
    xi = np.clip(np.round(s[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(s[:, 1]).astype(int), 0, h - 1)
    inside = (s[:, 0] >= 0) & (s[:, 0] <= w - 1) & (s[:, 1] >= 0) & (s[:, 1] <= h - 1)
    visible = inside & (s[:, 2] <= zbuf[yi, xi] + DEPTH_TOLERANCE_M) & (facing > 0)
    texel_label = labels[tri[np.arange(len(tri)), b.argmax(1)]]
    never = np.isin(texel_label, [LABEL_INDEX[x] for x in NEVER_FROM_PHOTO])
    # near the silhouette the fit is least exact and the photo's background is close: only texels facing the
    # camera (cos > 0.4, full weight from 0.7) take the photo's colour
    weight = np.where(visible & ~never, np.clip((facing - 0.4) / 0.3, 0.0, 1.0), 0.0)
    if below_y is not None:
        weight *= np.clip((p_rest[:, 1] - below_y) / 0.01, 0.0, 1.0)

    light = np.asarray(LIGHT["light_dir"], np.float64)
    light /= np.linalg.norm(light)
    n_front = np.where((n * to_cam).sum(1, keepdims=True) < 0, -n, n)
    shading = LIGHT["ambient"] + LIGHT["diffuse"] * np.clip(n_front @ light, 0, None)
    photo_rgb = _bilinear(photo, s[:, 0], s[:, 1]) / 255.0
    albedo = np.clip(photo_rgb / np.maximum(shading, 0.75)[:, None], 0.0, 1.0)

    # mirror: the texel at (-x, y, z) of the rest head
    from scipy.spatial import cKDTree
    tree = cKDTree(p_rest)
    _, mirror = tree.query(p_rest * np.array([-1.0, 1.0, 1.0]))
    w_m = weight[mirror]
    albedo_m = albedo[mirror]

    # default texture with a palette from the photo, then matched to the seen skin
    skin_like = np.isin(texel_label, [LABEL_INDEX[x] for x in ("skin", "eyelid", "ear")])
    seen_skin = skin_like & (weight > 0.8)
    lips = (texel_label == LABEL_INDEX["lips"]) & (weight > 0.8)
    base = palette_for("")
    if seen_skin.sum() < 50:
        raise ValueError("too little skin of the face is visible in the photo to colour the head")
    skin = np.median(albedo[seen_skin], axis=0)
    pal = replace(base, skin=tuple(skin), cheek=tuple(np.clip(skin * np.array([1.03, 0.92, 0.92]), 0, 1)),
                  lips=tuple(np.median(albedo[lips], axis=0)) if lips.sum() > 20 else base.lips)
    default = paint_texture(head, pal, size).astype(np.float64)
    d = default[covered]
    gain = _match_gain(d[seen_skin], albedo[seen_skin])
    matched = np.where(skin_like[:, None], np.clip(d * gain, 0, 1), d)
    fill = w_m[:, None] * albedo_m + (1 - w_m[:, None]) * matched
    fill = np.where(never[:, None], d, fill)
    col = weight[:, None] * albedo + (1 - weight[:, None]) * fill
    tex = np.zeros((size, size, 3))
    tex[covered] = col
    tex = _dilate(tex, covered)
    stats = {"texels": int(covered.sum()), "from_photo": float((weight > 0.5).mean()),
             "from_mirror": float(((weight <= 0.5) & (w_m > 0.5) & ~never).mean()),
             "skin_rgb": [round(float(x), 3) for x in skin]}
    return tex.astype(np.float32), pal, stats
