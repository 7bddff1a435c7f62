#!/usr/bin/env bash
# Reproduce the shipped motion checkpoint (rsatalker_ros/assets/checkpoints/motion_default.safetensors) and the
# no-relationship ablation used by the evaluation, on synthetic data, then evaluate both (standard table and the
# robustness evaluation of issue #12) into docs/eval_motion.md. About 15-20 min per model on 2 idle CPU cores, plus
# ~15 min for the data (624 clips of speech from espeak-ng and Festival in simulated noisy rooms; flite stays out
# of training: it is the evaluation's held-out synthesizer) and ~10 min for the evaluations.
#   scripts/train_default_motion.sh [DATA_DIR] [RUNS_DIR]      (defaults: runs/motion_data_v2, runs)
#   SKIP_ABLATION=1 scripts/train_default_motion.sh            (only the shipped model)
#   SKIP_EVAL=1 ...                                            (no evaluation)
#   CLEAN=1 ...                                                (the old clean espeak-only data, as before issue #12)
#   Smoke run (tiny, nothing shipped is overwritten):
#   N_TRAIN=6 N_VAL=2 N_TEST=2 TRAIN_SET="steps=3" COPY_TO= SKIP_EVAL=1 scripts/train_default_motion.sh /tmp/d /tmp/r
# Needs the Debian packages espeak-ng festival festvox-kallpc16k festvox-us-slt-hts flite and pyroomacoustics.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DATA=${1:-runs/motion_data_v2}
RUNS=${2:-runs}
NICE="nice -n ${NICE_LEVEL:-10}"
SIZES=(--train "${N_TRAIN:-480}" --val "${N_VAL:-48}" --test "${N_TEST:-96}" --seconds 12 --seed 0)
COPY_TO=${COPY_TO-rsatalker_ros/assets/checkpoints/motion_default.safetensors}
SET=(); for kv in ${TRAIN_SET:-}; do SET+=(--set "$kv"); done
COPY=(); [ -n "$COPY_TO" ] && COPY=(--copy-to "$COPY_TO")
if [ ! -f "$DATA/dataset.json" ]; then
  if [ "${CLEAN:-0}" = "1" ]; then
    $NICE "$PY" -m rsatalker_ros.cli.make_dataset --out "$DATA" "${SIZES[@]}"
  else
    $NICE "$PY" -m rsatalker_ros.cli.make_dataset --out "$DATA" "${SIZES[@]}" --engines espeak-ng,festival --acoustics
  fi
fi
# the lip-closure loss (lip_closure_weight in both configs) is part of both stages
$NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage1.yaml --data "$DATA" --out "$RUNS/motion_stage1" "${SET[@]}"
$NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage2.yaml --data "$DATA" --out "$RUNS/motion_stage2" \
  --init "$RUNS/motion_stage1/model.safetensors" "${COPY[@]}" "${SET[@]}"
if [ "${SKIP_ABLATION:-0}" != "1" ]; then
  $NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage2.yaml --data "$DATA" --out "$RUNS/motion_shared" \
    --init "$RUNS/motion_stage1/model.safetensors" --set model.share_queries=true "${SET[@]}"
fi
if [ "${SKIP_EVAL:-0}" != "1" ]; then
  MODEL=${COPY_TO:-$RUNS/motion_stage2/model.safetensors}
  MODELS=(--model "rsatalker=$MODEL")
  [ -f "$RUNS/motion_shared/model.safetensors" ] && MODELS+=(--model "no-relation ablation=$RUNS/motion_shared/model.safetensors")
  # the standard table rewrites docs/eval_motion.md: carry the robustness baseline of the model before retraining
  # (the "## Robustness ..." sections) over to the new file
  cp docs/eval_motion.md "$RUNS/eval_motion_before_retrain.md"
  $NICE "$PY" -m rsatalker_ros.cli.evaluate --data "$DATA" "${MODELS[@]}" --out docs/eval_motion.md \
    --images docs/images --quiet
  { echo; awk '/^## Robustness/{on=1} on' "$RUNS/eval_motion_before_retrain.md"; } >> docs/eval_motion.md
  $NICE "$PY" -m rsatalker_ros.cli.evaluate --robustness --robust-data "$RUNS/heldout" --robust-clips 24 \
    --probe-clips 96 --model "rsatalker=$MODEL" \
    --out docs/eval_motion.md --append "Robustness (issue #12): retrained model" --images docs/images \
    --json "$RUNS/robustness_retrained.json" --robust-plot motion_robustness_retrained.png --quiet
fi
