#!/usr/bin/env bash
# Round 9 of the default shipped network: round 8's candidate C (the log-space L1 term, uptake
# weight 10) trained on with three and a half times the training studies. The default cohort's
# train split holds 80 studies of 40 patients; round 7 showed that the error left is not one run's
# variance, and rounds 7-8 that loss changes move it by less than a study. A second cohort of 100
# other patients, all in its train split, is added with `spectac train --extra-train`; validation
# (and so the checkpoint) and the held-out test split stay the default cohort's.
#
#   scripts/train_round9.sh DATASET EXTRA [RUNS_DIR]
#
# DATASET is the default cohort (`spectac simulate --out data/cohort0 --patients 100 --seed 0
# --workers 2`; with --expected-ac its nc and ac are the same bytes), EXTRA the second cohort:
# `spectac simulate --out data/extra1 --patients 100 --seed 1 --split 100/0/0 --workers 2` (seed 1:
# other patients; spectac train refuses an extra cohort of DATASET's seed). Two stages:
#   1. round 8's candidate C (`scripts/train_round8.sh` with CLEAN=0 LOG_WEIGHT=0.3
#      UPTAKE_WEIGHT=10 SEED=11, from the round-6 weights; skipped when RUNS_DIR/round8c holds it)
#   2. unet-gan3d-chang from stage 1's weights, EPOCHS (default 14) epochs at 1e-4 (seed 12), cosine
#      schedule, patience 0, THREADS torch threads (default 2), DATASET's and EXTRA's train splits
#      (280 studies), the clinic augmentation, the loss of candidate C.
# Resumes after an interruption. INSTALL=1 installs the chosen weights (default 0: installed only if
# it beats round 6 on the validation split's goals, benchmarks/goals.py).
set -euo pipefail

DATA=${1:?usage: scripts/train_round9.sh DATASET EXTRA [RUNS_DIR]}
EXTRA=${2:?usage: scripts/train_round9.sh DATASET EXTRA [RUNS_DIR]}
RUNS=${3:-runs}
INSTALL=${INSTALL:-0}
EPOCHS=${EPOCHS:-14}
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
CLEAN=0 LOG_WEIGHT=0.3 UPTAKE_WEIGHT=10 SEED=11 EPOCHS=20 LAMBDA_L1=100 INSTALL=0 bash "$ROOT/scripts/train_round8.sh" "$DATA" "$RUNS/round8c"
echo "== spectac train --model $model (round 9: round 8 C's loss, --extra-train $EXTRA)"
spectac train --model "$model" --data "$DATA" --extra-train "$EXTRA" --out "$RUNS/round9/$model" \
  --epochs "$EPOCHS" --lr 1e-4 --seed 12 --patience 0 --lr-schedule cosine --init "$RUNS/round8c/$model" \
  --channels 8,16,32,64 --net log_weight=0.3 --net uptake_weight=10 --net lambda_l1=100
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/round9/$model"
fi
