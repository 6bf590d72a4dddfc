"""Data-parallel training under torchrun (gloo, 2 processes on this machine) and streamed studies:
the same steps as one process with the same global batch, checkpoints that resume on another
number of processes, and the plan of an epoch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import TINY, _log_epochs, write_synthetic_dataset
from typer.testing import CliRunner

import spectac
from spectac.cli import app
from spectac.io.checkpoint import load_checkpoint
from spectac.training.data import PRESETS
from spectac.training.distributed import Context, epoch_plan

#: float32 weights after one epoch (2 Adam steps) of 1 process with batch 2 and 2 processes with
#: batch 1 each agree to this; only the order of the gradient sums differs. The networks are built
#: without normalisation layers here: a convolution bias followed by instance norm has a gradient
#: that is zero but for rounding, and Adam's first step (lr x sign of the gradient) turns rounding
#: differences there into differences of the size of the learning rate.
ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "unet-gan3d", "--data", str(data), "--out", str(out), "--channels", TINY,
            "--seed", "1", "--patience", "0", "--augment", "none", "--net", "norm=none", "--net", "disc_norm=none",
            *extra]


def _torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SPECTAC_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(Path(spectac.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "spectac.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_two_gloo_processes_take_the_steps_of_one_with_the_same_global_batch(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")  # 4 training studies: 2 global batches of 2
    one, two = tmp_path / "one", tmp_path / "two"
    single = CliRunner().invoke(app, _train_args(data, one, "--epochs", "1", "--batch-size", "2"))
    assert single.exit_code == 0, single.output
    run = _torchrun(_train_args(data, two, "--epochs", "1", "--batch-size", "1"))
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = load_checkpoint(one / "last.pt"), load_checkpoint(two / "last.pt")
    assert a["generator"].keys() == b["generator"].keys()
    worst = max(float((b["generator"][k] - a["generator"][k]).abs().max()) for k in a["generator"])
    print(f"largest weight difference 1 vs 2 processes: {worst:.3g}")
    for key in a["generator"]:
        torch.testing.assert_close(b["generator"][key], a["generator"][key], rtol=0, atol=ATOL)
    for key in a["discriminator"]:
        torch.testing.assert_close(b["discriminator"][key], a["discriminator"][key], rtol=0, atol=ATOL)
    # the losses in the log are the mean over the global batch, as one process has them
    np.testing.assert_allclose(b["history"][0]["val_l1"], a["history"][0]["val_l1"], rtol=1e-5)
    np.testing.assert_allclose(b["history"][0]["train_l1"], a["history"][0]["train_l1"], rtol=1e-5)
    # rank 0 alone wrote: one stage, one log row, and the run says it had two processes
    record = json.loads((two / "training_record.json").read_text())
    assert [s["hardware"]["processes"] for s in record["stages"]] == [2]
    assert json.loads((two / "config.json").read_text())["training"]["world_size"] == 2
    assert _log_epochs(two) == [1]

    # the 2-process checkpoint resumes in 1 process (the plain module's state dict was saved)
    resumed = CliRunner().invoke(app, _train_args(data, two, "--epochs", "2", "--batch-size", "1"))
    assert resumed.exit_code == 0, resumed.output
    assert "epochs 2-2" in resumed.output and _log_epochs(two) == [1, 2]
    record = json.loads((two / "training_record.json").read_text())
    assert [s["hardware"]["processes"] for s in record["stages"]] == [2, 1]
    assert load_checkpoint(two / "last.pt")["epoch"] == 2


def test_streamed_studies_give_the_weights_of_studies_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")
    runs = {}
    for name, extra in (("memory", []), ("stream", ["--stream", "on", "--workers", "1"])):
        out = tmp_path / name
        args = [a for a in _train_args(data, out, "--epochs", "1", "--batch-size", "2") if a not in ("none",)]
        args[args.index("--augment") + 1 : args.index("--augment") + 1] = ["clinic"]  # augmented: the plan's draws
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 0, result.output
        runs[name] = load_checkpoint(out / "last.pt")
    for key, value in runs["memory"]["generator"].items():
        torch.testing.assert_close(runs["stream"]["generator"][key], value, rtol=0, atol=0)
    # the streamed run logged the same columns
    assert runs["stream"]["history"][0].keys() == runs["memory"]["history"][0].keys()


def test_streamed_extra_datasets_give_the_weights_of_their_studies_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --extra-train chains each dataset's stream (ChainedStream): the plan's study i is the i-th
    # study of the datasets' train splits one after another, as in memory
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data", n_train=2)
    extra = write_synthetic_dataset(tmp_path / "extra", n_train=3, n_val=0, seed=5)
    runs = {}
    for name, more in (("memory", []), ("stream", ["--stream", "on"])):
        args = _train_args(data, tmp_path / name, "--epochs", "1", "--extra-train", str(extra))
        args[args.index("--augment") + 1] = "clinic"
        result = CliRunner().invoke(app, args + more)
        assert result.exit_code == 0, result.output
        runs[name] = load_checkpoint(tmp_path / name / "last.pt")
    for key, value in runs["memory"]["generator"].items():
        torch.testing.assert_close(runs["stream"]["generator"][key], value, rtol=0, atol=0)


def test_the_plan_of_one_process_is_the_single_process_epoch() -> None:
    augmentation = PRESETS["clinic"]
    pairs_n = 5
    plan = epoch_plan(pairs_n, 2, np.random.default_rng([3, 1]), augmentation, Context())
    rng = np.random.default_rng([3, 1])
    order = rng.permutation(pairs_n)
    assert [i for batch in plan for i, _ in batch] == list(order)
    assert [d for batch in plan for _, d in batch] == [augmentation.draw(rng) for _ in order]
    assert [len(b) for b in plan] == [2, 2, 1]
    # two ranks: each takes its half of every global batch, padded by wrapping around
    halves = [epoch_plan(pairs_n, 1, np.random.default_rng([3, 1]), None, Context(rank=r, world_size=2))
              for r in (0, 1)]
    assert [len(h) for h in halves] == [3, 3]
    taken = [halves[r][k][0][0] for k in range(3) for r in (0, 1)]
    assert taken == [*order, order[0]]
    # validation: round-robin, no padding
    val = [epoch_plan(pairs_n, 2, None, None, Context(rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(i for h in val for b in h for i, _ in b) == list(range(pairs_n))


def test_device_and_amp_are_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_synthetic_dataset(tmp_path / "data", n_train=1, n_val=0)
    runner = CliRunner()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for extra, message in ((["--device", "tpu"], "choose auto, cpu, cuda, cuda:N or mps"),
                           (["--device", "cpu", "--amp"], "--amp is for CUDA devices only"),
                           (["--stream", "sometimes"], "--stream 'sometimes'"),
                           (["--workers", "2"], "give it with --stream on or auto"),
                           (["--distributed"], "launch with torchrun")):
        result = runner.invoke(app, _train_args(data, tmp_path / "m", "--epochs", "1", *extra))
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "m").exists()
    if not torch.cuda.is_available():
        result = runner.invoke(app, _train_args(data, tmp_path / "m", "--epochs", "1", "--device", "cuda"))
        assert result.exit_code == 2 and "no CUDA GPU" in result.output


def test_the_wall_term_trains_alike_from_memory_and_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the LV wall mask rides with the target through both loaders (and their augmentation), and changes
    # what is learnt: one simulated-like lv.json per study, an LV around the synthetic "heart"
    from spectac.io.dataset import Dataset

    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")
    lv = {"center_mm": [0.0, 0.0, 0.0], "base_mm": [-20.0, 0.0, 0.0], "apex_mm": [25.0, 0.0, 0.0],
          "long_axis": [1.0, 0.0, 0.0], "anterior": [0.0, 0.0, 1.0], "radius_mm": 20.0, "length_mm": 45.0,
          "wall_mm": 10.0}
    dataset = Dataset.open(data)
    for case in dataset.cases:
        (dataset.study_dir(case.case_id) / "lv.json").write_text(json.dumps(lv))
    runs = {}
    for name, more in (("memory", ["--net", "wall_weight=2"]), ("stream", ["--net", "wall_weight=2", "--stream", "on"]),
                       ("without", [])):
        args = _train_args(data, tmp_path / name, "--epochs", "1", "--batch-size", "2")
        args[args.index("--augment") + 1] = "clinic"
        result = CliRunner().invoke(app, args + more)
        assert result.exit_code == 0, result.output
        runs[name] = load_checkpoint(tmp_path / name / "last.pt")
    # equal to float32 rounding (the two loaders' batches are equal; the sums over their views of the
    # two-channel target round differently in the last bits), far below what the term itself moves
    for key, value in runs["memory"]["generator"].items():
        torch.testing.assert_close(runs["stream"]["generator"][key], value, rtol=0, atol=1e-6)
    assert runs["memory"]["history"][0]["train_l1"] > runs["without"]["history"][0]["train_l1"]
    different = max(float((runs["memory"]["generator"][k] - runs["without"]["generator"][k]).abs().max())
                    for k in runs["without"]["generator"])
    assert different > 1e-4  # the term moved the weights
    # the run records the option, and its validation L1 is the plain L1 of its weights on the val split
    from spectac.nn.registry import build_generator
    from spectac.training.data import batches, load_pairs
    from spectac.training.steps import mean_l1

    run = runs["memory"]
    assert run["config"]["network"]["wall_weight"] == 2
    generator = build_generator(run["config"]["network"])
    generator.load_state_dict(run["generator"])
    plain = mean_l1(generator, batches(load_pairs(dataset, "val", run["config"]["training"]["percentile"]), 1))
    assert plain == pytest.approx(run["history"][0]["val_l1"], rel=1e-5)
