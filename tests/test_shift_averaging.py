"""benchmarks/shift_averaging.py: the shift, a network that commutes with shifts gives its own output
back, one that does not is averaged over the shifted passes voxel by voxel; bad input exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from benchmark_scripts import BENCHMARKS, load_benchmark
from scipy import ndimage

SCRIPT = BENCHMARKS / "shift_averaging.py"


def test_a_shift_moves_content_and_fills_zeros() -> None:
    script = load_benchmark("shift_averaging")
    a = np.arange(2 * 4 * 5 * 6, dtype=np.float32).reshape(2, 4, 5, 6) + 1
    moved = script.shifted(a, (1, -2, 0))
    assert np.array_equal(moved[:, 1:, :3, :], a[:, :3, 2:, :])
    assert not moved[:, 0].any() and not moved[:, :, 3:].any()
    assert np.array_equal(script.shifted(moved, (-1, 2, 0))[:, :3, 2:], a[:, :3, 2:])


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
