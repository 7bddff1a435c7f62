"""CPU tile rasteriser (numba, parallel over 16x16 tiles): the 3DGS / gsplat image formation of
``reference_torch`` (same projection, thresholds and compositing; see that module's docstring), float32.

Pipeline per frame:
1. ``_project`` (parallel over Gaussians): EWA projection, conic, colour, opacity-aware pixel box, culling;
2. depth sort of the visible Gaussians (argsort);
3. ``_bin`` : counting sort of (tile, Gaussian) pairs by tile with a prefix sum; every tile's list stays in
   depth order;
4. ``_raster`` (parallel over tiles): front-to-back compositing restricted to each Gaussian's pixel box, with
   per-pixel and per-tile early exit; writes float images or an 8-bit RGB image directly.
A pixel outside a Gaussian's box has alpha < 1/255 (the box is where opacity exp(-sigma) >= 1/255), so the box
restriction changes nothing in the result; the test sigma > ln(255 opacity) skips the exp for those pixels.
"""

import math

import numba
import numpy as np

TILE = 16
ALPHA_MIN = np.float32(1.0 / 255.0)
T_MIN = np.float32(1e-4)
EPS2D = 0.3
NEAR = 0.01
FAR = 1e10

# packed per-Gaussian record written by _project: mean2d x, y, conic A, B, C, log(opacity), ln(255 opacity),
# r, g, b, depth
_REC = 11


@numba.njit(parallel=True, cache=True, fastmath=True)
def _project(means, quats, scales, opacities, colors, view, intr, lims, width, height, rec, box, visible):
    """means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], colors [N,3] float32; view [3,4] world->cam;
    intr (fx, fy, cx, cy); lims (xn, xp, yn, yp) clamp limits for J. Writes rec [N,_REC] float32,
    box [N,4] int32 (u0, u1, v0, v1 inclusive, clipped to the image), visible [N] bool."""
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    for i in numba.prange(means.shape[0]):
        visible[i] = False
        o = opacities[i]
        if not (o >= 1.0 / 255.0):
            continue
        px, py, pz = means[i, 0], means[i, 1], means[i, 2]
        x = view[0, 0] * px + view[0, 1] * py + view[0, 2] * pz + view[0, 3]
        y = view[1, 0] * px + view[1, 1] * py + view[1, 2] * pz + view[1, 3]
        z = view[2, 0] * px + view[2, 1] * py + view[2, 2] * pz + view[2, 3]
        if z < NEAR or z > FAR:
            continue
        # rotation of the Gaussian, times scale: M = Rq diag(s)
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        qn = 1.0 / max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
        qw, qx, qy, qz = qw * qn, qx * qn, qy * qn, qz * qn
        sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
        r00 = (1 - 2 * (qy * qy + qz * qz)) * sx
        r01 = 2 * (qx * qy - qw * qz) * sy
        r02 = 2 * (qx * qz + qw * qy) * sz
        r10 = 2 * (qx * qy + qw * qz) * sx
        r11 = (1 - 2 * (qx * qx + qz * qz)) * sy
        r12 = 2 * (qy * qz - qw * qx) * sz
        r20 = 2 * (qx * qz - qw * qy) * sx
        r21 = 2 * (qy * qz + qw * qx) * sy
        r22 = (1 - 2 * (qx * qx + qy * qy)) * sz
        # J W: rows of the Jacobian times the camera rotation
        iz = 1.0 / z
        tx = z * min(lims[1], max(-lims[0], x * iz))
        ty = z * min(lims[3], max(-lims[2], y * iz))
        j00, j02 = fx * iz, -fx * tx * iz * iz
        j11, j12 = fy * iz, -fy * ty * iz * iz
        a0 = j00 * view[0, 0] + j02 * view[2, 0]
        a1 = j00 * view[0, 1] + j02 * view[2, 1]
        a2 = j00 * view[0, 2] + j02 * view[2, 2]
        b0 = j11 * view[1, 0] + j12 * view[2, 0]
        b1 = j11 * view[1, 1] + j12 * view[2, 1]
        b2 = j11 * view[1, 2] + j12 * view[2, 2]
        # T = (J W) (Rq S): 2x3
        t00 = a0 * r00 + a1 * r10 + a2 * r20
        t01 = a0 * r01 + a1 * r11 + a2 * r21
        t02 = a0 * r02 + a1 * r12 + a2 * r22
        t10 = b0 * r00 + b1 * r10 + b2 * r20
        t11 = b0 * r01 + b1 * r11 + b2 * r21
        t12 = b0 * r02 + b1 * r12 + b2 * r22
        ca = t00 * t00 + t01 * t01 + t02 * t02 + EPS2D
        cb = t00 * t10 + t01 * t11 + t02 * t12
        cc = t10 * t10 + t11 * t11 + t12 * t12 + EPS2D
        det = ca * cc - cb * cb
        if not (det > 0.0):
            continue
        idet = 1.0 / det
        mx = fx * x * iz + cx
        my = fy * y * iz + cy
        lo = math.log(o * 255.0)
        ext = min(3.33, math.sqrt(2.0 * lo))
        ex = ext * math.sqrt(ca)
        ey = ext * math.sqrt(cc)
        u0 = max(0, int(math.ceil(mx - ex)))
        u1 = min(width - 1, int(math.floor(mx + ex)))
        v0 = max(0, int(math.ceil(my - ey)))
        v1 = min(height - 1, int(math.floor(my + ey)))
        if u0 > u1 or v0 > v1:
            continue
        rec[i, 0] = mx
        rec[i, 1] = my
        rec[i, 2] = cc * idet
        rec[i, 3] = -cb * idet
        rec[i, 4] = ca * idet
        rec[i, 5] = math.log(o)
        rec[i, 6] = lo
        rec[i, 7] = colors[i, 0]
        rec[i, 8] = colors[i, 1]
        rec[i, 9] = colors[i, 2]
        rec[i, 10] = z
        box[i, 0], box[i, 1], box[i, 2], box[i, 3] = u0, u1, v0, v1
        visible[i] = True


@numba.njit(cache=True)
def _bin(order, box, n_tx, n_ty):
    """order [M] visible Gaussians in depth order, box [N,4] pixel boxes -> (tile_start [T+1], tile_list [I])
    with each tile's Gaussians contiguous and in depth order."""
    n_tiles = n_tx * n_ty
    counts = np.zeros(n_tiles + 1, np.int32)
    for j in range(order.shape[0]):
        g = order[j]
        tx0, tx1 = box[g, 0] // TILE, box[g, 1] // TILE
        ty0, ty1 = box[g, 2] // TILE, box[g, 3] // TILE
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                counts[ty * n_tx + tx + 1] += 1
    for t in range(n_tiles):
        counts[t + 1] += counts[t]
    fill = counts[:n_tiles].copy()
    lst = np.empty(counts[n_tiles], np.int32)
    for j in range(order.shape[0]):
        g = order[j]
        tx0, tx1 = box[g, 0] // TILE, box[g, 1] // TILE
        ty0, ty1 = box[g, 2] // TILE, box[g, 3] // TILE
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                t = ty * n_tx + tx
                lst[fill[t]] = g
                fill[t] += 1
    return counts, lst


@numba.njit(parallel=True, cache=True, fastmath=True)
def _raster(tile_start, tile_list, rec, box, width, height, n_tx, bg, out_rgb, out_alpha, out_depth, out_u8,
            want_float):
    """Composite every tile. Writes out_rgb [H,W,3], out_alpha [H,W], out_depth [H,W] (float32) when want_float,
    else out_u8 [H,W,3] uint8."""
    n_tiles = tile_start.shape[0] - 1
    for t in numba.prange(n_tiles):
        ty, tx = t // n_tx, t % n_tx
        x0, y0 = tx * TILE, ty * TILE
        x1, y1 = min(x0 + TILE, width) - 1, min(y0 + TILE, height) - 1
        tw = x1 - x0 + 1
        n_pix = tw * (y1 - y0 + 1)
        T = np.ones(TILE * TILE, np.float32)
        acc = np.zeros((TILE * TILE, 4), np.float32)
        n_done = 0
        for j in range(tile_start[t], tile_start[t + 1]):
            g = tile_list[j]
            ua, ub = max(box[g, 0], x0), min(box[g, 1], x1)
            va, vb = max(box[g, 2], y0), min(box[g, 3], y1)
            mx, my = rec[g, 0], rec[g, 1]
            A, B, C = rec[g, 2], rec[g, 3], rec[g, 4]
            log_o, s_max = rec[g, 5], rec[g, 6]
            cr, cg, cbl, z = rec[g, 7], rec[g, 8], rec[g, 9], rec[g, 10]
            for v in range(va, vb + 1):
                dy = my - v
                row = (v - y0) * TILE - x0
                for u in range(ua, ub + 1):
                    k = row + u
                    Tk = T[k]
                    if Tk < 0.0:  # pixel done (T stored negated)
                        continue
                    dx = mx - u
                    sigma = 0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy
                    if sigma < 0.0 or sigma > s_max:
                        continue
                    alpha = min(np.float32(0.999), math.exp(log_o - sigma))
                    if alpha < ALPHA_MIN:
                        continue
                    nT = Tk * (1.0 - alpha)
                    if nT <= T_MIN:
                        T[k] = -Tk
                        n_done += 1
                        continue
                    w = alpha * Tk
                    acc[k, 0] += w * cr
                    acc[k, 1] += w * cg
                    acc[k, 2] += w * cbl
                    acc[k, 3] += w * z
                    T[k] = nT
            if n_done == n_pix:
                break
        for v in range(y0, y1 + 1):
            for u in range(x0, x1 + 1):
                k = (v - y0) * TILE + (u - x0)
                Tk = abs(T[k])
                dsum = acc[k, 3]
                r = acc[k, 0] + Tk * bg[0]
                gg = acc[k, 1] + Tk * bg[1]
                b = acc[k, 2] + Tk * bg[2]
                if want_float:
                    out_rgb[v, u, 0] = r
                    out_rgb[v, u, 1] = gg
                    out_rgb[v, u, 2] = b
                    a = 1.0 - Tk
                    out_alpha[v, u] = a
                    out_depth[v, u] = dsum / max(a, np.float32(1e-10))
                else:
                    out_u8[v, u, 0] = np.uint8(min(max(r, 0.0), 1.0) * 255.0 + 0.5)
                    out_u8[v, u, 1] = np.uint8(min(max(gg, 0.0), 1.0) * 255.0 + 0.5)
                    out_u8[v, u, 2] = np.uint8(min(max(b, 0.0), 1.0) * 255.0 + 0.5)


def _f32(a, shape_tail, name):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 1 + len(shape_tail) or tuple(a.shape[1:]) != tuple(shape_tail):
        raise ValueError(f"{name} has shape {a.shape}; expected [N, {shape_tail[0]}]")
    return a


def render_cpu(means, quats, scales, opacities, colors, camera, background, uint8: bool = False):
    """Rasterise on the CPU.

    means [N, 3], quats [N, 4] wxyz, scales [N, 3], opacities [N] 0..1, colors [N, 3] rgb (any arrays, cast to
    float32); camera: ``Camera``; background [3].
    Returns (image [H, W, 3] float32, alpha [H, W] float32, depth [H, W] float32) or, with uint8=True,
    image [H, W, 3] uint8 (rgb clamped to 0..1, rounded).
    """
    means = _f32(means, (3,), "means")
    n = means.shape[0]
    quats = _f32(quats, (4,), "quats")
    scales = _f32(scales, (3,), "scales")
    opacities = np.ascontiguousarray(opacities, dtype=np.float32).reshape(-1)
    colors = _f32(colors, (3,), "colors")
    for name, a in (("quats", quats), ("scales", scales), ("opacities", opacities), ("colors", colors)):
        if a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0]} rows; means has {n}")
    bg = np.ascontiguousarray(background, dtype=np.float32).reshape(-1)
    if bg.shape != (3,):
        raise ValueError(f"background has shape {bg.shape}; expected [3]")
    H, W = camera.height, camera.width
    view = np.ascontiguousarray(camera.world_to_cam[:3, :], dtype=np.float32)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    intr = np.array([fx, fy, cx, cy], np.float32)
    tan_x, tan_y = 0.5 * W / fx, 0.5 * H / fy
    lims = np.array([(cx + 0.5) / fx + 0.3 * tan_x, (W - cx - 0.5) / fx + 0.3 * tan_x,
                     (cy + 0.5) / fy + 0.3 * tan_y, (H - cy - 0.5) / fy + 0.3 * tan_y], np.float32)
    rec = np.empty((n, _REC), np.float32)
    box = np.empty((n, 4), np.int32)
    visible = np.empty(n, np.bool_)
    _project(means, quats, scales, opacities, colors, view, intr, lims, W, H, rec, box, visible)
    idx = np.flatnonzero(visible).astype(np.int32)
    order = idx[np.argsort(rec[idx, 10], kind="stable")]
    n_tx, n_ty = (W + TILE - 1) // TILE, (H + TILE - 1) // TILE
    tile_start, tile_list = _bin(order, box, n_tx, n_ty)
    if uint8:
        out_u8 = np.empty((H, W, 3), np.uint8)
        dummy3, dummy2 = np.empty((1, 1, 3), np.float32), np.empty((1, 1), np.float32)
        _raster(tile_start, tile_list, rec, box, W, H, n_tx, bg, dummy3, dummy2, dummy2, out_u8, False)
        return out_u8
    rgb = np.empty((H, W, 3), np.float32)
    alpha = np.empty((H, W), np.float32)
    depth = np.empty((H, W), np.float32)
    _raster(tile_start, tile_list, rec, box, W, H, n_tx, bg, rgb, alpha, depth, np.empty((1, 1, 3), np.uint8), True)
    return rgb, alpha, depth
