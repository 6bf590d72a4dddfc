"""Give the shipped models (trained before spectac kept a training_record.json) a record
reconstructed from the project history, drop the machine path from their config, and regenerate
their cards from that record.

    PYTHONPATH=src python scripts/reconstruct_shipped.py [MODEL ...]

For each model in src/spectac/data/models/:

- config.json and the config inside best.pt: data.dataset becomes the cohort's name and origin
  (the absolute path of the machine that trained it is dropped; the cohort is not on this machine,
  so no fingerprint), training.init a name. best.pt is rewritten with spectac's save_checkpoint;
  every tensor of the generator's state dict is checked bit-identical before and after.
- training_record.json: the stages below (commands, epochs, learning rates, seeds, warm restarts,
  best epochs, hours, threads), taken from the model cards and the commits that shipped them
  (git log -- src/spectac/data/models), marked "reconstructed from the project history".
- metrics.json: the test-split rows the card stated (measured with
  `bash benchmarks/quality.sh data/cohort0 runs/main`, BENCHMARKS.md).
- MODEL_CARD.md: written by spectac.training.card from the above.

scripts/train_shipped.sh runs the same stages.
"""

from __future__ import annotations

import copy
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from spectac.io.checkpoint import load_checkpoint, save_checkpoint
from spectac.training.card import METRICS, write_model_card
from spectac.training.record import FORMAT, write_record

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "spectac" / "data" / "models"
COHORT = "cohort0 (spectac simulate --patients 100 --seed 0)"
QUALITY = "bash benchmarks/quality.sh data/cohort0 runs/main"
RECONSTRUCTED = ("Training record reconstructed from the project history (the model cards and the commits "
                 "that shipped these weights, `git log -- src/spectac/data/models`): spectac did not yet "
                 "record stages when this model was trained. Stage-one weights, discriminator weights and "
                 "per-epoch logs of that time were not kept; hours are the cards' sums of log.csv seconds.")
DATASET = {  # the cohort's identity as far as it is known here (it is not on this machine)
    "name": "cohort0",
    "source": "simulation",
    "simulation": {"seed": 0, "patients": 100},
    "splits": {"test": {"studies": 40, "patients": 20}, "train": {"studies": 80, "patients": 40},
               "val": {"studies": 80, "patients": 40}},
    "sha256": None,
}
SHARED = "2-core CPU shared with another training run"
DISC_AT_CHANCE = ("the discriminator sat at chance (its loss and the generator's adversarial loss both about "
                  "0.693 = ln 2), so this restart was in effect L1 training")


def _train(model: str, out: str, epochs: int, seed: int, lr: str | None = None, init: str | None = None) -> str:
    """The command as the card gave it (option order included)."""
    args = ["spectac", "train", "--model", model, "--data", "data/cohort0", "--out", out, "--epochs", str(epochs)]
    if lr is None:
        args += ["--patience", "0", "--seed", str(seed), "--lr-schedule", "cosine"]
    else:
        args += ["--lr", lr, "--seed", str(seed), "--patience", "0", "--lr-schedule", "cosine", "--init", str(init)]
    if model != "resnet":
        args += ["--channels", "8,16,32,64"]
    return shlex.join(args)


def _one(model: str, epochs: int, best: tuple[int, float], hours: float, commit: str, note: str = "",
         hardware: str = SHARED) -> dict[str, Any]:
    return {"argv": _train(model, f"runs/models/{model}", epochs, 0), "folder": model, "epochs": epochs,
            "lr": 1e-3, "seed": 0, "init": None, "best": best, "hours": hours, "commit": commit, "note": note,
            "hardware": hardware}


def _restart(model: str, epochs: int, best: tuple[int, float], hours: float, commit: str, note: str,
             hardware: str = SHARED) -> dict[str, Any]:
    return {"argv": _train(model, f"runs/models/{model}-ft", epochs, 1, "3e-4", f"runs/models/{model}"),
            "folder": f"{model}-ft", "epochs": epochs, "lr": 3e-4, "seed": 1, "init": f"runs/models/{model}",
            "best": best, "hours": hours, "commit": commit, "note": note, "hardware": hardware}


#: Every shipped model's stages, oldest first (from the cards and commits named).
STAGES: dict[str, list[dict[str, Any]]] = {
    "unet-gan3d": [
        _one("unet-gan3d", 30, (18, 0.02115), 1.70, "7ed6b80",
             "these weights alone measured test MAE 6.82, SSIM 0.980 on the same test split"),
        _restart("unet-gan3d", 6, (6, 0.01768), 0.28, "6fa8449", f"warm restart from stage 1's best.pt; {DISC_AT_CHANCE}",
                 "2-core CPU shared with the CI run"),
    ],
    "unet-gan3d-chang": [
        _one("unet-gan3d-chang", 30, (25, 0.01566), 1.77, "7ed6b80"),
        _restart("unet-gan3d-chang", 10, (9, 0.01347), 0.50, "e5cb9cd",
                 f"warm restart from stage 1's best.pt; {DISC_AT_CHANCE}"),
    ],
    "unet3d": [_one("unet3d", 20, (20, 0.02946), 1.06, "e5cb9cd")],
    "unet2d": [_one("unet2d", 8, (8, 0.02803), 0.13, "e5cb9cd",
                    "8 epochs (the session's budget); the validation loss was still falling at the end")],
    "pix2pix2d": [_one("pix2pix2d", 8, (8, 0.02439), 0.17, "e5cb9cd",
                       "8 epochs (the session's budget); the validation loss was still falling at the end")],
    "resnet": [_one("resnet", 6, (6, 0.04481), 0.50, "e5cb9cd",
                    "6 epochs only (300 s per epoch at full resolution on one thread, the session's budget); "
                    "the validation loss was still falling (0.0482, 0.0456, 0.0448 over the last three "
                    "epochs): undertrained compared with the U-Nets")],
}


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["data"]["dataset"] = COHORT
    config["data"].pop("fingerprint", None)
    init = config["training"].get("init")
    if isinstance(init, str):
        config["training"]["init"] = {"name": init, "sha256": None}
    return config


def record_of(model: str, final: dict[str, Any]) -> dict[str, Any]:
    stages = []
    for number, known in enumerate(STAGES[model], start=1):
        config = copy.deepcopy(final)
        training = config["training"]
        training.update(epochs=known["epochs"], lr=known["lr"], seed=known["seed"],
                        init=None if known["init"] is None else {"name": known["init"], "sha256": None})
        stages.append({
            "stage": number,
            "status": "finished",
            "reconstructed": True,
            "folder": known["folder"],
            "argv": shlex.split(known["argv"]),
            "config": config,
            "seed": known["seed"],
            "epochs": {"start": 1, "end": known["epochs"], "planned": known["epochs"]},
            "resumed": False,
            "init": training["init"],
            "dataset": DATASET,
            "hardware": {"torch": None, "threads": 1, "cpu": None, "device": "cpu", "note": known["hardware"]},
            "wall_seconds": round(known["hours"] * 3600),
            "best": {"epoch": known["best"][0], "val_l1": known["best"][1]},
            "log": None,
            "shipped_in_commit": known["commit"],
            "note": known["note"],
        })
    return {"format": FORMAT, "model": model, "reconstructed": RECONSTRUCTED, "stages": stages}


def metrics_of(card: Path, model: str) -> dict[str, Any] | None:
    lines = card.read_text().splitlines() if card.is_file() else []
    table = [line for line in lines if line.startswith("|")
             and (line.split("|")[1].strip() in ("method", "---", model, "nc", "chang"))]
    if len(table) < 3:
        return None
    return {"split": "test", "dataset": "cohort0", "studies": 40, "patients": 20, "command": QUALITY,
            "source": "BENCHMARKS.md, Table 1", "table": table}


def main(models: list[str]) -> None:
    for model in models:
        folder = MODELS / model
        before = load_checkpoint(folder / "best.pt")
        config = portable_config(before["config"])
        after_state = {**before, "config": config}
        save_checkpoint(after_state, folder / "best.pt")
        after = load_checkpoint(folder / "best.pt")
        assert set(after) == set(before) and after["generator"].keys() == before["generator"].keys()
        for key, tensor in before["generator"].items():
            other = after["generator"][key]
            assert other.dtype == tensor.dtype and torch.equal(other, tensor), f"{model}: {key} changed"
        (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        metrics_path = folder / METRICS
        if not metrics_path.is_file():
            metrics = metrics_of(folder / "MODEL_CARD.md", model)
            if metrics is not None:
                metrics_path.write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
        write_record(folder, record_of(model, config))
        write_model_card(folder)
        print(f"{model}: {len(before['generator'])} tensors bit-identical; config, record, metrics, card written")


if __name__ == "__main__":
    main(sys.argv[1:] or list(STAGES))
