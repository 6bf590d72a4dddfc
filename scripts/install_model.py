"""Install a trained model as shipped weights: best.pt, config.json, training_record.json (and
metrics.json) in src/spectac/data/models/<name>/, with a MODEL_CARD.md written from them, and for
an AC model its ONNX export (scripts/export_onnx.py: model.onnx, config.json "onnx").

    python scripts/install_model.py MODEL RUN_DIR [--metrics RUN/table1.md] [--note TEXT]

The card (spectac.training.card) states the network, the dataset (name, fingerprint, splits), every
training stage of the record (command, epochs, learning rate, seed, init weights, wall time,
hardware), the selected epoch and, with --metrics (the Table 1 of `spectac evaluate` on the test
split), those rows. Without --metrics the installed model has no test-split figures: the previous
model's metrics.json is removed, since they were measured on other weights. For the same reason the
partner check's threshold (the ``uncertainty`` block of config.json) is not carried over: the
script says so, and ``benchmarks/uncertainty.py DATASET --split val --write-threshold`` calibrates
it for the new weights (until then the check reports the disagreement without flagging).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from export_onnx import export_model  # scripts/export_onnx.py, beside this script

from spectac.io.checkpoint import load_checkpoint, save_checkpoint
from spectac.io.onnx_model import ONNX_NAME
from spectac.nn.registry import get_spec
from spectac.training.card import METRICS, write_model_card
from spectac.training.record import RECORD, is_absolute_path, read_record, write_record

ROOT = Path(__file__).resolve().parents[1]
QUALITY = "bash benchmarks/quality.sh DATASET RUN"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("run", type=Path)
    parser.add_argument("--metrics", type=Path, default=None, help="Table 1 (markdown) of spectac evaluate, test split")
    parser.add_argument("--metrics-command", default=QUALITY, help="the command that measured --metrics")
    parser.add_argument("--note", default="", help="a note on the last training stage, shown in the card")
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    if config.get("model") != args.model:
        raise SystemExit(f"{args.run} holds {config.get('model')}, not {args.model}")
    if any(is_absolute_path(str(v)) for v in (config["data"].get("dataset"), config["training"].get("init"))):
        raise SystemExit(f"{args.run}/config.json names a machine path: retrain with this spectac version")
    record = read_record(args.run)
    if record is None:
        raise SystemExit(f"{args.run} has no {RECORD}: retrain with this spectac version")
    state = load_checkpoint(args.run / "best.pt")  # a readable spectac checkpoint
    dest = ROOT / "src" / "spectac" / "data" / "models" / args.model
    dest.mkdir(parents=True, exist_ok=True)
    previous = json.loads((dest / "config.json").read_text()) if (dest / "config.json").is_file() else {}
    if state["config"] != config:  # a checkpoint whose config held tuples where config.json has lists
        if json.loads(json.dumps(state["config"])) != config:
            raise SystemExit(f"{args.run}/best.pt was not trained with {args.run}/config.json")
        state["config"] = config  # the tensors are unchanged
        save_checkpoint(state, dest / "best.pt")
    else:
        shutil.copyfile(args.run / "best.pt", dest / "best.pt.tmp")
        (dest / "best.pt.tmp").replace(dest / "best.pt")
    shutil.copyfile(args.run / "config.json", dest / "config.json")
    if args.note:
        record["stages"][-1]["note"] = args.note
    write_record(dest, record)
    (dest / METRICS).unlink(missing_ok=True)
    if args.metrics is not None:
        lines = args.metrics.read_text().splitlines()
        table = lines[:2] + [line for line in lines[2:] if line.split("|")[1].strip() in (args.model, "chang", "nc")]
        test = (record["stages"][-1].get("dataset") or {}).get("splits", {}).get("test", {})
        metrics = {"split": "test", "dataset": config["data"]["dataset"], "studies": test.get("studies"),
                   "patients": test.get("patients"), "command": args.metrics_command, "table": table}
        (dest / METRICS).write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
    write_model_card(dest)
    # the ONNX export of the new weights (the old one no longer matches them and would be ignored)
    (dest / ONNX_NAME).unlink(missing_ok=True)
    if get_spec(args.model).target == "ac":
        export_model(args.model)
    print(f"installed {dest}")
    if "uncertainty" in previous:
        print(f"{args.model}: the partner check's threshold was calibrated for the previous weights and is "
              "not kept; calibrate it for these: PYTHONPATH=src python benchmarks/uncertainty.py DATASET "
              "--split val --write-threshold", file=sys.stderr)


if __name__ == "__main__":
    main()
