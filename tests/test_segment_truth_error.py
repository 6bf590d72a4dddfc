"""benchmarks/segment_truth_error.py: the truth scores zero against itself, a global scale does not
matter (relative uptake), a reconstruction-like blur costs what CT-AC's does, and attenuation-like
depth loss costs more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_benchmark
from scipy import ndimage

from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.nifti import write_nifti
from spectac.phantom.anatomy import build_phantom
from spectac.simulate import SimulationConfig, patient_params
from spectac.volume import Volume


def test_truth_blur_and_depth_loss(tmp_path: Path) -> None:
    script = load_benchmark("segment_truth_error")
    config = SimulationConfig()
    phantom = build_phantom(patient_params(1, 0, config.defect_probability), "stress", config.shape,
                            config.spacing_mm, supersample=1)
    truth = phantom.activity.astype(np.float32)
    ac = ndimage.gaussian_filter(truth, 1.5).astype(np.float32)  # a reconstruction's resolution
    # NC: counts lost with depth below the anterior chest wall (array y, LPS posterior), as attenuation does
    depth = np.arange(truth.shape[1], dtype=np.float32)[None, :, None]
    nc = (ac * np.exp(-0.04 * depth)).astype(np.float32)
    data = tmp_path / "data"
    volumes = {k: Volume.centred(v, config.spacing_mm) for k, v in (("nc", nc), ("ac", ac), ("truth", truth))}
    write_study(data, "p00_stress", volumes, lv=phantom.lv)
    write_manifest(data, {"source": "test"}, [Case("p00_stress", "p00", "stress", "F", split="test")])
    run = tmp_path / "run"
    for method, array in (("perfect", truth * 3.0), ("blurred", ac * 0.5)):
        folder = run / "predictions" / method
        folder.mkdir(parents=True)
        write_nifti(Volume.centred(array.astype(np.float32), config.spacing_mm), folder / "p00_stress.nii.gz")

    results = script.errors(data, run, "test", detect=False)
    assert results["perfect"][0] == pytest.approx(0.0, abs=1e-5)  # the truth itself, three times the counts
    assert results["blurred"][0] == pytest.approx(results["ct-ac"][0], abs=1e-5)  # scale-free: CT-AC's error
    assert results["ct-ac"][0] > 0  # resolution alone moves the relative uptake
    assert results["nc"][0] > results["ct-ac"][0] + 2  # depth-dependent loss costs more
    rows = script.table(results)
    assert rows[2].startswith("| nc | 1 |") and rows[3].endswith("| 1.00 |")
