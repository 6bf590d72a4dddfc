"""`spectac correct --report`: the HTML and PDF report beside the output hold the scores the
quantify API gives for the same images, the weights' own SHA-256 and the "Not for diagnostic use"
label; an image without an LV still gets a report saying why; a bad output location writes nothing;
and the report survives the trip through a DICOM Encapsulated PDF instance byte for byte."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import context
from quant_shapes import draw_shell, shell_geometry
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.deep import shipped_model_dir
from spectac.evaluation.report import figure_bytes
from spectac.io.dicom import (
    ENCAPSULATED_PDF_STORAGE,
    read_dicom_volume,
    read_encapsulated_pdf,
    write_dicom_series,
    write_encapsulated_pdf,
)
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.report_files import report_paths, report_stem
from spectac.quant.normals import NormalDatabase
from spectac.quant.study import quantify
from spectac.volume import SpectacError, Volume

runner = CliRunner()


def correct(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["correct", *map(str, args)])
    return result.exit_code, " ".join(result.output.split())


def cell(html: str, cell_id: str) -> str:
    match = re.search(rf'<td id="{cell_id}">([^<]*)</td>', html)
    assert match, f"no cell {cell_id} in the report"
    return match.group(1)


NC = {"derived": False, "attenuation_corrected": False}


def pdf_pages(pdf: bytes) -> int:
    """Page objects of a PDF (/Type /Page, not /Pages): matplotlib writes the object
    dictionaries uncompressed."""
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf))


@pytest.fixture(scope="module")
def heart_nifti(tmp_path_factory) -> Path:
    """A small NC-like study: an LV shell in a torso, blurred and noisy, in counts."""
    volume = draw_shell(shell_geometry((1, -1, -1), (15, -10, 0)), shape=(40, 40, 40), torso=True, seed=3)
    path = tmp_path_factory.mktemp("heart") / "nc.nii.gz"
    write_nifti(volume.with_array(volume.array * 300.0), path)
    return path


def test_report_paths_sit_beside_the_output_named_after_its_stem(tmp_path):
    assert report_stem(tmp_path / "study_ac.nii.gz") == "study_ac"
    assert report_stem(tmp_path / "ac.dcm") == "ac"
    assert report_stem(tmp_path / "AC_SERIES") == "AC_SERIES"
    html, pdf = report_paths(tmp_path / "out" / "a.b.nii")
    assert (html, pdf) == (tmp_path / "out" / "a.b.report.html", tmp_path / "out" / "a.b.report.pdf")


def test_the_report_holds_the_scores_of_the_quantify_api_the_weights_hash_and_the_label(tmp_path, heart_nifti):
    out = tmp_path / "ac.nii.gz"
    code, message = correct(heart_nifti, "-o", out, "--report", "--sex", "F", "--state", "rest")
    assert code == 0, message
    html_path, pdf_path = tmp_path / "ac.report.html", tmp_path / "ac.report.pdf"
    assert str(html_path) in message and str(pdf_path) in message
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1
    html = html_path.read_text(encoding="utf-8")
    assert "Not for diagnostic use" in html
    normals = NormalDatabase.load()
    for image, family, volume in (("ac", "ac", read_nifti(out)), ("nc", "nc", read_nifti(heart_nifti))):
        scores = quantify(volume, normals.limits(family, "F", "rest")).scores
        assert float(cell(html, f"tpd-{image}")) == pytest.approx(scores.tpd, abs=0.051), image
        assert int(cell(html, f"srs-{image}")) == scores.summed_score, image
    assert "sex F (given with --sex)" in html and "state rest (given with --state)" in html
    weights = shipped_model_dir("unet-gan3d-chang") / "best.pt"
    assert cell(html, "weights-sha256") == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_without_an_lv_the_report_is_written_and_says_why(tmp_path):
    g = (np.indices((32, 32, 32)) - 15.5) * 6.8
    body = 100.0 * ((g[0] / 120) ** 2 + (g[1] / 90) ** 2 < 1) + np.random.default_rng(0).random((32, 32, 32))
    source = write_nifti(Volume.centred(body.astype(np.float32), 6.8), tmp_path / "body.nii.gz")
    code, message = correct(source, "-o", tmp_path / "ac.nii.gz", "--method", "chang", "--report")
    assert code == 0, message
    html = (tmp_path / "ac.report.html").read_text(encoding="utf-8")
    assert "LV not found" in html and cell(html, "tpd-ac") == "-" and cell(html, "sss-ac") == "-"
    assert "state stress (not given: stress assumed" in html and "pooled" in html
    assert "none (the method has no trained weights)" in html
    pdf = (tmp_path / "ac.report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1


def test_a_bad_output_location_or_a_taken_report_name_writes_nothing(tmp_path, heart_nifti):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    code, message = correct(heart_nifti, "-o", blocker / "ac.nii.gz", "--method", "chang", "--report")
    assert code == 2 and "cannot write" in message, message
    taken = tmp_path / "ac.report.pdf"
    taken.write_bytes(b"someone else's")
    code, message = correct(heart_nifti, "-o", tmp_path / "ac.nii.gz", "--method", "chang", "--report")
    assert code == 2 and str(taken) in message and "already exists" in message, message
    for args in (("--report", "--sex", "X"), ("--report", "--state", "exercise"), ("--sex", "F")):
        code, message = correct(heart_nifti, "-o", tmp_path / "ac.nii.gz", "--method", "chang", *args)
        assert code == 2, (args, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ac.report.pdf", "file"]
    assert taken.read_bytes() == b"someone else's"


@pytest.mark.parametrize("odd", [False, True])
def test_an_encapsulated_pdf_reads_back_byte_for_byte_in_the_same_study(tmp_path, odd):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    pdf = figure_bytes(fig, "pdf")
    pdf = pdf + b"\n" * ((len(pdf) % 2 == 0) == odd)  # both parities: the padding is undone
    assert len(pdf) % 2 == odd
    source = context()
    out = write_encapsulated_pdf(pdf, source, tmp_path / "report.dcm", uid_seed="t")
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE and ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert (ds.Modality, ds.MIMETypeOfEncapsulatedDocument) == ("DOC", "application/pdf")
    assert ds.StudyInstanceUID == source.study_uid and ds.PatientID == source.patient_id and ds.PatientSex == "F"
    assert len(ds.EncapsulatedDocument) % 2 == 0 and ds.EncapsulatedDocumentLength == len(pdf)
    data, header = read_encapsulated_pdf(out)
    assert data == pdf and header.SOPInstanceUID == ds.SOPInstanceUID
    folder = write_encapsulated_pdf(pdf, source, tmp_path / "folder")
    assert read_encapsulated_pdf(folder / "DOC000001.dcm")[0] == pdf
    with pytest.raises(SpectacError, match="already exists"):
        write_encapsulated_pdf(pdf, source, tmp_path / "report.dcm")
    with pytest.raises(SpectacError, match="not a PDF"):
        write_encapsulated_pdf(b"<html>", source, tmp_path / "other.dcm")


@pytest.mark.parametrize(("description", "state", "source"), [
    ("REST IRNC", "rest", "SeriesDescription 'REST IRNC'"),
    ("IRNC", "stress", "stress assumed"),
])
def test_a_dicom_series_names_its_state_for_the_report(tmp_path, heart_nifti, description, state, source):
    """Without --state, a DICOM input's Series Description sets the report's normal limits: a rest
    series is scored with the rest limits (SRS), one naming no state is assumed stress and says so."""
    series = tmp_path / "nc"
    write_dicom_series(read_nifti(heart_nifti), context(kind="nm-multiframe"), series, description,
                       uid_seed=str(series), **NC)
    code, message = correct(series, "-o", tmp_path / "ac", "--method", "chang", "--report", "--sex", "F")
    assert code == 0, message
    html = (tmp_path / "ac.report.html").read_text(encoding="utf-8")
    assert f"state {state} (" in html and source in html.replace("&#x27;", "'")
    summed = "srs" if state == "rest" else "sss"
    normals = NormalDatabase.load()
    scores = quantify(read_dicom_volume(series)[0], normals.limits("nc", "F", state)).scores
    assert float(cell(html, "tpd-nc")) == pytest.approx(scores.tpd, abs=0.051)
    assert int(cell(html, f"{summed}-nc")) == scores.summed_score
