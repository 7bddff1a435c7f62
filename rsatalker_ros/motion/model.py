"""The socially-aware motion model (after RSATalker, DESIGN.md section 3), causal with a bounded look-ahead.

    own audio ─────┐                                     ┌─ social queries q_r (relationship r: 6 sets + neutral)
                   ├─ speech encoder ─ a_own ─┐          │
    partner audio ─┘                 a_par ─┐ │          │
    partner past motion ─ motion encoder ─ f = CrossAttn(Q=a_par, K=V=m) ─ [f; a_own] ─ Transformer encoder ─ h
                                                           z_t = CrossAttn(Q=q_r, K=V=h[t-W+1..t])
                                                           Transformer decoder(h, memory z_t) ─ motion_t [D]

Audio: per 40 ms motion frame, 4 log-mel frames x 80 mels (rsatalker_ros.motion.features.frame_features),
[B, T, 320]. Motion: the head's layout (rsatalker_ros/motion/layout.py), [B, T, D]. The speech encoder is the
only part that looks ahead (``lookahead`` frames); every attention layer is causal over a ``window`` of frames,
so a clip run at once (``forward``) and the same clip streamed chunk by chunk (``encode_audio`` + ``core``, see
rsatalker_ros.motion.streaming) give the same motion. Whether the participant speaks or listens is not an input:
the model hears it in the two audio streams.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rsatalker_ros.motion.blocks import (FeedForward, FrameCrossAttention, SocialAttention, StreamConv,
                                         WindowAttention, layer_norm, linear)
from rsatalker_ros.motion.config import NEUTRAL_QUERY, MotionModelConfig


class SpeechEncoder(nn.Module):
    """Normalised feature frames [B, k, 320] (rsatalker_ros.motion.features) -> [B, m, d], m = frames whose
    look-ahead has arrived. The first layer is a temporal convolution over frames t - past_context .. t +
    lookahead: the model's only look into the future (MotionModelConfig.lookahead_ms)."""

    def __init__(self, cfg: MotionModelConfig):
        super().__init__()
        d = cfg.d_model
        self.conv1 = StreamConv(cfg.feature_dim, d, cfg.past_context, cfg.lookahead)
        self.conv2 = StreamConv(d, d, 2, 0)
        self.act = nn.GELU(approximate="tanh")
        self.norm = nn.LayerNorm(d)

    def initial_state(self, B: int, ref: torch.Tensor) -> dict:
        return {"t1": self.conv1.initial_tail(B, ref), "t2": self.conv2.initial_tail(B, ref)}

    def forward(self, feats: torch.Tensor, state: dict):
        x1, state["t1"] = self.conv1(feats, state["t1"])
        x1 = self.act(x1)
        x2, state["t2"] = self.conv2(x1, state["t2"])
        return self.norm(x1 + self.act(x2))


class _Dropping(nn.Module):
    def _drop(self, x):
        return self.drop(x) if self.training else x   # skips a module call per residual when live


class EncoderLayer(_Dropping):
    def __init__(self, cfg: MotionModelConfig):
        super().__init__()
        d = cfg.d_model
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = WindowAttention(d, cfg.n_heads, cfg.window)
        self.ff = FeedForward(d, cfg.ffn_mult)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache):
        y = layer_norm(self.n1, x)
        a, cache = self.att(y, y, cache)
        x = x + self._drop(a)
        return x + self._drop(self.ff(layer_norm(self.n2, x))), cache


class DecoderLayer(_Dropping):
    def __init__(self, cfg: MotionModelConfig):
        super().__init__()
        d = cfg.d_model
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_att = WindowAttention(d, cfg.n_heads, cfg.window)
        self.cross = FrameCrossAttention(d, cfg.n_heads)
        self.ff = FeedForward(d, cfg.ffn_mult)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, y, z, cache):
        u = layer_norm(self.n1, y)
        a, cache = self.self_att(u, u, cache)
        y = y + self._drop(a)
        y = y + self._drop(self.cross(layer_norm(self.n2, y), z))
        return y + self._drop(self.ff(layer_norm(self.n3, y))), cache


@dataclass
class CoreState:
    """Caches of the causal part for a batch of streams (see ``SocialMotionModel.core``)."""
    fusion: tuple | None = None
    encoder: list = field(default_factory=list)
    social: tuple | None = None
    decoder: list = field(default_factory=list)


class SocialMotionModel(_Dropping):
    """Speech (own + partner) and partner past motion -> own motion, conditioned on the relationship.

    Normalisation statistics (``feat_mean/std`` [320], ``motion_mean/std`` [D]) are buffers set from the training
    data (``set_normalization``) and saved with the weights.
    """

    def __init__(self, cfg: MotionModelConfig):
        super().__init__()
        self.cfg = cfg
        d, D = cfg.d_model, cfg.motion_dim
        self.register_buffer("feat_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feat_std", torch.ones(cfg.feature_dim))
        self.register_buffer("motion_mean", torch.zeros(D))
        self.register_buffer("motion_std", torch.ones(D))
        self.speech = SpeechEncoder(cfg)
        self.own_proj = nn.Linear(d, d)
        self.partner_proj = nn.Linear(d, d)
        self.motion_enc = nn.Sequential(nn.Linear(D + 1, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.fuse_nq, self.fuse_nkv, self.fuse_nf = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.fuse_att = WindowAttention(d, cfg.n_heads, cfg.window)
        self.fuse_ff = FeedForward(d, cfg.ffn_mult)
        self.merge = nn.Linear(2 * d, d)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        # the socially-aware module: learnable query tokens, one set per relationship query index (+ neutral)
        # (drawn in place: the same values as randn * 0.02, and no arithmetic on the meta device, where it would
        # import torch._dynamo, ~4 s of a node's start-up; checkpoint.expected_shapes builds the model there)
        self.queries = nn.Parameter(torch.empty(cfg.n_query_sets, cfg.n_query_tokens, d))
        if not self.queries.is_meta:
            nn.init.normal_(self.queries, std=0.02)
        self.social_norm, self.social_fnorm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.social_att = SocialAttention(d, cfg.n_heads, cfg.window)
        self.social_ff = FeedForward(d, cfg.ffn_mult)
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.out_norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, D)
        self.drop = nn.Dropout(cfg.dropout)

    # ---- normalisation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalization(self, feat_mean, feat_std, motion_mean, motion_std, std_floor: float = 1e-2):
        """Per-dimension statistics of the training data; std is floored so near-constant dims stay stable."""
        for name, v in (("feat_mean", feat_mean), ("feat_std", feat_std), ("motion_mean", motion_mean),
                        ("motion_std", motion_std)):
            v = torch.as_tensor(v, dtype=torch.float32)
            buf = getattr(self, name)
            if v.shape != buf.shape:
                raise ValueError(f"{name}: expected shape {tuple(buf.shape)}, got {tuple(v.shape)}")
            buf.copy_(v.clamp_min(std_floor) if name.endswith("std") else v)

    def normalize_motion(self, m: torch.Tensor) -> torch.Tensor:
        return (m - self.motion_mean) / self.motion_std

    def denormalize_motion(self, m: torch.Tensor) -> torch.Tensor:
        return m * self.motion_std + self.motion_mean

    def query_indices(self, query_index: torch.Tensor) -> torch.Tensor:
        """[B] relationship query indices (0..5, or NEUTRAL_QUERY); all neutral when queries are shared."""
        query_index = torch.as_tensor(query_index, dtype=torch.long, device=self.queries.device)
        if query_index.min() < 0 or query_index.max() > NEUTRAL_QUERY:
            raise ValueError(f"query_index must be in 0..{NEUTRAL_QUERY}, got {query_index.tolist()}")
        if self.cfg.share_queries:
            return torch.full_like(query_index, NEUTRAL_QUERY)
        return query_index

    # ---- streaming pieces ----------------------------------------------------------------------------------
    def initial_audio_state(self, B: int) -> dict:
        return self.speech.initial_state(B, self.feat_mean)

    def encode_audio(self, feats: torch.Tensor, state: dict) -> torch.Tensor:
        """feats [B, k, 320] (raw log-mel frame features) -> encoded [B, m, d] for frames whose look-ahead has
        arrived. ``state`` (from ``initial_audio_state``) is updated in place."""
        if feats.shape[-1] != self.cfg.feature_dim:
            raise ValueError(f"audio features: expected [..., {self.cfg.feature_dim}], got {tuple(feats.shape)}")
        return self.speech((feats - self.feat_mean) / self.feat_std, state)

    def flush_audio(self, state: dict, B: int) -> torch.Tensor:
        """End of a sequence: the encoded frames still waiting for look-ahead, with silence (zeros) after."""
        pad = self.feat_mean.new_zeros(B, self.cfg.lookahead, self.cfg.feature_dim)
        return self.speech(pad, state) if self.cfg.lookahead else pad[:, :, :self.cfg.d_model]

    def core(self, a_own: torch.Tensor, a_par: torch.Tensor, partner_past: torch.Tensor,
             partner_known: torch.Tensor, query_index: torch.Tensor, state: CoreState) -> torch.Tensor:
        """The causal part for k new frames.

        a_own, a_par: [B, k, d] encoded own / partner audio; partner_past: [B, k, D] the partner's motion at
        frames t - motion_delay (any values where unknown); partner_known: [B, k] bool, whether it is known;
        query_index: [B]. Returns motion [B, k, D] in the head's layout (denormalised). ``state`` is updated.
        """
        known = partner_known.to(a_own.dtype)[..., None]
        m = self.normalize_motion(partner_past) * known
        enc1, enc2 = self.motion_enc[0], self.motion_enc[2]
        menc = linear(enc2, F.gelu(linear(enc1, torch.cat([m, known], -1)), approximate="tanh"))
        ap = linear(self.partner_proj, a_par)
        att, state.fusion = self.fuse_att(layer_norm(self.fuse_nq, ap), layer_norm(self.fuse_nkv, menc), state.fusion)
        f = ap + self._drop(att)
        f = f + self._drop(self.fuse_ff(layer_norm(self.fuse_nf, f)))
        h = linear(self.merge, torch.cat([f, linear(self.own_proj, a_own)], -1))
        if not state.encoder:
            state.encoder = [None] * len(self.encoder)
            state.decoder = [None] * len(self.decoder)
        for i, layer in enumerate(self.encoder):
            h, state.encoder[i] = layer(h, state.encoder[i])
        q = self.queries[self.query_indices(query_index)]                                  # [B, Nq, d]
        zatt, state.social = self.social_att(q, layer_norm(self.social_norm, h), state.social)
        z = q[:, None] + zatt                                                              # [B, k, Nq, d]
        z = z + self.social_ff(layer_norm(self.social_fnorm, z))
        y = h
        for i, layer in enumerate(self.decoder):
            y, state.decoder[i] = layer(y, z, state.decoder[i])
        motion = self.denormalize_motion(linear(self.out, layer_norm(self.out_norm, y)))
        if self.cfg.basis == "arkit52" and not self.training:   # blendshape weights are 0..1 (not in training:
            n = self.cfg.motion_dim - 12                         # a clamp there would stop gradients)
            motion = torch.cat([motion[..., :n].clamp(0.0, 1.0), motion[..., n:]], -1)
        return motion

    # ---- whole sequences (training, evaluation) ------------------------------------------------------------
    def forward(self, own_feats: torch.Tensor, partner_feats: torch.Tensor, partner_motion: torch.Tensor,
                query_index: torch.Tensor, partner_known: torch.Tensor | None = None) -> torch.Tensor:
        """Batch mode, same numbers as streaming from the first frame.

        own_feats, partner_feats: [B, T, 320]; partner_motion: [B, T, D] the partner's motion frame by frame (the
        model only uses frame t - motion_delay at frame t); query_index: [B] long; partner_known: optional [B, T]
        bool (False = partner motion unknown at that frame, e.g. dropped out in training). Returns [B, T, D].
        """
        B, T, _ = own_feats.shape
        if partner_feats.shape != own_feats.shape:
            raise ValueError(f"partner features {tuple(partner_feats.shape)} must match own {tuple(own_feats.shape)}")
        if partner_motion.shape != (B, T, self.cfg.motion_dim):
            raise ValueError(f"partner_motion: expected {(B, T, self.cfg.motion_dim)}, got "
                             f"{tuple(partner_motion.shape)}")
        both = torch.cat([own_feats, partner_feats], 0)
        st = self.initial_audio_state(2 * B)
        enc = torch.cat([self.encode_audio(both, st), self.flush_audio(st, 2 * B)], 1)
        a_own, a_par = enc[:B], enc[B:]
        delay = self.cfg.motion_delay
        known = torch.ones(B, T, dtype=torch.bool, device=own_feats.device) if partner_known is None \
            else partner_known.to(torch.bool)
        past = torch.cat([partner_motion.new_zeros(B, delay, partner_motion.shape[2]), partner_motion], 1)[:, :T]
        past_known = torch.cat([known.new_zeros(B, delay), known], 1)[:, :T]
        return self.core(a_own, a_par, past, past_known, query_index, CoreState())

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
