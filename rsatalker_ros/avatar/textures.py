"""Painting a UV texture for a default head: skin, lips, sclera and iris, mouth and teeth, eyebrows, hair.

The colours come from the head file alone (no anny at run time): its per-vertex labels (``HeadModel.vertex_labels``,
names in ``face.regions.LABEL_NAMES``), its UV-space region masks (``uv_masks``: face, lips, eyelids, ears,
inside-mouth, CC0 from MakeHuman) and its neutral geometry. The texture is painted per texel:

1. the UV layout is rasterised (``mesh_raster.rasterize_triangles`` with z = 1), giving every texel its triangle
   and barycentric weights, hence its neutral 3D position and a soft label mix (interpolated one-hot labels);
2. a base colour is blended from the label mix (skin, lips, mouth, tongue, eye socket, sclera);
3. crisp features are drawn from the texel's 3D position, with soft edges (a few tenths of a millimetre to a
   few millimetres) so a rendered image is free of aliasing: iris and pupil by the angle from each eye's forward
   axis, eyebrows as arches above the eyes, hair above a hairline and over the back of the head, lip colour from
   the lips mask, a mouth interior that darkens with depth, and the teeth (``face/teeth.py``: enamel, the gaps
   between teeth and the gums, from their UV rectangles);
4. empty texels around UV islands are filled from their neighbours so bilinear sampling never bleeds.

Shading is not baked in: ``render/mesh_raster.py`` applies Lambert shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsatalker_ros.face.regions import LABEL_INDEX, LABEL_NAMES
from rsatalker_ros.face.teeth import GUM_V, TEETH_PER_ARCH, UV_RECTS
from rsatalker_ros.render.mesh_raster import rasterize_triangles, sample_texture


@dataclass(frozen=True)
class Palette:
    """Albedo colours (rgb in 0..1) of one head."""
    skin: tuple = (0.80, 0.60, 0.50)
    lips: tuple = (0.68, 0.36, 0.36)
    hair: tuple = (0.30, 0.20, 0.13)
    eyebrow: tuple = (0.24, 0.16, 0.11)
    iris: tuple = (0.36, 0.25, 0.15)
    sclera: tuple = (0.93, 0.91, 0.88)
    pupil: tuple = (0.04, 0.03, 0.03)
    mouth: tuple = (0.40, 0.13, 0.13)
    tongue: tuple = (0.75, 0.38, 0.40)
    teeth: tuple = (0.92, 0.90, 0.82)
    gum: tuple = (0.76, 0.42, 0.43)
    cavity: tuple = (0.12, 0.04, 0.045)  # the back of the mouth
    socket: tuple = (0.30, 0.16, 0.15)
    cheek: tuple = (0.82, 0.52, 0.46)   # a little redder than skin, blended on the cheeks and ears


PALETTES = {
    "default_older": Palette(skin=(0.78, 0.61, 0.52), lips=(0.64, 0.40, 0.40), hair=(0.66, 0.65, 0.63),
                             eyebrow=(0.47, 0.45, 0.43), iris=(0.33, 0.45, 0.55), cheek=(0.78, 0.54, 0.48)),
    "default_younger": Palette(skin=(0.85, 0.66, 0.55), lips=(0.74, 0.38, 0.40), hair=(0.23, 0.15, 0.09),
                               eyebrow=(0.19, 0.12, 0.08), iris=(0.38, 0.24, 0.12), cheek=(0.86, 0.56, 0.50)),
}

CAVITY_DARK_FROM_M = 0.012   # the mouth's inside darkens from this far behind the front of the lips ...
CAVITY_DARK_OVER_M = 0.015   # ... to pal.cavity over this depth
IRIS_DEG = 33.0   # angular radius of the iris from the eye's forward axis (+z)
PUPIL_DEG = 13.0  # angular radius of the pupil


def palette_for(head_name: str) -> Palette:
    """The palette of a default head, or the neutral default palette for any other head."""
    return PALETTES.get(head_name, Palette())


def _smooth(x):
    """Smoothstep from 0 (x <= -1) to 1 (x >= 1)."""
    t = np.clip(0.5 * (np.asarray(x, np.float64) + 1.0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mix(base, colour, w):
    return base * (1.0 - w[:, None]) + np.asarray(colour, np.float64)[None] * w[:, None]


def eye_colors(P: np.ndarray, eyes: np.ndarray, pal: Palette) -> np.ndarray:
    """Sclera, iris (with a darker rim) and pupil colours [n, 3] of rest-pose eyeball points P [n, 3], from the
    angle between (P - eye centre) and the eye's forward axis (+z); ``eyes`` [2, 3] are the eye joints."""
    left = P[:, 0] > 0.5 * (eyes[0, 0] + eyes[1, 0])
    c = np.where(left[:, None], eyes[np.argmax(eyes[:, 0])], eyes[np.argmin(eyes[:, 0])])
    d = P - c
    ang = np.degrees(np.arccos(np.clip(d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9), -1, 1)))
    out = np.tile(np.asarray(pal.sclera, np.float64), (len(P), 1))
    out = _mix(out, np.asarray(pal.iris) * 0.6, _smooth((IRIS_DEG - ang) / 1.5))
    out = _mix(out, pal.iris, _smooth((IRIS_DEG - 4.0 - ang) / 3.0))
    return _mix(out, pal.pupil, _smooth((PUPIL_DEG - ang) / 1.5))


def texel_attributes(head, size: int):
    """Rasterise the UV layout: (covered [S, S] bool, position [S, S, 3] neutral metres, labels [S, S, L] soft
    label weights summing to 1, masks {name: [S, S] 0..1}) for a head with uvs, face_uvs and vertex_labels."""
    uvs = np.asarray(head.uvs, np.float64)
    face_uvs = np.asarray(head.face_uvs, np.int64)
    faces = np.asarray(head.faces, np.int64)
    verts = np.asarray(head.neutral().detach(), np.float64)
    labels = np.asarray(head.vertex_labels, np.int64)
    # texel (col, row) has its centre at u = (col + 0.5) / S, v = 1 - (row + 0.5) / S (v up; see sample_texture)
    screen = np.stack([uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5, np.ones(len(uvs))], axis=1)
    fid, bary, _ = rasterize_triangles(screen, face_uvs, size, size)
    covered = fid >= 0
    f = np.where(covered, fid, 0)
    tri = faces[f]                                           # [S, S, 3] vertex ids
    b = bary.astype(np.float64)
    pos = np.einsum("hwk,hwkc->hwc", b, verts[tri])
    onehot = np.eye(len(LABEL_NAMES))[labels]                # [V, L]
    lab = np.einsum("hwk,hwkl->hwl", b, onehot[tri])
    masks = {}
    if getattr(head, "uv_masks", None) is not None:
        ys, xs = np.mgrid[0:size, 0:size]
        uv_grid = np.stack([(xs + 0.5) / size, 1.0 - (ys + 0.5) / size], axis=-1)
        for name, m in zip(head.uv_mask_names, np.asarray(head.uv_masks)):
            masks[name] = sample_texture(m[..., None].astype(np.float32) / 255.0, uv_grid)[..., 0]
    return covered, pos, lab, masks


def _dilate(tex: np.ndarray, covered: np.ndarray, passes: int = 8) -> np.ndarray:
    """Fill empty texels with the mean of their filled 4-neighbours, ``passes`` times (texels beyond stay grey)."""
    tex = tex.copy()
    filled = covered.copy()
    for _ in range(passes):
        acc = np.zeros_like(tex)
        cnt = np.zeros(filled.shape, np.float64)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            m = np.roll(filled, (dy, dx), axis=(0, 1))
            acc += np.roll(tex * filled[..., None], (dy, dx), axis=(0, 1))
            cnt += m
        new = (~filled) & (cnt > 0)
        tex[new] = acc[new] / cnt[new, None]
        filled |= new
    tex[~filled] = 0.5
    return tex


def paint_texture(head, palette: Palette | None = None, size: int = 512) -> np.ndarray:
    """Albedo texture [size, size, 3] float32 (0..1, row 0 is v = 1) for ``head`` (a ``HeadModel`` with uvs,
    face_uvs and vertex_labels, e.g. ``load_head("default_older")``). ``palette`` defaults to ``palette_for``."""
    if getattr(head, "uvs", None) is None or getattr(head, "face_uvs", None) is None:
        raise ValueError("paint_texture needs a head with UVs (uvs [Vt, 2], face_uvs [F, 3]), e.g. a default head")
    if getattr(head, "vertex_labels", None) is None:
        raise ValueError("paint_texture needs per-vertex labels (vertex_labels [V]), e.g. a default head")
    if int(size) < 16:
        raise ValueError(f"size must be >= 16 texels, got {size}")
    size = int(size)
    pal = palette or palette_for(getattr(head, "name", ""))
    covered, pos, lab, masks = texel_attributes(head, size)
    P = pos[covered]                      # [n, 3]
    W = lab[covered]                      # [n, L]
    L = LABEL_INDEX
    w = lambda *names: sum(W[:, L[n]] for n in names)  # noqa: E731

    # 2. base colour from the soft label mix
    base_of = {"skin": pal.skin, "lips": pal.lips, "eye_white": pal.sclera, "iris": pal.sclera, "pupil": pal.sclera,
               "mouth_inside": pal.mouth, "tongue": pal.tongue, "teeth": pal.teeth, "eyebrow": pal.skin,
               "scalp": pal.skin, "eye_socket": pal.socket, "ear": pal.cheek, "eyelid": pal.skin,
               "nostril": pal.socket}
    table = np.array([base_of[n] for n in LABEL_NAMES], np.float64)
    col = W @ table
    skinlike = np.clip(w("skin", "eyebrow", "scalp", "ear", "eyelid"), 0, 1)

    joints = np.asarray(head.j_template.detach(), np.float64)
    eyes = joints[3:5]
    eye_y, eye_z = eyes[:, 1].mean(), eyes[:, 2].mean()
    top = float(np.asarray(head.neutral().detach())[:, 1].max())

    # cheeks: a soft blush below and outside each eye
    for c in eyes:
        d = np.sqrt(((P[:, 0] - 1.15 * c[0]) / 0.022) ** 2 + ((P[:, 1] - (c[1] - 0.035)) / 0.02) ** 2)
        col = _mix(col, pal.cheek, 0.6 * skinlike * _smooth(1.0 - 2.0 * d) * (P[:, 2] > eye_z - 0.02))

    # lips from the UV mask (smooth edge), over skin
    if "lips" in masks:
        m = np.clip(masks["lips"][covered] * 1.3, 0, 1)
        col = _mix(col, pal.lips, m * np.clip(skinlike + w("lips"), 0, 1))

    # eyebrows: an arch above each eye, on the front of the skin
    front = _smooth((P[:, 2] - (eye_z - 0.012)) / 0.004)
    for c in eyes:
        dx = (P[:, 0] - 1.05 * c[0]) / 0.027
        arch = c[1] + 0.020 + 0.005 * (1.0 - dx ** 2) - 0.003 * dx * np.sign(c[0])  # higher towards the temple
        r = np.sqrt(dx ** 2 + ((P[:, 1] - arch) / 0.0055) ** 2)
        col = _mix(col, pal.eyebrow, 0.9 * skinlike * front * _smooth((1.0 - r) / 0.25))

    # hair: above the hairline and over the back of the head
    hairline = eye_y + 0.55 * (top - eye_y)
    hair = np.maximum(_smooth((P[:, 1] - hairline) / 0.006),
                      _smooth((eye_z - 0.06 - P[:, 2]) / 0.008) * _smooth((P[:, 1] - eye_y) / 0.01))
    col = _mix(col, pal.hair, skinlike * hair)

    # eyes (in the texture too, though their UV islands are tiny: HeadAppearance paints them per pixel)
    eyeball = np.clip(w("eye_white", "iris", "pupil"), 0, 1)
    col = col * (1 - eyeball[:, None]) + eye_colors(P, eyes, pal) * eyeball[:, None]

    # mouth interior: darker the deeper it lies behind the lips
    lips_v = np.asarray(head.neutral().detach(), np.float64)[np.asarray(head.vertex_labels) == L["lips"]]
    if len(lips_v):
        inside = np.clip(w("mouth_inside", "tongue"), 0, 1)
        deep = _smooth((lips_v[:, 2].max() - CAVITY_DARK_FROM_M - P[:, 2]) / CAVITY_DARK_OVER_M)
        col = _mix(col, pal.cavity, 0.85 * inside * deep)

    # teeth (face/teeth.py): enamel in their UV rectangles, darker gaps between teeth, gums along the roots
    teeth = np.clip(w("teeth"), 0, 1)
    if teeth.any():
        rows, cols = np.nonzero(covered)
        u, v = (cols + 0.5) / size, 1.0 - (rows + 0.5) / size
        for u0, v0, u1, v1 in UV_RECTS.values():
            inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
            q = (u[inside] - u0) / (u1 - u0) * TEETH_PER_ARCH
            across = (v[inside] - v0) / (v1 - v0)
            c = _mix(np.tile(np.asarray(pal.teeth, np.float64), (int(inside.sum()), 1)),
                     np.asarray(pal.teeth) * 0.55, _smooth((0.07 - np.abs(q - np.round(q))) / 0.05))
            gum_edge = np.minimum(across, 1.0 - across)
            c = _mix(c, pal.gum, _smooth((GUM_V - gum_edge) / 0.04))
            col[inside] = _mix(col[inside], (0, 0, 0), teeth[inside]) + c * teeth[inside, None]

    tex = np.zeros((size, size, 3), np.float64)
    tex[covered] = np.clip(col, 0, 1)
    return _dilate(tex, covered).astype(np.float32)


@dataclass
class HeadAppearance:
    """The material of a painted head for ``mesh_raster.render_mesh(..., albedo_fn=appearance.albedo)``.

    texture [S, S, 3] with uvs [Vt, 2] / face_uvs [F, 3] everywhere, except on the eyeballs (``eye_faces`` [F]
    bool), whose UV islands are too small for an iris: there the colour is computed per pixel from the rest-pose
    position (``rest_vertices`` [V, 3] interpolated with the pixel's barycentric weights), so the iris and pupil
    stay sharp and turn with the eyes.
    """
    texture: np.ndarray
    uvs: np.ndarray
    face_uvs: np.ndarray
    faces: np.ndarray
    rest_vertices: np.ndarray
    eye_faces: np.ndarray
    eye_centers: np.ndarray
    palette: Palette

    def albedo(self, face_index: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """face_index [n] int, bary [n, 3] -> albedo [n, 3] float32 in 0..1."""
        uv = np.einsum("nk,nkc->nc", bary, self.uvs[self.face_uvs[face_index]])
        out = sample_texture(self.texture, uv)[:, :3].astype(np.float64)
        eye = self.eye_faces[face_index]
        if eye.any():
            p = np.einsum("nk,nkc->nc", bary[eye], self.rest_vertices[self.faces[face_index[eye]]])
            out[eye] = eye_colors(p, self.eye_centers, self.palette)
        return out.astype(np.float32)


def paint_head(head, palette: Palette | None = None, size: int = 512) -> HeadAppearance:
    """Texture plus per-pixel eyes of a default head (see ``paint_texture`` and ``HeadAppearance``)."""
    pal = palette or palette_for(getattr(head, "name", ""))
    tex = paint_texture(head, pal, size)
    labels = np.asarray(head.vertex_labels, np.int64)
    faces = np.asarray(head.faces, np.int64)
    is_eye = np.isin(labels, [LABEL_INDEX["eye_white"], LABEL_INDEX["iris"], LABEL_INDEX["pupil"]])
    return HeadAppearance(texture=tex, uvs=np.asarray(head.uvs, np.float64),
                          face_uvs=np.asarray(head.face_uvs, np.int64), faces=faces,
                          rest_vertices=np.asarray(head.neutral().detach(), np.float64),
                          eye_faces=is_eye[faces].all(axis=1),
                          eye_centers=np.asarray(head.j_template.detach(), np.float64)[3:5], palette=pal)
