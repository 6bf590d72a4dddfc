"""What `spectac reconstruct` makes of a projection file besides NIfTI (NM DICOM in the study and frame
of reference of the projections), attenuation from a CT series through the frame of reference,
the consistency index and `spectac qc`, and the refusals of these paths."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from spectac import physics
from spectac.acquisition.acquire import acquire
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.cli import app
from spectac.io.dicom import read_dicom_volume
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.projections import acquisition_from_projections, write_projections_dicom
from spectac.reconstruction.consistency import consistency, expected_deviance, poisson_deviance
from spectac.reconstruction.osem import ReconConfig, reconstruct
from spectac.volume import Volume

runner = CliRunner()
N = 20
SPACING = 6.8
FRAME = generate_uid()
STUDY = generate_uid()


def _phantom(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """An elliptic body with a warm region and a low-density (lung-like) block: (activity, mu)."""
    c = (n - 1) / 2
    xx, yy, _ = np.meshgrid(*(np.arange(n) - c,) * 3, indexing="ij")
    body = ((xx / (0.38 * n)) ** 2 + (yy / (0.3 * n)) ** 2 <= 1).astype(np.float32)
    activity = 1000.0 * body
    activity[n // 3:n // 3 + 3, n // 2 - 2:n // 2 + 1, n // 3:2 * n // 3] += 8000.0
    mu = 0.153 * body
    mu[n // 5:n // 5 + 4, n // 2 - 2:n // 2 + 2, :] *= 0.3
    return activity, mu


def _projection_file(tmp_path: Path, protocol: Protocol, activity: np.ndarray, mu: np.ndarray, seed: int = 0):
    projections, model = acquire(activity, mu, protocol, SPACING, np.random.default_rng(seed))
    acq = acquisition_from_projections(projections.numpy(), protocol, model.radii_mm)
    acq.study_uid = STUDY
    path = write_projections_dicom(acq, tmp_path / "tomo.dcm", frame_of_reference_uid=FRAME)
    return path, projections, model


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, torch.Tensor, SpectProjector, np.ndarray]:
    activity, mu = _phantom()
    path, projections, model = _projection_file(tmp_path_factory.mktemp("tomo"), Protocol(n_views=12, matrix=N,
                                                pixel_mm=SPACING), activity, mu)
    return path, projections, model, mu


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


# ---- NM DICOM output --------------------------------------------------------------------------

def test_nm_output_is_the_nifti_in_the_projections_study(study, tmp_path: Path) -> None:
    path, _, _, _ = study
    common = ["--iterations", "1", "--subsets", "4"]
    assert _run("reconstruct", path, "-o", tmp_path / "nc.nii.gz", *common).exit_code == 0
    result = _run("reconstruct", path, "-o", tmp_path / "nc.dcm", *common)
    assert result.exit_code == 0, result.output
    nifti = read_nifti(tmp_path / "nc.nii.gz")
    volume, _ = read_dicom_volume(tmp_path / "nc.dcm")
    assert volume.same_grid(nifti, atol_mm=1e-3)
    np.testing.assert_allclose(volume.array, nifti.array, atol=float(nifti.array.max()) / 65535)
    ds, source = pydicom.dcmread(tmp_path / "nc.dcm"), pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.StudyInstanceUID == STUDY and ds.FrameOfReferenceUID == FRAME
    assert ds.PatientID == source.PatientID and ds.PatientName == source.PatientName
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert list(ds.ImageType)[2:] == ["RECON TOMO", "EMISSION"] and "ATTN" not in list(ds.CorrectedImage)
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert len(ds.EnergyWindowInformationSequence) == 1


def test_nm_output_to_a_folder_and_existing_outputs_refused(study, tmp_path: Path) -> None:
    path, _, _, _ = study
    folder = tmp_path / "recon"
    assert _run("reconstruct", path, "-o", folder, "--iterations", "1", "--subsets", "4").exit_code == 0
    assert [f.name for f in folder.iterdir()] == ["NM000001.dcm"]
    before = (folder / "NM000001.dcm").read_bytes()
    for existing in (folder, folder / "NM000001.dcm"):
        result = _run("reconstruct", path, "-o", existing, "--iterations", "1", "--subsets", "4")
        assert result.exit_code == 2 and "already exists" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert (folder / "NM000001.dcm").read_bytes() == before and len(list(folder.iterdir())) == 1


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (apt-get install dicom3tools)")
@pytest.mark.parametrize("mu", [False, True], ids=["NC", "AC"])
def test_nm_output_passes_dciodvfy(study, tmp_path: Path, mu: bool) -> None:
    path, _, _, mu_array = study
    args = ["reconstruct", path, "-o", tmp_path / "out.dcm", "--iterations", "1", "--subsets", "4"]
    if mu:
        args += ["--mu", write_nifti(Volume.centred(mu_array, SPACING), tmp_path / "mu.nii.gz")]
    assert _run(*args).exit_code == 0
    assert_dciodvfy_clean(tmp_path / "out.dcm")


def assert_dciodvfy_clean(path: Path) -> None:
    result = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    assert "NMImage" in lines
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, "\n".join(errors)


# ---- attenuation from a CT series ---------------------------------------------------------------

CT_PIXEL, CT_SLICE = 3.4, 3.4


def _write_ct(folder: Path, hu: np.ndarray, origin: np.ndarray, frame: str) -> Path:
    """``hu`` ([x, y, z], axial, HFS) as single-frame CT slices of the given frame of reference."""
    folder.mkdir(parents=True)
    series = generate_uid()
    for k in range(hu.shape[2]):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality, ds.ImageType, ds.KVP = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], 120
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, STUDY, frame
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [f"{v:.3f}" for v in origin + [0, 0, k * CT_SLICE]]
        ds.PixelSpacing, ds.SliceThickness = [CT_PIXEL, CT_PIXEL], CT_SLICE
        stored = np.round(hu[:, :, k].T + 1024.0).astype(np.uint16)
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"ct{k:03d}.dcm", enforce_file_format=True)
    return folder


def _ct_of(mu: np.ndarray, tmp_path: Path, frame: str = FRAME) -> tuple[Path, Volume]:
    """The SPECT-grid mu-map as a finer CT (2x2x2 voxels per SPECT voxel, one SPECT voxel wider on
    each side) in HU; and the CT's own mu-map (1/cm on the CT grid), as NIfTI would hold it."""
    fine = np.pad(np.repeat(np.repeat(np.repeat(mu, 2, 0), 2, 1), 2, 2), 2)
    hu = np.round(physics.mu_to_hu(fine))
    spect_corner = -(N - 1) / 2 * SPACING - SPACING / 4  # centre of the first CT voxel inside the grid
    origin = np.full(3, spect_corner - 2 * CT_PIXEL)
    folder = _write_ct(tmp_path / "ct", hu, origin, frame)
    return folder, Volume(physics.hu_to_mu(hu, 120.0), (CT_PIXEL,) * 3, tuple(origin))


def test_ct_mu_equals_the_equivalent_nifti_and_the_true_mu(study, tmp_path: Path) -> None:
    path, projections, model, mu = study
    ct_dir, ct_mu = _ct_of(mu, tmp_path)
    common = ["--iterations", "2", "--subsets", "4"]
    result = _run("reconstruct", path, "-o", tmp_path / "ct.nii.gz", "--mu", ct_dir, *common)
    assert result.exit_code == 0, result.output
    on_ct_grid = write_nifti(ct_mu, tmp_path / "mu_ct_grid.nii.gz")
    assert _run("reconstruct", path, "-o", tmp_path / "nifti.nii.gz", "--mu", on_ct_grid, *common).exit_code == 0
    from_ct, from_nifti = read_nifti(tmp_path / "ct.nii.gz").array, read_nifti(tmp_path / "nifti.nii.gz").array
    np.testing.assert_allclose(from_ct, from_nifti, rtol=1e-5, atol=1e-5 * float(from_nifti.max()))
    # physics: the same as the true mu on the SPECT grid up to the resampling of the body's edge
    truth = reconstruct(projections, model, ReconConfig(iterations=2, subsets=4))
    body = mu > 0
    ratio = from_ct[body].sum() / truth[body].sum()
    assert abs(ratio - 1) < 0.02
    assert np.abs(from_ct - truth)[body].max() < 0.1 * truth.max()


def test_ct_of_another_frame_is_refused_unless_forced(study, tmp_path: Path) -> None:
    path, _, _, mu = study
    ct_dir, _ = _ct_of(mu, tmp_path, frame=generate_uid())
    out = tmp_path / "ac.dcm"
    result = _run("reconstruct", path, "-o", out, "--mu", ct_dir, "--iterations", "1", "--subsets", "4")
    assert result.exit_code == 2 and "Frame of Reference UID" in result.output and "--force-frame" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    result = _run("reconstruct", path, "-o", out, "--mu", ct_dir, "--iterations", "1", "--subsets", "4",
                  "--force-frame")
    assert result.exit_code == 0, result.output
    assert "ATTN" in list(pydicom.dcmread(out, stop_before_pixels=True).CorrectedImage)
    image = write_nifti(Volume.centred(np.ones((N, N, N), np.float32), SPACING), tmp_path / "image.nii.gz")
    result = _run("qc", path, "--image", image, "--mu", ct_dir, "--csv", tmp_path / "qc.csv")
    assert result.exit_code == 2 and "Frame of Reference UID" in result.output and not (tmp_path / "qc.csv").exists()


# ---- the consistency index ----------------------------------------------------------------------

def test_expected_deviance_is_the_poisson_mean() -> None:
    rng = np.random.default_rng(0)
    for m in (0.05, 0.7, 3.0, 40.0, 500.0):
        y = rng.poisson(m, 400_000)
        observed = poisson_deviance(y, np.full(y.shape, m)).mean()
        assert expected_deviance(np.array([m]))[0] == pytest.approx(observed, rel=0.01, abs=1e-3)
    assert expected_deviance(np.array([0.0]))[0] == 0.0


def test_expected_deviance_table_against_scipy_poisson() -> None:
    """The table's own Poisson probabilities (a running log-factorial) against scipy.stats'."""
    from scipy import stats

    from spectac.reconstruction.consistency import _ASYMPTOTIC_MEAN, _expected_table

    means, values = _expected_table()
    for i in range(0, len(means), 37):
        m = means[i]
        y = np.arange(0, int(m + 12 * np.sqrt(m) + 30))
        reference = float(np.sum(stats.poisson.pmf(y, m) * poisson_deviance(y, np.full(y.shape, m))))
        assert values[i] == pytest.approx(reference, rel=1e-9, abs=1e-12)
    assert means[-1] == pytest.approx(_ASYMPTOTIC_MEAN)


@pytest.fixture(scope="module")
def noisy() -> dict:
    """Noisy projections of a 24^3 phantom (32 views) and the CT-AC OSEM (4 x 4, unfiltered)."""
    n = 24
    activity, mu = _phantom(n)
    protocol = Protocol(n_views=32, matrix=n, pixel_mm=SPACING, scatter=False)  # primaries: the model's own physics
    projections, model = acquire(activity, mu, protocol, SPACING, np.random.default_rng(1))
    ac = reconstruct(projections, model, ReconConfig(iterations=4, subsets=4, butterworth_cutoff_per_cm=0))
    return dict(n=n, activity=activity, mu=mu, protocol=protocol, y=projections.numpy(), model=model, ac=ac)


def _index(noisy: dict, image: np.ndarray, mu: np.ndarray | None) -> float:
    n = noisy["n"]
    projector = SpectProjector((n, n, n), SPACING, noisy["protocol"], mu_map=mu, radii_mm=noisy["model"].radii_mm)
    return consistency(noisy["y"], image, projector).index


def test_index_is_one_for_consistent_data_and_larger_for_wrong_mu_or_motion(noisy: dict) -> None:
    truth = _index(noisy, noisy["activity"], noisy["mu"])
    assert truth == pytest.approx(1.0, abs=0.03)  # the truth itself: Poisson deviance at its expectation
    ac = _index(noisy, noisy["ac"], noisy["mu"])
    assert 0.7 < ac < 1.6
    wrong = {
        "no attenuation": _index(noisy, noisy["ac"], None),
        "mu shifted 2 cm": _index(noisy, noisy["ac"], np.roll(noisy["mu"], 3, axis=0)),
        "activity shifted 2 cm": _index(noisy, np.roll(noisy["ac"], 3, axis=1), noisy["mu"]),
    }
    for what, value in wrong.items():
        assert value > 3 * ac, (what, value, ac)
    assert _index(noisy, noisy["ac"], noisy["mu"]) == ac  # deterministic


def test_index_ignores_the_image_unit_and_reports_the_scale(noisy: dict) -> None:
    n = noisy["n"]
    projector = SpectProjector((n, n, n), SPACING, noisy["protocol"], mu_map=noisy["mu"],
                               radii_mm=noisy["model"].radii_mm)
    a = consistency(noisy["y"], noisy["ac"], projector)
    b = consistency(noisy["y"], noisy["ac"] * 37.0, projector)
    assert b.index == pytest.approx(a.index, rel=1e-6) and b.scale == pytest.approx(a.scale / 37.0, rel=1e-6)
    assert len(a.rows()) == noisy["protocol"].n_views + 1 and a.flagged(0.5) and not a.flagged(10.0)


def test_index_projected_by_osem_subsets_is_the_index_of_all_views(noisy: dict) -> None:
    """The route projects the image subset by subset with OSEM's own projector (its rotations and
    attenuation factors cached per subset): the same per-view deviances as all views at once; a
    grouping that misses a view is refused."""
    from spectac.reconstruction.osem import subset_views

    n = noisy["n"]
    projector = SpectProjector((n, n, n), SPACING, noisy["protocol"], mu_map=noisy["mu"],
                               radii_mm=noisy["model"].radii_mm)
    whole = consistency(noisy["y"], noisy["ac"], projector)
    grouped = consistency(noisy["y"], noisy["ac"], projector, groups=subset_views(projector.n_views, 4))
    np.testing.assert_allclose(grouped.per_view_deviance, whole.per_view_deviance, rtol=1e-5)
    assert grouped.index == pytest.approx(whole.index, rel=1e-6)
    with pytest.raises(ValueError, match="miss views"):
        consistency(noisy["y"], noisy["ac"], projector, groups=subset_views(projector.n_views, 4)[:3])
    with pytest.raises(ValueError, match=r"the model's .* differ"):  # projections of another detector
        consistency(noisy["y"][:, :-2], noisy["ac"], projector, groups=subset_views(projector.n_views, 4))


# ---- spectac qc -------------------------------------------------------------------------------

def test_qc_command_prints_and_writes_the_index(study, tmp_path: Path) -> None:
    path, projections, model, mu = study
    ac = reconstruct(projections, model, ReconConfig(iterations=2, subsets=4, butterworth_cutoff_per_cm=0))
    image = write_nifti(Volume.centred(ac, SPACING), tmp_path / "ac.nii.gz")
    mu_path = write_nifti(Volume.centred(mu, SPACING), tmp_path / "mu.nii.gz")
    csv = tmp_path / "qc.csv"
    result = _run("qc", path, "--image", image, "--mu", mu_path, "--csv", csv)
    assert result.exit_code == 0, result.output
    projector = SpectProjector((N, N, N), SPACING, model.protocol, mu_map=mu, radii_mm=model.radii_mm)
    expected = consistency(projections.numpy(), ac, projector)
    assert f"index D/E = {expected.index:.4g}" in " ".join(result.output.split())
    lines = csv.read_text().splitlines()
    assert lines[0] == "view,deviance_per_bin,expected_per_bin,index,threshold,flagged" and len(lines) == 12 + 2
    assert lines[-1].startswith("all,") and float(lines[-1].split(",")[3]) == pytest.approx(expected.index, rel=1e-5)
    # the same index with the mu-map from the CT series
    ct_dir, _ = _ct_of(mu, tmp_path)
    result = _run("qc", path, "--image", image, "--mu", ct_dir)
    assert result.exit_code == 0, result.output
    # refusals: an existing CSV, an image that does not cover the projections' grid
    result = _run("qc", path, "--image", image, "--mu", mu_path, "--csv", csv)
    assert result.exit_code == 2 and "already exists" in result.output
    small = write_nifti(Volume.centred(ac[2:-2, 2:-2, 2:-2], SPACING), tmp_path / "small.nii.gz")
    csv2 = tmp_path / "qc2.csv"
    result = _run("qc", path, "--image", small, "--mu", mu_path, "--csv", csv2)
    assert result.exit_code == 2 and "of the SPECT grid" in result.output and not csv2.exists()
    assert len(result.output.strip().splitlines()) == 1
