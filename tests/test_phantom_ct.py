"""Phantoms from CT (spectac phantom --ct): a synthetic chest CT written here with pydicom."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from spectac import physics
from spectac.cli import app
from spectac.io.ct import read_ct_series
from spectac.phantom import from_ct
from spectac.volume import Volume

PIXEL_MM = 6.0
MATRIX = 72
SLICE_MM = 5.0
SLICES = 48  # 240 mm: z from -120 to +115
HEART_CENTRE = (15.0, -20.0, 0.0)  # mm LPS: left of the midline, anterior, between the lungs


def chest_hu() -> tuple[np.ndarray, np.ndarray]:
    """HU [x, y, z] of a synthetic chest and the LPS coordinates of its voxels."""
    ax = (np.arange(MATRIX) - (MATRIX - 1) / 2) * PIXEL_MM
    az = (np.arange(SLICES) - (SLICES - 1) / 2) * SLICE_MM
    x, y, z = np.meshgrid(ax, ax, az, indexing="ij")
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    body = (x / 170.0) ** 2 + (y / 115.0) ** 2 <= 1.0
    hu[body] = -100.0  # fat layer
    hu[(x / 155.0) ** 2 + (y / 100.0) ** 2 <= 1.0] = 40.0  # soft tissue
    for side in (-1.0, 1.0):  # lungs above the diaphragm (z > -80)
        lung = ((x - side * 75.0) / 55.0) ** 2 + ((y + 5.0) / 70.0) ** 2 + ((z - 10.0) / 100.0) ** 2 <= 1.0
        hu[lung & (z > -80.0)] = -800.0
    heart = ((x - HEART_CENTRE[0]) / 50.0) ** 2 + ((y - HEART_CENTRE[1]) / 45.0) ** 2 + ((z - HEART_CENTRE[2]) / 55.0) ** 2 <= 1.0
    hu[heart] = 40.0
    spine = (x**2 + (y - 70.0) ** 2) <= 20.0**2
    hu[spine] = 700.0
    return hu, np.stack([x, y, z], axis=-1)


def write_ct(folder: Path, hu: np.ndarray | None = None, kvp: float | None = 120.0, modality: str = "CT",
             iop: tuple[float, ...] = (1, 0, 0, 0, 1, 0), skip: tuple[int, ...] = (),
             localizer: bool = False, odd_size: bool = False) -> Path:
    """Write ``hu`` ([x, y, z]) as single-frame CT slices (HFS, axial)."""
    if hu is None:
        hu, _ = chest_hu()
    folder.mkdir(parents=True, exist_ok=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    corner = -(MATRIX - 1) / 2 * PIXEL_MM * (row + col)
    for k in range(hu.shape[2]):
        if k in skip:
            continue
        z = (k - (SLICES - 1) / 2) * SLICE_MM
        ds = _dataset(series, study, frame, modality, kvp)
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.3f}" for v in corner + z * normal]
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.SliceThickness = SLICE_MM
        _pixels(ds, hu[:, :, k].T)
        ds.save_as(folder / f"ct{k:03d}.dcm", enforce_file_format=True)
    if localizer or odd_size:
        ds = _dataset(series, study, frame, modality, kvp)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"] if localizer else ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"] if localizer else [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = ["-200", "0", "200"] if localizer else ["-100", "-100", "0.5"]
        ds.PixelSpacing = [1.0, 1.0]
        _pixels(ds, np.zeros((40, 50), dtype=np.float32))
        ds.save_as(folder / "scout.dcm", enforce_file_format=True)
    return folder


def _dataset(series: str, study: str, frame: str, modality: str, kvp: float | None) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame
    ds.PatientName, ds.PatientID = "Synthetic^Chest", "SYN123"
    ds.Manufacturer, ds.ManufacturerModelName = "spectac-test", "Synthetic CT"
    if kvp is not None:
        ds.KVP = kvp
    return ds


def _pixels(ds: pydicom.Dataset, plane: np.ndarray) -> None:
    stored = np.round(plane + 1024.0).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = stored.tobytes()


@pytest.fixture(scope="module")
def ct_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct(tmp_path_factory.mktemp("ct") / "series")


@pytest.fixture(scope="module")
def phantom(ct_dir: Path) -> from_ct.CtPhantom:
    return from_ct.build_ct_phantom(read_ct_series(ct_dir, max_pixel_mm=from_ct.WORKING_PIXEL_MM), seed=3)


def _value_at(volume: Volume, point_ct: np.ndarray, phantom: from_ct.CtPhantom) -> float:
    centre = np.asarray(phantom.description["grid"]["centre_in_ct_mm"])
    ijk = np.rint(volume.index_of(np.asarray(point_ct) - centre)).astype(int)
    return float(volume.array[tuple(ijk)])


def test_reader_geometry(ct_dir: Path) -> None:
    ct = read_ct_series(ct_dir)
    assert ct.volume.shape == (MATRIX, MATRIX, SLICES)
    assert ct.kvp == 120.0 and ct.slices == SLICES and ct.slice_mm == pytest.approx(SLICE_MM)
    hu, pts = chest_hu()
    assert ct.volume.point_of((0, 0, 0)) == pytest.approx(pts[0, 0, 0], abs=1e-3)
    np.testing.assert_allclose(ct.volume.array, hu, atol=0.51)
    assert "SYN123" not in json.dumps(ct.describe())


def test_mu_of_regions(phantom: from_ct.CtPhantom) -> None:
    mu = phantom.mu
    assert _value_at(mu, (0.0, 40.0, -100.0), phantom) == pytest.approx(float(physics.hu_to_mu(np.array([40.0]))[0]), abs=0.003)
    assert _value_at(mu, (80.0, 0.0, 40.0), phantom) == pytest.approx(float(physics.hu_to_mu(np.array([-800.0]))[0]), abs=0.005)
    assert _value_at(mu, (0.0, 70.0, -60.0), phantom) == pytest.approx(float(physics.hu_to_mu(np.array([700.0]))[0]), abs=0.005)
    assert _value_at(mu, (0.0, -200.0, 0.0), phantom) == 0.0  # air outside the body
    assert phantom.mu.shape == (128, 128, 128) and phantom.mu.spacing == pytest.approx((3.4, 3.4, 3.4))


def test_lv_in_the_heart(phantom: from_ct.CtPhantom) -> None:
    centre_ct = np.asarray(phantom.description["lv"]["centre_ct_mm"])
    rel = (centre_ct - np.asarray(HEART_CENTRE)) / np.array([50.0, 45.0, 55.0])
    assert float(np.sum(rel**2)) <= 1.0  # inside the synthetic heart
    lv_centre = np.asarray(phantom.lv["center_mm"])  # output frame: the grid centre is the origin
    assert np.linalg.norm(lv_centre - np.asarray(from_ct.LV_OFFSET_MM)) < 15.0
    act = phantom.activity
    assert act.array.max() <= 1.2 and act.array.min() >= 0
    near = np.linalg.norm(act.world_coordinates() - lv_centre, axis=-1) < 60.0
    myo = near & (act.array > 0.5)
    assert myo.sum() > 100
    assert np.linalg.norm(act.point_of(np.argwhere(myo).mean(axis=0)) - lv_centre) < 10.0
    for key in ("center_mm", "long_axis", "anterior", "septal", "length_mm", "radius_mm", "segment_defect"):
        assert key in phantom.lv


def test_kvp_table() -> None:
    hu = np.array([-500.0, 0.0, 1000.0])
    np.testing.assert_array_equal(physics.hu_to_mu(hu, 120.0), physics.hu_to_mu(hu))
    low, high = physics.hu_to_mu(hu, 80.0), physics.hu_to_mu(hu, 140.0)
    np.testing.assert_allclose(low[:2], high[:2])  # air-water branch independent of kVp
    assert low[2] == pytest.approx(physics.MU_WATER + 1000 * 4.857e-5, abs=2e-5)
    assert high[2] == pytest.approx(physics.MU_WATER + 1000 * 7.526e-5, abs=2e-5)
    assert physics.hu_bone(120) == physics.HU_BONE
    with pytest.raises(ValueError):
        physics.hu_bone(70)


def test_simulation_grid_matches() -> None:
    from spectac.simulate import SimulationConfig

    config = SimulationConfig()
    assert config.shape == (from_ct.SIM_SHAPE,) * 3
    assert config.spacing_mm == pytest.approx(2 * 3.4)


def _run(args: list[str]):
    return CliRunner().invoke(app, ["phantom", *[str(a) for a in args]])


def test_cli_writes_the_phantom(ct_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ph"
    result = _run(["--ct", ct_dir, "--out", out, "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["activity.nii.gz", "lv.json", "mu.nii.gz", "phantom.json"]
    desc = json.loads((out / "phantom.json").read_text())
    assert desc["ct"]["kvp"] == 120.0 and desc["ct"]["slices"] == SLICES and desc["seed"] == 1
    text = (out / "phantom.json").read_text() + (out / "lv.json").read_text()
    assert "SYN123" not in text and "Synthetic^Chest" not in text
    again = _run(["--ct", ct_dir, "--out", out])
    assert again.exit_code == 2 and "already exists" in again.output


def _refused(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    result = _run([*args, "--out", out])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out") or "out" in p.name]


def test_refuses_not_ct(tmp_path: Path) -> None:
    _refused(tmp_path, ["--ct", write_ct(tmp_path / "mr", modality="MR")], "not a CT")


def test_refuses_missing_kvp_unless_given(tmp_path: Path) -> None:
    folder = write_ct(tmp_path / "nokvp", kvp=None)
    _refused(tmp_path, ["--ct", folder], "--kvp")
    assert _run(["--ct", folder, "--kvp", "100", "--out", tmp_path / "ok"]).exit_code == 0
    assert json.loads((tmp_path / "ok" / "phantom.json").read_text())["ct"]["kvp_source"] == "--kvp"


def test_refuses_gap(tmp_path: Path) -> None:
    _refused(tmp_path, ["--ct", write_ct(tmp_path / "gap", skip=(20,))], "unequal spacing")


def test_refuses_oblique(tmp_path: Path) -> None:
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    _refused(tmp_path, ["--ct", write_ct(tmp_path / "obl", iop=(1, 0, 0, 0, c, s))], "oblique")


def test_refuses_no_heart(tmp_path: Path) -> None:
    hu, _ = chest_hu()
    hu[hu == -800.0] = 40.0  # no lungs: an abdomen
    _refused(tmp_path, ["--ct", write_ct(tmp_path / "abd", hu=hu)], "no heart found")


def test_localizer_skipped(tmp_path: Path) -> None:
    folder = write_ct(tmp_path / "loc", localizer=True)
    result = _run(["--ct", folder, "--out", tmp_path / "ok"])
    assert result.exit_code == 0, result.output
    assert "localiser" in result.output


def test_odd_slice_skipped_or_refused(tmp_path: Path) -> None:
    folder = write_ct(tmp_path / "odd", odd_size=True)
    result = _run(["--ct", folder, "--out", tmp_path / "ok"])
    assert result.exit_code == 0 and "another orientation or size" in result.output, result.output


@pytest.mark.skipif(not os.environ.get("SPECTAC_REAL_CT"), reason="SPECTAC_REAL_CT (a chest CT folder) not set")
def test_real_ct(tmp_path: Path) -> None:
    out = tmp_path / "real"
    result = _run(["--ct", os.environ["SPECTAC_REAL_CT"], "--out", out])
    assert result.exit_code == 0, result.output
    desc = json.loads((out / "phantom.json").read_text())
    assert 200 < desc["body"]["heart_ml"] < 2000 and desc["lv"]["fraction_inside_heart"] > 0.7
