#!/usr/bin/env bash
# Round 3 of the default shipped network: the round-2 unet-gan3d-chang fine-tuned on the default
# cohort of the recalibrated referral population (larger, more severe and more transmural defects:
# CT-AC stress TPD about 12 like clinical referral patients; docs/simulation.md), and installed.
#
#   scripts/train_round3.sh DATASET [RUNS_DIR]
#
# DATASET is this version's default cohort: `spectac simulate --out data/cohort0 --patients 100
# --seed 0 --workers 2`. The round-2 weights are taken as shipped from the commit that last changed
# them, ROUND2_COMMIT, so this script reproduces round 3 from the repository alone. One stage:
#   unet-gan3d-chang  3 epochs at 2e-4 (seed 3), cosine schedule, patience 0, 1 torch thread,
#   checkpoint chosen on the validation split's L1, the clinic augmentation.
# unet-gan3d stays at round 2 (scripts/train_round2.sh), resnet, unet3d, unet2d and pix2pix2d at
# round 1; their cards say so. Resumes after an interruption. Test-split metrics: `bash
# benchmarks/quality.sh DATASET runs/main`.
set -euo pipefail

DATA=${1:?usage: scripts/train_round3.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/round3}
INSTALL=${INSTALL:-1}
ROUND2_COMMIT=6d2322cb46c6916e2b672d4ad2d2e64f7486d251
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
round2="$RUNS/round2/$model"
if [[ ! -f $round2/best.pt ]]; then
  mkdir -p "$round2"
  for f in best.pt config.json training_record.json; do
    git -C "$ROOT" show "$ROUND2_COMMIT:src/spectac/data/models/$model/$f" > "$round2/$f"
  done
fi
echo "== spectac train --model $model (round 3)"
spectac train --model "$model" --data "$DATA" --out "$RUNS/$model" --epochs 3 --lr 2e-4 --seed 3 \
  --patience 0 --lr-schedule cosine --init "$round2" --channels 8,16,32,64
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/$model"
fi
