"""Fast differentiable CPU rasterisation for stage-3 training: numba tile compositing with a hand-written backward.

The dense torch reference (``render/reference_torch.py``) takes seconds per iteration at 128 px with 20k
Gaussians on 2 cores; this module makes CPU training of the default avatars feasible. It keeps the reference's
image formation exactly (same projection code, same alpha rules), and only replaces the per-pixel compositing:

- projection (means, quats, scales -> mean2d, conic) stays in torch (``project_torch``), so autograd carries
  gradients from the 2D quantities back to the Gaussians, the binding and the mesh;
- ``_RasterizeFn`` (a torch.autograd.Function) bins the visible Gaussians into 16x16 tiles in depth order
  (bounding-box culling: a Gaussian only touches the tiles its 1/255-alpha box overlaps), composites front to
  back in numba (parallel over tiles; inside a tile each Gaussian visits only the pixels of its box, and
  saturated pixels are skipped) and, in backward, walks every pixel's contributors back to front as in 3DGS,
  giving d loss / d (mean2d, conic, opacity, colour). Per-thread gradient buffers avoid write races.

Per pixel (u, v) at integer pixel centres, Gaussians i in depth order:
    sigma_i = 0.5 (A dx^2 + C dy^2) + B dx dy, d = mean2d_i - (u, v);   skipped if sigma_i < 0
    alpha_i = min(0.999, o_i exp(-sigma_i));                           skipped if alpha_i < 1/255
    stop before the Gaussian after which the transmittance would fall to <= 1e-4
    C = sum_i c_i alpha_i T_i + T_final bg,  A = 1 - T_final
Backward (T_i = prod_{j<i} (1 - alpha_j), S_i = sum_{j>i} c_j alpha_j T_j / T_{i+1}):
    dC/dc_i = alpha_i T_i;  dC/dalpha_i = T_i (c_i - S_i) - T_final bg / (1 - alpha_i)
    dA/dalpha_i = T_final / (1 - alpha_i)
    dalpha/do = exp(-sigma), dalpha/dsigma = -alpha (zero where alpha was clamped to 0.999).
The depth output is not differentiated (it is not used by the training loss).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from rsatalker_ros.avatar.gaussians import WorldGaussians
from rsatalker_ros.render.api import RenderResult
from rsatalker_ros.render.camera import Camera
from rsatalker_ros.render.cpu_tiles import TILE, _bin
from rsatalker_ros.render.reference_torch import ALPHA_MIN, T_MIN, project_torch
from rsatalker_ros.render.sh import sh_to_rgb



@numba.njit(cache=True)
def _pixel_boxes(m2, ext, width, height):
    """Every Gaussian's pixel box [N, 4] int32 (u0, u1, v0, v1 inclusive; 1 px margin beyond the 1/255 extent,
    clipped to the image; empty where u0 > u1 or v0 > v1), for the 16 x 16 tile binning ``render.cpu_tiles._bin``
    (the counting sort the live renderer runs with its own 64 x 16 tiles)."""
    box = np.empty((m2.shape[0], 4), np.int32)
    for g in range(m2.shape[0]):
        box[g, 0] = max(int(np.floor(m2[g, 0] - ext[g, 0] - 1.0)), 0)
        box[g, 1] = min(int(np.floor(m2[g, 0] + ext[g, 0] + 1.0)), width - 1)
        box[g, 2] = max(int(np.floor(m2[g, 1] - ext[g, 1] - 1.0)), 0)
        box[g, 3] = min(int(np.floor(m2[g, 1] + ext[g, 1] + 1.0)), height - 1)
    return box


@numba.njit(cache=True, inline="always")
def _pixel_box(m2, ext, i, x0, x1, y0, y1):
    """Pixels of the tile [x0..x1] x [y0..y1] inside Gaussian i's box (1 px margin): (u0, u1, v0, v1)."""
    u0 = max(x0, int(np.ceil(m2[i, 0] - ext[i, 0] - 1.0)))
    u1 = min(x1, int(np.floor(m2[i, 0] + ext[i, 0] + 1.0)))
    v0 = max(y0, int(np.ceil(m2[i, 1] - ext[i, 1] - 1.0)))
    v1 = min(y1, int(np.floor(m2[i, 1] + ext[i, 1] + 1.0)))
    return u0, u1, v0, v1


@numba.njit(parallel=True, cache=True)
def _forward(tile_start, tile_list, m2, ext, conic, opac, col, depth, bg, width, height, n_tx,
             out_rgb, out_alpha, out_depth, out_T, out_last):
    """Front-to-back compositing, Gaussian-major inside each tile: every Gaussian only visits its pixel box."""
    n_tiles = tile_start.shape[0] - 1
    for t in numba.prange(n_tiles):
        ty = t // n_tx
        tx = t - ty * n_tx
        x0, y0 = tx * TILE, ty * TILE
        x1, y1 = min(x0 + TILE, width) - 1, min(y0 + TILE, height) - 1
        n_pix = (x1 - x0 + 1) * (y1 - y0 + 1)
        T = np.ones(TILE * TILE, np.float32)
        acc = np.zeros((TILE * TILE, 4), np.float32)
        last = np.full(TILE * TILE, -1, np.int64)
        done = np.zeros(TILE * TILE, np.bool_)
        n_done = 0
        for j in range(tile_start[t], tile_start[t + 1]):
            i = tile_list[j]
            u0, u1, v0, v1 = _pixel_box(m2, ext, i, x0, x1, y0, y1)
            for v in range(v0, v1 + 1):
                dy = m2[i, 1] - np.float32(v)
                for u in range(u0, u1 + 1):
                    k = (v - y0) * TILE + (u - x0)
                    if done[k]:
                        continue
                    dx = m2[i, 0] - np.float32(u)
                    sigma = np.float32(0.5) * (conic[i, 0] * dx * dx + conic[i, 2] * dy * dy) + conic[i, 1] * dx * dy
                    if sigma < 0:
                        continue
                    a = min(np.float32(0.999), opac[i] * np.exp(-sigma))
                    if a < ALPHA_MIN:
                        continue
                    nT = T[k] * (np.float32(1.0) - a)
                    if nT <= T_MIN:
                        done[k] = True
                        n_done += 1
                        continue
                    w = a * T[k]
                    acc[k, 0] += w * col[i, 0]
                    acc[k, 1] += w * col[i, 1]
                    acc[k, 2] += w * col[i, 2]
                    acc[k, 3] += w * depth[i]
                    T[k] = nT
                    last[k] = j
            if n_done == n_pix:
                break
        for v in range(y0, y1 + 1):
            for u in range(x0, x1 + 1):
                k = (v - y0) * TILE + (u - x0)
                Tk = T[k]
                out_rgb[v, u, 0] = acc[k, 0] + Tk * bg[0]
                out_rgb[v, u, 1] = acc[k, 1] + Tk * bg[1]
                out_rgb[v, u, 2] = acc[k, 2] + Tk * bg[2]
                out_alpha[v, u] = np.float32(1.0) - Tk
                out_depth[v, u] = acc[k, 3] / (np.float32(1.0) - Tk) if Tk < 1.0 else np.float32(0.0)
                out_T[v, u] = Tk
                out_last[v, u] = last[k]


@numba.njit(parallel=True, cache=True)
def _backward(tile_start, tile_list, m2, ext, conic, opac, col, bg, width, height, n_tx, out_T, out_last,
              g_rgb, g_alpha, n_chunks, g_m2, g_conic, g_opac, g_col):
    """Back-to-front walk, Gaussian-major inside each tile. Gradient buffers are [n_chunks, N, ...] float64;
    chunk c handles tiles c, c + n_chunks, ... (no two threads write the same buffer)."""
    n_tiles = tile_start.shape[0] - 1
    for c in numba.prange(n_chunks):
        T = np.empty(TILE * TILE, np.float64)
        S = np.empty((TILE * TILE, 3), np.float64)
        G = np.empty((TILE * TILE, 5), np.float64)  # per pixel: dL/drgb (3), dL/dalpha, T_final
        last = np.empty(TILE * TILE, np.int64)
        for t in range(c, n_tiles, n_chunks):
            ty = t // n_tx
            tx = t - ty * n_tx
            x0, y0 = tx * TILE, ty * TILE
            x1, y1 = min(x0 + TILE, width) - 1, min(y0 + TILE, height) - 1
            max_last = -1
            for v in range(y0, y1 + 1):
                for u in range(x0, x1 + 1):
                    k = (v - y0) * TILE + (u - x0)
                    T[k] = out_T[v, u]
                    S[k, 0] = 0.0
                    S[k, 1] = 0.0
                    S[k, 2] = 0.0
                    G[k, 0] = g_rgb[v, u, 0]
                    G[k, 1] = g_rgb[v, u, 1]
                    G[k, 2] = g_rgb[v, u, 2]
                    G[k, 3] = g_alpha[v, u]
                    G[k, 4] = out_T[v, u]
                    last[k] = out_last[v, u]
                    max_last = max(max_last, last[k])
            for j in range(max_last, tile_start[t] - 1, -1):
                i = tile_list[j]
                u0, u1, v0, v1 = _pixel_box(m2, ext, i, x0, x1, y0, y1)
                A = conic[i, 0]
                B = conic[i, 1]
                C = conic[i, 2]
                c0, c1, c2 = col[i, 0], col[i, 1], col[i, 2]
                for v in range(v0, v1 + 1):
                    dy = m2[i, 1] - np.float32(v)
                    for u in range(u0, u1 + 1):
                        k = (v - y0) * TILE + (u - x0)
                        if j > last[k]:
                            continue
                        dx = m2[i, 0] - np.float32(u)
                        sigma = np.float32(0.5) * (A * dx * dx + C * dy * dy) + B * dx * dy
                        if sigma < 0:
                            continue
                        Gs = np.exp(-sigma)
                        raw = opac[i] * Gs
                        a32 = min(np.float32(0.999), raw)
                        if a32 < ALPHA_MIN:
                            continue
                        a = np.float64(a32)
                        one_m = 1.0 - a
                        T[k] = T[k] / one_m  # transmittance in front of Gaussian i
                        w = a * T[k]
                        gr, gg, gb = G[k, 0], G[k, 1], G[k, 2]
                        g_col[c, i, 0] += w * gr
                        g_col[c, i, 1] += w * gg
                        g_col[c, i, 2] += w * gb
                        bgdot = bg[0] * gr + bg[1] * gg + bg[2] * gb
                        dL_da = T[k] * ((c0 - S[k, 0]) * gr + (c1 - S[k, 1]) * gg + (c2 - S[k, 2]) * gb) \
                            + (G[k, 3] - bgdot) * G[k, 4] / one_m
                        S[k, 0] = a * c0 + one_m * S[k, 0]
                        S[k, 1] = a * c1 + one_m * S[k, 1]
                        S[k, 2] = a * c2 + one_m * S[k, 2]
                        if raw > np.float32(0.999):
                            continue  # clamped: alpha does not depend on opacity or position here
                        g_opac[c, i] += Gs * dL_da
                        dL_ds = -a * dL_da
                        g_m2[c, i, 0] += dL_ds * (A * dx + B * dy)
                        g_m2[c, i, 1] += dL_ds * (C * dy + B * dx)
                        g_conic[c, i, 0] += dL_ds * 0.5 * dx * dx
                        g_conic[c, i, 1] += dL_ds * dx * dy
                        g_conic[c, i, 2] += dL_ds * 0.5 * dy * dy


def _np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())


class _RasterizeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mean2d, conic, opacities, colors, order, extent, depth, background, width, height):
        m2, cn, op, cl = _np32(mean2d), _np32(conic), _np32(opacities), _np32(colors)
        ext, dp, bg = _np32(extent), _np32(depth), _np32(background)
        n_tx, n_ty = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
        tile_start, tile_list = _bin(order.cpu().numpy().astype(np.int64), _pixel_boxes(m2, ext, width, height),
                                     n_tx, n_ty)
        rgb = np.empty((height, width, 3), np.float32)
        alpha = np.empty((height, width), np.float32)
        dep = np.empty((height, width), np.float32)
        T = np.empty((height, width), np.float32)
        last = np.empty((height, width), np.int64)
        _forward(tile_start, tile_list, m2, ext, cn, op, cl, dp, bg, width, height, n_tx, rgb, alpha, dep, T, last)
        ctx.saved = (tile_start, tile_list, m2, ext, cn, op, cl, bg, width, height, n_tx, T, last)
        out_dep = torch.from_numpy(dep)
        ctx.mark_non_differentiable(out_dep)
        return torch.from_numpy(rgb), torch.from_numpy(alpha), out_dep

    @staticmethod
    def backward(ctx, g_rgb, g_alpha, g_depth):
        tile_start, tile_list, m2, ext, cn, op, cl, bg, width, height, n_tx, T, last = ctx.saved
        n = m2.shape[0]
        chunks = max(1, numba.get_num_threads())
        g_m2 = np.zeros((chunks, n, 2))
        g_cn = np.zeros((chunks, n, 3))
        g_op = np.zeros((chunks, n))
        g_cl = np.zeros((chunks, n, 3))
        gr = _np32(g_rgb) if g_rgb is not None else np.zeros((height, width, 3), np.float32)
        ga = _np32(g_alpha) if g_alpha is not None else np.zeros((height, width), np.float32)
        _backward(tile_start, tile_list, m2, ext, cn, op, cl, bg.astype(np.float64), width, height, n_tx, T, last,
                  gr, ga, chunks, g_m2, g_cn, g_op, g_cl)
        f = lambda a: torch.from_numpy(a.sum(0).astype(np.float32))  # noqa: E731
        return f(g_m2), f(g_cn), f(g_op), f(g_cl), None, None, None, None, None, None


def render_train(gaussians: WorldGaussians,  # means [N,3], scales [N,3], quats [N,4] wxyz, opacities [N], sh [N,K,3]
                 camera: Camera,              # pinhole camera (width x height)
                 background,                  # [3] rgb 0..1 (tensor or sequence)
                 ) -> tuple[RenderResult, torch.Tensor]:
    """Differentiable CPU render with the image formation of ``render(..., backend="torch")``, much faster.

    Returns (RenderResult(image [H,W,3], alpha [H,W], depth [H,W] not differentiable), mean2d [N, 2] pixels).
    ``mean2d`` has ``retain_grad()`` set so densification can read the screen-space position gradient.
    """
    g = gaussians
    if g.means.dim() != 2:
        raise ValueError(f"render_train takes unbatched WorldGaussians (means [N, 3]), got {tuple(g.means.shape)}")
    p = project_torch(g.means, g.quats, g.scales, g.opacities, camera)
    colors = sh_to_rgb(g.sh, g.means, camera.position)
    valid = p["valid"]
    idx = torch.nonzero(valid).squeeze(1)
    order = idx[torch.argsort(p["depth"].detach()[idx], stable=True)]
    bg = torch.as_tensor(background, dtype=torch.float32).reshape(3)
    mean2d = p["mean2d"]
    if mean2d.requires_grad:
        mean2d.retain_grad()
    img, alpha, depth = _RasterizeFn.apply(mean2d, p["conic"], g.opacities, colors, order, p["extent"].detach(),
                                           p["depth"].detach(), bg, camera.width, camera.height)
    return RenderResult(img, alpha, depth), mean2d


def compile_kernels() -> None:
    """numba's stage-3 training kernels compiled into their on-disk cache (cache=True), or loaded from it when
    current: this module's compositing forward and backward and the mesh rasteriser that draws the training views,
    on a tiny scene (with the argument types real training passes). scripts/bootstrap.sh runs it, so that the first
    stage-3 runs of a fresh clone (train_avatar, the photo avatar, the tests) load the kernels instead of each
    compiling them (about 40 s of CPU)."""
    from rsatalker_ros.render.mesh_raster import rasterize_triangles
    rasterize_triangles(np.array([[1.0, 1.0, 1.0], [6.0, 1.0, 1.0], [1.0, 6.0, 1.0]]), np.array([[0, 1, 2]]), 8, 8)
    rng = np.random.default_rng(0)
    f = lambda a: torch.tensor(a, dtype=torch.float32, requires_grad=True)  # noqa: E731
    g = WorldGaussians(means=f(rng.uniform(-0.05, 0.05, (16, 3))), scales=f(np.full((16, 3), 0.02)),
                       quats=f(np.tile([1.0, 0.0, 0.0, 0.0], (16, 1))), opacities=f(np.full(16, 0.8)),
                       sh=f(rng.uniform(0.0, 1.0, (16, 1, 3))))
    out, _ = render_train(g, Camera.look_at([0.0, 0.0, 0.5], [0.0, 0.0, 0.0], width=16, height=16), (0.2, 0.3, 0.4))
    (out.image.sum() + out.alpha.sum()).backward()
