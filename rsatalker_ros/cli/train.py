"""Train the motion model (stage 1 or 2) from a YAML config.

    python -m rsatalker_ros.cli.train --config config/train_stage1.yaml [--data runs/data] [--out DIR]
                                      [--resume] [--set key=value ...]

Writes DIR/model.safetensors (load with rsatalker_ros.motion.checkpoint.load_model), DIR/train_state.safetensors
(for --resume), DIR/loss_curve.png, DIR/history.json and DIR/config.yaml. --copy-to PATH also copies the final
model there (e.g. rsatalker_ros/assets/checkpoints/motion_default.safetensors).
"""

import argparse
import shutil
import sys
from pathlib import Path

from rsatalker_ros.train.config import TrainConfig, parse_overrides


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rsatalker_ros.cli.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML file, e.g. config/train_stage1.yaml")
    ap.add_argument("--data", help="dataset root (overrides the config's data)")
    ap.add_argument("--out", help="output folder (overrides the config's out)")
    ap.add_argument("--init", help="checkpoint to start from (overrides the config's init)")
    ap.add_argument("--steps", type=int, help="total optimizer steps (overrides the config's steps)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/train_state.safetensors")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any config key (model.<field>=... for the model config); repeatable")
    ap.add_argument("--copy-to", help="also copy the final model.safetensors to this path")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        for key in ("data", "out", "init", "steps"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        cfg = TrainConfig.from_yaml(args.config, overrides)
        from rsatalker_ros.train.motion_trainer import train
        path = train(cfg, resume=args.resume, progress=not args.quiet)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"model: {path}")
    print(f"loss curve: {Path(cfg.out) / 'loss_curve.png'}")
    if args.copy_to:
        Path(args.copy_to).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, args.copy_to)
        print(f"copied to {args.copy_to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
