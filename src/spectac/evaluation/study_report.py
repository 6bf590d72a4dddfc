"""The report of one corrected study (``spectac correct --report``, ``spectac serve``): what a reader
needs beside the images, on one page, as HTML and as PDF (the PDF goes to the PACS).

Content: NC beside the corrected image (AC) in short-axis, vertical and horizontal long-axis slices
(:mod:`spectac.evaluation.study_report_figures`), the polar maps of both with the AHA 17 segments,
TPD and the summed score (SSS at stress, SRS at rest) of each against the shipped normal limits of
its family (nc for NC, ac for the corrected image; :mod:`spectac.quant.normals`), sex and state,
naming the group used and where sex and state came from; the out-of-distribution flags of the
correction and the quality notes of the quantification (LV fit confidence, PatientPosition); the
method, model, weights SHA-256 and spectac version; and a "Not for diagnostic use" label.

Each image is quantified on its own, as :func:`spectac.quant.study.quantify` does (the LV found in
it, its family's limits), so the report's TPD is the API's. When the LV is not found in an image
its scores are missing and the report says why; the slices are then reoriented with the other
image's LV, or shown transaxial and coronal when neither has one. Nothing here raises for a study
the correction accepted: a report is always written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from spectac.evaluation.report import ReportSection, escape, figure_bytes, png_html, render_report
from spectac.quant.normals import NormalDatabase
from spectac.quant.study import StudyQuantification, patient_position, position_note, quantify
from spectac.volume import SpectacError, Volume

NOT_FOR_DIAGNOSTIC_USE = "Not for diagnostic use"
REPORT_TITLE = "spectac attenuation correction report"
STATES = ("stress", "rest")
SEXES = ("F", "M")


def spectac_version() -> str:
    try:
        from importlib.metadata import version

        return version("spectac")
    except Exception:  # noqa: BLE001 - a source tree without metadata
        return "unknown"


@dataclass(frozen=True)
class ImageResult:
    """One image of the report: its quantification, or why it has none."""

    label: str  # "NC" or "AC"
    family: str  # normal-limits family: "nc" or "ac"
    volume: Volume
    quant: StudyQuantification | None
    missing: str = ""  # why there are no scores
    group: tuple[str, str, str] | None = None  # the normal-limits group used
    n_normals: int = 0


@dataclass(frozen=True)
class StudyReport:
    """Everything the report shows (see the module docstring)."""

    images: tuple[ImageResult, ImageResult]
    sex: str
    sex_source: str
    state: str
    state_source: str
    facts: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # quality notes of the quantification
    created: str = ""
    slices: Any = None  # study_report_figures.slice_rows, when computed once for both figures


def choose_sex(given: str | None, patient_sex: str) -> tuple[str, str]:
    """(sex of the limits, where it came from): ``--sex``, else the DICOM PatientSex, else pooled."""
    if given is not None:
        return given, "given with --sex"
    if patient_sex in SEXES:
        return patient_sex, "PatientSex of the DICOM"
    return "all", "PatientSex missing or not F/M: the pooled (both sexes) limits were used"


def check_choices(sex: str | None, state: str | None) -> tuple[str | None, str | None]:
    """``--sex`` and ``--state`` checked (upper-case sex, lower-case state).

    Raises:
        SpectacError: one line naming the bad value.
    """
    if sex is not None and sex.upper() not in SEXES:
        raise SpectacError(f"--sex must be F or M, got {sex!r}")
    if state is not None and state.lower() not in STATES:
        raise SpectacError(f"--state must be stress or rest, got {state!r}")
    return (None if sex is None else sex.upper()), (None if state is None else state.lower())


def _quantify_image(label: str, family: str, volume: Volume, normals: NormalDatabase, sex: str,
                    state: str) -> ImageResult:
    try:
        group = normals.group_key(family, sex, state)
        limits = normals.limits(family, sex, state)
    except SpectacError as exc:
        return ImageResult(label, family, volume, None, f"no normal limits: {exc}")
    try:
        q = quantify(volume, limits)
    except SpectacError as exc:
        return ImageResult(label, family, volume, None, f"LV not found: {exc}", group, limits.n)
    except Exception as exc:  # noqa: BLE001 - an image the quantification cannot take still gets its report
        return ImageResult(label, family, volume, None, f"quantification failed: {exc!r}", group, limits.n)
    if not np.isfinite(q.scores.tpd):
        return ImageResult(label, family, volume, None, "the polar map could not be scored", group, limits.n)
    return ImageResult(label, family, volume, q, "", group, limits.n)


def build_study_report(nc: Volume, corrected: Volume, facts: dict[str, Any], sex: str | None = None,
                       state: str | None = None, normals: NormalDatabase | None = None,
                       state_source: str | None = None) -> StudyReport:
    """Quantify NC and the corrected image and gather what the report shows.

    Args:
        nc, corrected: the input and the corrected image (same grid).
        facts: what the correction knows: ``method``, ``model``, ``weights``, ``weights_sha256``,
            ``ood_flags``, ``forced``, ``input``, ``patient_sex``, ``series`` (the source series'
            attributes in DICOM JSON, for PatientPosition), ``patient`` (name, id, study date ...),
            ``qc`` (the indirect route's consistency verdict, :func:`qc_text`: a flag when
            flagged, else a note).
        sex: "F" or "M" to override the DICOM PatientSex (None: from the DICOM, else pooled).
        state: "stress" or "rest" (None: stress, and the report says it was assumed).
        normals: the normal database (None: the shipped one).
        state_source: where ``state`` came from, or why it is unknown when None (default: the
            ``--state`` option of ``spectac correct``; ``spectac serve`` names the series' tags).
    """
    sex, state = check_choices(sex, state)
    chosen_sex, sex_source = choose_sex(sex, str(facts.get("patient_sex") or "").upper())
    chosen_state, state_source = (state, state_source or "given with --state") if state else (
        "stress", state_source or "not given: stress assumed (--state rest for a rest study)")
    normals = normals or NormalDatabase.load()
    images = (_quantify_image("NC", "nc", nc, normals, chosen_sex, chosen_state),
              _quantify_image("AC", "ac", corrected, normals, chosen_sex, chosen_state))
    notes = []
    series = facts.get("series")
    notes.append("Patient position: " + (position_note(patient_position(series)) if series is not None else
                                         "not DICOM, unknown: assumed supine (HFS), as the normal limits are"))
    for image in images:
        if image.quant is not None:
            notes.append(f"{image.label} LV fit confidence: {image.quant.geometry.confidence}")
    qc = facts.get("qc")
    if qc and not qc.get("flagged"):  # a flagged verdict is among the flags (flag_lines)
        notes.append(qc_text(qc))
    return StudyReport(images, chosen_sex, sex_source, chosen_state, state_source, dict(facts), notes,
                       datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def summed_score_name(state: str) -> str:
    return "SSS" if state == "stress" else "SRS"


def score_rows(report: StudyReport) -> list[dict[str, str]]:
    """One row per image: TPD, summed score, limits used, or why they are missing (HTML and PDF)."""
    rows = []
    for image in report.images:
        limits = "-" if image.group is None else f"{'/'.join(image.group)} (n={image.n_normals})"
        if image.quant is None:
            rows.append({"image": image.label, "tpd": "-", "summed": "-", "limits": limits, "note": image.missing})
        else:
            rows.append({"image": image.label, "tpd": f"{image.quant.scores.tpd:.1f}",
                         "summed": str(image.quant.scores.summed_score), "limits": limits, "note": ""})
    return rows


def model_lines(report: StudyReport) -> list[tuple[str, str]]:
    """(label, value) of the method, model, weights and versions."""
    f = report.facts
    weights = f.get("weights")
    return [
        ("Method", str(f.get("method", ""))),
        ("Model", str(f.get("model") or f.get("method", ""))),
        ("Weights", str(weights) if weights else "none (the method has no trained weights)"),
        ("Weights SHA-256", str(f.get("weights_sha256") or "-")),
        ("spectac version", spectac_version()),
        ("Input", str(f.get("input", ""))),
        ("Created", report.created),
    ]


def qc_text(qc: dict[str, Any]) -> str:
    """The indirect route's consistency QC verdict (``facts["qc"]``: the record and console line of
    :class:`spectac.reconstruction.consistency.QcVerdict`) as one report line."""
    return "Consistency QC (indirect route): " + str(qc["line"]).removeprefix("spectac QC: ")


def flag_lines(report: StudyReport) -> list[str]:
    """The correction's out-of-distribution flags, a flagged consistency QC verdict and forced note."""
    lines = [f"Out of distribution: {flag}" for flag in report.facts.get("ood_flags") or []]
    qc = report.facts.get("qc")
    if qc and qc.get("flagged"):
        lines.append(qc_text(qc))
    spread = report.facts.get("uncertainty")
    if spread:
        from spectac.correction.uncertainty import uncertainty_text

        lines.append(f"Network disagreement: {uncertainty_text(spread)}")
    if report.facts.get("forced"):
        lines.append(f"Forced: {report.facts['forced']}")
    return lines


def patient_line(report: StudyReport) -> str:
    """Who and what study (DICOM), or the input file (NIfTI)."""
    p = report.facts.get("patient") or {}
    parts = [f"{k} {p[k]}" for k in ("Patient", "ID", "Study date", "Series") if p.get(k)]
    return "; ".join(parts) if parts else f"Input {report.facts.get('input', '')}"


def limits_line(report: StudyReport) -> str:
    return (f"Normal limits: family nc for NC and ac for AC; sex {report.sex} ({report.sex_source}); "
            f"state {report.state} ({report.state_source}).")


def report_scores(report: StudyReport) -> dict[str, Any]:
    """The report's values as plain data (what the page shows, unrounded): the DICOM SR of
    :func:`spectac.io.dicom.write_scores_sr` holds exactly these.

    Keys: ``state``, ``state_source``, ``sex``, ``sex_source``, ``summed_score_name`` (SSS or
    SRS), ``images`` ({"NC"|"AC": {"tpd" (percent of the LV) or None, "summed_score" or None,
    "limits" (the normal-limits group and n, or ""), "missing" (why there are no scores, or "")}}),
    ``flags`` (out-of-distribution and forced notes), ``notes`` (quality notes), ``method``,
    ``model``, ``weights_sha256`` (or ""), ``spectac_version``, ``normal_limits`` (the limits line).
    """
    images = {}
    for image in report.images:
        limits = "" if image.group is None else f"{'/'.join(image.group)} (n={image.n_normals})"
        scored = image.quant is not None
        images[image.label] = {"tpd": float(image.quant.scores.tpd) if scored else None,
                               "summed_score": int(image.quant.scores.summed_score) if scored else None,
                               "limits": limits, "missing": image.missing}
    f = report.facts
    return {"state": report.state, "state_source": report.state_source, "sex": report.sex,
            "sex_source": report.sex_source, "summed_score_name": summed_score_name(report.state),
            "images": images, "flags": flag_lines(report), "notes": list(report.notes),
            "method": str(f.get("method", "")), "model": str(f.get("model") or f.get("method", "")),
            "weights_sha256": str(f.get("weights_sha256") or ""), "spectac_version": spectac_version(),
            "normal_limits": limits_line(report)}


def _table(header: list[str] | None, rows: list[list[str]], ids: list[list[str]] | None = None,
           css: str = "table") -> str:
    head = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            cell_id = ids[r][c] if ids else ""
            cells.append(f'<td id="{cell_id}">{escape(value)}</td>' if cell_id else f"<td>{escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{css}">{head}<tbody>{"".join(body)}</tbody></table>'


_BANNER = ('<p style="border:3px solid #c00;color:#c00;font-weight:bold;font-size:1.3em;padding:.3em .6em;'
           'display:inline-block">{}</p>')


def report_html(report: StudyReport, images_png: bytes) -> str:
    """The report as one self-contained HTML page (the figure embedded as PNG, the tables as HTML)."""
    name = summed_score_name(report.state)
    rows = score_rows(report)
    scores = _table(["image", "TPD (%)", name, "normal limits (family/sex/state)", "note"],
                    [[r["image"], r["tpd"], r["summed"], r["limits"], r["note"]] for r in rows],
                    [["", f"tpd-{r['image'].lower()}", f"{name.lower()}-{r['image'].lower()}", "", ""] for r in rows])
    quality = flag_lines(report) + report.notes
    sections = [
        ReportSection("Study", _BANNER.format(escape(NOT_FOR_DIAGNOSTIC_USE.upper())) +
                      f"<p>{escape(patient_line(report))}</p>", order=0),
        ReportSection("NC and AC", png_html(images_png, alt="NC and AC slices and polar maps"), order=10),
        ReportSection("Scores", scores + f"<p>{escape(limits_line(report))}</p>", order=20),
        ReportSection("Flags and quality", "<ul>" + "".join(f"<li>{escape(q)}</li>" for q in quality) + "</ul>"
                      if quality else "<p>none</p>", order=30),
        ReportSection("Model", "<style>table.kv td { text-align: left; }</style>" +
                      _table(None, [list(pair) for pair in model_lines(report)],
                             [["", "weights-sha256" if label == "Weights SHA-256" else ""]
                              for label, _ in model_lines(report)], css="table kv"), order=40),
    ]
    return render_report(f"{REPORT_TITLE}: {NOT_FOR_DIAGNOSTIC_USE}", sections, meta=f"spectac {spectac_version()};")


class StudyReporter:
    """The report hook of :func:`spectac.correction.files.correct_path`: called with the NC image,
    the corrected image and the correction's facts, returns the report as (HTML text, PDF bytes).

    Sex and state are checked and the normal database is loaded here, before any correction runs.
    ``state_source`` says where the state came from (or why it is unknown), for the report's
    limits line. With neither given, a DICOM input's own Series Description, Protocol Name, Image
    ID or Image Type names the state when it can (``facts["series_state"]``,
    :func:`spectac.io.dicom.series_state`). After a call, :attr:`report` is what the pages show (:func:`report_scores` turns
    it into the values ``spectac serve`` sends as a DICOM SR).
    """

    def __init__(self, sex: str | None = None, state: str | None = None, normals: NormalDatabase | None = None,
                 state_source: str | None = None):
        self.sex, self.state = check_choices(sex, state)
        self.state_source = state_source
        self.normals = normals or NormalDatabase.load()
        self.report: StudyReport | None = None

    def build(self, nc: Volume, corrected: Volume, facts: dict[str, Any]) -> StudyReport:
        """Quantify both images and gather what the pages show (kept as :attr:`report`)."""
        from spectac.evaluation.study_report_figures import slice_rows

        state, source = self.state, self.state_source
        if state is None and source is None and facts.get("series_state"):  # a DICOM input's own words
            state, why = facts["series_state"]
            source = why if state else f"not given, and {why}: stress assumed (--state rest for a rest study)"
        report = build_study_report(nc, corrected, facts, self.sex, state, self.normals, source)
        report = dataclasses.replace(report, slices=slice_rows(report))
        self.report = report
        return report

    def __call__(self, nc: Volume, corrected: Volume, facts: dict[str, Any]) -> tuple[str, bytes]:
        from spectac.evaluation.study_report_figures import images_figure

        report = self.build(nc, corrected, facts)
        html = report_html(report, figure_bytes(images_figure(report, summed_score_name(report.state)), "png", dpi=110))
        return html, report_pdf(report)

    def pdf(self, nc: Volume, corrected: Volume, facts: dict[str, Any]) -> bytes:
        """The PDF page alone (``spectac serve`` sends only the PDF: the HTML page, a figure of its
        own, is not drawn)."""
        return report_pdf(self.build(nc, corrected, facts))


def report_pdf(report: StudyReport) -> bytes:
    """The report as a one-page PDF (A4 landscape): the page figure with the scores table and the
    flags, notes and model lines under it."""
    from spectac.evaluation.study_report_figures import page_figure

    name = summed_score_name(report.state)
    rows = score_rows(report)
    table = [["image", "TPD (%)", name, "normal limits (family/sex/state, n)"]]
    table += [[r["image"], r["tpd"], r["summed"], r["limits"]] for r in rows]
    lines = [limits_line(report)]
    lines += [f"{r['image']}: scores missing, {r['note']}" for r in rows if r["note"]]
    lines += flag_lines(report) + report.notes + [""]
    lines += [f"{label}: {value}" for label, value in model_lines(report)]
    page = page_figure(report, name, (REPORT_TITLE, patient_line(report)), table, lines, NOT_FOR_DIAGNOSTIC_USE)
    return figure_bytes(page, "pdf")
