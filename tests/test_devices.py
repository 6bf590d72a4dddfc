"""Where networks run: the --device and --amp checks, byte-identical CPU predictions, batched
prediction against one study at a time, and the serve configuration's device key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import write_synthetic_dataset
from typer.testing import CliRunner

from spectac.cli import app
from spectac.devices import check_amp, resolve_device
from spectac.io.nifti import read_nifti
from spectac.node.config import config_from_dict
from spectac.volume import SpectacError


def test_device_names_are_parsed_and_missing_devices_refused() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    for bad in ("gpu", "cuda:x", "cuda:-1", ""):
        with pytest.raises(SpectacError, match="choose auto, cpu, cuda, cuda:N or mps"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(SpectacError, match="no CUDA GPU"):
            resolve_device("cuda:0")
    with pytest.raises(SpectacError, match="--amp is for CUDA devices only"):
        check_amp(torch.device("cpu"), True)
    check_amp(torch.device("cpu"), False)


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.nii.gz"))}


def test_cpu_predictions_are_byte_identical_and_batches_agree_with_single_studies(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", n_train=3, n_val=2)
    runner = CliRunner()
    runs = {}
    for name, extra in (("default", []), ("cpu", ["--device", "cpu"]), ("batched", ["--batch-size", "3"])):
        result = runner.invoke(app, ["predict", "--method", "unet3d", "--data", str(data), "--out",
                                     str(tmp_path / name), "--split", "all", *extra])
        assert result.exit_code == 0, result.output
        runs[name] = tmp_path / name / "predictions" / "unet3d"
    assert len(_tree(runs["default"])) == 5
    assert _tree(runs["cpu"]) == _tree(runs["default"])
    for case in _tree(runs["default"]):
        single, batched = read_nifti(runs["default"] / case), read_nifti(runs["batched"] / case)
        assert batched.same_grid(single)
        # float32 convolutions of a batch may sum in another order: counts agree to 1e-4 of the maximum
        np.testing.assert_allclose(batched.array, single.array, rtol=0, atol=1e-4 * float(single.array.max()))
    refused = runner.invoke(app, ["predict", "--method", "unet3d", "--data", str(data), "--out",
                                  str(tmp_path / "amp"), "--split", "all", "--amp"])
    assert refused.exit_code == 2 and "--amp is for CUDA devices only" in refused.output
    zero = runner.invoke(app, ["predict", "--method", "unet3d", "--data", str(data), "--out",
                               str(tmp_path / "zero"), "--split", "all", "--batch-size", "0"])
    assert zero.exit_code == 2 and "--batch-size must be" in zero.output


def test_serve_configuration_takes_a_device(tmp_path: Path) -> None:
    base = {"ae_title": "SPECTAC", "port": 11112, "work": str(tmp_path / "work")}
    assert config_from_dict(base, tmp_path).device == "cpu"
    assert config_from_dict({**base, "device": "cuda:1"}, tmp_path).device == "cuda:1"
    with pytest.raises(SpectacError, match="choose auto, cpu"):
        config_from_dict({**base, "device": "gpu"}, tmp_path)
