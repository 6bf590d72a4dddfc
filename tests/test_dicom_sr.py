"""The study report's scores as a DICOM Comprehensive SR: written in the source's study, read back to
the same values, valid for dciodvfy (dicom3tools), and refused when it is no spectac scores SR."""

from __future__ import annotations

import math
import shutil
import subprocess

import pydicom
import pytest
from dicom_helpers import blob_volume, context

from spectac.errors import SpectacError
from spectac.io.dicom import (
    COMPREHENSIVE_SR_STORAGE,
    SR_FILE,
    context_of_header,
    read_dicom_header,
    read_scores_sr,
    write_dicom_series,
    write_encapsulated_pdf,
    write_scores_sr,
)


def scores(state: str = "stress", ac_missing: bool = False, flags: tuple[str, ...] = ()) -> dict:
    """A scores dictionary as :func:`spectac.evaluation.study_report.report_scores` returns it."""
    name = "SSS" if state == "stress" else "SRS"
    ac = ({"tpd": None, "summed_score": None, "limits": f"ac/F/{state} (n=69)", "missing": "LV not found: too small"}
          if ac_missing else {"tpd": 3.0000000000000004, "summed_score": 2, "limits": f"ac/F/{state} (n=69)", "missing": ""})
    return {"state": state, "state_source": "SeriesDescription 'STRESS IRNC'", "sex": "F",
            "sex_source": "PatientSex of the DICOM", "summed_score_name": name,
            "images": {"NC": {"tpd": 12.345678901234567, "summed_score": 11, "limits": f"nc/F/{state} (n=70)",
                              "missing": ""}, "AC": ac},
            "flags": list(flags), "notes": ["Patient position: HFS", "NC LV fit confidence: high"],
            "method": "unet-gan3d", "model": "unet-gan3d-chang", "weights_sha256": "ab" * 32,
            "spectac_version": "0.1.0", "normal_limits": "Normal limits: family nc for NC and ac for AC; ..."}


@pytest.mark.parametrize("case", [{}, {"state": "rest", "ac_missing": True, "flags": ("Out of distribution: a", "b")}])
def test_the_scores_read_back_equal_what_was_written_in_the_sources_study(tmp_path, case):
    source = write_dicom_series(blob_volume(shape=(16, 16, 12)), context(), tmp_path / "nc.dcm", "STRESS IRNC",
                                derived=False, uid_seed="s")
    header = read_dicom_header(source)
    written = scores(**case)
    out = write_scores_sr(written, context_of_header(header), tmp_path / "sr")
    back, ds = read_scores_sr(out / SR_FILE)
    assert back.pop("not_for_diagnostic_use") == "Not for diagnostic use"
    assert back == written  # floats exact: FloatingPointValue beside the 16-character NumericValue
    assert math.isclose(float(ds.ContentSequence[5].ContentSequence[0].MeasuredValueSequence[0].NumericValue),
                        written["images"]["NC"]["tpd"], rel_tol=1e-9)
    src = header.header
    assert (ds.SOPClassUID, ds.Modality) == (COMPREHENSIVE_SR_STORAGE, "SR")
    assert (ds.StudyInstanceUID, ds.PatientID, ds.PatientSex) == (src.StudyInstanceUID, src.PatientID, src.PatientSex)
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    (evidence,) = ds.PertinentOtherEvidenceSequence
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    units = {item.ConceptNameCodeSequence[0].CodeValue: item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
             for item in ds.ContentSequence[5].ContentSequence if item.ValueType == "NUM"}
    summed = written["summed_score_name"]
    assert {k: (u.CodeValue, u.CodingSchemeDesignator) for k, u in units.items()} == {
        "TPD": ("%", "UCUM"), summed: ("{score}", "UCUM")}


def test_a_file_that_is_no_scores_sr_is_refused_in_one_line(tmp_path):
    pdf = write_encapsulated_pdf(b"%PDF-1.4\n%%EOF\n", context(), tmp_path / "doc.dcm")
    with pytest.raises(SpectacError, match="not a spectac scores SR"):
        read_scores_sr(pdf)
    with pytest.raises(SpectacError, match="summed score is SSS or SRS"):
        write_scores_sr({**scores(), "summed_score_name": "SDS"}, context(), tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
    write_scores_sr(scores(), context(), tmp_path / "sr.dcm")
    with pytest.raises(SpectacError, match="already exists"):
        write_scores_sr(scores(), context(), tmp_path / "sr.dcm")


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (apt-get install dicom3tools)")
@pytest.mark.parametrize("case", [{}, {"state": "rest", "ac_missing": True, "flags": ("Out of distribution: a",)}])
def test_dciodvfy_finds_no_errors_in_the_scores_sr(tmp_path, case):
    """Not one Error line, as ``spectac serve`` writes it (the context of the NC series' header, its
    instances referenced); the warnings left are the private coding scheme's (and the test
    context's missing study date and time and one-component name)."""
    source = write_dicom_series(blob_volume(shape=(16, 16, 12)), context(kind="slices"), tmp_path / "nc", "REST",
                                derived=False, uid_seed="s")
    header_context = context_of_header(read_dicom_header(source))
    assert header_context.source_instances
    out = write_scores_sr(scores(**case), header_context, tmp_path / "sr.dcm", uid_seed="v")
    result = subprocess.run(["dciodvfy", str(out)], check=False, capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    assert "ComprehensiveSR" in lines
    assert not [line for line in lines if line.startswith("Error")], "\n".join(lines)
    warnings = {line for line in lines if line.startswith("Warning")}
    print(*sorted(warnings), sep="\n")
    assert all("99SPECTAC" in w or "DICOMDIR" in w or "Person Name" in w for w in warnings), warnings
    ds = pydicom.dcmread(out)
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99SPECTAC"
    assert ds.PertinentOtherEvidenceSequence


def test_the_reading_script_of_the_serve_docs_reads_the_scores(tmp_path):
    """The pydicom-only block of docs/serve.md ("Reading it") gives the values written."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serve.md").read_text()
    block = doc.split("## The scores SR", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(block, "docs/serve.md", "exec"), namespace)  # noqa: S102 - the documented example
    written = scores(state="rest", ac_missing=True)
    out = write_scores_sr(written, context(), tmp_path / "sr.dcm")
    assert namespace["spectac_scores"](out) == pytest.approx(
        {("NC", "TPD"): written["images"]["NC"]["tpd"], ("NC", "SRS"): 11})
