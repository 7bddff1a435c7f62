"""Resumable training state in one safetensors file (model, optimizer, step, history, RNG; no pickle).

    tensors: "model.<name>" (state_dict), "optim.<param index>.<key>" (optimizer state), "rng.torch"
    metadata: format = "rsatalker_ros.train_state", config (model config JSON), optim_groups, extra (JSON:
              step, history, sampler state, ...)
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from rsatalker_ros.files import BadFileError, parse_json
from rsatalker_ros.motion.checkpoint import MAX_METADATA_CHARS, config_from_metadata, read_safetensors

STATE_FORMAT = "rsatalker_ros.train_state"


def save_train_state(path, model, optimizer: torch.optim.Optimizer, extra: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sd = optimizer.state_dict()
    scalars = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = val
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"format": STATE_FORMAT, "config": json.dumps(model.cfg.to_dict()),
            "optim_groups": json.dumps(sd["param_groups"]), "optim_scalars": json.dumps(scalars),
            "extra": json.dumps(extra)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_train_state(path, model, optimizer: torch.optim.Optimizer) -> dict:
    """Restore ``model`` and ``optimizer`` in place from ``path``; returns the ``extra`` dict saved with them."""
    tensors, meta = read_safetensors(path, STATE_FORMAT)
    cfg = config_from_metadata(path, meta)
    missing = [k for k in ("optim_groups", "extra") if k not in meta]
    if missing:
        raise BadFileError(path, f"damaged training-state metadata: missing {missing}")
    groups = parse_json(path, "metadata 'optim_groups'", meta["optim_groups"], max_chars=MAX_METADATA_CHARS)
    scalars = parse_json(path, "metadata 'optim_scalars'", meta.get("optim_scalars", "{}"),
                         max_chars=MAX_METADATA_CHARS)
    extra = parse_json(path, "metadata 'extra'", meta["extra"], max_chars=64 * MAX_METADATA_CHARS)
    if cfg.to_dict() != model.cfg.to_dict():
        raise ValueError(f"{path}: saved with a different model config; resume with the same configuration "
                         f"(saved {cfg.to_dict()}, now {model.cfg.to_dict()})")
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: model weights do not fit ({e})") from e
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    for k, v in scalars.items():
        idx, key = k.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path}: optimizer state does not fit this model ({e})") from e
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return extra
