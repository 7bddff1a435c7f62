"""CPU tile rasteriser: the 3DGS / gsplat image formation of ``reference_torch`` (same projection, thresholds and
compositing; see that module's docstring), float32, no torch, no Python-level per-Gaussian work.

Two paths, the same images (within 0.1/255 mean of the reference; tests: test_render_cpu_kernel, _edges):
- the C++ kernel ``raster_kernel.cpp`` (built by g++ and loaded by ``raster_c``; its header describes it):
  projection of degree-0 colours 8 Gaussians per vector (numba's ``_project`` + ``rs_records`` for SH degree > 0),
  ``_depth_order`` below, binning into 8-column strips by the rows the ellipse really meets in each 4-column half,
  and Gaussian-major compositing within a strip: each entry, in depth order, blended into the strip's 4 x 2 pixel
  groups of its rows (their T and colour sums in a per-thread array), the exponent stepped down the rows by forward
  differences. Threads: numba's
  thread count (``numba.set_num_threads``): the calling thread plus a pool, strips handed out by an atomic counter.
- the numba kernels (where the library cannot be built or loaded, or ``RSATALKER_RASTER=numba``; the reason is
  logged once): ``_project`` (EWA projection, conic, SH colour, the pixel box where alpha can reach 1/255: ext =
  sqrt(2 ln(255 opacity)) <= 3.33 never clamps, culling), ``_depth_order`` (stable LSD radix sort by depth, 11-bit
  passes, as many as the key span needs), ``_bin_live`` (records permuted into depth order, counting sort into
  64 x 16 tiles) and ``_raster`` (parallel over tiles, Gaussian-major: a box under 8 (16) pixels wide in the tile
  takes one fixed 8 (16)-pixel run per row, a wider one 8-pixel runs over each row's analytic span; per-pixel early
  termination, a stopped pixel storing -T, and a scan every 32 Gaussians for 8-pixel segments that have all
  stopped; exp(x) = (poly(x/32))^32).

Issue #9 item 1 (target: 3x 73e3930's CPU time per 8-bit frame at <= 1/255 from the reference). Measured with one
thread, process_time, interleaved with 73e3930 in one process on the shared 2-core VM (ratios only; absolute ms
move with the load; full = default_older's 27.9k Gaussians at 512 x 512, front view):
- frame statistics (full): 11.1M box pixels, of which 4.9M blends (alpha >= 1/255 on a live pixel), 2.5M below the
  threshold, 3.7M on stopped pixels; box width / height median 12 / 13 px; colours degree 0.
- numba (three rounds, kept as the fallback): 1.4-1.5x at every level. Compositing was ~75 % of the frame, bound by
  ~36 vector operations per 8-pixel run including the loads and stores of T, r, g, b; numba does not vectorise
  per-lane register state (SLP off), integer/float reinterpretation or math.log. Not kept there: pixel-major
  lists (0.5-0.6x), exp recurrences, 4/12/16-pixel runs, other tile shapes, per-run masks, a parallel projection.
- C++ kernel, steps in order (each against the previous, same process): 8 x 2 row pairs culled by box rows: no
  faster than numba (1.49x); rows culled per 8-column strip by the ellipse: 744k instead of 960k pair
  evaluations; 4 x 2 groups culled per 4-column half: 886k group evaluations (7.1M lanes for the 4.9M blends);
  exp2 from exponent bits (3 multiplies instead of 9), min/max intrinsics, per-group pixel coordinates: 1.70x ->
  1.77x; prefetched depth-order gathers in the binning (the random reads were ~25 % of it); the C++ projection
  writing the records directly (no gather): 1.8x -> 2.1x; prefetching records 8 Gaussians ahead: +3 %; strips
  instead of 8 x 16 tiles (the scattered writes of 161k tile entries were ~30 % of the binning): binning ~2x
  cheaper. No gain: two groups interleaved vs one (throughput-bound, not latency-bound), the stop test every 4
  Gaussians, binning straight into 4 x 2 groups (1.23M scattered list writes).
- where the full level's time goes now (``scripts/profile_cpu_tiles.py --frames 16``, load 1.7): 73e3930 31.7 ms,
  this module 14.1 ms (2.25x; 6k at 256 x 256: 7.1 -> 3.1 ms, 2.30x): binning + compositing 12.5 ms (perf samples:
  blending ~65 %, splitting strips into group lists ~22 %, binning ~12 %), depth sort 0.4 ms, C++ projection and
  Python ~1.2 ms. ``bench_render --threads 1 --counts 20000 --compare-only default_older --compare-frames 16``
  (load 1.9 -> 4.1): CPU time full 33.0 -> 15.5 ms (2.12x), 12k 2.48x, 6k 2.21x (median 2.21x; the numba
  fallback 1.44x / 1.52x / 1.37x); mean difference from the torch reference 0.089/255 for old, new and fallback.
- then (pixel-major, lists): 3x not reached. Blending cost ~28 vector operations per 4 x 2 group and Gaussian (pixel
  coordinates 7, exp2 and clamps 11, threshold and T 7, colours 3) over 886k group evaluations, and the split of
  each strip into its groups' lists ~1.2M pushes (~22 % of the kernel).
- Gaussian-major compositing within a strip (the groups' state in a per-thread array, 64 KiB at 512 rows: no
  per-group lists; the exponent down each half by forward differences, two adds per group; 2^x's exponent bits
  shifted from the rounding sum directly; dead groups skipped by a byte per group): whole frame 1.49x full, 1.35x 6k
  against the list kernel interleaved (the same 8-bit images). ``bench_render`` as above (load 7.4 -> 5.6): CPU time
  full 40.4 -> 12.8 ms (3.15x), 12k 3.07x, 6k 3.13x (median 3.13x; numba fallback 1.55x / 1.50x / 1.51x); mean
  difference from the torch reference 0.089/255 for old, new and fallback; a second run (load 2.0): 3.03x / 3.34x
  / 3.48x (the full level's margin over 3x is thin). ``scripts/profile_cpu_tiles.py``
  (load 3.7): full 28.9 -> 9.5 ms (3.04x), 6k at 256 x 256 5.2 -> 1.95 ms (2.65x). Split of the full frame (C++
  calls timed alone): compositing 6.45 ms (1.23M group evaluations before stops, 129k entry halves: ~5 ns each),
  binning 1.69, projection 0.76, depth sort and Python ~1.0 ms. No gain from (kernel header): L1-sized bands of
  row pairs (0.78x), dropping or changing the dead-group test, skipping all-below-threshold groups' exponent, both
  halves in one pass, a shorter T chain, deeper or wider prefetches, 64-byte aligned records. What is left: the
  compositing is near its instruction throughput (~35 instructions per group evaluation); the binning (~17 %) and
  the depth sort + Python (~10 %, 25 % at 6k 256 x 256) are the next shares.
- binning: each 4-strip vector of strip_rows packed and stored as it is (the scratch holds the half strips in lane
  order) and the strips met counted from a lane mask, instead of 16 scalar lane extractions per vector: whole frame
  1.08-1.13x full, 1.11-1.13x 6k (two interleaved A/B runs against the previous commit, the same images).
  ``bench_render`` (load 3.2): CPU time 3.34x full, 3.24x 12k, 3.05x 6k (median 3.24x; the 6k row's old frames hit
  a burst of load: wall 30 ms for 18.6 ms CPU); again (load 2.4, wall = CPU): 3.34x / 3.31x / 3.33x (median 3.33x;
  numba fallback 1.39x / 1.38x / 1.52x), mean difference from the reference 0.089/255 as before. No gain (interleaved A/B, within +-2 %): the 8-bit output of a group
  packed by a byte shuffle, the projection's records written as vectors through an 8 x 8 transpose.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import raster_c

TILE = 16
_NPIX = TILE * TILE
ALPHA_MIN = np.float32(1.0 / 255.0)
T_MIN = np.float32(1e-4)
EPS2D = 0.3
NEAR = 0.01
FAR = 1e10
_f = np.float32

# packed per-Gaussian record written by _project: mean2d x, y, conic A, B, C, log(opacity), ln(255 opacity),
# r, g, b, depth
_REC = 11

_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = np.array([1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
                   0.5462742152960396])
_SH_C3 = np.array([-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
                   -0.4570457994644658, 1.445305721320277, -0.5900435899266435])


@numba.njit(inline="always", fastmath=True)
def _exp_neg(x):
    """exp(x) for x <= 0, float32, no branches: exp(x/32)^32 with a degree-3 Taylor polynomial (Horner), 10
    operations; absolute error < 7e-6 on [-6, 0] (relative < 0.2 %, at x = -6). x is clamped at -6: exp(-6) < 1/255,
    so anything at or below the clamp stays below the alpha threshold and is skipped, as exp(x) would be."""
    y = max(x, _f(-6.0)) * _f(1.0 / 32.0)
    p = _f(1.0) + y * (_f(1.0) + y * (_f(0.5) + y * _f(1.0 / 6.0)))
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@numba.njit(inline="always", fastmath=True)
def _sh_colour(sh, i, degree, x, y, z, c):
    """Colour channel c of Gaussian i from SH coefficients sh [N,K,3] along the unit direction (x, y, z)."""
    v = _SH_C0 * sh[i, 0, c]
    if degree >= 1:
        v += _SH_C1 * (-y * sh[i, 1, c] + z * sh[i, 2, c] - x * sh[i, 3, c])
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        v += (_SH_C2[0] * xy * sh[i, 4, c] + _SH_C2[1] * yz * sh[i, 5, c]
              + _SH_C2[2] * (2 * zz - xx - yy) * sh[i, 6, c] + _SH_C2[3] * xz * sh[i, 7, c]
              + _SH_C2[4] * (xx - yy) * sh[i, 8, c])
        if degree >= 3:
            v += (_SH_C3[0] * y * (3 * xx - yy) * sh[i, 9, c] + _SH_C3[1] * xy * z * sh[i, 10, c]
                  + _SH_C3[2] * y * (4 * zz - xx - yy) * sh[i, 11, c]
                  + _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[i, 12, c]
                  + _SH_C3[4] * x * (4 * zz - xx - yy) * sh[i, 13, c] + _SH_C3[5] * z * (xx - yy) * sh[i, 14, c]
                  + _SH_C3[6] * x * (xx - 3 * yy) * sh[i, 15, c])
    return max(v + 0.5, 0.0)


@numba.njit(cache=True, fastmath=True, nogil=True)
def _project(means, quats, scales, opacities, sh, campos, view, intr, lims, width, height, rec, box, visible):
    """means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], sh [N,K,3] float32; campos [3] camera centre;
    view [3,4] world->cam; intr (fx, fy, cx, cy); lims (xn, xp, yn, yp) clamp limits for J.
    Writes rec [N,_REC] float32, box [N,4] int32 (u0, u1, v0, v1 inclusive, clipped to the image), visible [N].
    All arithmetic in float32 (constants written as _f(...): a Python float would promote it to float64), one
    log per Gaussian, and no libm ceil/floor calls (truncation of values clamped to >= 0)."""
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    K = sh.shape[1]
    degree = 0 if K < 4 else (1 if K < 9 else (2 if K < 16 else 3))
    one, two = _f(1.0), _f(2.0)
    w_max, h_max = _f(width - 1), _f(height - 1)
    log255 = _f(math.log(255.0))
    for i in range(means.shape[0]):
        visible[i] = False
        o = opacities[i]
        if not (o >= ALPHA_MIN):
            continue
        px, py, pz = means[i, 0], means[i, 1], means[i, 2]
        x = view[0, 0] * px + view[0, 1] * py + view[0, 2] * pz + view[0, 3]
        y = view[1, 0] * px + view[1, 1] * py + view[1, 2] * pz + view[1, 3]
        z = view[2, 0] * px + view[2, 1] * py + view[2, 2] * pz + view[2, 3]
        if not (z >= _f(NEAR) and z <= _f(FAR)):
            continue
        # rotation of the Gaussian, times scale: M = Rq diag(s)
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        qn = one / max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), _f(1e-12))
        qw, qx, qy, qz = qw * qn, qx * qn, qy * qn, qz * qn
        sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
        r00 = (one - two * (qy * qy + qz * qz)) * sx
        r01 = two * (qx * qy - qw * qz) * sy
        r02 = two * (qx * qz + qw * qy) * sz
        r10 = two * (qx * qy + qw * qz) * sx
        r11 = (one - two * (qx * qx + qz * qz)) * sy
        r12 = two * (qy * qz - qw * qx) * sz
        r20 = two * (qx * qz - qw * qy) * sx
        r21 = two * (qy * qz + qw * qx) * sy
        r22 = (one - two * (qx * qx + qy * qy)) * sz
        # J W: rows of the Jacobian times the camera rotation
        iz = one / z
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
        ca = t00 * t00 + t01 * t01 + t02 * t02 + _f(EPS2D)
        cb = t00 * t10 + t01 * t11 + t02 * t12
        cc = t10 * t10 + t11 * t11 + t12 * t12 + _f(EPS2D)
        det = ca * cc - cb * cb
        if not (det > _f(0.0)):
            continue
        idet = one / det
        mx = fx * x * iz + cx
        my = fy * y * iz + cy
        lo = math.log(o * _f(255.0))
        ext = min(_f(3.33), math.sqrt(two * lo))
        ex = ext * math.sqrt(ca)
        ey = ext * math.sqrt(cc)
        left, right, top, bottom = mx - ex, mx + ex, my - ey, my + ey
        if not (right >= _f(0.0) and left <= w_max and bottom >= _f(0.0) and top <= h_max):
            continue  # off the image (or not finite)
        # u0 = ceil(left), u1 = floor(right), clipped to the image; the clipped values are >= 0, so int() floors
        left, right = max(left, _f(0.0)), min(right, w_max)
        top, bottom = max(top, _f(0.0)), min(bottom, h_max)
        u0, u1, v0, v1 = int(left), int(right), int(top), int(bottom)
        u0 += _f(u0) < left
        v0 += _f(v0) < top
        if u0 > u1 or v0 > v1:
            continue
        rec[i, 0] = mx
        rec[i, 1] = my
        rec[i, 2] = cc * idet
        rec[i, 3] = -cb * idet
        rec[i, 4] = ca * idet
        rec[i, 5] = lo - log255
        rec[i, 6] = lo
        dx, dy, dz = px - campos[0], py - campos[1], pz - campos[2]
        if degree > 0:  # the viewing direction (degree-0 colours do not depend on it)
            dn = one / max(math.sqrt(dx * dx + dy * dy + dz * dz), _f(1e-12))
            dx, dy, dz = dx * dn, dy * dn, dz * dn
        rec[i, 7] = _sh_colour(sh, i, degree, dx, dy, dz, 0)
        rec[i, 8] = _sh_colour(sh, i, degree, dx, dy, dz, 1)
        rec[i, 9] = _sh_colour(sh, i, degree, dx, dy, dz, 2)
        rec[i, 10] = z
        box[i, 0], box[i, 1], box[i, 2], box[i, 3] = u0, u1, v0, v1
        visible[i] = True


@numba.njit(cache=True, nogil=True)
def _depth_order(rec, visible):
    """Indices of the visible Gaussians sorted by depth rec[:, 10] (> 0), stable: LSD radix sort on the float
    bit patterns (positive floats order like their bits) less the smallest, passes of 11 bits (up to 3) until the
    largest is covered."""
    n = 0
    for i in range(visible.shape[0]):
        if visible[i]:
            n += 1
    idx = np.empty(n, np.int32)
    key = np.empty(n, np.uint32)
    d = rec[:, 10].copy().view(np.uint32)
    j = 0
    for i in range(visible.shape[0]):
        if visible[i]:
            idx[j] = i
            key[j] = d[i]
            j += 1
    kmin = key.min() if n > 0 else np.uint32(0)
    for j in range(n):  # depths of one head span few bit patterns: fewer passes
        key[j] -= kmin
    span = key.max() if n > 0 else np.uint32(0)
    idx2 = np.empty_like(idx)
    key2 = np.empty_like(key)
    for shift in (0, 11, 22):
        if shift > 0 and (span >> np.uint32(shift)) == 0:
            break
        count = np.zeros(2049, np.int32)
        for j in range(n):
            count[((key[j] >> shift) & 2047) + 1] += 1
        for b in range(2048):
            count[b + 1] += count[b]
        for j in range(n):
            b = (key[j] >> shift) & 2047
            idx2[count[b]] = idx[j]
            key2[count[b]] = key[j]
            count[b] += 1
        idx, idx2 = idx2, idx
        key, key2 = key2, key
    return idx


# live raster tiles: TW x TH pixels, a row buffer of RS floats (TW + 16: room for a 16-pixel run that starts at the
# tile's last column), channels T, r, g, b, depth CH floats apart
TW = 64
TH = 16
_RS = TW + 16
_TW_BITS, _TH_BITS = 6, 4  # TW = 2 ** _TW_BITS, TH = 2 ** _TH_BITS
_CH = TH * _RS


@numba.njit(inline="always")
def _bin_boxes(order, box, n_tx, n_ty, tile_w, tile_h):
    """order [M] visible Gaussians in depth order, box [N,4] pixel boxes -> (tile_start [T+1], tile_list [I])
    for tile_w x tile_h tiles (n_tx x n_ty, row-major), each tile's Gaussians contiguous and in depth order."""
    n_tiles = n_tx * n_ty
    counts = np.zeros(n_tiles + 1, np.int32)
    for j in range(order.shape[0]):
        g = order[j]
        tx0, tx1 = box[g, 0] // tile_w, box[g, 1] // tile_w
        ty0, ty1 = box[g, 2] // tile_h, box[g, 3] // tile_h
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                counts[ty * n_tx + tx + 1] += 1
    for t in range(n_tiles):
        counts[t + 1] += counts[t]
    fill = counts[:n_tiles].copy()
    lst = np.empty(counts[n_tiles], np.int32)
    for j in range(order.shape[0]):
        g = order[j]
        tx0, tx1 = box[g, 0] // tile_w, box[g, 1] // tile_w
        ty0, ty1 = box[g, 2] // tile_h, box[g, 3] // tile_h
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                t = ty * n_tx + tx
                lst[fill[t]] = g
                fill[t] += 1
    return counts, lst


@numba.njit(cache=True, nogil=True)
def _bin(order, box, n_tx, n_ty):
    """``_bin_boxes`` for TILE x TILE tiles (the training rasteriser's binning, ``train/raster_grad``)."""
    return _bin_boxes(order, box, n_tx, n_ty, TILE, TILE)


@numba.njit(cache=True, nogil=True)
def _bin_live(order, rec, box, n_tx, n_ty):
    """The visible Gaussians' records and boxes permuted into depth order (srec [M,_REC], sbox [M,4]) and binned
    into the live rasteriser's TW x TH tiles by depth rank: (tile_start [T+1], tile_list [I] of ranks, srec, sbox).
    A tile's list is increasing ranks, so the rasteriser reads srec forwards. Two passes: gather and count, fill."""
    m = order.shape[0]
    srec = np.empty((m, _REC), np.float32)
    sbox = np.empty((m, 4), np.int32)
    n_tiles = n_tx * n_ty
    counts = np.zeros(n_tiles + 1, np.int32)
    for j in range(m):
        g = order[j]
        for c in range(_REC):
            srec[j, c] = rec[g, c]
        u0, u1, v0, v1 = box[g, 0], box[g, 1], box[g, 2], box[g, 3]
        sbox[j, 0], sbox[j, 1], sbox[j, 2], sbox[j, 3] = u0, u1, v0, v1
        for ty in range(v0 >> _TH_BITS, (v1 >> _TH_BITS) + 1):  # boxes are >= 0: shifts, not floor division
            for tx in range(u0 >> _TW_BITS, (u1 >> _TW_BITS) + 1):
                counts[ty * n_tx + tx + 1] += 1
    for t in range(n_tiles):
        counts[t + 1] += counts[t]
    fill = counts[:n_tiles].copy()
    lst = np.empty(counts[n_tiles], np.int32)
    for j in range(m):
        for ty in range(sbox[j, 2] >> _TH_BITS, (sbox[j, 3] >> _TH_BITS) + 1):
            for tx in range(sbox[j, 0] >> _TW_BITS, (sbox[j, 1] >> _TW_BITS) + 1):
                t = ty * n_tx + tx
                lst[fill[t]] = j
                fill[t] += 1
    return counts, lst, srec, sbox


@numba.njit(inline="always", fastmath=True)
def _blend_run(buf, k0, lanes, dx0, dy, hA, B, c0, cr, cg, cb, z, with_depth):
    """Composite one Gaussian over the ``lanes`` pixels buf[k0 ...] of a tile row (a compile-time 8 or 16;
    branch-free, vectorised). dx0: Gaussian centre x minus the first pixel's x; c0: log(opacity) - C dy^2 / 2.
    buf: T, then r, g, b (and depth) sums, _CH floats apart. As in the reference, a pixel skips alpha < 1/255 and
    stops before the Gaussian that would take its transmittance to <= T_MIN (it stores -T from then on)."""
    for i in range(lanes):
        dx = dx0 - _f(i)
        _blend_pixel(buf, k0 + np.uint64(i), _exp_neg(c0 - (hA * dx + B * dy) * dx), cr, cg, cb, z, with_depth)


@numba.njit(inline="always", fastmath=True)
def _blend_pixel(buf, k, e, cr, cg, cb, z, with_depth):
    """Composite a Gaussian whose opacity * exp(-sigma) at pixel buf[k] is e (see ``_blend_run``)."""
    alpha = min(e, _f(0.999))
    alpha = alpha if alpha >= ALPHA_MIN else _f(0.0)
    Tk = buf[k]
    Tp = max(Tk, _f(0.0))                               # a stopped pixel (T stored as -T) takes nothing
    nT = Tp - Tp * alpha
    live = nT > T_MIN
    w = alpha * Tp if live else _f(0.0)
    buf[k + np.uint64(_CH)] += w * cr
    buf[k + np.uint64(2 * _CH)] += w * cg
    buf[k + np.uint64(3 * _CH)] += w * cb
    if with_depth:
        buf[k + np.uint64(4 * _CH)] += w * z
    buf[k] = nT if live else -abs(Tk)


@numba.njit(inline="always", fastmath=True)
def _fixed_runs(buf, live, ra, rb, ca, lanes, mx, my, hA, B, hC, log_o, cr, cg, cb, z, with_depth):
    """One ``lanes``-pixel run (compile-time 8 or 16) from column ca on each tile row ra..rb whose 8-pixel
    segments under the run are not all stopped (``live``: per row, a bit per segment with a live pixel)."""
    k0 = np.uint64(ra * _RS + ca)
    dx0 = mx - _f(ca)
    seg = np.uint32(ca >> 3)
    msk = np.uint32(3 if lanes == 8 else 7)  # the 8-pixel segments under the run
    for r in range(ra, rb + 1):
        if (live[r] >> seg) & msk:
            dy = my - _f(r)
            _blend_run(buf, k0, lanes, dx0, dy, hA, B, log_o - hC * dy * dy, cr, cg, cb, z, with_depth)
        k0 += np.uint64(_RS)


_SEGS = TW // 8
_ALL_LIVE = (1 << _SEGS) - 1  # bits of the tile's 8-pixel segments (the row buffer's padding has none: never live)
_SCAN = 32  # Gaussians composited between two scans for stopped segments


@numba.njit(inline="always", fastmath=True)
def _scan_live(buf, live):
    """live[r] = a bit per 8-pixel segment of tile row r that has a pixel still live (T > 0; a stopped pixel stores
    -T); returns the OR over rows (0: the whole tile has stopped)."""
    any_live = np.uint32(0)
    for r in range(TH):
        m = np.uint32(0)
        for s in range(_SEGS):
            k = r * _RS + s * 8
            t = buf[k]
            for i in range(1, 8):
                t = max(t, buf[k + i])
            if t > _f(0.0):
                m |= np.uint32(1) << np.uint32(s)
        live[r] = m
        any_live |= m
    return any_live


@numba.njit(inline="always", fastmath=True)
def _composite(buf, live, g, rec, box, x0, y0, with_depth):
    """Composite Gaussian g over the tile at (x0, y0). Pixels outside its ellipse at opacity 1/255 have
    alpha < 1/255 and are skipped by ``_blend_run`` anyway, so a run may reach past the ellipse: a Gaussian whose
    box is at most 8 (16) pixels wide in the tile takes one 8 (16)-pixel run per row from the box's left edge
    (no per-row span, no branches); a wider one takes 8-pixel runs over each row's analytic span."""
    ra, rb = max(box[g, 2], y0) - y0, min(box[g, 3], y0 + TH - 1) - y0
    ca, cb_ = max(box[g, 0], x0) - x0, min(box[g, 1], x0 + TW - 1) - x0
    mx, my = rec[g, 0] - _f(x0), rec[g, 1] - _f(y0)
    A, B, C = rec[g, 2], rec[g, 3], rec[g, 4]
    hA, hC = _f(0.5) * A, _f(0.5) * C
    log_o = rec[g, 5]
    cr, cg, cb, z = rec[g, 7], rec[g, 8], rec[g, 9], rec[g, 10]
    width = cb_ - ca
    if width < 8:
        _fixed_runs(buf, live, ra, rb, ca, 8, mx, my, hA, B, hC, log_o, cr, cg, cb, z, with_depth)
        return
    if width < 16:
        _fixed_runs(buf, live, ra, rb, ca, 16, mx, my, hA, B, hC, log_o, cr, cg, cb, z, with_depth)
        return
    det = A * C - B * B
    lim = _f(2.0) * A * rec[g, 6]  # a row meets the ellipse sigma <= s_max iff det dy^2 <= 2 A s_max
    inv_a = _f(1.0) / A
    fa, fb = _f(ca), _f(cb_)
    for r in range(ra, rb + 1):
        dy = my - _f(r)
        disc = lim - det * dy * dy
        if disc < _f(0.0):
            continue
        # the ellipse's columns on this row: mx + (B dy +- sqrt(disc)) / A, widened by 0.01 px, in the tile
        xc = mx + B * dy * inv_a
        half = math.sqrt(disc) * inv_a + _f(0.01)
        left = max(xc - half, fa)
        right = min(xc + half, fb)
        if right < left:
            continue
        u0 = int(left)  # left >= 0: truncation, then ceil
        if _f(u0) < left:
            u0 += 1
        u1 = int(right)
        row = r * _RS
        c0 = log_o - hC * dy * dy
        lv = live[r]
        for u in range(u0, u1 + 1, 8):
            if (lv >> np.uint32(u >> 3)) & np.uint32(3):
                _blend_run(buf, np.uint64(row + u), 8, mx - _f(u), dy, hA, B, c0, cr, cg, cb, z, with_depth)


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _raster(tile_start, tile_list, rec, box, width, height, n_tx, bg, out_rgb, out_alpha, out_depth, out_u8,
            want_float):
    """Composite every TW x TH tile, Gaussian-major in depth order (``_composite``). Writes out_rgb [H,W,3],
    out_alpha [H,W], out_depth [H,W] (float32) when want_float, else out_u8 [H,W,3] uint8 (rgb clamped to 0..1,
    rounded)."""
    n_tiles = tile_start.shape[0] - 1
    for t in numba.prange(n_tiles):
        ty, tx = t // n_tx, t % n_tx
        x0, y0 = tx * TW, ty * TH
        buf = np.empty(5 * _CH, np.float32)
        buf[:_CH] = _f(1.0)
        buf[_CH:(5 if want_float else 4) * _CH] = _f(0.0)  # the depth sums only for float output
        live = np.full(TH, np.uint32(_ALL_LIVE), np.uint32)
        j0, j1 = tile_start[t], tile_start[t + 1]
        for j in range(j0, j1):
            if want_float:
                _composite(buf, live, tile_list[j], rec, box, x0, y0, True)
            else:
                _composite(buf, live, tile_list[j], rec, box, x0, y0, False)
            if (j - j0) % _SCAN == _SCAN - 1 and _scan_live(buf, live) == 0:
                break  # every pixel of the tile has stopped
        for v in range(y0, min(y0 + TH, height)):
            for u in range(x0, min(x0 + TW, width)):
                k = (v - y0) * _RS + (u - x0)
                Tk = abs(buf[k])
                r0 = buf[k + _CH] + Tk * bg[0]
                g0 = buf[k + 2 * _CH] + Tk * bg[1]
                b0 = buf[k + 3 * _CH] + Tk * bg[2]
                if want_float:
                    out_rgb[v, u, 0] = r0
                    out_rgb[v, u, 1] = g0
                    out_rgb[v, u, 2] = b0
                    a = _f(1.0) - Tk
                    out_alpha[v, u] = a
                    out_depth[v, u] = buf[k + 4 * _CH] / max(a, _f(1e-10))
                else:
                    out_u8[v, u, 0] = np.uint8(min(max(r0, _f(0.0)), _f(1.0)) * _f(255.0) + _f(0.5))
                    out_u8[v, u, 1] = np.uint8(min(max(g0, _f(0.0)), _f(1.0)) * _f(255.0) + _f(0.5))
                    out_u8[v, u, 2] = np.uint8(min(max(b0, _f(0.0)), _f(1.0)) * _f(255.0) + _f(0.5))


def _f32(a, shape_tail, name):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 1 + len(shape_tail) or tuple(a.shape[1:]) != tuple(shape_tail):
        raise ValueError(f"{name} has shape {a.shape}; expected [N, {shape_tail[0]}]")
    return a


def render_cpu(means, quats, scales, opacities, sh, camera, background, uint8: bool = False, chunksize: int = 8,
               use_c: bool = True):
    """Rasterise on the CPU.

    means [N, 3], quats [N, 4] wxyz, scales [N, 3], opacities [N] 0..1, sh [N, K, 3] SH colour coefficients
    (K = 1, 4, 9 or 16) or plain rgb colours [N, 3] (any arrays, cast to float32); camera: ``Camera``;
    background [3]. chunksize: tiles handed to a thread at a time (dynamic scheduling, robust to busy cores; the
    C++ kernel's 8 x 16 tiles: 8 x chunksize). use_c: the C++ kernel (``raster_c``) when it loads; False: numba.
    Returns (image [H, W, 3] float32, alpha [H, W] float32, depth [H, W] float32) or, with uint8=True,
    image [H, W, 3] uint8 (rgb clamped to 0..1, rounded).
    """
    means = _f32(means, (3,), "means")
    n = means.shape[0]
    quats = _f32(quats, (4,), "quats")
    scales = _f32(scales, (3,), "scales")
    opacities = np.ascontiguousarray(opacities, dtype=np.float32).reshape(-1)
    sh = np.ascontiguousarray(sh, dtype=np.float32)
    if sh.ndim == 2 and sh.shape[1:] == (3,):  # plain colours -> degree-0 SH
        sh = ((sh - 0.5) / _SH_C0).reshape(-1, 1, 3).astype(np.float32)
    if sh.ndim != 3 or sh.shape[2] != 3 or sh.shape[1] not in (1, 4, 9, 16):
        raise ValueError(f"sh has shape {sh.shape}; expected [N, K in (1, 4, 9, 16), 3] or colours [N, 3]")
    for name, a in (("quats", quats), ("scales", scales), ("opacities", opacities), ("sh", sh)):
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
    campos = camera.position.astype(np.float32)
    box = np.empty((n, 4), np.int32)
    visible = np.empty(n, np.bool_)
    lib = raster_c.load() if use_c and H <= raster_c.MAX_HEIGHT else None
    previous = numba.set_parallel_chunksize(chunksize)
    try:
        if lib is not None:  # the C++ kernel (binning, compositing; projection of degree-0 colours)
            rec = np.empty((n, raster_c.RECORD), np.float32)
            if sh.shape[1] == 1:
                sh0 = np.ascontiguousarray(sh[:, 0, :])
                lib.rs_project(_ptr(means), _ptr(quats), _ptr(scales), _ptr(opacities), _ptr(sh0), _ptr(view),
                               _ptr(intr), _ptr(lims), W, H, n, _ptr(bg), _ptr(rec), _ptr(box), _ptr(visible))
            else:
                rec_in = np.empty((n, _REC), np.float32)
                _project(means, quats, scales, opacities, sh, campos, view, intr, lims, W, H, rec_in, box, visible)
                lib.rs_records(_ptr(rec_in), _ptr(visible), n, _ptr(bg), _ptr(rec))
            return _composite_c(lib, rec, box, _depth_order(rec, visible), W, H, bg, uint8, max(1, chunksize // 8))
        rec = np.empty((n, _REC), np.float32)
        _project(means, quats, scales, opacities, sh, campos, view, intr, lims, W, H, rec, box, visible)
        order = _depth_order(rec, visible)
        n_tx, n_ty = (W + TW - 1) // TW, (H + TH - 1) // TH
        tile_start, tile_list, srec, sbox = _bin_live(order, rec, box, n_tx, n_ty)
        if uint8:
            out_u8 = np.empty((H, W, 3), np.uint8)
            dummy3, dummy2 = np.empty((1, 1, 3), np.float32), np.empty((1, 1), np.float32)
            _raster(tile_start, tile_list, srec, sbox, W, H, n_tx, bg, dummy3, dummy2, dummy2, out_u8, False)
            return out_u8
        rgb = np.empty((H, W, 3), np.float32)
        alpha = np.empty((H, W), np.float32)
        depth = np.empty((H, W), np.float32)
        _raster(tile_start, tile_list, srec, sbox, W, H, n_tx, bg, rgb, alpha, depth, np.empty((1, 1, 3), np.uint8),
                True)
        return rgb, alpha, depth
    finally:
        numba.set_parallel_chunksize(previous)


def _ptr(a: np.ndarray) -> int:
    """The address of a numpy array's buffer, for the C++ kernel's pointer arguments."""
    return a.ctypes.data


_pool = {}  # threads -> ThreadPoolExecutor for the C++ kernel's extra threads


def _composite_c(lib, rec, box, order, W, H, bg, uint8, chunk):
    """Binning and compositing by the C++ kernel (``raster_c``): the visible Gaussians ``order`` [M] (depth order)
    of rec [N, raster_c.RECORD] / box [N,4], on numba.get_num_threads() threads (ctypes releases the GIL), ``chunk``
    8-column strips at a time."""
    m = order.shape[0]
    n_strips = (W + raster_c.STRIP - 1) // raster_c.STRIP
    strip_start = np.empty(n_strips + 1, np.int32)
    capacity = 4 * m + n_strips  # a head at 512 x 512: ~2.4 entries per Gaussian
    while True:
        strip_list = np.empty((capacity, 3), np.int32)
        entries = lib.rs_bin(_ptr(rec), _ptr(box), _ptr(order), m, n_strips, _ptr(strip_start), _ptr(strip_list),
                             capacity)
        if entries < 0:
            raise MemoryError("the C++ rasteriser could not allocate its binning scratch")
        if entries <= capacity:
            break
        capacity = entries
    if uint8:
        out = (np.empty((H, W, 3), np.uint8),)
        ptrs = (_ptr(out[0]), None, None, None)
    else:
        out = (np.empty((H, W, 3), np.float32), np.empty((H, W), np.float32), np.empty((H, W), np.float32))
        ptrs = (None, _ptr(out[0]), _ptr(out[1]), _ptr(out[2]))
    counter = np.zeros(2, np.int32)  # next strip, strips done
    args = (_ptr(rec), _ptr(strip_start), _ptr(strip_list), W, H, n_strips, _ptr(bg), int(not uint8), *ptrs,
            _ptr(counter), max(1, chunk))
    threads = numba.get_num_threads()
    if threads > 1:
        pool = _pool.get(threads)
        if pool is None:
            pool = _pool[threads] = ThreadPoolExecutor(threads - 1, thread_name_prefix="rsatalker-raster")
        helpers = [pool.submit(lib.rs_raster, *args) for _ in range(threads - 1)]
        lib.rs_raster(*args)
        for h in helpers:
            h.result()
    else:
        lib.rs_raster(*args)
    if counter[1] != n_strips:
        raise RuntimeError(f"the C++ rasteriser could not allocate its scratch ({counter[1]} of {n_strips} strips done)")
    return out[0] if uint8 else out
