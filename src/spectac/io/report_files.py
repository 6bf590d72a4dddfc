"""The files of a study report (``spectac correct --report``): ``<stem>.report.html`` and
``<stem>.report.pdf`` beside the corrected output, where ``<stem>`` is the output's name without
``.nii.gz``, ``.nii`` or ``.dcm`` (a folder output keeps its whole name).

Both are checked before the correction runs (nothing is written when either is taken, or lies in
or around the input) and each appears whole (:mod:`spectac.io.atomic`).
"""

from __future__ import annotations

from pathlib import Path

from spectac.io.atomic import atomic_path
from spectac.io.paths import check_output_outside
from spectac.volume import SpectacError

HTML_SUFFIX = ".report.html"
PDF_SUFFIX = ".report.pdf"
_OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".dcm")


def report_stem(output: str | Path) -> str:
    """The output's name without its image suffix (``ac.nii.gz`` -> ``ac``, folder ``AC`` -> ``AC``)."""
    name = Path(output).name
    for suffix in _OUTPUT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def report_paths(output: str | Path) -> tuple[Path, Path]:
    """(HTML, PDF) paths of the report of ``output``, in the output's folder."""
    output = Path(output)
    stem = report_stem(output)
    return output.with_name(stem + HTML_SUFFIX), output.with_name(stem + PDF_SUFFIX)


def check_report_paths(output: str | Path, *inputs: str | Path | None, overwrite: bool = False,
                       overwritable: bool = True) -> tuple[Path, Path]:
    """The report paths of ``output``, refused when taken (unless ``overwrite`` and a file) or in or
    around an input; ``overwritable`` False: the command has no ``--overwrite`` to suggest.

    Raises:
        SpectacError: one line naming the report file.
    """
    paths = report_paths(output)
    for path in paths:
        check_output_outside(path, *inputs)
        if path.is_dir() or (path.exists() and not overwrite):
            raise SpectacError(f"{path}: the report file already exists; choose another -o"
                               + ("" if path.is_dir() or not overwritable else " or pass --overwrite"))
    return paths


def write_report_files(output: str | Path, html: str, pdf: bytes, *, replace: bool = False) -> tuple[Path, Path]:
    """Write the HTML and PDF report of ``output`` beside it, each atomically; returns their paths."""
    html_path, pdf_path = report_paths(output)
    with atomic_path(html_path, suffix=".html", replace=replace) as tmp:
        tmp.write_text(html, encoding="utf-8")
    with atomic_path(pdf_path, suffix=".pdf", replace=replace) as tmp:
        tmp.write_bytes(pdf)
    return html_path, pdf_path


def read_report_pdf(path: str | Path) -> bytes:
    """A report PDF's bytes (to encapsulate it in DICOM).

    Raises:
        SpectacError: a missing file or one that is no PDF.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpectacError(f"{path}: cannot read the report ({exc.strerror})") from None
    if not data.startswith(b"%PDF"):
        raise SpectacError(f"{path}: not a PDF file")
    return data
