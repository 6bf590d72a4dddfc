#!/usr/bin/env bash
# Train the shipped deep-learning AC models on a dataset and install their best weights.
#
#   scripts/train_shipped.sh DATASET [RUNS_DIR]
#
# For each model (unet-gan3d-chang unet-gan3d resnet unet3d unet2d pix2pix2d) this runs `spectac train` into
# RUNS_DIR/<model> (resumable: rerun the script after an interruption), then copies best.pt and
# config.json into src/spectac/data/models/<model>/ with a MODEL_CARD.md (data, seed, command,
# training time, validation L1). The test-split metrics section of each card is filled in after
# `spectac predict` + `spectac evaluate` on the test split.
#
# Settings (environment): SEED (0), EPOCHS (30), PATIENCE (0: the cosine schedule runs to its end),
# CHANNELS (U-Net levels, 8,16,32,64), MODELS (the list above), THREADS (torch threads, 2),
# SCHEDULE (learning rate over the epochs, cosine).
set -euo pipefail

DATA=${1:?usage: scripts/train_shipped.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/models}
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-30}
PATIENCE=${PATIENCE:-0}
SCHEDULE=${SCHEDULE:-cosine}
CHANNELS=${CHANNELS:-8,16,32,64}
MODELS=${MODELS:-unet-gan3d-chang unet-gan3d resnet unet3d unet2d pix2pix2d}
export OMP_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for model in $MODELS; do
  out="$RUNS/$model"
  args=(train --model "$model" --data "$DATA" --out "$out" --epochs "$EPOCHS" --patience "$PATIENCE" --seed "$SEED"
        --lr-schedule "$SCHEDULE")
  if [[ $model != resnet ]]; then args+=(--channels "$CHANNELS"); fi
  echo "== spectac ${args[*]}"
  spectac "${args[@]}"

  python "$ROOT/scripts/install_model.py" "$model" "$out" "spectac ${args[*]}" \
    --hardware "torch threads $OMP_NUM_THREADS, $(nproc --all)-core CPU"
done
