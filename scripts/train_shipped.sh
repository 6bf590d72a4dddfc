#!/usr/bin/env bash
# Reproduce the shipped deep-learning AC models stage by stage, as they were trained (each
# model's src/spectac/data/models/<model>/training_record.json), and install them.
#
#   scripts/train_shipped.sh DATASET [RUNS_DIR]
#
# DATASET is the default cohort: `spectac simulate --out data/cohort0 --patients 100 --seed 0`.
# Stages (epochs, learning rate, seed; cosine schedule, patience 0, 1 torch thread):
#   unet-gan3d        30 at 1e-3 (seed 0), then a warm restart: 6 at 3e-4 (seed 1) --init stage 1
#   unet-gan3d-chang  30 at 1e-3 (seed 0), then a warm restart: 10 at 3e-4 (seed 1) --init stage 1
#   unet3d 20, unet2d 8, pix2pix2d 8, resnet 6, each at 1e-3 (seed 0)
# About 8 CPU hours at one thread each (the records' wall times). Every stage is resumable: rerun
# the script after an interruption. The warm restart's folder (<model>-ft) starts its
# training_record.json with stage 1's, so the installed record holds both stages.
# Test-split metrics are not measured here: run `bash benchmarks/quality.sh DATASET runs/main`, then
# scripts/install_model.py MODEL RUN --metrics runs/main/table1.md to put them in the card.
#
# Settings (environment): MODELS (all six), THREADS (torch threads, 1 as shipped), INSTALL (1: copy
# the final weights into src/spectac/data/models/; 0: leave them in RUNS_DIR).
set -euo pipefail

DATA=${1:?usage: scripts/train_shipped.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/models}
MODELS=${MODELS:-unet-gan3d-chang unet-gan3d resnet unet3d unet2d pix2pix2d}
INSTALL=${INSTALL:-1}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

stage() {
  echo "== spectac $*"
  spectac "$@"
}

one_stage() {  # MODEL EPOCHS: from random weights (seed 0), lr 1e-3 along a cosine
  stage train --model "$1" --data "$DATA" --out "$RUNS/$1" --epochs "$2" --patience 0 --seed 0 \
    --lr-schedule cosine "${channels[@]}"
}

warm_restart() {  # MODEL EPOCHS: from stage 1's best.pt (seed 1), lr 3e-4 along a cosine
  stage train --model "$1" --data "$DATA" --out "$RUNS/$1-ft" --epochs "$2" --lr 3e-4 --seed 1 --patience 0 \
    --lr-schedule cosine --init "$RUNS/$1" "${channels[@]}"
}

for model in $MODELS; do
  channels=(--channels 8,16,32,64)
  [[ $model == resnet ]] && channels=()
  final="$RUNS/$model"
  case $model in
    unet-gan3d) one_stage unet-gan3d 30; warm_restart unet-gan3d 6; final="$RUNS/$model-ft" ;;
    unet-gan3d-chang) one_stage unet-gan3d-chang 30; warm_restart unet-gan3d-chang 10; final="$RUNS/$model-ft" ;;
    unet3d) one_stage unet3d 20 ;;
    unet2d) one_stage unet2d 8 ;;
    pix2pix2d) one_stage pix2pix2d 8 ;;
    resnet) one_stage resnet 6 ;;
    *) echo "unknown model $model" >&2; exit 2 ;;
  esac
  if [[ $INSTALL == 1 ]]; then
    python "$ROOT/scripts/install_model.py" "$model" "$final"
  fi
done
