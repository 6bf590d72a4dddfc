"""``spectac correct FOLDER -o OUTDIR`` over an archive folder: every series, one at a time.

Each series found by :func:`spectac.io.batch.list_batch` is handed to the single-study path,
:func:`spectac.correction.files.correct_path`, with the method prepared once; so a batch output is
what ``spectac correct`` gives for that series alone, and a series is refused for the same reasons
and with the same one line (already corrected, a mu-map or CT, a grid no SPECT camera makes,
values no reconstruction has, ...).

One series never stops the batch: each ends as one row of ``OUTDIR/summary.csv``, with status

- ``corrected``: written;
- ``flagged``: written, but the study is unlike the training data (the reasons are the row's
  ``reason``; the output carries the flags as the single-study output does);
- ``refused``: nothing written (the row's output is empty), the reason is the single-study error
  line;
- ``skipped``: its output is already in OUTDIR, from an earlier run. Outputs are written
  atomically, so one that exists is whole: a rerun after an interruption corrects only the rest;
- ``failed``: nothing written, an unexpected error (a bug, out of memory), with its message.

Bad input for the batch as a whole (an output folder inside the input, nothing to correct, an
unknown method or unreadable weights) raises :class:`~spectac.errors.SpectacError` before any
series is read.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from spectac.correction import DEFAULT_METHOD
from spectac.correction.files import _weights_option, correct_path, prepare_method
from spectac.errors import SpectacError
from spectac.io.batch import SUMMARY_NAME, BatchListing, list_batch, write_batch_summary
from spectac.io.onnx_model import threads_beside_check
from spectac.io.paths import check_output_outside
from spectac.progress import track

#: Every status of a row, in the order the counts are printed.
STATUSES = ("corrected", "flagged", "refused", "skipped", "failed")


#: correct_path's options that act per series (the rest prepare the method once)
PER_SERIES = ("force", "arc", "strict", "report", "uncertainty")


def correct_batch(
    folder: str | Path,
    out: str | Path,
    method: str = DEFAULT_METHOD,
    weights: str | Path | None = None,
    *,
    uid_seed: str | None = None,
    listing: BatchListing | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Correct every series under ``folder`` into ``out`` (see the module docstring).

    Args:
        folder: the archive folder.
        out: the output folder (created; an existing one is resumed).
        method, weights, **options: as :func:`correct_path` takes them, for every series:
            ``force``, ``arc``, ``strict``, ``report`` and ``uncertainty`` go to each series' correction, the rest
            (``device``, ``amp``, method options) prepare the method once.
        uid_seed: deterministic DICOM UIDs (tests): each series' seed is this and its output name.
        listing: :func:`list_batch`'s result when the caller has it.

    Returns:
        {"rows" (one per series: input, output, status, reason, method, disagreement: the
        network's disagreement with its partner, :mod:`spectac.correction.uncertainty`, or empty), "counts" (status ->
        number), "summary" (the path of summary.csv), "ignored" (entries left out: not DICOM
        nor NIfTI, links; each {"path", "reason"})}.

    Raises:
        SpectacError: ``out`` inside, equal to or around ``folder``, or an existing file; no
            series found; an unknown method or option, unreadable weights.
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise SpectacError(f"{folder}: no such folder")
    check_output_outside(out, folder)
    if out.exists() and not out.is_dir():
        raise SpectacError(f"{out}: exists and is no folder; give a folder for the outputs of the batch")
    listing = listing if listing is not None else list_batch(folder)
    if not listing.items:
        raise SpectacError(f"{folder}: no DICOM series or NIfTI file found; nothing to correct")
    per_series = {key: options.pop(key) for key in PER_SERIES if key in options}
    options = {**options, **_weights_option(method, weights)}
    # once for all series; bad options fail here. As in correct_path, a network on onnxruntime
    # leaves one core to the out-of-distribution check that runs beside it
    threads = None if per_series.get("strict") else threads_beside_check()
    prepared = prepare_method(method, threads=threads, **options)

    rows: list[dict[str, str]] = []
    taken: dict[str, str] = {}
    for item in track(listing.items, f"correct ({method})", total=len(listing.items)):
        output = out / item.output_name
        row = {"input": str(item.source), "output": str(output), "method": method}
        first = taken.get(item.output_name)
        taken.setdefault(item.output_name, str(item.source))
        if first is not None:  # two names that differ only in characters a file name cannot hold
            row.update(status="refused", reason=f"{item.source}: its output name {item.output_name} is also "
                       f"that of {first}; rename one of them")
        elif output.exists():
            row.update(status="skipped", reason="output already there (an earlier run)")
        else:
            row.update(_correct_one(item.source, output, method, weights, item.files, prepared, **per_series,
                                    uid_seed=None if uid_seed is None else f"{uid_seed}/{item.output_name}"))
        if row["status"] in ("refused", "failed"):
            row["output"] = ""  # nothing written
        rows.append(row)
    summary = write_batch_summary(out / SUMMARY_NAME, rows)
    counts = Counter(row["status"] for row in rows)
    return {"rows": rows, "counts": {status: counts.get(status, 0) for status in STATUSES},
            "summary": summary, "ignored": listing.ignored}


def _correct_one(source: Path, output: Path, method: str, weights: str | Path | None, files: list[Path] | None,
                 prepared: Any, **kwargs: Any) -> dict[str, str]:
    """The status and reason of one series, corrected by the single-study path."""
    try:
        result = correct_path(source, output, method, weights, prepared=prepared, files=files, **kwargs)
    except SpectacError as exc:
        return {"status": "refused", "reason": " ".join(str(exc).split())}
    except Exception as exc:  # noqa: BLE001 - one series' bug or memory error must not stop the batch
        return {"status": "failed", "reason": f"{source}: unexpected error ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())})"}
    notes = list(result["ood_flags"])
    if result["forced"]:
        notes.insert(0, f"forced: {result['forced']}")
    spread = result.get("uncertainty")
    return {"status": "flagged" if result["ood_flags"] else "corrected", "reason": "; ".join(notes),
            "disagreement": "" if not spread else f"{spread['disagreement']:.4f}"}
