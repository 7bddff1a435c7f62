#!/usr/bin/env bash
# Reproduce the shipped motion checkpoint (rsatalker_ros/assets/checkpoints/motion_default.safetensors) and the
# no-relationship ablation, on synthetic data, then evaluate (standard table and the robustness evaluation of issue
# #12) into docs/eval_motion.md. Three steps, each on 1 CPU thread:
#   1. stage 1 (speech -> own motion) and stage 2 (dyadic, social queries) on clean espeak-ng speech (runs/motion_data),
#      ~15-20 min each on an idle core: the model shipped before issue #12;
#   2. stage 2 again, twice from that model (1200 steps at lr 4e-4 each, ~15 min each), on speech from espeak-ng and
#      Festival in simulated noisy rooms with noise-only stretches (runs/motion_data_v2), with the lip-closure (0.003)
#      and lip-opening losses: config/train_stage2_rooms.yaml adds 240 clips in babble (other voices) at 0-20 dB SNR
#      (runs/motion_data_babble) and the 480 clean clips, lip-opening weight 0.03; config/train_stage2_rooms_clean.yaml
#      adds 240 clean clips, lip-opening weight 0.01. The shipped model is the mean of the two fine-tunes' weights
#      (rsatalker_ros.cli.average_checkpoints; docs/eval_motion.md compares the candidates). flite stays out of
#      training: it is the evaluation's held-out synthesizer;
#   3. the evaluations, ~25 min.
#   scripts/train_default_motion.sh [RUNS_DIR]          (default runs)
#   SKIP_ABLATION=1 ... (no ablation)   SKIP_EVAL=1 ... (no evaluation)   N_BABBLE=... (babble clips; default N_TRAIN/2)
#   Smoke run (tiny, nothing shipped is overwritten):
#   N_TRAIN=6 N_VAL=2 N_TEST=2 TRAIN_SET="steps=3" COPY_TO= SKIP_EVAL=1 scripts/train_default_motion.sh /tmp/r
# Needs the Debian packages espeak-ng festival festvox-kallpc16k festvox-us-slt-hts flite and pyroomacoustics.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
RUNS=${1:-runs}
CLEAN_DATA=$RUNS/motion_data
NOISY_DATA=$RUNS/motion_data_v2
BABBLE_DATA=$RUNS/motion_data_babble
NICE="nice -n ${NICE_LEVEL:-10}"
SIZES=(--train "${N_TRAIN:-480}" --val "${N_VAL:-48}" --test "${N_TEST:-96}" --seconds 12 --seed 0)
COPY_TO=${COPY_TO-rsatalker_ros/assets/checkpoints/motion_default.safetensors}
SET=(); for kv in ${TRAIN_SET:-}; do SET+=(--set "$kv"); done
COPY=(); [ -n "$COPY_TO" ] && COPY=(--copy-to "$COPY_TO")
[ -f "$CLEAN_DATA/dataset.json" ] || $NICE "$PY" -m rsatalker_ros.cli.make_dataset --out "$CLEAN_DATA" "${SIZES[@]}"
[ -f "$NOISY_DATA/dataset.json" ] || $NICE "$PY" -m rsatalker_ros.cli.make_dataset --out "$NOISY_DATA" "${SIZES[@]}" \
  --engines espeak-ng,festival --acoustics
[ -f "$BABBLE_DATA/dataset.json" ] || $NICE "$PY" -m rsatalker_ros.cli.make_dataset --out "$BABBLE_DATA" \
  --train "${N_BABBLE:-$(( ${N_TRAIN:-480} / 2 ))}" --val 0 --test 0 --seconds 12 --seed 7 \
  --engines espeak-ng,festival --acoustics --noise-kinds babble --snr-db 0,20
# 1. clean speech: stage 1, stage 2 (and the ablation: one query set shared by every relationship)
$NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage1.yaml --data "$CLEAN_DATA" --out "$RUNS/motion_stage1" "${SET[@]}"
$NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage2.yaml --data "$CLEAN_DATA" --out "$RUNS/motion_stage2" \
  --init "$RUNS/motion_stage1/model.safetensors" "${SET[@]}"
if [ "${SKIP_ABLATION:-0}" != "1" ]; then
  $NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage2.yaml --data "$CLEAN_DATA" --out "$RUNS/motion_shared" \
    --init "$RUNS/motion_stage1/model.safetensors" --set model.share_queries=true "${SET[@]}"
fi
# 2. noisy rooms and two synthesizers: two fine-tunes of the clean model (its relationship queries kept), averaged
$NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage2_rooms.yaml --data "$NOISY_DATA" \
  --out "$RUNS/motion_noisy_babble" --init "$RUNS/motion_stage2/model.safetensors" \
  --set mix_data="$BABBLE_DATA,$CLEAN_DATA" "${SET[@]}"
$NICE "$PY" -m rsatalker_ros.cli.train --config config/train_stage2_rooms_clean.yaml --data "$NOISY_DATA" \
  --out "$RUNS/motion_noisy_clean" --init "$RUNS/motion_stage2/model.safetensors" --set mix_data="$CLEAN_DATA" \
  "${SET[@]}"
"$PY" -m rsatalker_ros.cli.average_checkpoints "$RUNS/motion_noisy_babble/model.safetensors" \
  "$RUNS/motion_noisy_clean/model.safetensors" --weights 0.5 0.5 --out "$RUNS/motion_noisy/model.safetensors" \
  "${COPY[@]}"
# 3. evaluations: clean held-out table (shipped, clean-only model, ablation) and robustness (shipped vs clean-only)
if [ "${SKIP_EVAL:-0}" != "1" ]; then
  MODEL=${COPY_TO:-$RUNS/motion_noisy/model.safetensors}
  MODELS=(--model "rsatalker=$MODEL" --model "clean-speech model=$RUNS/motion_stage2/model.safetensors")
  [ -f "$RUNS/motion_shared/model.safetensors" ] && MODELS+=(--model "no-relation ablation=$RUNS/motion_shared/model.safetensors")
  $NICE "$PY" -m rsatalker_ros.cli.evaluate --data "$CLEAN_DATA" "${MODELS[@]}" --out "$RUNS/eval_motion.md" \
    --images docs/images --quiet
  $NICE "$PY" -m rsatalker_ros.cli.evaluate --robustness --robust-data "$RUNS/heldout" --robust-clips 12 \
    --probe-clips 64 --model "rsatalker=$MODEL" --model "clean-speech model=$RUNS/motion_stage2/model.safetensors" \
    --out "$RUNS/eval_motion.md" --append "Robustness (issue #12)" --images docs/images \
    --json "$RUNS/robustness.json" --robust-plot motion_robustness_retrained.png --quiet
  echo "evaluation: $RUNS/eval_motion.md (docs/eval_motion.md holds the shipped model's)"
fi
