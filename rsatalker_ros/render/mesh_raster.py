"""A small textured-mesh rasteriser (numpy + numba): z-buffer, perspective-correct UVs, Lambert shading.

It draws the ground-truth images that stage-3 training fits the Gaussian avatar to, so it takes the same
``Camera`` as the Gaussian renderer (OpenCV convention: camera x right, y down, z forward; the centre of pixel
(col, row) is at u = col, v = row). Two passes:

1. ``rasterize_triangles`` (numba): for every pixel, the nearest triangle and its perspective-correct
   barycentric weights (a visibility buffer).
2. ``shade`` (numpy): interpolate UVs and normals with those weights, sample the texture bilinearly,
   apply Lambert shading ``colour * (ambient + diffuse * max(0, n . l))`` with two-sided normals.

``render_mesh`` does both, optionally supersampled (``supersample=s`` renders at s x the size and averages
s x s blocks) so edges are anti-aliased like a splatted image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

NEAR_Z = 1e-3  # metres: triangles with a vertex closer than this to the camera plane are skipped


@dataclass
class MeshRender:
    """Output of ``render_mesh``.

    image: [H, W, 3] float32 in 0..1, composited over the background.
    alpha: [H, W] float32 in 0..1 (coverage; fractional at edges when supersampled).
    depth: [H, W] float32, camera-space z in metres of the nearest surface (inf where empty; the
        minimum over the supersampled block).
    face_index: [H, W] int32, the triangle seen at the centre sample of each pixel, -1 where empty.
    """

    image: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    face_index: np.ndarray


@numba.njit(cache=True, nogil=True)
def _raster_kernel(sx, sy, sz, faces, width, height, face_id, bary, zbuf):
    n_faces = faces.shape[0]
    for f in range(n_faces):
        i0 = faces[f, 0]
        i1 = faces[f, 1]
        i2 = faces[f, 2]
        z0 = sz[i0]
        z1 = sz[i1]
        z2 = sz[i2]
        if z0 <= NEAR_Z or z1 <= NEAR_Z or z2 <= NEAR_Z:
            continue
        x0 = sx[i0]
        y0 = sy[i0]
        x1 = sx[i1]
        y1 = sy[i1]
        x2 = sx[i2]
        y2 = sy[i2]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        inv_area = 1.0 / area
        xmin = max(int(np.ceil(min(x0, min(x1, x2)))), 0)
        xmax = min(int(np.floor(max(x0, max(x1, x2)))), width - 1)
        ymin = max(int(np.ceil(min(y0, min(y1, y2)))), 0)
        ymax = min(int(np.floor(max(y0, max(y1, y2)))), height - 1)
        if xmin > xmax or ymin > ymax:
            continue
        iz0 = 1.0 / z0
        iz1 = 1.0 / z1
        iz2 = 1.0 / z2
        for py in range(ymin, ymax + 1):
            cy = float(py)
            for px in range(xmin, xmax + 1):
                cx = float(px)
                w0 = ((x1 - cx) * (y2 - cy) - (x2 - cx) * (y1 - cy)) * inv_area
                w1 = ((x2 - cx) * (y0 - cy) - (x0 - cx) * (y2 - cy)) * inv_area
                w2 = 1.0 - w0 - w1
                if w0 < -1e-7 or w1 < -1e-7 or w2 < -1e-7:
                    continue
                inv_z = w0 * iz0 + w1 * iz1 + w2 * iz2
                z = 1.0 / inv_z
                if z < zbuf[py, px]:
                    zbuf[py, px] = z
                    face_id[py, px] = f
                    bary[py, px, 0] = w0 * iz0 * z
                    bary[py, px, 1] = w1 * iz1 * z
                    bary[py, px, 2] = w2 * iz2 * z


def rasterize_triangles(screen: np.ndarray, faces: np.ndarray, width: int, height: int):
    """Visibility buffer of a triangle mesh already projected to the screen.

    screen: [V, 3] float, (pixel x, pixel y, camera z in metres); pixel (col, row) has its centre at x = col, y = row.
        Pass z = 1 for every vertex to rasterise a flat layout (e.g. a UV map); ties keep the first triangle.
    faces: [F, 3] int vertex indices.
    Returns (face_id [H, W] int32 with -1 where empty, bary [H, W, 3] float32 perspective-correct
    barycentric weights of the triangle's three vertices, zbuf [H, W] float32 with inf where empty).
    """
    screen = np.asarray(screen, dtype=np.float64)
    faces = np.asarray(faces)
    if screen.ndim != 2 or screen.shape[1] != 3:
        raise ValueError(f"screen must be [V, 3] (x, y, z), got shape {screen.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [F, 3] vertex indices, got shape {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= screen.shape[0]):
        raise ValueError(f"faces index vertices 0..{screen.shape[0] - 1}, got range {faces.min()}..{faces.max()}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    face_id = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    zbuf = np.full((height, width), np.inf, dtype=np.float64)
    _raster_kernel(np.ascontiguousarray(screen[:, 0]), np.ascontiguousarray(screen[:, 1]),
                   np.ascontiguousarray(screen[:, 2]), np.ascontiguousarray(faces, dtype=np.int64),
                   width, height, face_id, bary, zbuf)
    return face_id, bary, zbuf.astype(np.float32)


def camera_arrays(camera) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(world_to_camera [4, 4], K [3, 3], width, height) as float64 numpy arrays from a ``Camera``.

    Accepts the package's ``rsatalker_ros.render.camera.Camera`` (OpenCV convention) or any object with
    ``world_to_cam`` / ``world_to_camera`` / ``viewmat`` [4, 4], ``K`` / ``intrinsics`` [3, 3], ``width``, ``height``.
    """
    view = None
    for name in ("world_to_cam", "world_to_camera", "viewmat", "w2c"):
        if hasattr(camera, name):
            view = getattr(camera, name)
            view = view() if callable(view) else view
            break
    K = None
    for name in ("K", "intrinsics", "k"):
        if hasattr(camera, name):
            K = getattr(camera, name)
            K = K() if callable(K) else K
            break
    if view is None or K is None:
        raise ValueError("camera must provide a world-to-camera [4, 4] matrix and intrinsics K [3, 3]")
    view = np.asarray(view.detach().cpu() if hasattr(view, "detach") else view, dtype=np.float64).reshape(4, 4)
    K = np.asarray(K.detach().cpu() if hasattr(K, "detach") else K, dtype=np.float64).reshape(3, 3)
    return view, K, int(camera.width), int(camera.height)


def project(points: np.ndarray, view: np.ndarray, K: np.ndarray) -> np.ndarray:
    """World points [N, 3] -> [N, 3] (pixel x, pixel y, camera z) with a pinhole camera (OpenCV convention)."""
    pc = points @ view[:3, :3].T + view[:3, 3]
    z = pc[:, 2]
    safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
    x = K[0, 0] * pc[:, 0] / safe + K[0, 1] * pc[:, 1] / safe + K[0, 2]
    y = K[1, 1] * pc[:, 1] / safe + K[1, 2]
    return np.stack([x, y, z], axis=1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals [V, 3] of a mesh (vertices [V, 3], faces [F, 3])."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.maximum(norm, 1e-12)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup. texture [Ht, Wt, C]; uv [..., 2] in 0..1 with v pointing up (row 0 is v = 1).

    Returns [..., C] float32. Coordinates outside 0..1 are clamped to the border.
    """
    tex = np.asarray(texture, dtype=np.float32)
    ht, wt = tex.shape[:2]
    x = np.clip(uv[..., 0] * wt - 0.5, 0, wt - 1)
    y = np.clip((1.0 - uv[..., 1]) * ht - 0.5, 0, ht - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, wt - 1)
    y1 = np.minimum(y0 + 1, ht - 1)
    fx = (x - x0)[..., None].astype(np.float32)
    fy = (y - y0)[..., None].astype(np.float32)
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def shade(face_id: np.ndarray, bary: np.ndarray, vertices: np.ndarray, faces: np.ndarray, *,
          view: np.ndarray, texture: np.ndarray | None = None, uvs: np.ndarray | None = None,
          face_uvs: np.ndarray | None = None, vertex_colors: np.ndarray | None = None, albedo_fn=None,
          light_dir=(0.3, 0.5, 1.0), ambient: float = 0.45, diffuse: float = 0.55,
          light_in_camera: bool = False) -> np.ndarray:
    """Colour of every covered pixel of a visibility buffer; returns [H, W, 3] float32 (0 where empty).

    Colour comes from ``texture`` [Ht, Wt, 3] (0..1) sampled at UVs (``uvs`` [Vt, 2], ``face_uvs`` [F, 3]
    indices into ``uvs``), or from ``vertex_colors`` [V, 3] (0..1), or from ``albedo_fn(face_index [n],
    bary [n, 3]) -> [n, 3]`` (a procedural material, e.g. ``avatar.textures.HeadAppearance.albedo``), or
    white. Lambert term with smooth
    vertex normals, two-sided (a normal facing away from the camera is flipped). ``light_dir`` is the
    direction towards the light, in world coordinates (or camera coordinates if ``light_in_camera``).
    """
    h, w = face_id.shape
    out = np.zeros((h, w, 3), dtype=np.float32)
    mask = face_id >= 0
    if not mask.any():
        return out
    f = face_id[mask]
    b = bary[mask].astype(np.float64)
    if albedo_fn is not None:
        albedo = np.asarray(albedo_fn(f, b), dtype=np.float32).reshape(len(f), 3)
    elif texture is not None:
        if uvs is None or face_uvs is None:
            raise ValueError("a texture needs uvs [Vt, 2] and face_uvs [F, 3]")
        uv = np.einsum("nk,nkc->nc", b, np.asarray(uvs, np.float64)[np.asarray(face_uvs)[f]])
        albedo = sample_texture(texture, uv)[:, :3]
    elif vertex_colors is not None:
        albedo = np.einsum("nk,nkc->nc", b, np.asarray(vertex_colors, np.float64)[faces[f]]).astype(np.float32)
    else:
        albedo = np.ones((len(f), 3), np.float32)
    normals = vertex_normals(vertices, faces)
    n = np.einsum("nk,nkc->nc", b, normals[faces[f]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    # Two-sided: flip normals that face away from the camera (view direction from camera centre to the point).
    cam_center = -view[:3, :3].T @ view[:3, 3]
    p = np.einsum("nk,nkc->nc", b, np.asarray(vertices, np.float64)[faces[f]])
    to_cam = cam_center - p
    flip = np.sum(n * to_cam, axis=1) < 0
    n[flip] *= -1
    light = np.asarray(light_dir, dtype=np.float64)
    if light_in_camera:
        light = view[:3, :3].T @ light
    light = light / max(np.linalg.norm(light), 1e-12)
    lambert = np.clip(n @ light, 0.0, None)
    out[mask] = albedo * (ambient + diffuse * lambert)[:, None].astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, camera, *, texture: np.ndarray | None = None,
                uvs: np.ndarray | None = None, face_uvs: np.ndarray | None = None,
                vertex_colors: np.ndarray | None = None, albedo_fn=None, background=(1.0, 1.0, 1.0),
                supersample: int = 1,
                light_dir=(0.3, 0.5, 1.0), ambient: float = 0.45, diffuse: float = 0.55,
                light_in_camera: bool = False) -> MeshRender:
    """Render a (textured) triangle mesh with a pinhole ``camera``.

    vertices: [V, 3] world coordinates in metres (numpy or torch). faces: [F, 3] int.
    camera: the package ``Camera`` (see ``camera_arrays``). background: RGB in 0..1.
    supersample: integer s >= 1; renders at s x the resolution and box-filters down (anti-aliasing).
    Other arguments as in ``shade``. Returns a ``MeshRender``.
    """
    vertices = np.asarray(vertices.detach().cpu() if hasattr(vertices, "detach") else vertices, dtype=np.float64)
    faces = np.asarray(faces.detach().cpu() if hasattr(faces, "detach") else faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got shape {vertices.shape}")
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be an integer >= 1, got {supersample}")
    view, K, width, height = camera_arrays(camera)
    Ks = K.copy()
    Ks[:2] *= s  # sub-pixel grid: u' = s (u + 0.5) - 0.5 (pixel centres at integers, OpenCV)
    Ks[0, 2] += 0.5 * (s - 1)
    Ks[1, 2] += 0.5 * (s - 1)
    screen = project(vertices, view, Ks)
    face_id, bary, zbuf = rasterize_triangles(screen, faces, width * s, height * s)
    color = shade(face_id, bary, vertices, faces, view=view, texture=texture, uvs=uvs, face_uvs=face_uvs,
                  vertex_colors=vertex_colors, albedo_fn=albedo_fn, light_dir=light_dir, ambient=ambient,
                  diffuse=diffuse,
                  light_in_camera=light_in_camera)
    cover = (face_id >= 0).astype(np.float32)
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    if s > 1:
        color = color.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        alpha = cover.reshape(height, s, width, s).mean(axis=(1, 3))
        depth = zbuf.reshape(height, s, width, s).min(axis=(1, 3))
        centre = face_id[s // 2::s, s // 2::s]
    else:
        alpha, depth, centre = cover, zbuf, face_id
    image = color + (1.0 - alpha[..., None]) * bg
    return MeshRender(image=np.clip(image, 0, 1).astype(np.float32), alpha=alpha.astype(np.float32),
                      depth=depth.astype(np.float32), face_index=np.ascontiguousarray(centre))
