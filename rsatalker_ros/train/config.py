"""Training configuration for motion stages 1 and 2 (config/train_stage1.yaml, config/train_stage2.yaml)."""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rsatalker_ros.config_keys import reject_unknown_keys
from rsatalker_ros.files import BadFileError, load_yaml, parse_yaml


@dataclass
class TrainConfig:
    stage: int = 1                    # 1: speech -> own motion (neutral queries); 2: dyadic, relationship queries
    data: str = "runs/data"           # dataset root (<data>/train, <data>/val)
    mix_data: str = ""                # further dataset roots (comma-separated) whose train clips are added
    mix_clips: int = 0                # use at most this many training clips of each mix_data root (0 = all)
    out: str = "runs/motion_stage1"   # output folder: model.safetensors, train_state.safetensors, loss_curve.png
    init: str = ""                    # checkpoint to start from ("" = fresh model; stage 2: the stage-1 model)
    model: dict = field(default_factory=dict)  # MotionModelConfig fields (fresh model), or overrides of init's
    max_clips: int = 0                # use at most this many training clips (0 = all)
    steps: int = 2000                 # optimizer steps (total, including resumed ones)
    batch_size: int = 16
    window_frames: int = 125          # frames per training window (125 = 5 s)
    lr: float = 1e-3                  # peak learning rate (AdamW)
    lr_min_ratio: float = 0.05        # cosine decay down to lr * lr_min_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    velocity_weight: float = 1.0      # weight of the frame-to-frame velocity loss (normalised units)
    lip_closure_weight: float = 0.0   # weight of the lip-closure loss (mm^2; 0 = off), see motion_trainer
    lip_opening_weight: float = 0.0   # weight of the inner-lip opening's squared error on every frame (mm^2)
    lip_closed_mm: float = 1.0        # target inner-lip opening (mm) under which the lips count as closed
    lip_head: str = "default_older"   # head whose posed lips measure the opening (layout must match the data)
    partner_inputs: bool = True       # False: partner audio = silence and partner motion unknown (stage 1)
    relation_queries: bool = True     # False: every sample uses the neutral query set (stage 1)
    queries_from_neutral: bool = True  # at the start from `init`, copy the neutral query set into the 6 sets
    partner_noise: float = 0.1        # teacher forcing: Gaussian noise on the partner's motion (in its stds)
    partner_dropout: float = 0.15     # probability that a window's partner motion is unknown throughout
    partner_span_dropout: float = 0.3  # probability of one unknown span (up to half the window) in a window
    eval_every: int = 200             # steps between validation losses
    checkpoint_every: int = 200       # steps between model + resumable-state saves
    seed: int = 0
    threads: int = 1                  # torch CPU threads

    def __post_init__(self):
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        for name in ("steps", "batch_size", "window_frames", "eval_every", "checkpoint_every", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window_frames < 8:
            raise ValueError(f"window_frames must be >= 8, got {self.window_frames}")
        for name in ("partner_dropout", "partner_span_dropout", "lr_min_ratio"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if min(float(self.lip_closure_weight), float(self.lip_opening_weight)) < 0 or float(self.lip_closed_mm) <= 0:
            raise ValueError(f"lip_closure_weight and lip_opening_weight must be >= 0 and lip_closed_mm > 0, got "
                             f"{self.lip_closure_weight}, {self.lip_opening_weight} and {self.lip_closed_mm}")
        if int(self.mix_clips) < 0:
            raise ValueError(f"mix_clips must be >= 0, got {self.mix_clips}")
        if not isinstance(self.model, dict):
            raise ValueError(f"model must be a mapping of MotionModelConfig fields, got {self.model!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "TrainConfig":
        reject_unknown_keys(d, TrainConfig, "training config")
        return TrainConfig(**d)

    @staticmethod
    def from_yaml(path, overrides: dict | None = None) -> "TrainConfig":
        p = Path(path)
        d = load_yaml(p, "training config")
        overrides = dict(overrides or {})
        if isinstance(d.get("model"), dict) and "model" in overrides:
            overrides["model"] = {**d["model"], **overrides["model"]}
        d.update(overrides)
        try:
            return TrainConfig.from_dict(d)
        except (ValueError, TypeError) as e:
            raise BadFileError(p, f"not a valid training config: {e}") from e


def parse_overrides(items: list[str]) -> dict:
    """["steps=10", "model.d_model=64"] -> {"steps": 10, "model": {"d_model": 64}} (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, val = item.split("=", 1)
        value = parse_yaml(val, f"--set {key}")
        if key.startswith("model."):
            out.setdefault("model", {})[key[len("model."):]] = value
        else:
            out[key] = value
    return out
