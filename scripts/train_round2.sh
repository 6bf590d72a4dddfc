#!/usr/bin/env bash
# Round 2 of the shipped networks: the round-1 weights fine-tuned on the realistic cohort (energy
# windows and scatter, the layered torso, the referral population, CT-SPECT misregistration) with
# the clinic augmentation (truncation, count levels, noise, smoothing, shifts), and installed.
#
#   scripts/train_round2.sh DATASET [RUNS_DIR]
#
# DATASET is this version's default cohort: `spectac simulate --out data/cohort0 --patients 100
# --seed 0 --workers 2`. Round 1 (scripts/train_shipped.sh, on the cohort of the simulator before
# the realistic data) is taken as shipped from the commit that last changed it, ROUND1_COMMIT, so
# this script reproduces round 2 from the repository alone. Stages (cosine schedule, patience 0,
# 2 torch threads, checkpoint chosen on the validation split's L1):
#   unet-gan3d-chang  5 epochs at 3e-4 (seed 2)
#   unet-gan3d         3 epochs at 3e-4 (seed 2)
# resnet, unet3d, unet2d and pix2pix2d stay at round 1 (their cards say so).
# Every stage resumes after an interruption. Test-split metrics: `bash benchmarks/quality.sh DATASET
# runs/main`, then scripts/install_model.py MODEL RUN --metrics runs/main/table1.md.
set -euo pipefail

DATA=${1:?usage: scripts/train_round2.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/round2}
MODELS=${MODELS:-unet-gan3d-chang unet-gan3d}
INSTALL=${INSTALL:-1}
ROUND1_COMMIT=5c8e724ea03d5b4587e908f404c5ee958dd999bd
export OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for model in $MODELS; do
  case $model in
    unet-gan3d-chang) epochs=5 ;;
    unet-gan3d) epochs=3 ;;
    *) echo "round 2 trains unet-gan3d-chang and unet-gan3d, not $model" >&2; exit 2 ;;
  esac
  round1="$RUNS/round1/$model"
  if [[ ! -f $round1/best.pt ]]; then
    mkdir -p "$round1"
    for f in best.pt config.json training_record.json; do
      git -C "$ROOT" show "$ROUND1_COMMIT:src/spectac/data/models/$model/$f" > "$round1/$f"
    done
  fi
  echo "== spectac train --model $model (round 2)"
  spectac train --model "$model" --data "$DATA" --out "$RUNS/$model" --epochs "$epochs" --lr 3e-4 --seed 2 \
    --patience 0 --lr-schedule cosine --init "$round1" --channels 8,16,32,64
  if [[ $INSTALL == 1 ]]; then
    python "$ROOT/scripts/install_model.py" "$model" "$RUNS/$model"
  fi
done
