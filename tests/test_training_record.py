"""Training records and model cards: every `spectac train` adds a stage to training_record.json,
warm restarts carry the history along, cards come from each model's own record, and nothing
machine-specific (no absolute path) is kept in a model folder, the shipped ones included."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from test_training import TINY, write_synthetic_dataset
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.deep import shipped_model_dir
from spectac.io.checkpoint import load_checkpoint
from spectac.training.card import PAPER, model_card
from spectac.training.record import is_absolute_path, portable_argv, read_record, sha256_file

torch.set_num_threads(1)
SHIPPED = ("unet-gan3d", "unet-gan3d-chang", "unet3d", "unet2d", "pix2pix2d", "resnet")
MACHINE_PATH = re.compile(r"(?<![\w.])(?:/(?:work|home|tmp|root|Users|mnt|var|private)/|[A-Za-z]:\\)")


def _train(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    """`spectac train ARGS` with sys.argv as a real command line would set it."""
    argv = ["/opt/venv/bin/spectac", "train", *args]
    monkeypatch.setattr(sys, "argv", argv)
    result = CliRunner().invoke(app, argv[1:])
    assert result.exit_code == 0, result.output


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _assert_no_machine_path(folder: Path, *forbidden: str) -> None:
    for name in ("config.json", "training_record.json", "MODEL_CARD.md", "metrics.json"):
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text()
        for word in forbidden:
            assert word not in text, f"{path} holds {word}"
        assert not MACHINE_PATH.search(text), f"{path}: {MACHINE_PATH.search(text).group(0)}"
        if name.endswith(".json"):
            assert not [s for s in _strings(json.loads(text)) if is_absolute_path(s)], path
    config = load_checkpoint(folder / "best.pt")["config"]
    assert not [s for s in _strings(config) if is_absolute_path(s) or any(w in s for w in forbidden)]


def test_resumed_and_warm_restarted_runs_append_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "cohortA")
    first, second = tmp_path / "runs" / "m", tmp_path / "runs" / "m-ft"
    base = ["--model", "unet3d", "--data", str(data), "--channels", TINY, "--patience", "0"]
    _train(monkeypatch, *base, "--out", str(first), "--epochs", "1", "--seed", "3")
    _train(monkeypatch, *base, "--out", str(first), "--epochs", "2", "--seed", "3")  # resumed: epoch 2
    record = read_record(first)
    assert [s["stage"] for s in record["stages"]] == [1, 2]
    one, two = record["stages"]
    assert (one["epochs"]["start"], one["epochs"]["end"], two["epochs"]["start"], two["epochs"]["end"]) == (1, 1, 2, 2)
    assert two["resumed"] and not one["resumed"] and one["status"] == two["status"] == "finished"
    for stage in record["stages"]:
        assert stage["argv"][:2] == ["spectac", "train"] and ".../cohortA" in stage["argv"]
        assert stage["seed"] == 3 and stage["config"]["training"]["seed"] == 3
        assert {"torch", "threads", "cpu", "device"} <= set(stage["hardware"]) and stage["hardware"]["threads"] >= 1
        assert stage["dataset"]["name"] == "cohortA"
        assert stage["dataset"]["sha256"] == {"cases.csv": sha256_file(data / "cases.csv"),
                                              "dataset.json": sha256_file(data / "dataset.json")}
        assert stage["dataset"]["splits"]["train"] == {"studies": 4, "patients": 4}
        assert stage["wall_seconds"] > 0 and stage["log"]["file"] == "log.csv"
        assert [r["epoch"] for r in stage["log"]["rows"]] == list(range(stage["epochs"]["start"], stage["epochs"]["end"] + 1))
    assert two["weights_sha256"]["best.pt"] == sha256_file(first / "best.pt")
    config = json.loads((first / "config.json").read_text())
    assert config["data"]["dataset"] == "cohortA" and config["data"]["fingerprint"] == one["dataset"]["sha256"]

    # a rerun with nothing left to do adds no stage
    _train(monkeypatch, *base, "--out", str(first), "--epochs", "2", "--seed", "3")
    assert len(read_record(first)["stages"]) == 2

    # a warm restart into a new folder: its record starts with the history of the weights it loads
    _train(monkeypatch, *base, "--out", str(second), "--epochs", "1", "--seed", "4", "--lr", "3e-4",
           "--init", str(first))
    stages = read_record(second)["stages"]
    assert [s["stage"] for s in stages] == [1, 2, 3]
    assert [s.get("inherited_from") for s in stages] == ["m", "m", None]
    assert stages[2]["init"] == {"name": "m", "sha256": sha256_file(first / "best.pt")}
    assert stages[2]["config"]["training"]["lr"] == pytest.approx(3e-4) and "--init" in stages[2]["argv"]

    card = (second / "MODEL_CARD.md").read_text()
    assert "cohortA" in card and "| 3 |" in card and "--lr 3e-4" in card and PAPER in card
    assert card == model_card(second)
    for folder in (first, second):
        _assert_no_machine_path(folder, str(tmp_path), tmp_path.name)


def test_models_trained_on_different_data_get_different_cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    cards = []
    for name, seed, n_train in (("siteA", 0, 4), ("siteB", 1, 3)):
        data = write_synthetic_dataset(tmp_path / name, n_train=n_train, seed=seed)
        out = tmp_path / f"model-{name}"
        _train(monkeypatch, "--model", "unet3d", "--data", str(data), "--out", str(out), "--channels", TINY,
               "--epochs", "1", "--patience", "0")
        cards.append((out / "MODEL_CARD.md").read_text())
    data_a, data_b = (card.split("## Data")[1].split("## Training")[0] for card in cards)
    assert "siteA" in data_a and "siteB" in data_b and "siteB" not in data_a
    assert "train: 4 studies" in data_a and "train: 3 studies" in data_b
    assert sha256_file(tmp_path / "siteA" / "cases.csv") in data_a
    assert "simulate --patients 100" not in cards[0]  # no cohort text copied from elsewhere


def test_command_lines_keep_no_absolute_path() -> None:
    argv = ["/usr/local/bin/spectac", "train", "--data", "/srv/x/cohort0", "--out=/home/u/runs/m",
            "--init", "runs/models/m", "--lr", "3e-4"]
    assert portable_argv(argv) == ["spectac", "train", "--data", ".../cohort0", "--out=.../m",
                                   "--init", "runs/models/m", "--lr", "3e-4"]


def _committed_weights(commit: str, model: str) -> bytes | None:
    """A shipped model's best.pt as commit holds it, or None outside a git checkout that has it."""
    root = Path(__file__).resolve().parents[1]
    try:
        shown = subprocess.run(["git", "-C", str(root), "show", f"{commit}:src/spectac/data/models/{model}/best.pt"],
                               capture_output=True, check=False, timeout=60)
    except OSError:
        return None
    return shown.stdout if shown.returncode == 0 else None


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_models_keep_no_machine_path_and_a_full_record(model: str) -> None:
    folder = shipped_model_dir(model)
    _assert_no_machine_path(folder, "/work/")
    config = json.loads((folder / "config.json").read_text())
    # the uncertainty block is calibrated after training (benchmarks/uncertainty.py) and the onnx block
    # records the export (scripts/export_onnx.py): config.json only
    assert load_checkpoint(folder / "best.pt")["config"] == {k: v for k, v in config.items()
                                                             if k not in ("uncertainty", "onnx")}
    assert config["data"]["dataset"].startswith("cohort0")
    record = read_record(folder)
    assert record and record["model"] == model
    # round 1 (scripts/train_shipped.sh, reconstructed from the project history), then for the two
    # GANs round 2 (scripts/train_round2.sh, recorded as it ran) from the round-1 weights, and for
    # unet-gan3d-chang round 3 (scripts/train_round3.sh) from the round-2 weights, round 5
    # (scripts/train_round5.sh) from the round-3 weights, round 6 (scripts/train_round6.sh, the
    # uptake-weighted L1) from the round-5 weights, then rounds 8 C, 9 and 10 (scripts/train_round8.sh,
    # train_round9.sh, train_round10.sh: a log-space term, more patients) and 11 and 13
    # (scripts/train_round13.sh: the uptake weight's reach, the registered target), each from the last
    round1 = [s for s in record["stages"] if s.get("reconstructed")]
    later = record["stages"][len(round1):]
    assert round1 and all(not s.get("reconstructed") for s in later)
    # the other four, round 22 (scripts/train_round22.sh) from their round-1 weights, unet3d in two stages
    assert len(later) == {"unet-gan3d-chang": 9, "unet-gan3d": 1, "unet3d": 2}.get(model, 1)
    gans = later if model.startswith("unet-gan3d") else []
    round2, round3, round5, round6 = gans[:1], gans[1:2], gans[2:3], gans[3:4]
    rounds8to13 = gans[4:]
    round22 = [] if gans else later
    last = record["stages"][-1]
    assert last["config"]["training"]["epochs"] == config["training"]["epochs"]
    assert last["config"]["training"]["lr"] == config["training"]["lr"]
    assert last["argv"][:2] == ["spectac", "train"] and round1[-1]["hardware"]["threads"] == 1
    if model.startswith("unet-gan3d"):  # 30 epochs, then a warm restart from them
        assert round1[0]["epochs"]["end"] == 30 and "--init" in round1[-1]["argv"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert card == model_card(folder) and "reconstructed from the project history" in card
    assert f"| {model} | 40 |" in card and PAPER in card
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    script = (scripts / "train_shipped.sh").read_text()
    line = next(line.strip() for line in script.splitlines() if line.strip().startswith(f"{model})"))
    expected = [f"{'warm_restart' if s['init'] else 'one_stage'} {model} {s['epochs']['end']}" for s in round1]
    assert line == f"{model}) " + "; ".join(expected) + ("; final=\"$RUNS/$model-ft\" ;;" if len(expected) > 1 else " ;;")
    restarts = [s for s in round1 if s["init"]]
    assert all(s["config"]["training"]["lr"] == 3e-4 and s["seed"] == 1 for s in restarts)
    assert "--lr 3e-4 --seed 1" in script and "THREADS:-1" in script
    for stage in round2:  # the recipe of scripts/train_round2.sh, as it ran
        recipe = (scripts / "train_round2.sh").read_text()
        assert f"{model}) epochs={stage['epochs']['end']} ;;" in recipe
        assert stage["seed"] == 2 and stage["config"]["training"]["lr"] == 3e-4 and "--init" in stage["argv"]
        assert len(stage["init"]["sha256"]) == 64  # the round-1 weights it started from, by hash
        assert stage["hardware"]["threads"] == 2 and "THREADS:-2" in recipe
    for seed, stage in enumerate(round22, start=22):  # the recipe of scripts/train_round22.sh, as it ran
        recipe = (scripts / "train_round22.sh").read_text()
        end = stage["epochs"]["end"]
        if seed == 22:  # from the round-1 weights, the epochs of the model's case line
            assert any(model in line and f"epochs={end} ;;" in line for line in recipe.splitlines())
            round1_weights = _committed_weights(re.search(r"ROUND1_COMMIT=(\w+)", recipe).group(1), model)
            if round1_weights is not None:  # a git checkout: the weights the script takes are these
                assert stage["init"]["sha256"] == hashlib.sha256(round1_weights).hexdigest()
        else:  # unet3d's second stage, from its first
            assert f"--epochs {end} --lr 3e-4 --seed {seed}" in recipe
            assert stage["init"]["sha256"] != round22[0]["init"]["sha256"]
        assert stage["seed"] == seed and stage["config"]["training"]["lr"] == 3e-4 and "--init" in stage["argv"]
        assert stage["init"]["name"] == model and len(stage["init"]["sha256"]) == 64
        assert stage["config"]["training"]["augmentation"]["truncation"] > 0  # the clinic augmentation
        assert stage["hardware"]["threads"] == 2 and "THREADS:-2" in recipe
    for stage in round3:  # the recipe of scripts/train_round3.sh, as it ran
        recipe = (scripts / "train_round3.sh").read_text()
        assert f"--epochs {stage['epochs']['end']} --lr 2e-4 --seed 3" in recipe
        assert stage["seed"] == 3 and stage["config"]["training"]["lr"] == 2e-4 and "--init" in stage["argv"]
        assert stage["init"]["name"] == model and len(stage["init"]["sha256"]) == 64  # the round-2 weights
        assert stage["hardware"]["threads"] == 1 and "THREADS:-1" in recipe
    for stage, before in zip(round5, round3):  # the recipe of scripts/train_round5.sh, as it ran
        recipe = (scripts / "train_round5.sh").read_text()
        assert f"EPOCHS:-{stage['epochs']['end']}" in recipe and "--lr 2e-4" in recipe and "--seed 5" in recipe
        assert stage["seed"] == 5 and stage["config"]["training"]["lr"] == 2e-4 and "--init" in stage["argv"]
        assert stage["init"]["name"] == model and stage["init"]["sha256"] != before["init"]["sha256"]
        assert stage["hardware"]["threads"] == 1 and "THREADS:-1" in recipe
    for stage, before in zip(round6, round5):  # the recipe of scripts/train_round6.sh, as it ran
        recipe = (scripts / "train_round6.sh").read_text()
        assert f"EPOCHS:-{stage['epochs']['end']}" in recipe and "--lr 1e-4" in recipe and "--seed 6" in recipe
        assert stage["seed"] == 6 and stage["config"]["training"]["lr"] == 1e-4 and "--init" in stage["argv"]
        assert stage["config"]["network"]["uptake_weight"] == 4 and "uptake_weight=4" in recipe
        assert stage["init"]["name"] == model and stage["init"]["sha256"] != before["init"]["sha256"]
        assert stage["hardware"]["threads"] == 1 and "THREADS:-1" in recipe
    # (the scripts that set the stage, seed, learning rate, epochs, uptake reach, extra cohorts);
    # round 8 C is train_round8.sh run with the settings train_round9.sh gives it
    recipes = [(("train_round9.sh", "train_round8.sh"), 11, "1e-4", 20, 0, []),
               (("train_round9.sh",), 12, "1e-4", 14, 0, ["extra1"]),
               (("train_round10.sh",), 13, "1e-4", 6, 0, ["extra1", "extra2"]),
               (("train_round13.sh",), 17, "5e-5", 5, 4, ["extra1", "extra2"]),
               (("train_round13.sh",), 23, "5e-5", 4, 4, ["extra1r", "extra2r"])]
    previous = round6[-1] if round6 else None
    for stage, (names, seed, lr, epochs, reach, extras) in zip(rounds8to13, recipes[:len(rounds8to13)], strict=True):
        recipe = "".join((scripts / name).read_text() for name in names)  # the recipe as it ran
        assert f"--seed {seed}" in recipe or f"SEED={seed}" in recipe
        assert f"--lr {lr}" in recipe
        assert any(f in recipe for f in (f"--epochs {epochs}", f"EPOCHS:-{epochs}", f"EPOCHS={epochs}"))
        assert stage["seed"] == seed and stage["config"]["training"]["lr"] == float(lr)
        assert stage["epochs"]["end"] == epochs
        assert stage["config"]["network"]["uptake_weight"] == 10 and stage["config"]["network"]["log_weight"] == 0.3
        assert stage["config"]["network"].get("uptake_reach", 0) == reach
        assert [e["name"] for e in stage.get("extra_train") or []] == extras
        assert stage["init"]["name"] == model and stage["init"]["sha256"] != previous["init"]["sha256"]
        assert stage["hardware"]["threads"] == 2 and "THREADS:-2" in recipe
        previous = stage
    if rounds8to13:  # the shipped network is the last stage's: its loss options are in config.json
        assert config["network"]["uptake_weight"] == 10 and config["network"]["uptake_reach"] == 4


def test_a_run_started_from_a_reconstructed_record_keeps_its_note(tmp_path: Path) -> None:
    from spectac.training.record import inherited, write_record

    write_record(tmp_path / "old", {"format": 1, "model": "unet3d", "reconstructed": "from the history",
                                    "stages": [{"stage": 1, "reconstructed": True}]})
    assert inherited(tmp_path / "old")["reconstructed"] == "from the history"
    assert inherited(tmp_path / "old")["stages"][0]["inherited_from"] == "old"
    write_record(tmp_path / "new", {"format": 1, "model": "unet3d", "stages": [{"stage": 1}]})
    assert "reconstructed" not in inherited(tmp_path / "new") and inherited(None) == {"stages": []}


def test_the_shipped_mu_model_is_what_train_mu_sh_makes() -> None:
    """unet3d-mu: one recorded stage with scripts/train_mu.sh's recipe, no machine path, its card
    written from its record."""
    folder = shipped_model_dir("unet3d-mu")
    _assert_no_machine_path(folder, "/work/")
    config = json.loads((folder / "config.json").read_text())
    # the consistency threshold is calibrated after training (benchmarks/indirect_qc.py --write-threshold):
    # in config.json only, not in the checkpoint
    assert config["target"] == "mu" and "threshold" in config.pop("qc")
    assert load_checkpoint(folder / "best.pt")["config"] == config
    (stage,) = read_record(folder)["stages"]
    script = (Path(__file__).resolve().parents[1] / "scripts" / "train_mu.sh").read_text()
    assert f"EPOCHS=${{EPOCHS:-{stage['epochs']['end']}}}" in script
    assert "LR=${LR:-1e-3}" in script and stage["config"]["training"]["lr"] == 1e-3
    assert f"SEED=${{SEED:-{stage['seed']}}}" in script and stage["hardware"]["threads"] == 1
    assert (folder / "MODEL_CARD.md").read_text() == model_card(folder)


def test_the_shipped_normal_limits_keep_no_machine_path() -> None:
    """The shipped normal database's meta names the cohort it was built from, not a folder of the
    machine that built it."""
    from spectac.quant.normals import NormalDatabase

    meta = NormalDatabase.load(None).meta
    assert meta["dataset"].startswith("normals70")
    assert not [s for s in _strings(meta) if is_absolute_path(s) or MACHINE_PATH.search(s)]
