"""The self-contained HTML report of a run (RUN/report.html): a list of sections.

Any stage may contribute: build :class:`ReportSection` objects (``order`` sorts them: the summary
uses 0-99, clinical quantification 200-299, detection 300-399, the image metrics 400-499, so a
reader meets the answer first and the detail after) and hand them to
:func:`write_report`, or return them from an evaluator registered with
:data:`spectac.evaluation.harness.EVALUATORS`. Figures are embedded as base64 PNG, so the
file can be mailed on its own.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectac.io.atomic import write_text_atomic
from spectac.io.run import RunFolder


@dataclass(frozen=True)
class ReportSection:
    """One section of the report. ``body_html`` is trusted HTML (use the helpers below)."""

    title: str
    body_html: str
    order: int = 100


def escape(text: Any) -> str:
    return html.escape(str(text))


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def png_html(png: bytes, alt: str, width: str = "100%") -> str:
    """An <img> element holding the PNG bytes inline."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" style="max-width:{width}" src="data:image/png;base64,{data}">'


def figure_png(figure: Any, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    return figure_bytes(figure, "png", dpi)


def figure_bytes(figure: Any, format: str = "png", dpi: int = 110) -> bytes:
    """A matplotlib figure rendered in memory as ``format`` ("png", "pdf") and closed. A PNG is
    cropped to what is drawn; a PDF keeps the figure's size (a page stays a page)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format=format, dpi=dpi, bbox_inches="tight" if format == "png" else None)
    plt.close(figure)
    return buffer.getvalue()


def table_html(frame: Any, float_format: str = "{:.4g}") -> str:
    """A pandas DataFrame as an HTML table (index dropped)."""
    return frame.to_html(index=False, border=0, classes="table", float_format=float_format.format, escape=True)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table.table { border-collapse: collapse; font-size: .9em; margin: .5em 0 1em; }
table.table th, table.table td { padding: .25em .6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
table.table th:first-child, table.table td:first-child { text-align: left; }
.meta { color: #666; font-size: .85em; }
"""


def render_report(title: str, sections: list[ReportSection], meta: str = "") -> str:
    body = "\n".join(
        f'<section id="s{i}"><h2>{escape(s.title)}</h2>\n{s.body_html}\n</section>'
        for i, s in enumerate(sorted(sections, key=lambda s: s.order))
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{escape(title)}</h1>\n<p class=\"meta\">{escape(meta)} generated {stamp}</p>\n{body}\n</body></html>\n"
    )


def write_report(run: str | Path, sections: list[ReportSection], title: str = "spectac report", meta: str = "") -> Path:
    """Write RUN/report.html (atomically) from the sections, sorted by ``order``."""
    path = RunFolder(run).report_html
    write_text_atomic(path, render_report(title, sections, meta))
    return path
