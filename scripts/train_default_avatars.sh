#!/usr/bin/env bash
# Reproduce the shipped Gaussian avatars of the two default heads (stage 3 on synthetic textured-mesh views).
#
#   scripts/train_default_avatars.sh [extra train_avatar options, e.g. --iterations 3000]
#
# For each head: paints its UV texture (avatar/textures.py), draws 240 training and 16 held-out views
# (other cameras, other expressions) with the textured-mesh rasteriser, trains with config/train_stage3.yaml,
# writes rsatalker_ros/assets/avatars/<head>.safetensors, runs/avatar_<head>/{metrics.json,heldout.png,ckpt_*}
# and docs/images/avatar_<head>.png (held-out ground truth above the avatar's renders).
# CPU only; about 10-20 minutes per head on 2 shared cores (see docs/eval_avatar.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}   # run inside `source scripts/env.sh` (or any env with the core installed)
for head in default_older default_younger; do
  "$PY" -m rsatalker_ros.cli.train_avatar --head "$head" --config config/train_stage3.yaml \
    --out "rsatalker_ros/assets/avatars/$head.safetensors" --work "runs/avatar_$head" \
    --png "docs/images/avatar_$head.png" "$@"
done
