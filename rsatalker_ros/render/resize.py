"""Bilinear resize of 8-bit rgb images for the live renderer (numba, one pass, no torch, no float image).

    big = resize_bilinear_uint8(small, width, height)        # uint8 [h, w, 3] -> uint8 [height, width, 3]

The image of ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` on the float image,
rounded half to even (what the render stage did before, ~10x the CPU time): source coordinate
``max((dst + 0.5) * in / out - 0.5, 0)`` in float32, its floor and the next pixel (clamped at the border), blended
along x, then along y. For the render scales the deadline controller uses (0.5, 0.75) every weight is a multiple of
1/8, so every sum is exact in float32 and the images equal torch's bit for bit; for other scales the order of the
float32 sums differs from torch's and an output value may differ by 1 at a rounding tie.
"""

import numba
import numpy as np


def _source_taps(n_in: int, n_out: int):
    """Per output index: (first source index [n_out] int32, second [n_out] int32, weight of the second [n_out]
    float32), as torch computes them (float32 arithmetic)."""
    ratio = np.float32(n_in) / np.float32(n_out)
    real = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * ratio - np.float32(0.5),
                      np.float32(0.0)).astype(np.float32)
    i0 = real.astype(np.int32)                        # floor: real >= 0
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0).astype(np.int32)
    lam1 = np.clip(real - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    return i0, i1, lam1


@numba.njit(cache=True, fastmath=True, nogil=True)
def _horizontal(row, x0, x1, wl, out):
    """row [w * 3] uint8 -> out [W * 3] float32, blended along x with the columns' taps."""
    for x in range(x0.shape[0]):
        a, b = 3 * x0[x], 3 * x1[x]
        m1 = wl[x]
        m0 = np.float32(1.0) - m1
        for c in range(3):
            out[3 * x + c] = np.float32(row[a + c]) * m0 + np.float32(row[b + c]) * m1


@numba.njit(cache=True, fastmath=True, nogil=True)
def _resize_nb(src, h0, h1, hl, w0, w1, wl, out):
    """src [h, w * 3] uint8, out [H, W * 3] uint8; h0/h1/hl [H] the rows' taps, w0/w1/wl [W] the columns'.
    Separable: each source row is blended along x once, into one of two float32 rows, then each output row blends
    its two (vectorised)."""
    rows = np.empty((2, out.shape[1]), np.float32)
    held = np.array([-1, -1])                  # the source row each of the two float rows holds
    for y in range(out.shape[0]):
        for a in (h0[y], h1[y]):
            if held[0] != a and held[1] != a:
                slot = 0 if held[0] != h0[y] and held[0] != h1[y] else 1
                _horizontal(src[a], w0, w1, wl, rows[slot])
                held[slot] = a
        r0 = rows[0] if held[0] == h0[y] else rows[1]
        r1 = rows[0] if held[0] == h1[y] else rows[1]
        l1 = hl[y]
        l0 = np.float32(1.0) - l1
        o = out[y]
        for j in range(o.shape[0]):
            # a convex blend of values in 0..255 stays there: no clamp (it would stop the loop vectorising)
            o[j] = np.uint8(np.int32(np.rint(l0 * r0[j] + l1 * r1[j])))


_TAPS = {}   # (n_in, n_out) -> the taps, computed once per size pair (a renderer uses a few)


def resize_bilinear_uint8(image: np.ndarray,   # uint8 [h, w, 3] rgb
                          width: int,          # output width (px)
                          height: int,         # output height (px)
                          ) -> np.ndarray:
    """-> a new uint8 [height, width, 3] array (``image`` itself when it has that size already)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [h, w, 3], got {image.dtype} {image.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width} x {height}")
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if len(_TAPS) > 64:
        _TAPS.clear()
    for key in ((h, height), (w, width)):
        if key not in _TAPS:
            _TAPS[key] = _source_taps(*key)
    out = np.empty((height, width, 3), np.uint8)
    _resize_nb(np.ascontiguousarray(image).reshape(h, w * 3), *_TAPS[(h, height)], *_TAPS[(w, width)],
               out.reshape(height, width * 3))
    return out
