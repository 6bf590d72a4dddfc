#!/usr/bin/env bash
# Round 7 of the default shipped network: round 6's unet-gan3d-chang trained on with the adversarial
# term weakened (network option lambda_l1=1000 instead of pix2pix's 100; the uptake-weighted L1 of
# round 6 kept), because the goal is the voxel error against CT-AC: the L1 term's minimiser is the
# conditional median, and the patch discriminator pulls the image toward CT-AC's noise texture,
# which no correction can predict.
#
#   scripts/train_round7.sh DATASET [RUNS_DIR]
#
# DATASET is this version's default cohort: `spectac simulate --out data/cohort0 --patients 100
# --seed 0 --workers 2`. The round-6 weights are taken as shipped from the commit that last changed
# them, ROUND6_COMMIT, so this script reproduces round 7 from the repository alone. One stage:
#   unet-gan3d-chang  20 epochs at 1e-4 (seed 7), cosine schedule, patience 0, THREADS torch threads
#   (default 2), checkpoint chosen on the validation split's (plain) L1, the clinic augmentation.
# Resumes after an interruption. INSTALL=1 installs the chosen weights (default 0: a candidate is
# installed only if it beats round 6 on the validation split's goals, benchmarks/goals.py).
# Candidate A is the defaults; candidate B is LAMBDA_L1=100 UPTAKE_WEIGHT=10 SEED=8. Neither beat
# round 6 on both goals' measures (BENCHMARKS.md, round 7), so neither is installed.
set -euo pipefail

DATA=${1:?usage: scripts/train_round7.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/round7}
INSTALL=${INSTALL:-0}
EPOCHS=${EPOCHS:-20}
LAMBDA_L1=${LAMBDA_L1:-1000}
UPTAKE_WEIGHT=${UPTAKE_WEIGHT:-4}
SEED=${SEED:-7}
ROUND6_COMMIT=db2d234ad3e7e4221f8ae03d67fabc80ea83bee4
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
round6="$RUNS/round6/$model"
if [[ ! -f $round6/best.pt ]]; then
  mkdir -p "$round6"
  for f in best.pt config.json training_record.json; do
    git -C "$ROOT" show "$ROUND6_COMMIT:src/spectac/data/models/$model/$f" > "$round6/$f"
  done
fi
echo "== spectac train --model $model (round 7, lambda_l1 $LAMBDA_L1, uptake_weight $UPTAKE_WEIGHT, seed $SEED)"
spectac train --model "$model" --data "$DATA" --out "$RUNS/$model" --epochs "$EPOCHS" --lr 1e-4 \
  --seed "$SEED" --patience 0 --lr-schedule cosine --init "$round6" --channels 8,16,32,64 \
  --net "uptake_weight=$UPTAKE_WEIGHT" --net "lambda_l1=$LAMBDA_L1"
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/$model"
fi
