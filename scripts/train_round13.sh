#!/usr/bin/env bash
# Rounds 11 and 13 of the default shipped network (BENCHMARKS.md, rounds 11-13): round 10 trained on
# with a loss that weighs a defect as the wall around it, then toward the CT-AC a correction without
# a CT can learn.
#
#   scripts/train_round13.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]
#
# DATASET, EXTRA1 and EXTRA2 as scripts/train_round10.sh. Four steps:
#   1. round 10 (`scripts/train_round10.sh DATASET EXTRA1 EXTRA2 RUNS_DIR`; a finished run is not
#      trained again)
#   2. round 11: unet-gan3d-chang from round 10's weights, 5 epochs at 5e-5 (seed 17), the loss of
#      rounds 8-10 with `uptake_reach` 4, the train splits of all three cohorts (480 studies)
#   3. copies of the three cohorts whose CT-AC is OSEM of the same projections with the body's own
#      mu-map instead of CT-AC's displaced one (benchmarks/registered_targets.py; DATASET's train and
#      val splits, the extras' train splits; every other file is a link to the source's), in
#      RUNS_DIR/<name>r: CT-AC's mu-map displacement is not in NC, so no network can learn it
#   4. round 13: from round 11's weights, EPOCHS (default 4) epochs at 5e-5 (seed 23) toward those
#      copies' CT-AC, round 11's loss, validation L1 against the copy of DATASET's val split
# All stages: cosine schedule, patience 0, THREADS torch threads (default 2), the clinic
# augmentation. Round 13 beat the installed round 6 on both goals' measures on the validation
# splits and was installed (INSTALL=1 installs it; default 0). Resumes after an interruption.
set -euo pipefail

usage="usage: scripts/train_round13.sh DATASET EXTRA1 EXTRA2 [RUNS_DIR]"
DATA=${1:?$usage}
EXTRA1=${2:?$usage}
EXTRA2=${3:?$usage}
RUNS=${4:-runs}
INSTALL=${INSTALL:-0}
EPOCHS=${EPOCHS:-4}
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
loss=(--net log_weight=0.3 --net uptake_weight=10 --net lambda_l1=100 --net uptake_reach=4)
INSTALL=0 EPOCHS=6 bash "$ROOT/scripts/train_round10.sh" "$DATA" "$EXTRA1" "$EXTRA2" "$RUNS"
echo "== spectac train --model $model (round 11: uptake_reach 4)"
spectac train --model "$model" --data "$DATA" --extra-train "$EXTRA1" --extra-train "$EXTRA2" \
  --out "$RUNS/round11/$model" --epochs 5 --lr 5e-5 --seed 17 --patience 0 --lr-schedule cosine \
  --init "$RUNS/round10/$model" --channels 8,16,32,64 "${loss[@]}"
registered() {  # the copy of $1 with CT-AC reconstructed with the body's own mu-map
  echo "$RUNS/$(basename "$1")r"
}
echo "== registered targets (benchmarks/registered_targets.py)"
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 \
  python "$ROOT/benchmarks/registered_targets.py" "$DATA" "$(registered "$DATA")" --splits train,val
for extra in "$EXTRA1" "$EXTRA2"; do
  PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 \
    python "$ROOT/benchmarks/registered_targets.py" "$extra" "$(registered "$extra")" --splits train
done
echo "== spectac train --model $model (round 13: toward the registered CT-AC)"
spectac train --model "$model" --data "$(registered "$DATA")" --extra-train "$(registered "$EXTRA1")" \
  --extra-train "$(registered "$EXTRA2")" --out "$RUNS/round13/$model" --epochs "$EPOCHS" --lr 5e-5 \
  --seed 23 --patience 0 --lr-schedule cosine --init "$RUNS/round11/$model" --channels 8,16,32,64 "${loss[@]}"
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/round13/$model"
fi
