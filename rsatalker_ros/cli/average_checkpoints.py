"""Average the weights of motion checkpoints fine-tuned from one model ("model soup").

    python -m rsatalker_ros.cli.average_checkpoints runs/a/model.safetensors runs/b/model.safetensors \
        --weights 0.5 0.5 --out runs/soup/model.safetensors [--copy-to PATH]

Fine-tunes of one initial model stay close enough in weight space that their weighted mean is a model too, often
with the strengths of both (Wortsman et al. 2022, "Model soups"). The inputs must share the model config, the
tensor names and shapes, and the normalisation statistics (the buffers: a fine-tune keeps its init's); each weight
is in [0, 1] and they sum to 1. The output is an ordinary motion checkpoint whose info names the inputs and weights.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import torch

from rsatalker_ros.motion.checkpoint import load_model, save_model

WEIGHT_SUM_TOLERANCE = 1e-6


def check_weights_sum(weights: list[float], n_inputs: int) -> list[float]:
    """``weights`` as floats; ValueError unless there is one per input, each in [0, 1], summing to 1."""
    if len(weights) != n_inputs:
        raise ValueError(f"got {len(weights)} weights for {n_inputs} checkpoints; expected one weight per checkpoint")
    weights = [float(w) for w in weights]
    for w in weights:
        if not math.isfinite(w) or not 0.0 <= w <= 1.0:
            raise ValueError(f"weight {w} is outside [0, 1]")
    if abs(sum(weights) - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"weights {weights} sum to {sum(weights):.6g}; expected 1")
    return weights


def average_checkpoints(paths: list, weights: list[float] | None = None):
    """(model, info): the weighted mean of the checkpoints at ``paths`` (default weights: uniform).

    ValueError (a BadFileError for an unreadable file) names the checkpoint that does not fit: another model
    config, other tensor names or shapes (load_model checks them against the config), or other normalisation
    statistics.
    """
    if len(paths) < 2:
        raise ValueError(f"need at least 2 checkpoints to average, got {len(paths)}")
    weights = check_weights_sum([1.0 / len(paths)] * len(paths) if weights is None else weights, len(paths))
    first, first_info = load_model(paths[0])
    buffers = {k for k, _ in first.named_buffers()}
    ref = first.state_dict()
    total = {k: weights[0] * v.double() for k, v in ref.items()}
    inputs = [{"path": str(paths[0]), "weight": weights[0], "step": first_info.get("step"),
               "data": first_info.get("data")}]
    for path, w in zip(paths[1:], weights[1:]):
        model, info = load_model(path)
        if model.cfg.to_dict() != first.cfg.to_dict():
            diff = sorted(k for k, v in model.cfg.to_dict().items() if first.cfg.to_dict().get(k) != v)
            raise ValueError(f"{path}: model config differs from {paths[0]} in {diff}; only fine-tunes of one model "
                             f"can be averaged")
        for k, v in model.state_dict().items():
            if k in buffers and not torch.equal(v, ref[k]):
                raise ValueError(f"{path}: normalisation statistics {k!r} differ from {paths[0]}; only fine-tunes "
                                 f"of one model (which keep its statistics) can be averaged")
            total[k] += w * v.double()
        inputs.append({"path": str(path), "weight": w, "step": info.get("step"), "data": info.get("data")})
    first.load_state_dict({k: v.to(ref[k].dtype) for k, v in total.items()})
    info = {"average_of": inputs, "stage": first_info.get("stage"), "init": first_info.get("init")}
    return first.eval(), info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path, help="motion checkpoints (.safetensors) fine-tuned from "
                                                              "one model")
    ap.add_argument("--weights", nargs="+", type=float, default=None,
                    help="one weight per checkpoint, each in [0, 1], summing to 1 (default: uniform)")
    ap.add_argument("--out", type=Path, required=True, help="output checkpoint (.safetensors)")
    ap.add_argument("--copy-to", type=Path, default=None, help="also copy the result here (e.g. the shipped path)")
    args = ap.parse_args(argv)
    try:
        model, info = average_checkpoints(args.checkpoints, args.weights)
    except ValueError as e:
        print(f"average_checkpoints: {e}", file=sys.stderr)
        return 2
    save_model(model, args.out, info)
    print(f"wrote {args.out}: " + " + ".join(f"{d['weight']:.3g} x {d['path']}" for d in info["average_of"]))
    if args.copy_to is not None:
        args.copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out, args.copy_to)
        print(f"copied to {args.copy_to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
