"""Install a trained model as shipped weights: best.pt + config.json + MODEL_CARD.md in
src/spectac/data/models/<name>/.

    python scripts/install_model.py MODEL RUN_DIR "COMMAND" [--metrics RUN/table1.md]

The card states the network, data, command, training time (sum of log.csv seconds), the selected
epoch, and, when --metrics names the Table 1 of `spectac evaluate` on the test split, those rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("run", type=Path)
    parser.add_argument("command")
    parser.add_argument("--metrics", type=Path, default=None)
    parser.add_argument("--note", default="")
    parser.add_argument("--hardware", default="torch threads 1 on a 2-core CPU",
                        help="where it was trained (the card states it beside the training time)")
    args = parser.parse_args()
    dest = ROOT / "src" / "spectac" / "data" / "models" / args.model
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run / "best.pt", dest / "best.pt.tmp")
    (dest / "best.pt.tmp").replace(dest / "best.pt")
    shutil.copyfile(args.run / "config.json", dest / "config.json")
    config = json.loads((args.run / "config.json").read_text())
    rows = list(csv.DictReader((args.run / "log.csv").open()))
    best = torch.load(args.run / "best.pt", map_location="cpu", weights_only=True)
    hours = sum(float(r["seconds"]) for r in rows) / 3600
    size_mb = (dest / "best.pt").stat().st_size / 1e6
    data = config["data"]
    metrics = ""
    if args.metrics and args.metrics.is_file():
        lines = args.metrics.read_text().splitlines()
        keep = [line for line in lines[:2]] + [line for line in lines[2:] if line.split("|")[1].strip() in (args.model, "chang", "nc")]
        metrics = "\n".join(keep)
    prior_text = (", and the log first-order Chang factor made from the NC image (docs/models.md)"
                  if config["network"].get("prior", "none") == "chang" else "")
    card = f"""# {args.model}: model card

- Network: {json.dumps(config["network"])}
- Data: {os.path.relpath(data["dataset"])} ({data["train_cases"]} train / {data["val_cases"]} val studies, volumes
  {data["shape"]} at {[round(float(x), 2) for x in data["spacing_mm"]]} mm); simulated with `spectac simulate --patients 100 --seed 0`
  (dataset.json records the full configuration).
- Training: {json.dumps(config["training"])}
- Command: `{args.command}` ({args.hardware})
- Training time: {hours:.2f} h over {len(rows)} epochs (sum of log.csv seconds).
- Selected epoch (best validation L1 on the NC-normalised scale): {best["epoch"]}, val L1 {best["val_l1"]:.5f}.
- Weights: best.pt ({size_mb:.2f} MB). Input: NC / its {config["normalisation"]["percentile"]}th percentile{prior_text};
  output rule: {config["network"]["output"]}; predictions in counts.
{f"- Note: {args.note}" + chr(10) if args.note else ""}
## Test-split metrics (against CT-AC, 40 studies of 20 patients never seen in training)

{metrics or "Not measured yet."}

## Limits

Trained on simulated studies only; a clinic's camera, reconstruction and patients differ, so
retrain or fine-tune on local SPECT/CT pairs (`spectac import`, `spectac train`) before clinical use.
"""
    (dest / "MODEL_CARD.md").write_text(card)
    print(f"installed {dest}")


if __name__ == "__main__":
    main()
