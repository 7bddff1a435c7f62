"""Building blocks of the motion model that run the same way on a whole sequence and on a live stream.

Every block takes the k *new* frames of a sequence plus a small state (``cache``) holding what it needs from earlier
frames, and returns the k new outputs and the updated state. A whole clip is one call with an empty state; a live
stream is many calls. Because attention is limited to a window of the last ``window`` frames and convolutions to a
fixed context, the two give the same numbers (up to float rounding). Shapes: B batch, k new frames, c cached
frames, d model width, h heads, dh = d / h, W window, Nq query tokens.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` without the module call's dispatch (~40 of them per live frame)."""
    return F.linear(x, layer.weight, layer.bias)


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` without the module call's dispatch."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def window_mask(rel_bias: torch.Tensor, n_cached: int, n_new: int) -> torch.Tensor:
    """Additive attention mask [h, k, c+k]: learned bias by distance (0..W-1) where a key is inside the query's
    window (key index <= query index, distance < W), -inf elsewhere. rel_bias: [h, W]."""
    W = rel_bias.shape[1]
    q_pos = torch.arange(n_cached, n_cached + n_new, device=rel_bias.device)
    k_pos = torch.arange(n_cached + n_new, device=rel_bias.device)
    dist = q_pos[:, None] - k_pos[None, :]                                   # [k, c+k]
    valid = (dist >= 0) & (dist < W)
    bias = rel_bias[:, dist.clamp(0, W - 1)]                                 # [h, k, c+k]
    return bias.masked_fill(~valid, float("-inf"))


class _WindowMasked(nn.Module):
    """Multi-head attention over a window of W frames: q, kv and output projections and a learned bias by
    distance (rel_bias [h, W]). Caches window masks by (cached, new) frame counts while not training (live
    streams reuse a few shapes)."""

    def __init__(self, d: int, n_heads: int, window: int):
        super().__init__()
        self.h, self.dh, self.window = n_heads, d // n_heads, window
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.o = nn.Linear(d, d)
        self.rel_bias = nn.Parameter(torch.zeros(n_heads, window))

    def mask(self, n_cached: int, n_new: int) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return window_mask(self.rel_bias, n_cached, n_new)
        masks = self.__dict__.setdefault("_masks", {})
        key = (n_cached, n_new, self.rel_bias._version, self.rel_bias.data_ptr())  # stale after weights change
        if key not in masks:
            if len(masks) > 64:
                masks.clear()
            masks[key] = window_mask(self.rel_bias, n_cached, n_new)
        return masks[key]


class WindowAttention(_WindowMasked):
    """Multi-head attention of each new frame to the last W frames of a key sequence (itself included).

    Used as self-attention (x_kv is x_q) and as cross-attention between two frame-aligned sequences.
    """

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, cache):
        """x_q, x_kv: [B, k, d]; cache: None or (K, V) each [B, h, c, dh] with c < W.
        Returns out [B, k, d] and the new cache (the last W-1 keys and values)."""
        B, k, d = x_q.shape
        q = linear(self.q, x_q).view(B, k, self.h, self.dh).transpose(1, 2)
        kv = linear(self.kv, x_kv).view(B, k, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)
        K, V = kv[0], kv[1]
        if cache is not None:
            K, V = torch.cat([cache[0], K], 2), torch.cat([cache[1], V], 2)
        mask = self.mask(K.shape[2] - k, k)
        if k <= 8 and not self.training:   # a few live frames: plain ops beat the fused kernel's overhead
            out = torch.softmax(q @ K.transpose(-1, -2) * self.dh ** -0.5 + mask, dim=-1) @ V
        else:
            out = F.scaled_dot_product_attention(q, K, V, attn_mask=mask)
        out = linear(self.o, out.transpose(1, 2).reshape(B, k, d))
        keep = self.window - 1
        return out, (K[:, :, -keep:], V[:, :, -keep:]) if keep else (K[:, :, :0], V[:, :, :0])


class SocialAttention(_WindowMasked):
    """z_t = CrossAttn(Q = social query tokens, K = V = the last W frames of the encoded sequence), per frame.

    The query tokens are the same for every frame of a sequence: scores are computed once per key frame and
    each frame takes the W scores of its window (unfold), with the learned bias by distance.
    """

    def forward(self, queries: torch.Tensor, x: torch.Tensor, cache):
        """queries: [B, Nq, d]; x: [B, k, d]; cache: None or (K, V) [B, h, c, dh] with c < W.
        Returns z [B, k, Nq, d] (attention output only, no residual) and the new cache."""
        B, Nq, d = queries.shape
        k, W = x.shape[1], self.window
        q = linear(self.q, queries).view(B, Nq, self.h, self.dh).transpose(1, 2)            # [B, h, Nq, dh]
        kv = linear(self.kv, x).view(B, k, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)
        K, V = kv[0], kv[1]
        if cache is not None:
            K, V = torch.cat([cache[0], K], 2), torch.cat([cache[1], V], 2)
        c = K.shape[2] - k
        pad = W - 1 - c                                                              # missing history (start)
        scores = q @ K.transpose(-1, -2) * self.dh ** -0.5                           # [B, h, Nq, c+k]
        scores = F.pad(scores, (pad, 0), value=float("-inf")).unfold(3, W, 1)       # [B, h, Nq, k, W]
        bias = self.rel_bias.flip(1)                                                 # window slot w: distance W-1-w
        att = torch.softmax(scores + bias[None, :, None, None, :], dim=-1)
        Vw = F.pad(V, (0, 0, pad, 0)).unfold(2, W, 1)                                # [B, h, k, dh, W]
        out = torch.einsum("bhqkw,bhkdw->bkqhd", att, Vw)                             # [B, k, Nq, h, dh]
        out = linear(self.o, out.reshape(B, k, Nq, d))
        keep = W - 1
        return out, (K[:, :, -keep:], V[:, :, -keep:]) if keep else (K[:, :, :0], V[:, :, :0])


class FrameCrossAttention(nn.Module):
    """Each frame t attends to its own set of tokens z_t (the decoder's memory). y: [B, k, d], z: [B, k, Nq, d]."""

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.h, self.dh = n_heads, d // n_heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.o = nn.Linear(d, d)

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        B, k, Nq, d = z.shape
        q = linear(self.q, y).view(B, k, self.h, 1, self.dh)
        kv = linear(self.kv, z).view(B, k, Nq, 2, self.h, self.dh)
        K, V = kv[..., 0, :, :].transpose(2, 3), kv[..., 1, :, :].transpose(2, 3)  # [B, k, h, Nq, dh]
        att = torch.softmax((q * K).sum(-1) / math.sqrt(self.dh), dim=-1)          # [B, k, h, Nq]
        out = (att[..., None] * V).sum(-2)                                          # [B, k, h, dh]
        return linear(self.o, out.reshape(B, k, d))


class FeedForward(nn.Module):
    def __init__(self, d: int, mult: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, mult * d), nn.GELU(approximate="tanh"), nn.Linear(mult * d, d))

    def forward(self, x):
        lin1, lin2 = self.net[0], self.net[2]   # direct calls: fewer module dispatches per live frame
        return F.linear(F.gelu(F.linear(x, lin1.weight, lin1.bias), approximate="tanh"), lin2.weight, lin2.bias)


class StreamConv(nn.Module):
    """Temporal convolution over frames with ``past`` frames of context and ``future`` frames of look-ahead.

    State (``tail``): the last past+future input frames, starting as ``past`` zero frames (the sequence's left
    padding). Given k new input frames it returns the outputs for every frame whose look-ahead has arrived:
    k - future outputs on the first call, then k per call; appending ``future`` zero frames ends a sequence.
    Implemented as a linear map of the flattened window (cheaper than a conv kernel call for a few frames).
    """

    def __init__(self, d_in: int, d_out: int, past: int, future: int):
        super().__init__()
        self.past, self.future, self.d_in, self.d_out = past, future, d_in, d_out
        self.proj = nn.Linear(d_in * (past + 1 + future), d_out)

    def initial_tail(self, B: int, ref: torch.Tensor) -> torch.Tensor:
        return ref.new_zeros(B, self.past, self.d_in)

    def forward(self, x: torch.Tensor, tail: torch.Tensor):
        """x: [B, k, d_in]; tail: [B, n, d_in]. Returns y [B, m, d_out] (m may be 0) and the new tail."""
        buf = torch.cat([tail, x], 1)
        ctx = self.past + self.future
        n_out = buf.shape[1] - ctx
        if n_out <= 0:
            return x.new_zeros(x.shape[0], 0, self.d_out), buf
        win = buf.unfold(1, ctx + 1, 1)                                  # [B, m, d_in, ctx+1]
        y = linear(self.proj, win.reshape(x.shape[0], n_out, -1))
        return y, buf[:, buf.shape[1] - ctx:] if ctx else buf[:, :0]
