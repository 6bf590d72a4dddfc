#!/usr/bin/env bash
# Train the shipped deep-learning AC models on a dataset and install their best weights.
#
#   scripts/train_shipped.sh DATASET [RUNS_DIR]
#
# For each model (unet-gan3d resnet unet3d unet2d pix2pix2d) this runs `spectac train` into
# RUNS_DIR/<model> (resumable: rerun the script after an interruption), then copies best.pt and
# config.json into src/spectac/data/models/<model>/ with a MODEL_CARD.md (data, seed, command,
# training time, validation L1). The test-split metrics section of each card is filled in after
# `spectac predict` + `spectac evaluate` on the test split.
#
# Settings (environment): SEED (0), EPOCHS (30), PATIENCE (8), CHANNELS (U-Net levels, 8,16,32,64),
# MODELS (the list above), THREADS (torch threads, 2).
set -euo pipefail

DATA=${1:?usage: scripts/train_shipped.sh DATASET [RUNS_DIR]}
RUNS=${2:-runs/models}
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-30}
PATIENCE=${PATIENCE:-8}
CHANNELS=${CHANNELS:-8,16,32,64}
MODELS=${MODELS:-unet-gan3d resnet unet3d unet2d pix2pix2d}
export OMP_NUM_THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for model in $MODELS; do
  out="$RUNS/$model"
  args=(train --model "$model" --data "$DATA" --out "$out" --epochs "$EPOCHS" --patience "$PATIENCE" --seed "$SEED")
  if [[ $model != resnet ]]; then args+=(--channels "$CHANNELS"); fi
  echo "== spectac ${args[*]}"
  spectac "${args[@]}"

  dest="$ROOT/src/spectac/data/models/$model"
  mkdir -p "$dest"
  cp "$out/best.pt" "$dest/best.pt.tmp" && mv "$dest/best.pt.tmp" "$dest/best.pt"
  cp "$out/config.json" "$dest/config.json"
  python - "$model" "$out" "$dest" "spectac ${args[*]}" <<'PY'
import csv, json, sys
from pathlib import Path

import torch

model, out, dest, command = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
config = json.loads((out / "config.json").read_text())
rows = list(csv.DictReader((out / "log.csv").open()))
best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
hours = sum(float(r["seconds"]) for r in rows) / 3600
size_mb = (dest / "best.pt").stat().st_size / 1e6
data = config["data"]
card = f"""# {model}: model card

- Network: {json.dumps(config["network"])}
- Data: {data["dataset"]} ({data["train_cases"]} train / {data["val_cases"]} val studies,
  volumes {data["shape"]} at {data["spacing_mm"]} mm); dataset.json records the simulation seed.
- Training: {json.dumps(config["training"])}
- Command: `{command}`
- Training time: {hours:.2f} h over {len(rows)} epochs on this machine (sum of log.csv seconds).
- Selected epoch (best validation L1 on the NC-normalised scale): {best["epoch"]}, val L1 {best["val_l1"]:.5f}.
- Weights: best.pt ({size_mb:.1f} MB); input normalisation: NC / {config["normalisation"]["percentile"]}th
  percentile of NC; output rule: {config["network"]["output"]}.

## Test-split metrics

Fill in from `spectac predict --method {model} --data DATASET --out RUN --split test` and
`spectac evaluate RUN`: ME, MAE, RMSE, SSIM, PSNR (mean +- SD), heart NMAE.

## Limits

Trained on simulated studies only; a clinic's camera, reconstruction and patients differ, so
retrain or fine-tune on local SPECT/CT pairs (`spectac import`, `spectac train`) before clinical use.
"""
(dest / "MODEL_CARD.md").write_text(card)
print(f"installed {dest}")
PY
done
