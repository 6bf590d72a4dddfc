"""benchmarks/registered_targets.py: a dataset copy whose CT-AC is OSEM with the body's own mu-map.
Physics against physics: without misregistration that reconstruction is the stored CT-AC (so the
copy's target differs from it only by the displacement), every other file is the original's, the
copy opens as a dataset and trains as one, reruns resume, and bad input exits 2 writing nothing."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_scripts import BENCHMARKS, load_benchmark

from spectac.acquisition.protocol import Protocol
from spectac.io.dataset import Dataset
from spectac.reconstruction.osem import ReconConfig
from spectac.simulate import SimulationConfig, simulate_cohort
from spectac.training.data import load_pair

torch.set_num_threads(1)
TINY = SimulationConfig(protocol=Protocol(n_views=12, pixel_mm=13.6), recon=ReconConfig(iterations=1, subsets=3),
                        shape=(32, 32, 32), supersample=1)
SCRIPT = BENCHMARKS / "registered_targets.py"


def _run(*args: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--splits", "train,val,test"],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("registered")
    simulate_cohort(root / "shifted", patients=1, seed=5, config=replace(TINY, misregistration_mm=20.0), workers=1)
    simulate_cohort(root / "registered", patients=1, seed=5, config=replace(TINY, misregistration_mm=0.0), workers=1)
    return root / "shifted", root / "registered"


def test_the_copy_holds_ct_ac_with_the_body_s_own_mu_map(cohorts, tmp_path: Path) -> None:
    shifted, registered = cohorts
    module = load_benchmark("registered_targets")
    # without a displacement the reconstruction is the simulator's CT-AC (the radii rebuilt: ~1%)
    plain = Dataset.open(registered)
    case = plain.cases[0].case_id
    same = module.registered_ac(plain, case).array
    stored = plain.load(case, "ac").array
    assert np.abs(same - stored).max() < 0.02 * stored.max()
    # with one, the copy's target is that reconstruction, and differs from the displaced CT-AC
    out = tmp_path / "copy"
    result = _run(shifted, out)
    assert result.returncode == 0, result.stderr
    original, copy = Dataset.open(shifted), Dataset.open(out)
    assert [c.case_id for c in copy.cases] == [c.case_id for c in original.cases]
    for c in copy.cases:
        folder = out / "studies" / c.case_id
        assert not (folder / "ac.nii.gz").is_symlink() and (folder / "nc.nii.gz").is_symlink()
        np.testing.assert_array_equal(copy.load(c.case_id, "nc").array, original.load(c.case_id, "nc").array)
        target, displaced = copy.load(c.case_id, "ac").array, original.load(c.case_id, "ac").array
        assert np.abs(target - displaced).max() > 0.05 * displaced.max()
        np.testing.assert_allclose(target, module.registered_ac(original, c.case_id).array, rtol=1e-5, atol=1e-3)
        assert load_pair(copy, c.case_id, 99.9).ac.shape == target.shape
    # a rerun resumes: nothing is reconstructed again
    stamp = (out / "studies" / case / "ac.nii.gz").stat().st_mtime_ns
    assert _run(shifted, out).returncode == 0
    assert (out / "studies" / case / "ac.nii.gz").stat().st_mtime_ns == stamp


def test_bad_input_exits_2_and_writes_nothing(cohorts, tmp_path: Path) -> None:
    shifted, registered = cohorts
    nothing = _run(registered, tmp_path / "a")  # registered already: nothing to learn
    assert nothing.returncode == 2 and "registered already" in nothing.stderr
    same = _run(shifted, shifted)
    assert same.returncode == 2 and "another folder" in same.stderr
    missing = _run(tmp_path / "none", tmp_path / "b")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
