"""Configuration of the socially-aware motion model (one dataclass, stored as JSON in every checkpoint)."""

from dataclasses import asdict, dataclass

from rsatalker_ros.config_keys import reject_unknown_keys
from rsatalker_ros.motion.layout import MOTION_FPS
from rsatalker_ros.social.relation import N_QUERY_SETS

NEUTRAL_QUERY = N_QUERY_SETS  # index 6: the relationship-free query set (stage 1, unknown relationship, ablation)
FEATURES_PER_FRAME = 320      # 4 log-mel frames (10 ms hop) x 80 mels per 40 ms motion frame


# sane bounds of every size (inclusive); a checkpoint or config outside them is refused before anything is built
SIZE_BOUNDS = {"motion_dim": (1, 1024), "feature_dim": (1, 4096), "d_model": (4, 1024), "n_heads": (1, 64),
               "ffn_mult": (1, 8), "n_encoder_layers": (0, 16), "n_decoder_layers": (0, 16),
               "n_query_tokens": (1, 64), "n_query_sets": (1, 64), "window": (1, 1024), "lookahead": (0, 2),
               "past_context": (0, 16), "motion_delay": (1, 64)}


@dataclass
class MotionModelConfig:
    """Sizes and timing of :class:`rsatalker_ros.motion.model.SocialMotionModel`.

    Timing (frames of 40 ms at 25 fps): the audio encoder looks ``lookahead`` frames into the future (the whole
    model's look-ahead; everything after the audio encoder is causal). Every attention layer sees the last
    ``window`` frames (itself included). The partner's motion enters ``motion_delay`` frames late: frame t is
    conditioned on the partner's motion up to frame t - motion_delay, which lets a live dyad be computed
    ``motion_delay`` frames at a time.
    """
    motion_dim: int = 64              # D: per-frame motion vector (rsatalker_ros/motion/layout.py)
    basis: str = "arkit52"            # expression basis of that layout
    feature_dim: int = FEATURES_PER_FRAME
    d_model: int = 128
    n_heads: int = 4
    ffn_mult: int = 2                 # feed-forward width = ffn_mult * d_model
    n_encoder_layers: int = 2         # Transformer encoder over [fused partner; own audio]
    n_decoder_layers: int = 1         # Transformer decoder from social tokens z to motion
    n_query_tokens: int = 4           # learnable social query tokens per relationship query set
    n_query_sets: int = N_QUERY_SETS + 1  # 6 relationship sets + 1 neutral (NEUTRAL_QUERY)
    share_queries: bool = False       # ablation: every relationship uses the neutral set (no specialisation)
    window: int = 32                  # attention window in frames (1.28 s)
    lookahead: int = 1                # audio look-ahead in frames (1 -> 37.5 ms, 2 -> 77.5 ms; see lookahead_ms)
    past_context: int = 2             # audio convolution past context in frames
    motion_delay: int = 2             # partner motion used up to t - motion_delay
    dropout: float = 0.1

    def __post_init__(self):
        for name, (lo, hi) in SIZE_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} is {value!r}; expected a whole number in {lo}..{hi}")
        if not isinstance(self.basis, str) or not isinstance(self.share_queries, bool):
            raise ValueError(f"basis must be a string and share_queries true/false, got {self.basis!r}, "
                             f"{self.share_queries!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or \
                not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is {self.dropout!r}; expected a number in [0, 1)")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if not 0 <= self.lookahead <= 2:
            raise ValueError(f"lookahead must be 0..2 frames (at most 80 ms), got {self.lookahead}")
        if self.motion_delay < 1:
            raise ValueError(f"motion_delay must be >= 1 frame (partner motion is past motion), got "
                             f"{self.motion_delay}")
        if self.window < 1 or self.past_context < 0:
            raise ValueError(f"window must be >= 1 and past_context >= 0, got {self.window}, {self.past_context}")
        if self.n_query_sets != N_QUERY_SETS + 1:
            raise ValueError(f"n_query_sets must be {N_QUERY_SETS + 1} (6 relationship sets + neutral), "
                             f"got {self.n_query_sets}")

    @property
    def lookahead_ms(self) -> float:
        """Audio needed past the end of a motion frame before it can be computed, in ms, feature extraction
        included (rsatalker_ros.motion.features: a feature frame is complete 2.5 ms before its motion frame
        ends): lookahead * 40 - 2.5 = 37.5 ms for lookahead = 1 (the shipped model), 77.5 ms for 2."""
        from rsatalker_ros.motion.features import LATENCY_MS
        return self.lookahead * 1000.0 / MOTION_FPS + LATENCY_MS

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "MotionModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"motion model config is a {type(d).__name__}; expected a mapping of its fields")
        reject_unknown_keys(d, MotionModelConfig, "motion model config")
        return MotionModelConfig(**d)
