"""What the reader checks so the writer can write back, and what the writer puts in a new series:
round trips of values and geometry, derived-series UIDs, and dciodvfy on every kind of series."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import blob_volume, context, quantum, rotation, tiny_dataset
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dataset import Dataset
from spectac.io.dicom import export_study_dicom, new_context, read_dicom_volume, write_dicom_series
from spectac.volume import SpectacError, Volume

runner = CliRunner()


def _volume() -> Volume:
    rng = np.random.default_rng(0)
    return Volume((rng.random((8, 7, 6)) * 100 + 1).astype(np.float32), (6.8, 6.0, 5.0), origin=(-20.0, 10.0, 50.0))


def _source(tmp_path: Path, kind: str = "nm-multiframe", **tags) -> Path:
    """A valid NM multi-frame file (or folder of slices), then edited with pydicom: ``tags`` set on
    every file (a list gives a multi-valued element; None deletes the element)."""
    ctx = new_context("PAT", "1.2.826.0.1.3680043.8.498.31", "1.2.826.0.1.3680043.8.498.32", sex="F", kind=kind)
    target = tmp_path / ("src.dcm" if kind == "nm-multiframe" else "src")
    write_dicom_series(_volume(), ctx, target, "NC", derived=False, uid_seed="w")
    config = pydicom.config.settings
    previous, config.writing_validation_mode = config.writing_validation_mode, pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for f in sorted(target.iterdir()) if target.is_dir() else [target]:
                ds = pydicom.dcmread(f)
                for keyword, value in tags.items():
                    if value is None:
                        ds.pop(keyword, None)
                    else:
                        setattr(ds, keyword, value)
                ds.save_as(f)
    finally:
        config.writing_validation_mode = previous
    return target


# ---- identifying and geometry attributes of the wrong multiplicity are refused on read ------------


@pytest.mark.parametrize(
    ("keyword", "value", "name"),
    [
        ("SeriesNumber", ["1", "2"], "Series Number"),
        ("InstanceNumber", ["1", "2"], "Instance Number"),
        ("PatientSex", ["M", "F"], "Patient's Sex"),
        ("PatientID", ["A", "B"], "Patient ID"),
        ("StudyInstanceUID", ["1.2.3", "1.2.4"], "Study Instance UID"),
        ("PixelSpacing", ["6.8", "6.0", "5.0"], "Pixel Spacing"),
        ("PixelSpacing", "6.8", "Pixel Spacing"),
        ("SliceThickness", ["5", "5"], "Slice Thickness"),
        ("SpacingBetweenSlices", ["5", "5"], "Spacing Between Slices"),
    ],
)
@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_unexpected_multiplicity_is_refused_on_read(tmp_path, keyword, value, name, kind):
    source = _source(tmp_path, kind, **{keyword: value})
    with pytest.raises(SpectacError, match=rf"{name} \(\w{{4}},\w{{4}}\) holds \d values?, the standard allows") as info:
        read_dicom_volume(source)
    assert str(source) in str(info.value) and "\n" not in str(info.value)


def test_correct_refuses_a_multi_valued_series_number_before_correcting(tmp_path):
    source = _source(tmp_path, SeriesNumber=["1", "2"])
    out = tmp_path / "out"
    result = runner.invoke(app, ["correct", str(source), "-o", str(out), "--method", "nc"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Series Number (0020,0011) holds 2 values" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src.dcm"]


def test_descriptive_attributes_of_the_wrong_multiplicity_are_dropped(tmp_path):
    source = _source(tmp_path, StudyDate=["20240101", "20240102"], PatientAge=["050Y", "051Y"],
                     SeriesDescription=["a", "b"])
    volume, context = read_dicom_volume(source)
    assert context.text("StudyDate") == "" and context.text("PatientAge") == ""
    assert context.patient_id == "PAT" and context.patient_sex == "F"  # the rest is kept
    out = write_dicom_series(volume, context, tmp_path / "out.dcm", method="nc")
    written = pydicom.dcmread(out)
    assert written.StudyDate == "" and "PatientAge" not in written
    assert written.PatientID == "PAT" and written.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.31"


def test_huge_geometry_values_give_a_short_message(tmp_path):
    """A damaged orientation of 40,000 values: the error quotes a bounded excerpt, not the value."""
    source = _source(tmp_path)
    ds = pydicom.dcmread(source)
    ds.DetectorInformationSequence[0].ImageOrientationPatient = ["1"] * 40_000
    ds.save_as(source)
    with pytest.raises(SpectacError, match="Image Orientation") as info:
        read_dicom_volume(source)
    assert len(str(info.value)) < len(str(source)) + 200


def test_series_number_beyond_the_is_range_is_written_as_1000(tmp_path):
    volume, context = read_dicom_volume(_source(tmp_path, SeriesNumber=2**31 - 1))
    out = write_dicom_series(volume, context, tmp_path / "out.dcm", method="nc")
    assert pydicom.dcmread(out).SeriesNumber == 1000


# ---- Laterality: only for a paired body part ------------------------------------------------------


@pytest.mark.parametrize(
    ("body_part", "laterality", "expected"),
    [
        ("HEART", None, "absent"),
        ("HEART", "L", "absent"),  # a source's Laterality where the standard forbids it is not copied
        ("CHEST", None, "absent"),
        ("BREAST", "L", "L"),
        ("BREAST", None, ""),  # required (Type 2) for a paired part: empty when unknown
        (None, None, ""),  # no body part: the condition cannot be decided; empty means unknown
    ],
)
@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_laterality_only_for_paired_body_parts(tmp_path, body_part, laterality, expected, kind):
    source = _source(tmp_path, kind, BodyPartExamined=body_part, Laterality=laterality)
    if body_part is None:
        for f in sorted(source.iterdir()) if source.is_dir() else [source]:
            ds = pydicom.dcmread(f)
            assert "BodyPartExamined" not in ds
    volume, context = read_dicom_volume(source)
    out = write_dicom_series(volume, context, tmp_path / "out", method="nc")
    for f in sorted(out.iterdir()):
        written = pydicom.dcmread(f)
        assert (written.Laterality if "Laterality" in written else "absent") == expected
        if body_part:
            assert written.BodyPartExamined == body_part


# ---- round trips ---------------------------------------------------------------------------------

GEOMETRIES = {
    "axial": {},
    "oblique": {"origin": (-40.0, 12.5, 300.0), "direction": rotation([1, 2, 0.5], 23)},
    "anisotropic-coronal": {"origin": (10.0, -5.0, 7.0), "direction": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])},
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_round_trip_keeps_values_and_geometry(tmp_path, name, kind):
    spacing = (4.0, 5.0, 6.5) if name == "anisotropic-coronal" else (6.8, 6.8, 6.8)
    volume = blob_volume(spacing=spacing, **GEOMETRIES[name])
    out = tmp_path / ("nm.dcm" if kind == "nm-multiframe" else "slices")
    write_dicom_series(volume, context(kind=kind), out, "round trip", uid_seed="t")
    back, ctx = read_dicom_volume(out)
    assert ctx.kind == kind
    assert back.shape == volume.shape
    np.testing.assert_allclose(back.affine_lps, volume.affine_lps, atol=1e-6)
    step = quantum(out)
    assert step < volume.array.max() / 60000
    assert np.abs(back.array - volume.array).max() <= step / 2 + 1e-4


def test_frames_against_the_normal_are_reversed_on_write(tmp_path):
    """A left-handed grid (z against row x col) is written with its frames reversed: same voxels in space."""
    direction = np.diag([1.0, 1.0, -1.0])
    volume = blob_volume(origin=(0.0, 0.0, 100.0), direction=direction)
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "flip", uid_seed="t")
    back, _ = read_dicom_volume(tmp_path / "nm.dcm")
    flipped = back.array[:, :, ::-1]
    assert np.abs(flipped - volume.array).max() <= quantum(tmp_path / "nm.dcm") / 2 + 1e-4
    # voxel (i, j, k) of the input sits where voxel (i, j, nz-1-k) of the output sits
    for index in ([0, 0, 0], [3, 4, 5], [15, 17, 19]):
        mirrored = [index[0], index[1], volume.shape[2] - 1 - index[2]]
        np.testing.assert_allclose(back.point_of(np.array(mirrored)), volume.point_of(np.array(index)), atol=1e-6)


def test_negative_values_survive_through_the_intercept(tmp_path):
    volume = blob_volume().with_array(blob_volume().array - 50)
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "neg", uid_seed="t")
    back, _ = read_dicom_volume(tmp_path / "nm.dcm")
    assert back.array.min() < 0
    assert np.abs(back.array - volume.array).max() <= quantum(tmp_path / "nm.dcm") / 2 + 1e-3


def test_derived_series_keeps_patient_study_frame_and_gets_new_uids(tmp_path):
    source = tmp_path / "src.dcm"
    write_dicom_series(blob_volume(), context(), source, "STRESS IRNC", derived=False, uid_seed="a")
    volume, ctx = read_dicom_volume(source)
    write_dicom_series(volume, ctx, tmp_path / "out", method="unet-gan3d", model_name="v0.1", uid_seed="b")
    a = pydicom.dcmread(source)
    b = pydicom.dcmread(next((tmp_path / "out").iterdir()))
    for keyword in ("PatientID", "PatientName", "PatientSex", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert a[keyword].value == b[keyword].value
    assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
    assert list(b.ImageType)[:1] == ["DERIVED"] and "ATTN" in list(b.CorrectedImage)
    assert b.SeriesDescription == "spectac AC unet-gan3d v0.1"
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    # deterministic UIDs with a seed, fresh ones without
    write_dicom_series(volume, ctx, tmp_path / "again", method="unet-gan3d", model_name="v0.1", uid_seed="b")
    assert pydicom.dcmread(next((tmp_path / "again").iterdir())).SOPInstanceUID == b.SOPInstanceUID
    write_dicom_series(volume, ctx, tmp_path / "fresh", method="unet-gan3d", model_name="v0.1")
    assert pydicom.dcmread(next((tmp_path / "fresh").iterdir())).SOPInstanceUID != b.SOPInstanceUID


def test_existing_output_folder_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SpectacError, match="already exists"):
        write_dicom_series(blob_volume(), context(), out, "x")
    assert (out / "keep.txt").read_text() == "mine"


# ---- dciodvfy ------------------------------------------------------------------------------------


DCIODVFY_KINDS = ["nm-original", "nm-derived", "slices", "nm-derived-heart", "slices-derived-heart",
                  "nc-copy-heart", "export-nc", "export-ac", "export-mu-nm", "export-mu-ct", "report-pdf"]


def _series_for_dciodvfy(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """Write one series of ``kind`` the way spectac writes it; (folder or file, IOD dciodvfy names)."""
    volume = blob_volume(direction=rotation([0, 1, 1], 10))
    if kind == "nm-original":
        write_dicom_series(volume, context(), tmp_path / "out", "STRESS IRNC", derived=False, uid_seed="v")
        return tmp_path / "out", "NMImage"
    if kind == "report-pdf":  # the study report as `spectac serve` sends it
        import matplotlib.pyplot as plt

        from spectac.evaluation.report import figure_bytes
        from spectac.io.dicom import write_encapsulated_pdf

        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        return write_encapsulated_pdf(figure_bytes(fig, "pdf"), context(), tmp_path / "doc.dcm", uid_seed="v"), \
            "EncapsulatedPDF"
    if kind.startswith("export-"):
        name = {"export-nc": "nc", "export-ac": "ac", "export-mu-nm": "mu", "export-mu-ct": "mu"}[kind]
        data = Dataset.open(tiny_dataset(tmp_path / "sim", patients=1))
        written = export_study_dicom(data, data.cases[0].case_id, tmp_path / "dcm",
                                     mu_as="ct" if kind == "export-mu-ct" else "nm")
        return written[name], "SCImage" if kind == "export-mu-ct" else "NMImage"
    # A derived series (a correction) of a source series as a clinic exports it: with "-heart" the
    # source names its body part (HEART), so dciodvfy checks the conditions that depend on it.
    slices = kind.startswith("slices")
    source = tmp_path / ("src" if slices else "src.dcm")
    write_dicom_series(volume, context(kind="slices" if slices else "nm-multiframe"), source, "NC", derived=False,
                       uid_seed="s")
    if kind.endswith("-heart"):
        for f in sorted(source.iterdir()) if slices else [source]:
            ds = pydicom.dcmread(f)
            ds.BodyPartExamined = "HEART"
            ds.save_as(f)
    volume, ctx = read_dicom_volume(source)
    if kind == "nc-copy-heart":  # what `spectac correct --method nc` writes
        write_dicom_series(volume, ctx, tmp_path / "out", method="nc", attenuation_corrected=False, uid_seed="v")
    else:
        write_dicom_series(volume, ctx, tmp_path / "out", method="unet-gan3d", model_name="v0.1", uid_seed="v")
    return tmp_path / "out", "SCImage" if slices else "NMImage"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (apt-get install dicom3tools)")
@pytest.mark.parametrize("kind", DCIODVFY_KINDS)
def test_dciodvfy_finds_no_errors(tmp_path, kind):
    """Every file of every kind of series spectac writes: not one dciodvfy line starting with Error."""
    out, iod = _series_for_dciodvfy(tmp_path, kind)
    files = sorted(out.rglob("*.dcm")) if out.is_dir() else [out]
    assert files
    for f in files:
        result = subprocess.run(["dciodvfy", str(f)], check=False, capture_output=True, text=True, timeout=60)
        lines = (result.stdout + result.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        warnings = sorted({line for line in lines if line.startswith("Warning")})
        print(f"dciodvfy {kind} {f.name}: {len(warnings)} distinct warnings", *warnings, sep="\n  ")
        assert iod in lines  # the IOD dciodvfy checked against
        assert not errors, f"{f}:\n" + "\n".join(errors)

