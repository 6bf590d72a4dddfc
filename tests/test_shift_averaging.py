"""benchmarks/shift_averaging.py: the shift, a network that commutes with shifts gives its own output
back, one that does not is averaged over the shifted passes voxel by voxel; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from benchmark_scripts import BENCHMARKS, load_benchmark
from scipy import ndimage

from spectac.training.data import shift_zero_fill

SCRIPT = BENCHMARKS / "shift_averaging.py"


def test_a_shift_moves_every_channel_and_fills_zeros() -> None:
    a = np.arange(2 * 4 * 5 * 6, dtype=np.float32).reshape(2, 4, 5, 6) + 1
    moved = shift_zero_fill(a, (1, -2, 0))
    assert np.array_equal(moved[:, 1:, :3, :], a[:, :3, 2:, :])
    assert not moved[:, 0].any() and not moved[:, :, 3:].any()
    assert np.array_equal(shift_zero_fill(moved, (-1, 2, 0))[:, :3, 2:], a[:, :3, 2:])
    assert np.array_equal(moved[1], shift_zero_fill(a[1], (1, -2, 0)))  # a channel moves as a volume alone


def test_a_shift_equivariant_network_is_unchanged_and_another_is_averaged() -> None:
    script = load_benchmark("shift_averaging")
    rng = np.random.default_rng(0)
    x = rng.random((2, 12, 12, 12)).astype(np.float32)
    x[:, :2] = x[:, -2:] = x[:, :, :2] = x[:, :, -2:] = x[:, :, :, :2] = x[:, :, :, -2:] = 0
    def smooth(generator, inputs, device=None, amp=False):  # a convolution: commutes with shifts
        return ndimage.uniform_filter(inputs[0], 3, mode="constant")
    for shifts in script.SHIFTS.values():
        averaged = script.averaged(smooth, shifts)(None, x)
        assert np.allclose(averaged, smooth(None, x), atol=1e-6)
    ramp = np.arange(12, dtype=np.float32)[:, None, None] ** 2 * np.ones((12, 12, 12), np.float32)
    def positional(generator, inputs, device=None, amp=False):  # sees where it is: not equivariant
        return inputs[0] * ramp
    averaged = script.averaged(positional, script.SHIFTS["corners"])(None, x)
    voxel = (5, 6, 7)
    by_hand = np.mean([x[0][voxel] * ramp[tuple(v + d for v, d in zip(voxel, s))] for s in script.SHIFTS["corners"]])
    assert np.isclose(averaged[voxel], by_hand) and not np.isclose(averaged[voxel], positional(None, x)[voxel])


def test_bad_input_exits_2(tmp_path: Path) -> None:
    for args in ([str(tmp_path / "none"), str(tmp_path / "run")],
                 [str(tmp_path), str(tmp_path / "run"), "--method", "chang"]):
        result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
        assert result.returncode == 2 and result.stderr.strip(), result.stderr
        assert not (tmp_path / "run").exists()


def test_a_dataset_is_predicted_with_the_shifts_recorded_and_plain_predictions_refused(tmp_path: Path) -> None:
    from test_training import write_synthetic_dataset
    from typer.testing import CliRunner

    from spectac.cli import app
    from spectac.io.nifti import read_nifti

    data = write_synthetic_dataset(tmp_path / "data", n_train=1, n_val=1)
    averaged = subprocess.run([sys.executable, str(SCRIPT), str(data), str(tmp_path / "tta"), "--method", "unet3d"],
                              capture_output=True, text=True)
    assert averaged.returncode == 0, averaged.stderr
    folder = tmp_path / "tta" / "predictions" / "unet3d"
    assert json.loads((folder / "config.json").read_text())["options"]["test_time_shifts"] == "corners"
    plain = CliRunner().invoke(app, ["predict", "--method", "unet3d", "--data", str(data), "--out",
                                     str(tmp_path / "plain"), "--split", "val"])
    assert plain.exit_code == 0, plain.output
    (study,) = folder.glob("*.nii.gz")
    one = read_nifti(tmp_path / "plain" / "predictions" / "unet3d" / study.name).array
    nine = read_nifti(study).array
    # the same network on shifted inputs: like the single pass (the averaging itself is checked above),
    # not equal to it
    assert np.abs(nine - one).max() > 0 and np.corrcoef(nine.ravel(), one.ravel())[0, 1] > 0.9
    mixed = CliRunner().invoke(app, ["predict", "--method", "unet3d", "--data", str(data), "--out",
                                     str(tmp_path / "tta"), "--split", "val"])
    assert mixed.exit_code == 2 and "other options" in mixed.output
    other = subprocess.run([sys.executable, str(SCRIPT), str(data), str(tmp_path / "tta"), "--method", "unet3d",
                            "--shifts", "axes"], capture_output=True, text=True)
    assert other.returncode == 2 and "other options" in other.stderr
