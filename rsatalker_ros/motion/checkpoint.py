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

from rsatalker_ros.files import BadFileError, checked_size, parse_json_object
from rsatalker_ros.motion.config import MotionModelConfig
from rsatalker_ros.motion.model import SocialMotionModel

FORMAT = "rsatalker_ros.motion"
FORMAT_VERSION = "1"
MAX_CHECKPOINT_BYTES = 4 << 30     # a motion checkpoint or training state (the shipped model: 4 MB)
MAX_METADATA_CHARS = 1 << 20       # each JSON metadata entry (config, info, ...)
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
    """(tensors, metadata) of a safetensors file whose metadata names ``expected_format``; BadFileError (a
    ValueError) otherwise. safetensors checks every tensor's declared extent against the file, so the tensors
    take at most the file's size."""
    path = Path(path)
    checked_size(path, "checkpoint (.safetensors)", MAX_CHECKPOINT_BYTES)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise BadFileError(path, f"not a readable safetensors checkpoint ({type(e).__name__}: {e})") from e
    if meta.get("format") != expected_format:
        raise BadFileError(path, f"not a {expected_format} checkpoint (metadata format is "
                                 f"{str(meta.get('format'))[:80]!r})")
    return tensors, meta


def config_from_metadata(path, meta: dict) -> MotionModelConfig:
    """The model config stored in a checkpoint's metadata, parsed within MAX_METADATA_CHARS / nesting limits and
    checked against MotionModelConfig's bounds; BadFileError otherwise."""
    if "config" not in meta:
        raise BadFileError(path, "checkpoint metadata lacks 'config' (the model config as JSON)")
    d = parse_json_object(path, "metadata 'config'", meta["config"], max_chars=MAX_METADATA_CHARS)
    try:
        return MotionModelConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        raise BadFileError(path, f"metadata 'config' is not a usable motion model config: {e}") from e


def expected_shapes(cfg: MotionModelConfig) -> dict[str, tuple]:
    """{state_dict key: shape} of the model ``cfg`` describes, built on the meta device (allocates nothing)."""
    with torch.device("meta"):
        model = SocialMotionModel(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_weights(path, tensors: dict, expected: dict[str, tuple]) -> None:
    """BadFileError unless ``tensors`` has exactly the keys and shapes of ``expected`` and finite values."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise BadFileError(path, f"weights do not match the motion model config (missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]})")
    for k, v in tensors.items():
        if tuple(v.shape) != expected[k]:
            raise BadFileError(path, f"tensor {k!r} has shape {tuple(v.shape)}, the config expects {expected[k]}")
        if not v.is_floating_point():
            raise BadFileError(path, f"tensor {k!r} has dtype {v.dtype}; expected floating point")
        if not torch.isfinite(v).all():
            raise BadFileError(path, f"tensor {k!r} has non-finite values")


def load_model(path=None, map_location: str = "cpu") -> tuple[SocialMotionModel, dict]:
    """Load a checkpoint written by ``save_model`` (default: the shipped one). Returns (model in eval mode, info).

    Raises BadFileError (a ValueError) with the reason for a missing, corrupt, foreign or out-of-bounds file, or
    weights that do not match the stored config. The config's sizes are checked against the stored tensors on
    the meta device before the model is built, so memory stays about 2 x the file's size.
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    tensors, meta = read_safetensors(path, FORMAT)
    if meta.get("format_version") != FORMAT_VERSION:
        raise BadFileError(path, f"checkpoint format_version {str(meta.get('format_version'))[:20]!r} is not "
                                 f"supported (expected {FORMAT_VERSION})")
    cfg = config_from_metadata(path, meta)
    info = parse_json_object(path, "metadata 'info'", meta.get("info", "{}"), max_chars=MAX_METADATA_CHARS)
    check_weights(path, tensors, expected_shapes(cfg))
    model = SocialMotionModel(cfg)
    model.load_state_dict(tensors)
    return model.to(map_location).eval(), info
