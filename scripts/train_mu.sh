#!/usr/bin/env bash
# Train the shipped mu-map model of `spectac correct --route indirect` (unet3d-mu: NC and the
# scatter-window image -> mu-map in 1/cm, L1) and install it in src/spectac/data/models/unet3d-mu/
# with its model card.
#
#   scripts/train_mu.sh DATA OUT
#
# DATA: a dataset whose studies have mu.nii.gz and projections.npz (or scatter.nii.gz), e.g. the
# default cohort
# (`spectac simulate --out data/cohort0 --patients 100 --seed 0`). OUT: the model folder (resumable:
# rerun the same command after an interruption).
# Settings (unet3d's recipe, scripts/train_shipped.sh, shortened to 8 epochs): lr 1e-3 along a cosine
# (down to 1%), patience 0, seed 0, channels 8,16,32,64, the default "clinic" augmentation (the
# mu-map moves with the input's shifts; counts, smoothing and truncation alter NC and the scatter
# image only), the scatter-window image of every study (spectac.reconstruction.scatter_image; cached
# as scatter.nii.gz in the study folder, made from projections.npz when missing: about 1 s a study), batch 1,
# 1 torch thread. Overridable from the environment: EPOCHS, LR, SEED, THREADS, INSTALL (1: install
# into src/spectac/data/models/unet3d-mu; 0: leave the weights in OUT), PYTHON (the interpreter
# with spectac installed).
# Expected time on the default cohort: about 0.5 CPU hours at one thread (unet3d, the same network
# on the same data, recorded 3816 s for 20 epochs).
# Test-split figures are not measured here: correct the test studies' projections with
# `spectac correct --route indirect` (docs/projections.md).
set -euo pipefail

DATA=${1:?usage: scripts/train_mu.sh DATA OUT}
OUT=${2:?usage: scripts/train_mu.sh DATA OUT}
EPOCHS=${EPOCHS:-8}
LR=${LR:-1e-3}
SEED=${SEED:-0}
INSTALL=${INSTALL:-1}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}

echo "== spectac train --model unet3d-mu --data $DATA --out $OUT --epochs $EPOCHS --lr $LR --seed $SEED"
"$PYTHON" -m spectac.cli train --model unet3d-mu --data "$DATA" --out "$OUT" --epochs "$EPOCHS" --lr "$LR" \
  --seed "$SEED" --patience 0 --lr-schedule cosine --channels 8,16,32,64
if [[ $INSTALL == 1 ]]; then
  "$PYTHON" "$ROOT/scripts/install_model.py" unet3d-mu "$OUT"
fi
