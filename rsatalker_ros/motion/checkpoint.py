"""Motion-model checkpoints: safetensors weights with the model config as JSON metadata (loading runs no code).

    metadata["format"] = "rsatalker_ros.motion"    metadata["format_version"] = "1"
    metadata["config"] = MotionModelConfig as JSON  metadata["info"] = JSON (stage, steps, data, losses, ...)
    tensors: the model's state_dict (weights and normalisation statistics)

The default checkpoint ships in rsatalker_ros/assets/checkpoints/ (reproduce it with
scripts/train_default_motion.sh).
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rsatalker_ros.motion.config import MotionModelConfig
from rsatalker_ros.motion.model import SocialMotionModel

FORMAT = "rsatalker_ros.motion"
FORMAT_VERSION = "1"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "checkpoints" / "motion_default.safetensors"


def save_model(model: SocialMotionModel, path, info: dict | None = None) -> Path:
    """Write ``model`` (weights + config + ``info``) to ``path`` (parent folders created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(model.cfg.to_dict()),
            "info": json.dumps(info or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_safetensors(path, expected_format: str) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file whose metadata names ``expected_format``; ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist (expected a .safetensors file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({type(e).__name__}: {e})") from e
    if meta.get("format") != expected_format:
        raise ValueError(f"{path}: not a {expected_format} checkpoint (metadata format is "
                         f"{meta.get('format')!r})")
    return tensors, meta


def load_model(path=None, map_location: str = "cpu") -> tuple[SocialMotionModel, dict]:
    """Load a checkpoint written by ``save_model`` (default: the shipped one). Returns (model in eval mode, info).

    Raises ValueError with the reason for a missing, corrupt or foreign file, or weights that do not match the
    stored config.
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    tensors, meta = read_safetensors(path, FORMAT)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format_version {meta.get('format_version')!r} is not supported "
                         f"(expected {FORMAT_VERSION})")
    try:
        cfg = MotionModelConfig.from_dict(json.loads(meta["config"]))
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{path}: checkpoint metadata lacks a valid 'config' ({type(e).__name__}: {e})") from e
    model = SocialMotionModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the motion model config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    for k, v in tensors.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"{path}: tensor {k!r} has shape {tuple(v.shape)}, the config expects "
                             f"{tuple(expected[k].shape)}")
        if not torch.isfinite(v).all():
            raise ValueError(f"{path}: tensor {k!r} has non-finite values")
    model.load_state_dict(tensors)
    return model.to(map_location).eval(), info
