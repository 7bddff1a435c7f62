"""Compiled blocks of the motion model's live step (numba, cached on disk, nogil): what ``LiveCore`` runs per
frame. One call per Transformer block instead of ~25 numpy calls: a live frame is ~16 calls here, ~400 numpy ones.

Stateless functions over float32 C-contiguous arrays; the weights are the ones ``live_core`` copied from the torch
model (linear weights transposed: wt [in, out]). Activations are rows [n, d]; attention heads are interleaved in
the model width (head j is columns j*dh .. (j+1)*dh - 1, as torch's ``reshape(..., h, dh)``); an attention cache
is K, V [B, c, d] (the last c <= W - 1 frames' keys and values). Sums run in float32 (matrix products) and float64
(LayerNorm statistics, softmax), so results match torch to float32 rounding (~1e-6 relative).
Shapes: B streams, k new frames, d model width, h heads, W window, Nq query tokens.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GELU_C = math.sqrt(2.0 / math.pi)


@numba.njit(cache=True, nogil=True)
def linear(x, wt, b):
    """x [n, in] @ wt [in, out] + b [out] -> [n, out]; each weight row is read once for all n rows."""
    n, n_in = x.shape
    n_out = wt.shape[1]
    y = np.empty((n, n_out), np.float32)
    for r in range(n):
        y[r] = b
    for i in range(n_in):
        w = wt[i]
        for r in range(n):
            xi = x[r, i]
            yr = y[r]
            for o in range(n_out):
                yr[o] += xi * w[o]
    return y


@numba.njit(cache=True, nogil=True)
def layer_norm(x, w, b, eps):
    """LayerNorm over the last axis: x [n, d], w, b [d] -> [n, d]."""
    n, d = x.shape
    y = np.empty_like(x)
    for r in range(n):
        mean = 0.0
        for e in range(d):
            mean += x[r, e]
        mean /= d
        var = 0.0
        for e in range(d):
            t = x[r, e] - mean
            var += t * t
        inv = 1.0 / math.sqrt(var / d + eps)
        for e in range(d):
            y[r, e] = (x[r, e] - mean) * inv * w[e] + b[e]
    return y


@numba.njit(cache=True, nogil=True)
def gelu_(x):
    """GELU, tanh approximation (torch's approximate="tanh"), in place on x [n, m]. tanh(u) as 1 - 2 / (exp(2 u)
    + 1) in float64 (the same float32 result but at float32 rounding boundaries; +-1 at the extremes, where exp
    gives inf or 0): libm's tanh took ~3x as long, a fifth of a live step."""
    n, m = x.shape
    for r in range(n):
        for e in range(m):
            v = x[r, e]
            u = _GELU_C * (v + 0.044715 * v * v * v)
            x[r, e] = 0.5 * v * (2.0 - 2.0 / (math.exp(2.0 * u) + 1.0))
    return x


@numba.njit(cache=True, nogil=True)
def mlp(x, w1, b1, w2, b2):
    """Linear -> GELU -> Linear: x [n, in] -> [n, out]."""
    return linear(gelu_(linear(x, w1, b1)), w2, b2)


@numba.njit(cache=True, nogil=True)
def feed_forward_block(x, ln_w, ln_b, eps, w1, b1, w2, b2):
    """Pre-norm residual feed-forward: x [n, d] -> x + mlp(LayerNorm(x))."""
    return x + mlp(layer_norm(x, ln_w, ln_b, eps), w1, b1, w2, b2)


@numba.njit(cache=True, nogil=True)
def _softmax_(s, n):
    """Softmax over s[:n] in place (s float64)."""
    top = -np.inf
    for j in range(n):
        top = max(top, s[j])
    total = 0.0
    for j in range(n):
        s[j] = math.exp(s[j] - top)
        total += s[j]
    for j in range(n):
        s[j] /= total


@numba.njit(cache=True, nogil=True)
def window_attend(q, K, V, rel_bias, c, scale):
    """Windowed attention with a learned bias by distance. q [B, k, Q, d] (Q queries per new frame), K, V
    [B, c + k, d] (c cached frames first), rel_bias [h, W]. New frame i (position c + i) attends to keys j with
    0 <= c + i - j < W, adding rel_bias[:, c + i - j] to the scaled scores. -> [B, k, Q, d]."""
    B, k, Q, d = q.shape
    h, W = rel_bias.shape
    dh = d // h
    out = np.zeros((B, k, Q, d), np.float32)
    s = np.empty(W, np.float64)
    for bb in range(B):
        for i in range(k):
            p = c + i
            lo = max(0, p - W + 1)
            n = p + 1 - lo
            for qq in range(Q):
                for hh in range(h):
                    col = hh * dh
                    for j in range(n):
                        acc = np.float32(0.0)
                        for e in range(dh):
                            acc += q[bb, i, qq, col + e] * K[bb, lo + j, col + e]
                        s[j] = acc * scale + rel_bias[hh, p - lo - j]
                    _softmax_(s, n)
                    for j in range(n):
                        for e in range(dh):
                            out[bb, i, qq, col + e] += s[j] * V[bb, lo + j, col + e]
    return out


@numba.njit(cache=True, nogil=True)
def _append_cache(Kc, Vc, kv, keep):
    """Kc, Vc [B, c, d] + the new frames' kv [B, k, 2d] (keys then values) -> all keys and values [B, c + k, d]
    and the cache of the last ``keep`` of them."""
    B, c, d = Kc.shape
    k = kv.shape[1]
    K = np.empty((B, c + k, d), np.float32)
    V = np.empty((B, c + k, d), np.float32)
    K[:, :c] = Kc
    V[:, :c] = Vc
    K[:, c:] = kv[:, :, :d]
    V[:, c:] = kv[:, :, d:]
    keep = min(keep, c + k)
    return K, V, K[:, c + k - keep:].copy(), V[:, c + k - keep:].copy()


@numba.njit(cache=True, nogil=True)
def attention_block(xq, xkv, lnq_w, lnq_b, eps_q, lnkv_w, lnkv_b, eps_kv, wq, bq, wkv, bkv, wo, bo, rel_bias, Kc, Vc):
    """blocks.WindowAttention as a pre-norm residual block: xq, xkv [B, k, d] (the same array for
    self-attention), cache Kc, Vc [B, c, d] -> (xq + attention [B, k, d], cache [B, min(c + k, W - 1), d] x 2)."""
    B, k, d = xq.shape
    h, W = rel_bias.shape
    q = linear(layer_norm(xq.reshape(B * k, d), lnq_w, lnq_b, eps_q), wq, bq)
    kv = linear(layer_norm(xkv.reshape(B * k, d), lnkv_w, lnkv_b, eps_kv), wkv, bkv)
    K, V, Kn, Vn = _append_cache(Kc, Vc, kv.reshape(B, k, 2 * d), W - 1)
    att = window_attend(q.reshape(B, k, 1, d), K, V, rel_bias, Kc.shape[1], 1.0 / math.sqrt(d // h))
    return xq + linear(att.reshape(B * k, d), wo, bo).reshape(B, k, d), Kn, Vn


@numba.njit(cache=True, nogil=True)
def social_block(tokens, q, x, ln_w, ln_b, eps, wkv, bkv, wo, bo, rel_bias, Kc, Vc):
    """blocks.SocialAttention: the query tokens tokens [B, Nq, d] (q [B, Nq, d] their projection) attend to the
    window of LayerNorm(x) x [B, k, d] -> (z = tokens + attention [B, k, Nq, d], cache [B, <= W - 1, d] x 2)."""
    B, k, d = x.shape
    Nq = tokens.shape[1]
    h, W = rel_bias.shape
    kv = linear(layer_norm(x.reshape(B * k, d), ln_w, ln_b, eps), wkv, bkv)
    K, V, Kn, Vn = _append_cache(Kc, Vc, kv.reshape(B, k, 2 * d), W - 1)
    qk = np.empty((B, k, Nq, d), np.float32)
    for i in range(k):
        qk[:, i] = q
    att = window_attend(qk, K, V, rel_bias, Kc.shape[1], 1.0 / math.sqrt(d // h))
    z = linear(att.reshape(B * k * Nq, d), wo, bo).reshape(B, k, Nq, d)
    for i in range(k):
        z[:, i] += tokens
    return z, Kn, Vn


@numba.njit(cache=True, nogil=True)
def frame_cross_block(y, z, ln_w, ln_b, eps, wq, bq, wkv, bkv, wo, bo, h):
    """blocks.FrameCrossAttention as a pre-norm residual block: each frame of y [B, k, d] attends to its own
    social tokens z [B, k, Nq, d] (no mask) -> y + attention [B, k, d]."""
    B, k, Nq, d = z.shape
    dh = d // h
    q = linear(layer_norm(y.reshape(B * k, d), ln_w, ln_b, eps), wq, bq)               # [B k, d]
    kv = linear(z.reshape(B * k * Nq, d), wkv, bkv).reshape(B * k, Nq, 2 * d)
    inv = 1.0 / math.sqrt(dh)
    att = np.zeros((B * k, d), np.float32)
    s = np.empty(Nq, np.float64)
    for r in range(B * k):
        for hh in range(h):
            col = hh * dh
            for j in range(Nq):
                acc = np.float32(0.0)
                for e in range(dh):
                    acc += q[r, col + e] * kv[r, j, col + e]
                s[j] = acc * inv
            _softmax_(s, Nq)
            for j in range(Nq):
                for e in range(dh):
                    att[r, col + e] += s[j] * kv[r, j, d + col + e]
    return y + linear(att, wo, bo).reshape(B, k, d)
