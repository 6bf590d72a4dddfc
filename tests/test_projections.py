"""Raw projection DICOM: a real GE Discovery 670 file against PyTomography's reader, synthetic GE,
GATED TOMO and Siemens dual-detector files, refusals, and the round trip simulated projections ->
vendor-like DICOM -> `spectac reconstruct` == OSEM of the same projections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from spectac.acquisition.acquire import acquire
from spectac.acquisition.collimators import COLLIMATORS, find_collimator
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.cli import app
from spectac.errors import SpectacError
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.projections import (
    EnergyWindow,
    acquisition_from_projections,
    read_projections,
    write_projections_dicom,
)
from spectac.reconstruction.osem import ReconConfig, reconstruct
from spectac.volume import Volume

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ge-d670-lu177"
BEDS = [DATA / "bed1_projections.dcm", DATA / "bed2_projections.dcm"]
SPACING = 6.8
N = 20


def _cylinder(n: int, radius: float) -> np.ndarray:
    c = (n - 1) / 2
    xx, yy = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    return np.repeat(((xx**2 + yy**2) <= radius**2)[:, :, None], n, axis=2).astype(np.float32)


def _simulated(protocol: Protocol, seed: int = 0):
    """Poisson projections of a cylinder with a hot spot (left, anterior, superior) and its mu-map."""
    body = _cylinder(N, 7)
    truth = 2000.0 * body
    truth[13, 6, 12] += 4.0e5
    mu = 0.153 * body
    mu[4:8, 8:12, :] *= 0.3
    projections, projector = acquire(truth, mu, protocol, SPACING, np.random.default_rng(seed))
    return projections, projector, mu


WINDOWS = (EnergyWindow("Tc99m", 126.45, 154.55), EnergyWindow("Tc99m_SC", 108.0, 126.0))


def _two_windows(projections: torch.Tensor) -> np.ndarray:
    peak = projections.numpy()
    return np.stack([peak, np.floor(peak * 0.3)])


# ---- the real GE file against PyTomography ---------------------------------------------------

@pytest.mark.skipif(not DATA.is_dir(), reason="the GE Discovery 670 projections are not in ../shared/data")
@pytest.mark.parametrize("path", BEDS, ids=["bed1-CC", "bed2-CW"])
def test_real_ge_file_matches_pytomography(path: Path) -> None:
    dicom = pytest.importorskip("pytomography.io.SPECT.dicom")
    acq = read_projections(path)
    assert acq.counts.shape == (6, 60, 128, 128)
    assert acq.collimator == "MEGP" and acq.n_detectors == 1 and acq.pixel_mm == pytest.approx((4.4196, 4.4196))
    assert acq.patient_orientation == "recumbent supine feet-first"
    object_meta, proj_meta = dicom.get_metadata(str(path))
    reference = dicom.get_projections(str(path)).numpy()  # [window, view sorted by beta, r, z]
    beta = (270.0 - acq.azimuths_deg) % 360.0  # PyTomography's detector angle
    order = np.argsort(beta)
    np.testing.assert_allclose(np.asarray(proj_meta.angles), beta[order], atol=1e-4)
    np.testing.assert_allclose(np.asarray(proj_meta.radii) * 10, acq.radii_mm[order], atol=1e-4)
    np.testing.assert_array_equal(reference, acq.counts[:, order])
    np.testing.assert_allclose(object_meta.affine_matrix[:3, 3], acq.origin_mm, atol=1e-3)
    for i, window in enumerate(acq.windows):
        assert dicom.get_energy_window_bounds(str(path), i) == pytest.approx((window.lower_kev, window.upper_kev))
    assert acq.window_index(208) == 1 and acq.window_index("1") == 0
    # the first frame's detector row direction, as GE writes it, is spectac's v axis of that view
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    row = np.asarray(ds.DetectorInformationSequence[0].ImageOrientationPatient[:3], dtype=float)
    phi = np.deg2rad(acq.azimuths_deg[0])
    np.testing.assert_allclose(row, [-np.sin(phi), np.cos(phi), 0.0], atol=1e-5)


@pytest.mark.skipif(not DATA.is_dir(), reason="the GE Discovery 670 projections are not in ../shared/data")
def test_real_ge_file_needs_a_window_and_resolves_megp() -> None:
    acq = read_projections(BEDS[0])
    with pytest.raises(SpectacError, match=r"bed1_projections\.dcm: no single Tc-99m"):
        acq.window_index(None)
    assert acq.collimator_spec().key == "GE-MEGP"


@pytest.mark.skipif(not DATA.is_dir(), reason="the GE Discovery 670 projections are not present")
def test_real_ge_file_reconstruction_as_nm_dicom(tmp_path: Path) -> None:
    """A volume on the real file's grid written as the reconstruction of its window 2: same study,
    frame of reference and patient, the grid read back, and dciodvfy finds no error."""
    import shutil
    import subprocess

    from spectac.io.dicom import read_dicom_volume
    from spectac.io.projections.output import write_reconstruction_dicom
    from spectac.reconstruction.projections import acquisition_grid

    acq = read_projections(BEDS[0])
    grid = acquisition_grid(acq)
    volume = grid.with_array(np.random.default_rng(0).random(grid.shape, dtype=np.float32))
    out = write_reconstruction_dicom(volume, BEDS[0], 1, tmp_path / "nc.dcm", "spectac NC OSEM", corrected=False)
    back, _ = read_dicom_volume(out)
    assert back.same_grid(volume, atol_mm=1e-3)
    ds, source = pydicom.dcmread(out), pydicom.dcmread(BEDS[0], stop_before_pixels=True)
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "PatientName"):
        assert ds.get(keyword) == source.get(keyword)
    assert ds.EnergyWindowInformationSequence[0] == source.EnergyWindowInformationSequence[1]
    if shutil.which("dciodvfy"):
        result = subprocess.run(["dciodvfy", str(out)], check=False, capture_output=True, text=True, timeout=60)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, "\n".join(errors)


# ---- round trip: simulated projections -> DICOM -> reconstruct ---------------------------------

def test_round_trip_simulated_projections(tmp_path: Path) -> None:
    protocol = Protocol(n_views=12, matrix=N, pixel_mm=SPACING)
    projections, ac_model, mu = _simulated(protocol)
    acq = acquisition_from_projections(_two_windows(projections), protocol, ac_model.radii_mm, WINDOWS, "LEHR")
    path = write_projections_dicom(acq, tmp_path / "tomo.dcm")
    back = read_projections(path)
    np.testing.assert_array_equal(back.counts, acq.counts)
    np.testing.assert_allclose(back.azimuths_deg, protocol.azimuths_deg(), atol=1e-9)
    np.testing.assert_allclose(back.radii_mm, ac_model.radii_mm, rtol=1e-9)
    assert back.windows == list(WINDOWS) and back.origin_mm == pytest.approx(acq.origin_mm)
    assert back.protocol().azimuths_deg() == pytest.approx(protocol.azimuths_deg())
    assert back.protocol().collimator == protocol.collimator  # GE LEHR is the simulator's collimator

    config = ReconConfig(iterations=2, subsets=4)
    nc_projector = SpectProjector((N, N, N), SPACING, protocol, psf=True, radii_mm=ac_model.radii_mm)
    expected_nc = reconstruct(projections, nc_projector, config)
    out = tmp_path / "nc.nii.gz"
    result = runner.invoke(app, ["reconstruct", str(path), "-o", str(out), "--iterations", "2", "--subsets", "4"])
    assert result.exit_code == 0, (result.output, result.exception)
    nc = read_nifti(out)
    assert nc.same_grid(Volume.centred(expected_nc, SPACING))
    np.testing.assert_allclose(nc.array, expected_nc, rtol=1e-4, atol=1e-4 * float(expected_nc.max()))

    mu_path = write_nifti(Volume.centred(mu, SPACING), tmp_path / "mu.nii.gz")
    expected_ac = reconstruct(projections, ac_model, config)
    out_ac = tmp_path / "ac.nii.gz"
    result = runner.invoke(app, ["reconstruct", str(path), "-o", str(out_ac), "--iterations", "2", "--subsets", "4",
                                 "--mu", str(mu_path), "--scatter", "none"])
    assert result.exit_code == 0, (result.output, result.exception)
    ac = read_nifti(out_ac).array
    np.testing.assert_allclose(ac, expected_ac, rtol=1e-4, atol=1e-4 * float(expected_ac.max()))
    assert not np.allclose(ac, nc.array, rtol=0.05)  # attenuation correction changed the image


def test_scatter_windows_found_by_energy_and_tew_ac_is_the_simulators(tmp_path: Path) -> None:
    """A simulated four-window acquisition (photopeak, TEW pair, DEW window) written as vendor DICOM
    with vendor-like window names: `reconstruct --mu` finds the windows by their keV ranges and its
    TEW-corrected AC is the simulator's CT-AC of the same counts; NC stays uncorrected."""
    from spectac.acquisition.acquire import acquire_windows
    from spectac.reconstruction.pair import reconstruct_nc_ac
    from spectac.reconstruction.projections import scatter_windows

    protocol = Protocol(n_views=12, matrix=N, pixel_mm=SPACING)
    body = _cylinder(N, 7)
    truth, mu = 2000.0 * body, 0.153 * body
    truth[13, 6, 12] += 4.0e5
    windows, projector = acquire_windows(truth, mu, protocol, SPACING, np.random.default_rng(3))
    vendor = {"photopeak": "EM1", "tew_lower": "SC_LOW", "tew_upper": "SC_UP", "dew_lower": "COMPTON"}
    order = ["dew_lower", "photopeak", "tew_upper", "tew_lower"]  # any order in the file
    table = {w.name: w for w in protocol.windows}
    acq = acquisition_from_projections(
        [windows[n].numpy() for n in order], protocol, projector.radii_mm,
        [EnergyWindow(vendor[n], table[n].lower_kev, table[n].upper_kev) for n in order], "LEHR")
    path = write_projections_dicom(acq, tmp_path / "tomo.dcm")
    back = read_projections(path)
    assert scatter_windows(back, 1) == {"dew_lower": 0, "tew_upper": 2, "tew_lower": 3}

    config = ReconConfig(iterations=2, subsets=4)
    expected = reconstruct_nc_ac(windows, projector, mu, protocol, SPACING, config)
    mu_path = write_nifti(Volume.centred(mu, SPACING), tmp_path / "mu.nii.gz")
    outputs = {}
    for name, extra in (("ac", ["--mu", str(mu_path)]), ("ac_none", ["--mu", str(mu_path), "--scatter", "none"]),
                        ("nc", [])):
        out = tmp_path / f"{name}.nii.gz"
        result = runner.invoke(app, ["reconstruct", str(path), "-o", str(out), "--iterations", "2", "--subsets", "4",
                                     "--window", "EM1", *extra])
        assert result.exit_code == 0, (result.output, result.exception)
        outputs[name] = read_nifti(out).array
    scale = float(expected["ac"].max())
    np.testing.assert_allclose(outputs["ac"], expected["ac"], rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(outputs["nc"], expected["nc"], rtol=1e-4, atol=1e-4 * float(expected["nc"].max()))
    assert np.abs(outputs["ac_none"] - outputs["ac"]).max() > 0.02 * scale  # the correction did something
    # DEW needs its broad lower window: without it, one line naming the file's windows
    acq_peak = acquisition_from_projections([windows["photopeak"].numpy()], protocol, projector.radii_mm,
                                            [EnergyWindow("EM1", 126.0, 154.0)], "LEHR")
    lonely = write_projections_dicom(acq_peak, tmp_path / "peak.dcm")
    result = runner.invoke(app, ["reconstruct", str(lonely), "-o", str(tmp_path / "x.nii.gz"), "--scatter", "dew"])
    assert result.exit_code == 2 and "DEW scatter correction needs a broad window" in result.output
    assert not (tmp_path / "x.nii.gz").exists()


def test_written_file_reads_the_same_in_pytomography(tmp_path: Path) -> None:
    dicom = pytest.importorskip("pytomography.io.SPECT.dicom")
    protocol = Protocol.for_arc(360.0, n_views=8, matrix=N, pixel_mm=SPACING)
    projections, ac_model, _ = _simulated(protocol, seed=1)
    acq = acquisition_from_projections(projections.numpy(), protocol, ac_model.radii_mm)
    path = write_projections_dicom(acq, tmp_path / "tomo.dcm")
    _, proj_meta = dicom.get_metadata(str(path))
    beta = (270.0 - protocol.azimuths_deg()) % 360.0
    order = np.argsort(beta)
    np.testing.assert_allclose(np.asarray(proj_meta.angles), beta[order], atol=1e-4)
    np.testing.assert_allclose(dicom.get_projections(str(path)).numpy(), projections.numpy()[order])


# ---- synthetic layouts --------------------------------------------------------------------------

def test_gated_tomo_gates_are_summed(tmp_path: Path) -> None:
    protocol = Protocol(n_views=8, matrix=N, pixel_mm=SPACING)
    projections, ac_model, _ = _simulated(protocol)
    acq = acquisition_from_projections(projections.numpy(), protocol, ac_model.radii_mm)
    path = write_projections_dicom(acq, tmp_path / "gated.dcm", gates=3)
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    assert ds.ImageType[2] == "GATED TOMO" and int(ds.NumberOfFrames) == 24
    back = read_projections(path)
    assert back.image_type == "GATED TOMO" and back.gates == 3
    np.testing.assert_array_equal(back.counts, acq.counts)


def test_siemens_dual_detector(tmp_path: Path) -> None:
    """Two heads at 90 degrees (L-mode, 180-degree cardiac orbit), per-view radii in the Detector
    Information Sequence, a lower scatter window; PyTomography reads the same angles and radii."""
    protocol = Protocol(n_views=16, matrix=N, pixel_mm=SPACING)
    projections, ac_model, _ = _simulated(protocol)
    acq = acquisition_from_projections(_two_windows(projections), protocol, ac_model.radii_mm, WINDOWS, "LEHR")
    path = write_projections_dicom(acq, tmp_path / "siemens.dcm", manufacturer="SIEMENS NM", detectors=2)
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    assert [float(d.StartAngle) for d in ds.DetectorInformationSequence] == pytest.approx([225.0, 135.0])
    back = read_projections(path)
    assert back.n_detectors == 2 and back.rotation_direction == "CW"
    np.testing.assert_array_equal(back.detectors, [1] * 8 + [2] * 8)
    np.testing.assert_allclose(back.azimuths_deg, protocol.azimuths_deg(), atol=1e-9)
    np.testing.assert_allclose(back.radii_mm, ac_model.radii_mm, rtol=1e-9)
    np.testing.assert_array_equal(back.counts, acq.counts)
    assert back.collimator_spec().key == "SIEMENS-LEHR"
    assert back.window_index() == 0 and back.window_index("Tc99m_SC") == 1
    dicom = pytest.importorskip("pytomography.io.SPECT.dicom")
    _, proj_meta = dicom.get_metadata(str(path))
    beta = (270.0 - protocol.azimuths_deg()) % 360.0
    order = np.argsort(beta)
    np.testing.assert_allclose(np.asarray(proj_meta.angles), beta[order], atol=1e-4)
    np.testing.assert_allclose(np.asarray(proj_meta.radii) * 10, ac_model.radii_mm[order], rtol=1e-5)


# ---- refusals -----------------------------------------------------------------------------------

@pytest.fixture
def tomo_file(tmp_path: Path) -> Path:
    protocol = Protocol(n_views=8, matrix=12, pixel_mm=SPACING)
    counts = np.random.default_rng(0).poisson(5.0, (8, 12, 12)).astype(np.float32)
    acq = acquisition_from_projections(counts, protocol, np.full(8, 200.0), collimator="LEHR")
    return write_projections_dicom(acq, tmp_path / "tomo.dcm")


def _edit(path: Path, change) -> Path:
    ds = pydicom.dcmread(str(path))
    change(ds)
    out = path.with_name("bad.dcm")
    ds.save_as(str(out))
    return out


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]), "STATIC"),
        (lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]), "whole-body"),
        (lambda ds: setattr(ds, "ImageType", ["DERIVED", "PRIMARY", "RECON TOMO", "EMISSION"]), "reconstructed"),
        (lambda ds: delattr(ds, "RotationInformationSequence"), "without angles"),
        (lambda ds: delattr(ds.RotationInformationSequence[0], "StartAngle"), "without angles"),
        (lambda ds: setattr(ds, "AngularViewVector", list(range(1, 8))), "AngularViewVector has 7 values for 8"),
        (lambda ds: setattr(ds, "DetectorVector", [1] * 7 + [2]), "refers to 2 but NumberOfDetectors is 1"),
        (lambda ds: setattr(ds, "AngularViewVector", [1] * 8), "do not match the vectors"),
        (lambda ds: setattr(ds.DetectorInformationSequence[0], "CollimatorType", "FANB"), "parallel-hole"),
        (lambda ds: setattr(ds, "Modality", "CT"), "not NM"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tomo_file: Path, change, message: str) -> None:
    bad = _edit(tomo_file, change)
    with pytest.raises(SpectacError, match=message) as info:
        read_projections(bad)
    assert str(info.value).startswith(f"{bad}: ")


def test_unknown_collimator_needs_the_option(tomo_file: Path, tmp_path: Path) -> None:
    bad = _edit(tomo_file, lambda ds: setattr(ds.DetectorInformationSequence[0], "CollimatorGridName", "VXGP"))
    out = tmp_path / "nc.nii.gz"
    result = runner.invoke(app, ["reconstruct", str(bad), "-o", str(out), "--iterations", "1", "--subsets", "2"])
    assert result.exit_code == 2
    assert f"error: {bad}: unknown collimator 'VXGP'" in " ".join(result.output.split())
    result = runner.invoke(app, ["reconstruct", str(bad), "-o", str(out), "--iterations", "1", "--subsets", "2",
                                 "--collimator", "GE-LEHR"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert read_nifti(out).shape == (12, 12, 12)


def test_mu_elsewhere_in_the_patient_is_refused(tomo_file: Path, tmp_path: Path) -> None:
    """A mu-map on another grid is resampled, but one that misses the SPECT grid is refused."""
    far = Volume(np.zeros((10, 10, 10), np.float32), (SPACING,) * 3, origin=(0.0, 0.0, 500.0))
    mu = write_nifti(far, tmp_path / "mu.nii.gz")
    out = tmp_path / "ac.nii.gz"
    result = runner.invoke(app, ["reconstruct", str(tomo_file), "-o", str(out), "--mu", str(mu)])
    assert result.exit_code == 2 and "covers 0% of the SPECT grid" in result.output
    assert not out.exists()


def test_an_output_that_is_an_input_or_a_nan_cutoff_is_refused(tomo_file: Path, tmp_path: Path) -> None:
    """A NIfTI output is replaced atomically, so it must never be the --mu file (or the
    projections); a NaN post-filter cutoff would silently give a NaN image."""
    mu = write_nifti(Volume.centred(np.full((12, 12, 12), 0.153, np.float32), SPACING), tmp_path / "mu.nii.gz")
    before = mu.read_bytes()
    result = runner.invoke(app, ["reconstruct", str(tomo_file), "-o", str(mu), "--mu", str(mu), "--iterations", "1",
                                 "--subsets", "2"])
    assert result.exit_code == 2 and "is the input" in result.output, result.output
    assert mu.read_bytes() == before
    out = tmp_path / "nc.nii.gz"
    (tmp_path / "series").mkdir()
    for given, message in ((tmp_path / "series", "a folder; give the raw projection file"),
                           (mu, "a NIfTI image, not raw")):
        result = runner.invoke(app, ["reconstruct", str(given), "-o", str(out)])
        assert result.exit_code == 2 and message in result.output, result.output
    for cutoff in ("nan", "inf", "-1"):
        result = runner.invoke(app, ["reconstruct", str(tomo_file), "-o", str(out), "--cutoff", cutoff])
        assert result.exit_code == 2 and "--cutoff must be a finite number >= 0" in result.output, result.output
    assert not out.exists()


# ---- the collimator table -----------------------------------------------------------------------

def test_collimator_table() -> None:
    for spec in COLLIMATORS:
        if spec.published_fwhm_10cm_mm is not None:  # the gap is calibrated to the data sheet
            model = float(spec.collimator().fwhm_mm(100.0))
            assert model == pytest.approx(spec.published_fwhm_10cm_mm, abs=0.05)
    assert find_collimator("LEHR", "GE MEDICAL SYSTEMS").key == "GE-LEHR"
    assert find_collimator("lehr", "SIEMENS NM").key == "SIEMENS-LEHR"
    assert find_collimator("SY-ME").key == "SIEMENS-ME"
    with pytest.raises(SpectacError, match="ambiguous"):
        find_collimator("LEHR", "")
    with pytest.raises(SpectacError, match="unknown collimator"):
        find_collimator("VXGP", "GE MEDICAL SYSTEMS")
