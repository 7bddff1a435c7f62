"""Which point of the head mesh each of the 68 dlib landmarks sits on, found by detecting landmarks on renders of
the head itself (no hand-made table): the painted default head is drawn from a few cameras, dlib finds its face and
68 landmarks, and each landmark pixel is traced back through the visibility buffer to a triangle and barycentric
weights. Points on the face (brows, eyes, nose, mouth) take the median over the views; the jaw contour (0-16) is a
silhouette, so it comes from the frontal view only and weighs less in the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rsatalker_ros.photo_avatar.detect import JAW, PhotoError, find_faces, landmarks_in_box
from rsatalker_ros.render.mesh_raster import camera_arrays, project, rasterize_triangles, render_mesh

CONTOUR_WEIGHT = 0.5   # fit weight of a jaw-contour landmark relative to an inner one


@dataclass
class LandmarkAnchors:
    """face [68] int triangle index, bary [68, 3] barycentric weights, weight [68] fit weights."""
    face: np.ndarray
    bary: np.ndarray
    weight: np.ndarray

    def points(self, vertices, faces):
        """vertices [..., V, 3] (numpy or torch), faces [F, 3] -> landmark points [..., 68, 3]."""
        tri = vertices[..., faces[self.face], :]                              # [..., 68, 3, 3]
        if torch.is_tensor(vertices):
            return (tri * torch.as_tensor(self.bary, dtype=vertices.dtype)[..., None]).sum(-2)
        return (tri * self.bary[..., None]).sum(-2)


def _nearest_covered(fid: np.ndarray, x: float, y: float, radius: int = 4):
    h, w = fid.shape
    xi, yi = int(round(x)), int(round(y))
    best = None
    for r in range(radius + 1):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                px, py = xi + dx, yi + dy
                if 0 <= px < w and 0 <= py < h and fid[py, px] >= 0:
                    d = dx * dx + dy * dy
                    if best is None or d < best[0]:
                        best = (d, px, py)
        if best is not None:
            return best[1], best[2]
    return None


def find_anchors(head, appearance, azimuths=(0.0, -20.0, 20.0), size: int = 320) -> LandmarkAnchors:
    """Landmark anchors of ``head`` (a HeadModel) painted with ``appearance`` (``textures.paint_head``)."""
    from rsatalker_ros.train.stage3 import head_center, orbit_camera
    faces = head.faces.numpy()
    with torch.no_grad():
        verts = head.neutral().numpy().astype(np.float64)
    center = head_center(head)
    hits = [[] for _ in range(68)]                      # per landmark: (azimuth, face, bary, point)
    for az in azimuths:
        cam = orbit_camera(center, az, 0.0, 0.62, size, 30.0)
        img = (render_mesh(verts, faces, cam, albedo_fn=appearance.albedo, supersample=2).image * 255 + 0.5)
        img = img.astype(np.uint8)
        found = find_faces(img, threshold=0.0)
        if not found:
            continue
        lm = landmarks_in_box(img, found[0].box)
        view, K, w, h = camera_arrays(cam)
        fid, bary, _ = rasterize_triangles(project(verts, view, K), faces, w, h)
        for i, (x, y) in enumerate(lm):
            px = _nearest_covered(fid, x, y)
            if px is None:
                continue
            f = int(fid[px[1], px[0]])
            b = bary[px[1], px[0]].astype(np.float64)
            hits[i].append((az, f, b, b @ verts[faces[f]]))
    face = np.zeros(68, np.int64)
    bary = np.zeros((68, 3))
    weight = np.ones(68)
    weight[JAW] = CONTOUR_WEIGHT
    contour = set(range(68)[JAW])
    for i, h in enumerate(hits):
        if i in contour:
            h = [x for x in h if x[0] == azimuths[0]]
        if not h:
            raise PhotoError(f"landmark {i} was not found on any render of head {head.name!r}; the correspondence "
                             f"needs a head that dlib recognises as a face")
        med = np.median(np.stack([x[3] for x in h]), axis=0)
        best = min(h, key=lambda x: float(np.linalg.norm(x[3] - med)))
        face[i], bary[i] = best[1], best[2]
    return LandmarkAnchors(face, bary, weight)
