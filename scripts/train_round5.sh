#!/usr/bin/env bash
# Round 5 of the default shipped network: the round-3 unet-gan3d-chang trained on for longer on the
# same default cohort (round 3 stopped after 3 epochs with the validation L1 still falling), and
# installed.
#
#   scripts/train_round5.sh DATASET [RUNS_DIR]
#
# DATASET is this version's default cohort: `spectac simulate --out data/cohort0 --patients 100
# --seed 0 --workers 2`. The round-3 weights are taken as shipped from the commit that last changed
# them, ROUND3_COMMIT, so this script reproduces round 5 from the repository alone. One stage:
#   unet-gan3d-chang  20 epochs at 2e-4 (seed 5), cosine schedule, patience 0, 1 torch thread,
#   checkpoint chosen on the validation split's L1, the clinic augmentation.
# Resumes after an interruption. With INSTALL=1 (default) the chosen weights are installed; the
# ONNX file and the partner-check threshold follow them (`python scripts/export_onnx.py`,
# `python benchmarks/uncertainty.py`, docs/models.md). Test-split metrics: `bash
# benchmarks/quality.sh DATASET runs/main`.
set -euo pipefail

DATA=${1:?usage: scripts/train_round5.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/round5}
INSTALL=${INSTALL:-1}
EPOCHS=${EPOCHS:-20}
ROUND3_COMMIT=773b7133b9b6c28e71ec6a9505ff912ffa39b018
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
model=unet-gan3d-chang
round3="$RUNS/round3/$model"
if [[ ! -f $round3/best.pt ]]; then
  mkdir -p "$round3"
  for f in best.pt config.json training_record.json; do
    git -C "$ROOT" show "$ROUND3_COMMIT:src/spectac/data/models/$model/$f" > "$round3/$f"
  done
fi
echo "== spectac train --model $model (round 5)"
spectac train --model "$model" --data "$DATA" --out "$RUNS/$model" --epochs "$EPOCHS" --lr 2e-4 \
  --seed 5 --patience 0 --lr-schedule cosine --init "$round3" --channels 8,16,32,64
if [[ $INSTALL == 1 ]]; then
  python "$ROOT/scripts/install_model.py" "$model" "$RUNS/$model"
fi
