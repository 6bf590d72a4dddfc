#!/usr/bin/env bash
# Round 14 of the default shipped network (BENCHMARKS.md, round 14): round 13 trained on with a loss
# term on the uptake relative to the LV wall, the part of the error a polar map and its TPD see.
#
#   scripts/train_round14.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]
#
# DATASET, EXTRA1 and EXTRA2 as scripts/train_round10.sh. Two steps:
#   1. rounds 8 C-13 (`scripts/train_round13.sh DATASET EXTRA1 EXTRA2 RUNS_DIR`; finished runs are
#      not trained again; it also makes the registered copies RUNS_DIR/<name>r)
#   2. round 14: from round 13's weights, EPOCHS (default 4) epochs at 5e-5 (seed 29) toward the
#      registered copies' CT-AC, round 13's loss and `wall_weight` 1 (the truth's LV wall, lv.json),
#      validation L1 against the copy of DATASET's val split
# Cosine schedule, patience 0, THREADS torch threads (default 2), the clinic augmentation.
# INSTALL=1 installs it (default 0). Resumes after an interruption.
set -euo pipefail

usage="usage: scripts/train_round14.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]"
DATA=${1:?$usage}
EXTRA1=${2:?$usage}
EXTRA2=${3:?$usage}
RUNS=${4:-runs}
INSTALL=${INSTALL:-0}
EPOCHS=${EPOCHS:-4}
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
INSTALL=0 EPOCHS=4 bash "$ROOT/scripts/train_round13.sh" "$DATA" "$EXTRA1" "$EXTRA2" "$RUNS"
registered() {  # the copy of $1 with CT-AC reconstructed with the body's own mu-map (round 13's step 3)
  echo "$RUNS/$(basename "$1")r"
}
echo "== spectac train --model $model (round 14: the wall term)"
spectac train --model "$model" --data "$(registered "$DATA")" --extra-train "$(registered "$EXTRA1")" \
  --extra-train "$(registered "$EXTRA2")" --out "$RUNS/round14/$model" --epochs "$EPOCHS" --lr 5e-5 \
  --seed 29 --patience 0 --lr-schedule cosine --init "$RUNS/round13/$model" --channels 8,16,32,64 \
  --net log_weight=0.3 --net uptake_weight=10 --net lambda_l1=100 --net uptake_reach=4 --net wall_weight=1
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/round14/$model"
fi
