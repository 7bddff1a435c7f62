"""The motion model's live path in float32 numpy: ``LiveSpeechEncoder`` (``SocialMotionModel.encode_audio`` /
``flush_audio``) and ``LiveCore`` (``SocialMotionModel.core``), the same numbers (to float rounding) for the one or
two frames a live dyad computes at a time, at a fraction of the cost.

A live frame is ~40 small matrix products and ~200 small element-wise ops on [2, 1, 128]-sized arrays; torch
spends several microseconds dispatching each (and as many again on the views between them), numpy about one.
``LiveCore`` runs each Transformer block as one compiled numba kernel instead (rsatalker_ros.motion.live_kernels,
~16 calls a frame; ``compiled=False``: the numpy ops, kept as the reference the compiled step is timed against). The
weights are copied once from the model (``LiveCore(model)``): a LiveCore serves the weights its model had then.
The cache layout follows rsatalker_ros.motion.blocks (the last W - 1 keys and values of every attention layer).
Shapes: B streams, k new frames, d model width, h heads, dh = d / h, W window, Nq query tokens, D motion.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rsatalker_ros.motion.blocks import window_mask


def _np(t: torch.Tensor) -> np.ndarray:
    return np.array(t.detach().cpu().numpy(), dtype=np.float32)


class _Linear:
    def __init__(self, layer: torch.nn.Linear):
        self.wt, self.b = np.ascontiguousarray(_np(layer.weight).T), _np(layer.bias)   # [in, out], [out]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # one row at a time ([n, 1, in] @ [in, out]): numpy's stacked matmul is several times cheaper for a few
        # rows than one [n, in] GEMM (OpenBLAS's threading)
        y = x.reshape(-1, 1, x.shape[-1]) @ self.wt
        return y.reshape(*x.shape[:-1], y.shape[-1]) + self.b


class _LayerNorm:
    def __init__(self, norm: torch.nn.LayerNorm):
        self.w, self.b, self.eps = _np(norm.weight), _np(norm.bias), np.float32(norm.eps)
        self.inv_n = np.float32(1.0 / norm.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xc = x - x.sum(-1, keepdims=True) * self.inv_n           # (sum, not mean: no Python-level overhead)
        var = (xc * xc).sum(-1, keepdims=True) * self.inv_n
        return xc / np.sqrt(var + self.eps) * self.w + self.b


_GELU_C = np.float32(math.sqrt(2.0 / math.pi))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (torch's approximate="tanh")."""
    return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + np.float32(0.044715) * x * x * x)))


def _last(K: np.ndarray, V: np.ndarray, keep: int) -> tuple:
    """The attention cache: the last ``keep`` keys and values (fewer at the start of a stream)."""
    return (K[:, :, -keep:], V[:, :, -keep:]) if keep else (K[:, :, :0], V[:, :, :0])


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class _FeedForward:
    def __init__(self, ff):
        self.l1, self.l2 = _Linear(ff.net[0]), _Linear(ff.net[2])

    def __call__(self, x):
        return self.l2(gelu_tanh(self.l1(x)))


class _WindowAttention:
    """blocks.WindowAttention: x_q, x_kv [B, k, d]; cache None or (K, V) [B, h, c, dh]."""

    def __init__(self, att):
        self.h, self.dh, self.window = att.h, att.dh, att.window
        self.q, self.kv, self.o = _Linear(att.q), _Linear(att.kv), _Linear(att.o)
        self.rel_bias = att.rel_bias.detach().clone()
        self.bias = _np(att.rel_bias)                                                     # [h, W]
        self.scale = np.float32(att.dh ** -0.5)
        self._masks: dict = {}

    def mask(self, n_cached: int, n_new: int) -> np.ndarray:
        key = (n_cached, n_new)
        if key not in self._masks:
            self._masks[key] = _np(window_mask(self.rel_bias, n_cached, n_new))              # [h, k, c+k]
        return self._masks[key]

    def __call__(self, x_q, x_kv, cache):
        B, k, d = x_q.shape
        q = self.q(x_q).reshape(B, k, self.h, self.dh).transpose(0, 2, 1, 3)              # [B, h, k, dh]
        kv = self.kv(x_kv).reshape(B, k, 2, self.h, self.dh).transpose(2, 0, 3, 1, 4)      # [2, B, h, k, dh]
        K, V = kv[0], kv[1]
        if cache is not None:
            K, V = np.concatenate([cache[0], K], 2), np.concatenate([cache[1], V], 2)
        att = softmax(q @ K.transpose(0, 1, 3, 2) * self.scale + self.mask(K.shape[2] - k, k))
        out = self.o((att @ V).transpose(0, 2, 1, 3).reshape(B, k, d))
        return out, _last(K, V, self.window - 1)


class _SocialAttention:
    """blocks.SocialAttention with the query tokens' projection done once: q [B, h, Nq, dh]; x [B, k, d]."""

    def __init__(self, att):
        self.h, self.dh, self.window = att.h, att.dh, att.window
        self.q, self.kv, self.o = _Linear(att.q), _Linear(att.kv), _Linear(att.o)
        self.bias = _np(att.rel_bias)                                          # distance 0 .. W-1 [h, W]
        self.bias_by_slot = np.ascontiguousarray(self.bias[:, ::-1])           # slot w: distance W-1-w [h, W]
        self.scale = np.float32(att.dh ** -0.5)

    def project(self, queries: np.ndarray) -> np.ndarray:
        B, Nq, d = queries.shape
        return self.q(queries).reshape(B, Nq, self.h, self.dh).transpose(0, 2, 1, 3)

    def __call__(self, q, x, cache):
        B, h, Nq, dh = q.shape
        k, W = x.shape[1], self.window
        kv = self.kv(x).reshape(B, k, 2, h, dh).transpose(2, 0, 3, 1, 4)
        K, V = kv[0], kv[1]
        if cache is not None:
            K, V = np.concatenate([cache[0], K], 2), np.concatenate([cache[1], V], 2)
        c = K.shape[2] - k
        scores = q @ K.transpose(0, 1, 3, 2) * self.scale                                 # [B, h, Nq, c+k]
        out = []
        for i in range(k):                        # frame c+i sees keys max(0, c+i-W+1) .. c+i
            lo = max(0, c + i - W + 1)
            n = c + i + 1 - lo
            att = softmax(scores[..., lo:c + i + 1] + self.bias_by_slot[None, :, None, W - n:])
            out.append((att @ V[:, :, lo:c + i + 1]).transpose(0, 2, 1, 3))               # [B, Nq, h, dh]
        out = self.o(np.stack(out, 1).reshape(B, k, Nq, h * dh))
        return out, _last(K, V, W - 1)


class _FrameCrossAttention:
    def __init__(self, att):
        self.h, self.dh = att.h, att.dh
        self.q, self.kv, self.o = _Linear(att.q), _Linear(att.kv), _Linear(att.o)
        self.inv_sqrt = np.float32(1.0 / math.sqrt(att.dh))

    def __call__(self, y, z):
        B, k, Nq, d = z.shape
        q = self.q(y).reshape(B, k, self.h, 1, self.dh)
        kv = self.kv(z).reshape(B, k, Nq, 2, self.h, self.dh)
        K, V = kv[..., 0, :, :].transpose(0, 1, 3, 2, 4), kv[..., 1, :, :].transpose(0, 1, 3, 2, 4)  # [B,k,h,Nq,dh]
        att = softmax((q * K).sum(-1) * self.inv_sqrt)                                     # [B, k, h, Nq]
        return self.o((att[..., None] * V).sum(-2).reshape(B, k, d))


class _StreamConv:
    """blocks.StreamConv: the window of past + 1 + future frames as one linear map; tail [B, n, d_in]."""

    def __init__(self, conv):
        self.past, self.future, self.d_in = conv.past, conv.future, conv.d_in
        n = self.past + 1 + self.future
        w = _np(conv.proj.weight).reshape(-1, self.d_in, n)              # [out, d_in, n]: torch's unfold order
        self.wt = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(n * self.d_in, -1))  # [n * d_in, out], time-major
        self.b = _np(conv.proj.bias)

    def __call__(self, x: np.ndarray, tail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        buf = np.concatenate([tail, x], 1)
        ctx = self.past + self.future
        m = buf.shape[1] - ctx
        if m <= 0:
            return np.zeros((x.shape[0], 0, self.b.shape[0]), np.float32), buf
        B = buf.shape[0]
        if m == 1:                                                          # the live case: one window
            win = buf.reshape(B, 1, -1)
        else:
            win = np.lib.stride_tricks.sliding_window_view(buf, ctx + 1, 1).transpose(0, 1, 3, 2).reshape(B, m, -1)
        y = win.reshape(-1, 1, win.shape[-1]) @ self.wt                     # row by row, as _Linear
        return y.reshape(B, m, -1) + self.b, buf[:, buf.shape[1] - ctx:]


class LiveSpeechEncoder:
    """``SocialMotionModel.encode_audio`` with its own state: ``(feats [B, k, 320] raw log-mel frame features) ->
    [B, m, d]`` for the frames whose look-ahead has arrived; ``flush() -> [B, lookahead, d]`` the rest (silence
    after; ``flush_audio``). ``reset(B)`` starts B new streams; ``clear()`` zeroes the state (same lengths: frame
    numbering goes on)."""

    def __init__(self, model, B: int = 1):
        self.mean, self.std = _np(model.feat_mean), _np(model.feat_std)
        sp = model.speech
        self.conv1, self.conv2, self.norm = _StreamConv(sp.conv1), _StreamConv(sp.conv2), _LayerNorm(sp.norm)
        self.feature_dim, self.lookahead = model.cfg.feature_dim, model.cfg.lookahead
        self.reset(B)

    def reset(self, B: int) -> None:
        self.t1 = np.zeros((B, self.conv1.past, self.conv1.d_in), np.float32)
        self.t2 = np.zeros((B, self.conv2.past, self.conv2.d_in), np.float32)

    def clear(self) -> None:
        self.t1, self.t2 = np.zeros_like(self.t1), np.zeros_like(self.t2)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        x1, self.t1 = self.conv1(x, self.t1)
        x1 = gelu_tanh(x1)
        x2, self.t2 = self.conv2(x1, self.t2)
        return self.norm(x1 + gelu_tanh(x2))

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        if feats.shape[-1] != self.feature_dim:
            raise ValueError(f"audio features: expected [..., {self.feature_dim}], got {tuple(feats.shape)}")
        return self._encode((feats - self.mean) / self.std)

    def flush(self) -> np.ndarray:
        B = self.t1.shape[0]
        if not self.lookahead:
            return np.zeros((B, 0, self.norm.w.shape[0]), np.float32)
        return self._encode(np.zeros((B, self.lookahead, self.feature_dim), np.float32))


class LiveCore:
    """``core(a_own, a_par, partner_past, partner_known, query_index) -> motion [B, k, D]`` float32 numpy, the
    numbers of ``model.core`` with its own cache (``reset`` empties it). Arguments as model.core, as numpy:
    a_own, a_par [B, k, d]; partner_past [B, k, D]; partner_known [B, k] bool; query_index [B] ints.
    ``compiled`` (the default) runs each block as one numba kernel (rsatalker_ros.motion.live_kernels, ~16 calls
    a step); False runs the same weights through numpy ops (~400 calls a step: the reference it replaced)."""

    def __init__(self, model, compiled: bool = True):
        cfg = model.cfg
        self.compiled = compiled
        self.cfg = cfg
        self.motion_mean, self.motion_std = _np(model.motion_mean), _np(model.motion_std)
        self.enc1, self.enc2 = _Linear(model.motion_enc[0]), _Linear(model.motion_enc[2])
        self.partner_proj, self.own_proj, self.merge = (_Linear(model.partner_proj), _Linear(model.own_proj),
                                                        _Linear(model.merge))
        self.fuse_nq, self.fuse_nkv, self.fuse_nf = (_LayerNorm(model.fuse_nq), _LayerNorm(model.fuse_nkv),
                                                     _LayerNorm(model.fuse_nf))
        self.fuse_att, self.fuse_ff = _WindowAttention(model.fuse_att), _FeedForward(model.fuse_ff)
        self.encoder = [(_LayerNorm(L.n1), _WindowAttention(L.att), _LayerNorm(L.n2), _FeedForward(L.ff))
                        for L in model.encoder]
        self.decoder = [(_LayerNorm(L.n1), _WindowAttention(L.self_att), _LayerNorm(L.n2),
                         _FrameCrossAttention(L.cross), _LayerNorm(L.n3), _FeedForward(L.ff)) for L in model.decoder]
        self.social_norm, self.social_fnorm = _LayerNorm(model.social_norm), _LayerNorm(model.social_fnorm)
        self.social_att, self.social_ff = _SocialAttention(model.social_att), _FeedForward(model.social_ff)
        self.out_norm, self.out = _LayerNorm(model.out_norm), _Linear(model.out)
        self._model_queries = model        # query_indices (its checks and share_queries) and the query tokens
        self._queries: dict = {}           # query indices -> (tokens [B, Nq, d], projected [B, h, Nq, dh])
        self._args = None                  # the compiled blocks' weight arguments (_compiled_args)
        self.reset()

    def reset(self) -> None:
        self.fusion = self.social = None
        self.encoder_cache = [None] * len(self.encoder)
        self.decoder_cache = [None] * len(self.decoder)
        self._kv = None       # the compiled step's K, V [B, c, d] per attention: fusion, encoder, social, decoder

    def _query_tokens(self, query_index) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(int(i) for i in query_index)
        if key not in self._queries:
            m = self._model_queries
            tokens = _np(m.queries[m.query_indices(torch.tensor(key))])
            self._queries[key] = (tokens, self.social_att.project(tokens))
        return self._queries[key]

    def __call__(self, a_own, a_par, partner_past, partner_known, query_index) -> np.ndarray:
        if self.compiled:
            return self._denormalise(self._step_compiled(a_own, a_par, partner_past, partner_known, query_index))
        known = partner_known.astype(np.float32)[..., None]
        m = (partner_past - self.motion_mean) / self.motion_std * known
        menc = self.enc2(gelu_tanh(self.enc1(np.concatenate([m, known], -1))))
        ap = self.partner_proj(a_par)
        att, self.fusion = self.fuse_att(self.fuse_nq(ap), self.fuse_nkv(menc), self.fusion)
        f = ap + att
        f = f + self.fuse_ff(self.fuse_nf(f))
        h = self.merge(np.concatenate([f, self.own_proj(a_own)], -1))
        for i, (n1, att_layer, n2, ff) in enumerate(self.encoder):
            y = n1(h)
            a, self.encoder_cache[i] = att_layer(y, y, self.encoder_cache[i])
            h = h + a
            h = h + ff(n2(h))
        tokens, q = self._query_tokens(query_index)
        zatt, self.social = self.social_att(q, self.social_norm(h), self.social)
        z = tokens[:, None] + zatt                                                        # [B, k, Nq, d]
        z = z + self.social_ff(self.social_fnorm(z))
        y = h
        for i, (n1, att_layer, n2, cross, n3, ff) in enumerate(self.decoder):
            u = n1(y)
            a, self.decoder_cache[i] = att_layer(u, u, self.decoder_cache[i])
            y = y + a
            y = y + cross(n2(y), z)
            y = y + ff(n3(y))
        return self._denormalise(self.out(self.out_norm(y)))

    def _denormalise(self, out: np.ndarray) -> np.ndarray:
        motion = out * self.motion_std + self.motion_mean
        if self.cfg.basis == "arkit52":                  # blendshape weights are 0..1 (as model.core when live)
            n = self.cfg.motion_dim - 12
            w = motion[..., :n]                          # np.clip(w, 0, 1) as its two ufuncs (clip's wrapper costs more)
            np.maximum(w, 0.0, out=w)
            np.minimum(w, 1.0, out=w)
        return motion

    def _compiled_args(self) -> dict:
        """The weights of each compiled block as its kernel's argument tuple (built once)."""
        L = lambda lin: (lin.wt, lin.b)                               # noqa: E731
        N = lambda norm: (norm.w, norm.b, float(norm.eps))            # noqa: E731
        FF = lambda norm, ff: (*N(norm), *L(ff.l1), *L(ff.l2))        # noqa: E731
        ATT = lambda nq, nkv, at: (*N(nq), *N(nkv), *L(at.q), *L(at.kv), *L(at.o), at.bias)  # noqa: E731
        sa = self.social_att
        return {"enc": (*L(self.enc1), *L(self.enc2)), "partner": L(self.partner_proj), "own": L(self.own_proj),
                "merge": L(self.merge), "fuse": ATT(self.fuse_nq, self.fuse_nkv, self.fuse_att),
                "fuse_ff": FF(self.fuse_nf, self.fuse_ff),
                "encoder": [(ATT(n1, n1, at), FF(n2, ff)) for n1, at, n2, ff in self.encoder],
                "social": (*N(self.social_norm), *L(sa.kv), *L(sa.o), sa.bias),
                "social_ff": FF(self.social_fnorm, self.social_ff),
                "decoder": [(ATT(n1, n1, at), (*N(n2), *L(c.q), *L(c.kv), *L(c.o), c.h), FF(n3, ff))
                            for n1, at, n2, c, n3, ff in self.decoder],
                "out": (N(self.out_norm), L(self.out))}

    def _step_compiled(self, a_own, a_par, partner_past, partner_known, query_index) -> np.ndarray:
        """The step of ``__call__`` in compiled blocks -> the output layer's values [B, k, D] (normalised)."""
        from rsatalker_ros.motion import live_kernels as K
        B, k, d = a_own.shape
        if self._args is None:
            self._args = self._compiled_args()
        w = self._args
        if self._kv is None:
            n_att = 2 + len(self.encoder) + len(self.decoder)
            self._kv = [(np.zeros((B, 0, d), np.float32),) * 2 for _ in range(n_att)]
        kv = self._kv                                     # kv[i] = (K, V) of attention i, replaced each step
        rows = lambda x: np.ascontiguousarray(x, np.float32).reshape(-1, x.shape[-1])  # noqa: E731
        known = partner_known.astype(np.float32)[..., None]
        m = (partner_past - self.motion_mean) / self.motion_std * known
        menc = K.mlp(rows(np.concatenate([m, known], -1)), *w["enc"]).reshape(B, k, d)
        ap = K.linear(rows(a_par), *w["partner"]).reshape(B, k, d)
        f, *kv[0] = K.attention_block(ap, menc, *w["fuse"], *kv[0])
        f = K.feed_forward_block(f.reshape(B * k, d), *w["fuse_ff"])
        h = K.linear(np.concatenate([f, K.linear(rows(a_own), *w["own"])], -1), *w["merge"]).reshape(B, k, d)
        for i, (att, ff) in enumerate(w["encoder"]):
            h, *kv[1 + i] = K.attention_block(h, h, *att, *kv[1 + i])
            h = K.feed_forward_block(h.reshape(B * k, d), *ff).reshape(B, k, d)
        tokens, q = self._query_rows(query_index)
        s, Nq = 1 + len(self.encoder), tokens.shape[1]
        z, *kv[s] = K.social_block(tokens, q, h, *w["social"], *kv[s])
        z = K.feed_forward_block(z.reshape(B * k * Nq, d), *w["social_ff"]).reshape(B, k, Nq, d)
        y = h
        for i, (att, cross, ff) in enumerate(w["decoder"]):
            y, *kv[s + 1 + i] = K.attention_block(y, y, *att, *kv[s + 1 + i])
            y = K.frame_cross_block(y, z, *cross)
            y = K.feed_forward_block(y.reshape(B * k, d), *ff).reshape(B, k, d)
        norm, out = w["out"]
        return K.linear(K.layer_norm(y.reshape(B * k, d), *norm), *out).reshape(B, k, -1)

    def _query_rows(self, query_index) -> tuple[np.ndarray, np.ndarray]:
        """(tokens [B, Nq, d], their social-attention query projection [B, Nq, d], heads interleaved)."""
        key = ("rows",) + tuple(int(i) for i in query_index)
        if key not in self._queries:
            tokens, q = self._query_tokens(query_index)
            B, h, Nq, dh = q.shape
            self._queries[key] = (tokens, np.ascontiguousarray(q.transpose(0, 2, 1, 3)).reshape(B, Nq, h * dh))
        return self._queries[key]


def compile_kernels() -> None:
    """The compiled step's numba kernels into their on-disk cache (or loaded from it when current): one step of
    a tiny random model (the kernels depend on array types only, not sizes). scripts/bootstrap.sh runs it."""
    from rsatalker_ros.motion.config import MotionModelConfig
    from rsatalker_ros.motion.model import SocialMotionModel
    model = SocialMotionModel(MotionModelConfig(d_model=8, n_heads=2, window=2, n_query_tokens=1)).eval()
    core, d, D = LiveCore(model), model.cfg.d_model, model.cfg.motion_dim
    x = np.zeros((2, 1, d), np.float32)
    core(x, x, np.zeros((2, 1, D), np.float32), np.ones((2, 1), bool), [0, 1])
