#!/usr/bin/env bash
# Reproduce the shipped motion checkpoint (rsatalker_ros/assets/checkpoints/motion_default.safetensors) and the
# no-relationship ablation used by the evaluation, on synthetic data. About 15-20 min per model on 2 CPU cores.
#   scripts/train_default_motion.sh [DATA_DIR] [RUNS_DIR]      (defaults: runs/motion_data, runs)
#   SKIP_ABLATION=1 scripts/train_default_motion.sh            (only the shipped model)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DATA=${1:-runs/motion_data}
RUNS=${2:-runs}
if [ ! -f "$DATA/dataset.json" ]; then
  "$PY" -m rsatalker_ros.cli.make_dataset --out "$DATA" --train 480 --val 48 --test 96 --seconds 12 --seed 0
fi
"$PY" -m rsatalker_ros.cli.train --config config/train_stage1.yaml --data "$DATA" --out "$RUNS/motion_stage1"
"$PY" -m rsatalker_ros.cli.train --config config/train_stage2.yaml --data "$DATA" --out "$RUNS/motion_stage2" \
  --init "$RUNS/motion_stage1/model.safetensors" \
  --copy-to rsatalker_ros/assets/checkpoints/motion_default.safetensors
if [ "${SKIP_ABLATION:-0}" != "1" ]; then
  "$PY" -m rsatalker_ros.cli.train --config config/train_stage2.yaml --data "$DATA" --out "$RUNS/motion_shared" \
    --init "$RUNS/motion_stage1/model.safetensors" --set model.share_queries=true
fi
