"""What the reader checks so the writer can write back, and what the writer puts in a new series."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dicom import new_context, read_dicom_volume, write_dicom_series
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
