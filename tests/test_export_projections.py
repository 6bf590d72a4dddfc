"""`spectac export-projections`: simulated studies as vendor-like NM TOMO DICOM files that travel
the camera's route (`spectac reconstruct`) back to the dataset's own NC and CT-AC images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from spectac.acquisition.protocol import Protocol
from spectac.cli import app
from spectac.io.dataset import Dataset
from spectac.io.nifti import read_nifti
from spectac.reconstruction.osem import ReconConfig
from spectac.simulate import SimulationConfig, simulate_cohort

torch.set_num_threads(1)
runner = CliRunner()
#: As tests/test_study_acquisition.py's, without CT-SPECT misregistration: the rebuilt orbit radii
#: are then exact and the stored images are reproduced to float precision.
TINY = SimulationConfig(protocol=Protocol(n_views=12, pixel_mm=13.6), recon=ReconConfig(iterations=1, subsets=3),
                        shape=(32, 32, 32), supersample=1, misregistration_mm=0.0)
#: The bound of tests/test_study_acquisition.py for the in-memory acquisition without misregistration.
TOLERANCE = 1e-4


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    root = tmp_path_factory.mktemp("export") / "data"
    simulate_cohort(root, patients=1, seed=5, config=TINY, workers=1)
    return Dataset.open(root)


def _relative_max(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _reconstruct(path: Path, out: Path, *extra: object) -> np.ndarray:
    result = _run("reconstruct", path, "-o", out, "--iterations", TINY.recon.iterations, "--subsets",
                  TINY.recon.subsets, "--cutoff", TINY.recon.butterworth_cutoff_per_cm, *extra)
    assert result.exit_code == 0, result.output
    return read_nifti(out).array


@pytest.mark.parametrize(("vendor", "gates", "detectors"), [("ge", 1, 1), ("siemens", 2, 2)])
def test_exported_projections_reconstruct_to_the_stored_nc(dataset: Dataset, tmp_path: Path, vendor: str,
                                                            gates: int, detectors: int) -> None:
    """Physics against physics: the file's OSEM with the dataset's settings is the simulator's NC
    (GE one head; Siemens two heads, gated), a different collimator is not."""
    case_id = "P000_stress"
    out = tmp_path / "dcm"
    result = _run("export-projections", dataset.root, "-o", out, "--case", case_id, "--vendor", vendor,
                  "--gates", gates)
    assert result.exit_code == 0, result.output
    path = out / f"{case_id}.dcm"
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert int(header.NumberOfDetectors) == detectors and int(header.NumberOfEnergyWindows) >= 3
    assert ("GATED TOMO" in header.ImageType) == (gates > 1)
    stored = dataset.load(case_id, "nc")
    nc = _reconstruct(path, tmp_path / "nc.nii.gz", "--scatter", "none")
    assert nc.shape == stored.shape
    assert _relative_max(nc, stored.array) < TOLERANCE
    other = _reconstruct(path, tmp_path / "me.nii.gz", "--scatter", "none", "--collimator", "GE-MEGP")
    assert _relative_max(other, stored.array) > 100 * TOLERANCE


def test_exported_projections_with_the_true_mu_give_ct_ac(dataset: Dataset, tmp_path: Path) -> None:
    """With the study's (unshifted) mu-map and TEW the file's OSEM is the stored CT-AC."""
    case_id = "P000_rest"
    assert _run("export-projections", dataset.root, "-o", tmp_path / "d", "--split", "all").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(f"{c.case_id}.dcm" for c in dataset.cases)
    ac = _reconstruct(tmp_path / "d" / f"{case_id}.dcm", tmp_path / "ac.nii.gz", "--mu",
                      dataset.path(case_id, "mu"))
    assert _relative_max(ac, dataset.load(case_id, "ac").array) < TOLERANCE


def test_export_resumes_and_refuses_bad_input(dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "d"
    assert _run("export-projections", dataset.root, "-o", out, "--case", "P000_rest").exit_code == 0
    written = (out / "P000_rest.dcm").stat().st_mtime_ns
    result = _run("export-projections", dataset.root, "-o", out)
    assert result.exit_code == 0 and "1 of 2 studies already" in result.output
    assert (out / "P000_rest.dcm").stat().st_mtime_ns == written and (out / "P000_stress.dcm").is_file()
    assert not [p for p in out.iterdir() if p.suffix != ".dcm"]  # no temporary file left
    (tmp_path / "file").write_text("x")
    bare = tmp_path / "bare"
    bare.mkdir()
    for args, message in [
        ((dataset.root, "-o", tmp_path / "e", "--case", "P999_rest"), "no case"),
        ((bare, "-o", tmp_path / "e"), "spectac dataset"),
        ((dataset.root, "-o", tmp_path / "file"), "is a file"),
        ((dataset.root, "-o", tmp_path / "e", "--vendor", "philips"), "--vendor"),
        ((dataset.root, "-o", tmp_path / "e", "--gates", 0), "--gates"),
        ((dataset.root, "-o", tmp_path / "e", "--split", "nope"), "unknown split"),
        ((dataset.root, "-o", dataset.root / "out"), "inside the dataset"),
        ((dataset.root, "-o", tmp_path / "e", "--case", "P000_rest", "--split", "val"), "not both"),
    ]:
        result = _run("export-projections", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "e").exists()


def test_views_two_heads_cannot_share_are_refused_before_writing(tmp_path: Path) -> None:
    from dataclasses import replace

    config = replace(TINY, protocol=Protocol(n_views=9, pixel_mm=13.6))
    simulate_cohort(tmp_path / "d", patients=1, seed=1, config=config, workers=1)
    out = tmp_path / "out"
    result = _run("export-projections", tmp_path / "d", "-o", out, "--vendor", "siemens")
    assert result.exit_code == 2 and "9 views cannot be split" in result.output and not out.exists()
    assert _run("export-projections", tmp_path / "d", "-o", out).exit_code == 0  # one head takes them
    assert len(list(out.glob("*.dcm"))) == 2


@pytest.mark.parametrize("shape", [(64, 64, 64), (45, 37, 30), (20, 22, 1)])
def test_the_post_filter_is_the_butterworth_response_applied_with_the_complex_fft(shape):
    from spectac.reconstruction.osem import butterworth_filter

    volume = np.random.default_rng(3).poisson(40.0, shape).astype(np.float32)
    freqs = [np.fft.fftfreq(n, d=0.68) for n in shape]
    fx, fy, fz = np.meshgrid(*freqs, indexing="ij", sparse=True)
    response = 1.0 / np.sqrt(1.0 + (np.sqrt(fx**2 + fy**2 + fz**2) / 0.9) ** 12)
    reference = np.maximum(np.fft.ifftn(np.fft.fftn(volume) * response).real, 0.0)
    filtered = butterworth_filter(volume, 6.8, 0.9, 6)
    assert filtered.dtype == np.float32 and filtered.shape == shape
    np.testing.assert_allclose(filtered, reference, rtol=1e-6, atol=1e-6 * reference.max())
    assert not np.allclose(filtered, volume, rtol=0.05)  # it did filter
