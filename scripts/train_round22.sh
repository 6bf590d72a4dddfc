#!/usr/bin/env bash
# Round 22: the four networks still at round 1 (trained on the cohort of the simulator before the
# realistic data) fine-tuned on the realistic default cohort, with round 2's recipe for
# unet-gan3d: the round-1 weights, the clinic augmentation (truncation, count levels, noise,
# smoothing, shifts), Adam 3e-4 with a cosine schedule, patience 0, 2 torch threads, the
# checkpoint chosen on the validation split's L1.
#
#   scripts/train_round22.sh DATASET [RUNS_DIR]
#
# DATASET is the default cohort: `spectac simulate --out data/cohort0 --patients 100 --seed 0
# --workers 2` (80 training, 80 validation studies). Stages (seed 22):
#   unet2d     10 epochs
#   pix2pix2d  10 epochs
#   unet3d      8 epochs, then 12 more from those weights at 3e-4 (seed 23) into RUNS_DIR/unet3d-2:
#               the first stage ended with the validation L1 flat and the network behind the 2D ones
#   resnet      6 epochs
# Round 1 is taken as shipped from ROUND1_COMMIT, so the script reproduces the round from the
# repository alone. Every stage resumes after an interruption. Nothing is installed: compare the
# candidates with the shipped weights on the validation split first (BENCHMARKS.md, round 22),
# then `python scripts/install_model.py MODEL RUNS_DIR/MODEL`.
set -euo pipefail

DATA=${1:?usage: scripts/train_round22.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/round22}
MODELS=${MODELS:-unet2d pix2pix2d unet3d resnet}
ROUND1_COMMIT=5c8e724ea03d5b4587e908f404c5ee958dd999bd
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for model in $MODELS; do
  case $model in
    unet2d | pix2pix2d) epochs=10 ;;
    unet3d) epochs=8 ;;
    resnet) epochs=6 ;;
    *) echo "round 22 trains unet2d, pix2pix2d, unet3d and resnet, not $model" >&2; exit 2 ;;
  esac
  round1="$RUNS/round1/$model"
  if [[ ! -f $round1/best.pt ]]; then
    mkdir -p "$round1"
    for f in best.pt config.json training_record.json; do
      git -C "$ROOT" show "$ROUND1_COMMIT:src/spectac/data/models/$model/$f" > "$round1/$f"
    done
  fi
  channels=()
  [[ $model == resnet ]] || channels=(--channels 8,16,32,64)
  echo "== spectac train --model $model (round 22)"
  spectac train --model "$model" --data "$DATA" --out "$RUNS/$model" --epochs "$epochs" --lr 3e-4 --seed 22 \
    --patience 0 --lr-schedule cosine --init "$round1" "${channels[@]}"
done
if [[ " $MODELS " == *" unet3d "* ]]; then
  echo "== spectac train --model unet3d (round 22, second stage)"
  spectac train --model unet3d --data "$DATA" --out "$RUNS/unet3d-2" --epochs 12 --lr 3e-4 --seed 23 \
    --patience 0 --lr-schedule cosine --init "$RUNS/unet3d" --channels 8,16,32,64
fi
