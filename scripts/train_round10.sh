#!/usr/bin/env bash
# Round 10 of the default shipped network: round 9 trained on with a third cohort of 100 other
# patients. Round 9 showed that more training studies lower the validation error where loss changes
# did not (BENCHMARKS.md, round 9); this stage doubles the extra studies again.
#
#   scripts/train_round10.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]
#
# DATASET and EXTRA1 as scripts/train_round9.sh; EXTRA2 the third cohort: `spectac simulate --out
# data/extra2 --patients 100 --seed 2 --split 100/0/0 --workers 2`. Two stages:
#   1. round 9 (`scripts/train_round9.sh DATASET EXTRA1 RUNS_DIR`, skipped when RUNS_DIR holds it)
#   2. unet-gan3d-chang from round 9's weights, EPOCHS (default 6) epochs at 1e-4 (seed 13), cosine
#      schedule, patience 0, THREADS torch threads (default 2), the train splits of all three
#      cohorts (480 studies), the clinic augmentation, the loss of rounds 8-9 (log_weight 0.3,
#      uptake_weight 10, lambda_l1 100).
# Neither round 9 nor round 10 beat round 6's TPD agreement on validation (BENCHMARKS.md, round 9),
# so neither is installed. Resumes after an interruption. INSTALL=1 installs the chosen weights
# (default 0).
set -euo pipefail

DATA=${1:?usage: scripts/train_round10.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]}
EXTRA1=${2:?usage: scripts/train_round10.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]}
EXTRA2=${3:?usage: scripts/train_round10.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]}
RUNS=${4:-runs}
INSTALL=${INSTALL:-0}
EPOCHS=${EPOCHS:-6}
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
INSTALL=0 EPOCHS=14 bash "$ROOT/scripts/train_round9.sh" "$DATA" "$EXTRA1" "$RUNS"
echo "== spectac train --model $model (round 10: --extra-train $EXTRA1 --extra-train $EXTRA2)"
spectac train --model "$model" --data "$DATA" --extra-train "$EXTRA1" --extra-train "$EXTRA2" \
  --out "$RUNS/round10/$model" --epochs "$EPOCHS" --lr 1e-4 --seed 13 --patience 0 --lr-schedule cosine \
  --init "$RUNS/round9/$model" --channels 8,16,32,64 --net log_weight=0.3 --net uptake_weight=10 \
  --net lambda_l1=100
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/round10/$model"
fi
