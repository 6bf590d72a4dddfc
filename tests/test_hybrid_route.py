"""benchmarks/hybrid_route.py: the indirect route's image from each study's projections, alone or
combined with a network's. The gain toward an image the indirect route already gives changes
nothing and a constant gain scales, the written indirect images are the route's own, a second
combination reuses them, reruns resume, and bad input exits 2 writing nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_scripts import BENCHMARKS, load_benchmark

from spectac.acquisition.protocol import Protocol
from spectac.correction.deep import resolve_mu_model
from spectac.correction.indirect import correct_acquisition
from spectac.io.dataset import Dataset
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.run import RunFolder
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.study import study_acquisition, study_recon_config
from spectac.simulate import SimulationConfig, simulate_cohort
from spectac.volume import Volume

torch.set_num_threads(1)
TINY = SimulationConfig(protocol=Protocol(n_views=12, pixel_mm=13.6), recon=ReconConfig(iterations=1, subsets=3),
                        shape=(32, 32, 32), supersample=1, misregistration_mm=0.0)
SCRIPT = BENCHMARKS / "hybrid_route.py"
METHOD = "unet-gan3d-chang"


def _run(*args: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    """A one-patient cohort and a run whose 'network' predictions are twice each study's CT-AC."""
    root = tmp_path_factory.mktemp("hybrid")
    simulate_cohort(root / "data", patients=1, seed=7, config=TINY, workers=1)
    dataset, run = Dataset.open(root / "data"), RunFolder(root / "run")
    run.write_prediction_config(METHOD, {"method": METHOD, "options": {}, "dataset": str(dataset.root.resolve()),
                                         "split": "all"})
    for case in dataset.cases:
        ac = dataset.load(case.case_id, "ac")
        write_nifti(ac.with_array(2.0 * ac.array), run.prediction_path(METHOD, case.case_id))
    return root / "data", root / "run"


def test_combine_physics() -> None:
    combine = load_benchmark("hybrid_route").combine
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 10.0, (12, 10, 8)).astype(np.float32)
    other = rng.gamma(2.0, 10.0, image.shape).astype(np.float32)
    # the gain toward the indirect image itself is 1; toward a multiple of it, that multiple
    np.testing.assert_allclose(combine(image, image, "gain", 0.5, 1.0), image, rtol=1e-5)
    # (the floor e, 1% of the smoothed maximum, pulls the gain toward 1 by at most 2 e / G(I))
    tripled = combine(3.0 * image, image, "gain", 0.5, 1.5) / image
    assert np.all(np.abs(tripled - 3.0) < 0.1) and np.abs(tripled - 3.0).max() > 0
    np.testing.assert_allclose(combine(other, image, "mean", 0.25, 1.0), 0.25 * other + 0.75 * image, rtol=1e-5)
    np.testing.assert_array_equal(combine(other, image, "indirect", 0.5, 1.0), image)
    # a gain keeps the indirect image's fine structure: its high-pass part survives, the network's does not
    smooth = np.full(image.shape, image.mean(), np.float32)
    kept = combine(smooth, image, "gain", 0.5, 1.0)
    assert np.corrcoef(kept.ravel(), image.ravel())[0, 1] > 0.9


def test_writes_the_route_s_images_then_combines_them(study, tmp_path: Path) -> None:
    data, run = study
    dataset = Dataset.open(data)
    ind, gain = tmp_path / "ind", tmp_path / "gain"
    result = _run(data, run, ind, "--mode", "indirect")
    assert result.returncode == 0, result.stderr
    assert "2 written, 0 already present" in result.stdout
    case = dataset.cases[0].case_id
    acquisition = study_acquisition(dataset, case)
    expected = correct_acquisition(acquisition, acquisition.window_index(), resolve_mu_model(),
                                   study_recon_config(dataset)).ac.result.volume
    written = read_nifti(RunFolder(ind).prediction_path(METHOD, case))
    assert written.same_grid(expected)
    np.testing.assert_allclose(written.array, expected.array, rtol=1e-4, atol=1e-4 * float(expected.array.max()))
    config = json.loads(RunFolder(ind).prediction_config(METHOD).read_text())
    assert config["options"]["hybrid"]["mode"] == "indirect" and config["dataset"] == str(Path(data).resolve())
    # the gain from the images just written, without running the route again
    result = _run(data, run, gain, "--mode", "gain", "--sigma", "1", "--indirect", ind)
    assert result.returncode == 0, result.stderr
    network = read_nifti(RunFolder(run).prediction_path(METHOD, case)).array
    combined = read_nifti(RunFolder(gain).prediction_path(METHOD, case)).array
    np.testing.assert_allclose(combined, load_benchmark("hybrid_route").combine(network, written.array, "gain", 0.5, 1.0),
                               rtol=1e-5, atol=1e-5 * float(combined.max()))
    # rerun: kept; other settings into the same folder: refused, nothing changed
    again = _run(data, run, gain, "--mode", "gain", "--sigma", "1", "--indirect", ind)
    assert again.returncode == 0 and "0 written, 2 already present" in again.stdout
    other = _run(data, run, gain, "--mode", "gain", "--sigma", "2", "--indirect", ind)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1


def test_bad_input_exits_2_and_writes_nothing(study, tmp_path: Path) -> None:
    data, run = study
    other = tmp_path / "other"  # the same studies in another folder: RUN was not made from it
    shutil.copytree(data, other)
    moved = RunFolder(tmp_path / "moved")  # the same predictions 5 mm off the studies' grid
    moved.write_prediction_config(METHOD, json.loads(RunFolder(run).prediction_config(METHOD).read_text()))
    for case, path in RunFolder(run).prediction_files(METHOD).items():
        image = read_nifti(path)
        write_nifti(Volume(image.array, image.spacing, tuple(np.add(image.origin, (5.0, 0.0, 0.0))), image.direction),
                    moved.prediction_path(METHOD, case))
    cases = {
        "unknown mode": (data, run, "--mode", "median"),
        "another grid": (data, moved.root),
        "weight out of range": (data, run, "--mode", "mean", "--weight", "1.5"),
        "no threads": (data, run, "--threads", "0"),
        "no predictions": (data, tmp_path / "empty"),
        "another dataset": (other, run),
        "--indirect with --mode indirect": (data, run, "--mode", "indirect", "--indirect", run),
        "--indirect not an indirect run": (data, run, "--indirect", run),
    }
    for name, args in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        result = _run(*args[:2], out, *args[2:])
        assert result.returncode == 2, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert not out.exists(), name
        assert name != "another grid" or "grid" in result.stderr
