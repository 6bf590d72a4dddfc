"""``spectac correct``: correct one NC study from a file and write the result as the same kind.

A DICOM file or folder in gives a new derived DICOM series out (same patient, study and frame of
reference; see :mod:`spectac.io.dicom`), or a NIfTI file when the output is named ``.nii.gz``; a
NIfTI file in gives a NIfTI file out. The method is any registered in
:mod:`spectac.correction.run` (nc, chang, chang-iterative, the networks).

Clinical volumes come in any orientation (head-first or feet-first, frames head to feet, a NIfTI
x axis stored reversed); :func:`spectac.correction.run.apply_method` permutes and flips them
(never resamples) to the [x, y, z] LPS order the methods are made for and puts the result back on
the input grid.

Nothing is half-written and nothing is overwritten unless asked: an existing output is refused
(``overwrite=True`` replaces an existing file atomically; an existing folder is always refused).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from spectac.acquisition.protocol import Protocol
from spectac.correction import DEFAULT_METHOD
from spectac.correction.checks import check_plausible_geometry, check_plausible_values
from spectac.correction.methods import Method, MethodContext, get_method
from spectac.correction.ood import ood_comments, ood_flags, training_reference, write_ood_sidecar
from spectac.correction.run import apply_method, resolve_options
from spectac.correction.uncertainty import (
    UNCERTAINTY_PREFIX,
    compare_with_partner,
    partner_correction,
    uncertainty_text,
)
from spectac.io.dicom import (
    FORCED_NOTE,
    NC_COPY_DESCRIPTION,
    correction_refusal,
    is_dicom_path,
    read_dicom_header,
    read_dicom_volume,
    series_state,
    write_dicom_series,
)
from spectac.io.nifti import (
    NIFTI_FORCED_NOTE,
    nifti_description,
    nifti_refusal,
    read_nifti,
    read_nifti_header,
    write_nifti,
)
from spectac.io.onnx_model import threads_beside_check
from spectac.io.paths import check_output_outside, sha256_file
from spectac.io.report_files import check_report_paths, write_report_files
from spectac.volume import SpectacError, Volume

#: Makes a study report: called with the NC image, the corrected image and the correction's facts
#: (:func:`report_facts`), returns (HTML text, PDF bytes); e.g.
#: :class:`spectac.evaluation.study_report.StudyReporter`.
ReportBuilder = Callable[[Volume, Volume, dict[str, Any]], tuple[str, bytes]]

#: What a derived DICOM series copies from its source and cannot make up, checked in the header
#: before any pixel is read (the writer, :func:`spectac.io.dicom.write_dicom_series`, refuses a
#: source without them only after the correction has run). Keyword: name in messages.
WRITER_NEEDS = {"StudyInstanceUID": "Study Instance UID"}


def check_writable_source(header: Any, name: str) -> None:
    """Refuse a DICOM source a derived series cannot be written for (see :data:`WRITER_NEEDS`).

    Raises:
        SpectacError: one line naming the file and the missing attributes.
    """
    missing = [label for keyword, label in WRITER_NEEDS.items() if not str(header.get(keyword, "") or "").strip()]
    if missing:
        raise SpectacError(f"{name}: no {' or '.join(missing)} to attach the corrected series to; "
                           "give a NIfTI output (-o NAME.nii.gz) instead")


def prepare_method(method: str, device: str | None = None, amp: bool = False, threads: int | None = None,
                   **options: Any) -> tuple[Method, dict[str, Any], Any]:
    """A method, its resolved options and its prepared state (a loaded network, checked Chang
    options), ready for :func:`correct_volume`; bad options, unreadable weights and a device this
    machine lacks fail here. ``device`` and ``amp`` (:mod:`spectac.devices`) place a network; the
    other methods run on the CPU whatever they say. ``threads``: onnxruntime's intra-op threads
    for a network on it (None: all it may use)."""
    spec = get_method(method)
    resolved = resolve_options(spec, options)
    state = spec.prepare(resolved, threads) if spec.prepare is not None else None
    if device in (None, "cpu") and not amp:
        return spec, resolved, state
    from spectac.correction.deep import place

    return spec, resolved, place(state, device, amp)


def correct_volume(nc: Volume, method: str, name: str = "input", protocol: Protocol | None = None,
                   prepared: tuple[Method, dict[str, Any], Any] | None = None,
                   beside: Callable[[], None] | None = None, **options: Any) -> Volume:
    """Apply a registered correction method to one NC volume; the result is on the NC grid.

    Args:
        nc: the NC volume, any axis-aligned orientation.
        method: a method name (``spectac.correction.run.available_methods()``).
        name: what to call the study in messages (the input file).
        protocol: the acquisition; None: each method's default (Chang: the standard 180-degree
            cardiac arc; a network: the orbit of its training data).
        prepared: :func:`prepare_method`'s result when the caller has it (then ``options`` are
            not used); None: prepared here.
        beside: work to overlap with the method (:attr:`MethodContext.beside`), done once.
        **options: method options (None means the method's default).
    """
    spec, resolved, state = prepared if prepared is not None else prepare_method(method, **options)
    return apply_method(spec, nc, MethodContext(name, protocol, dict(resolved), state, beside))


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _weights_option(method: str, weights: str | Path | None) -> dict[str, Any]:
    if weights is None:
        return {}
    defaults = get_method(method).defaults
    for key in ("weights", "checkpoint"):
        if key in defaults:
            return {key: str(weights)}
    raise SpectacError(f"method {method!r} takes no weights")


def correct_path(
    input: str | Path,
    output: str | Path,
    method: str = DEFAULT_METHOD,
    weights: str | Path | None = None,
    *,
    overwrite: bool = False,
    force: bool = False,
    arc: float | None = None,
    uid_seed: str | None = None,
    strict: bool = False,
    prepared: tuple[Method, dict[str, Any], Any] | None = None,
    report: ReportBuilder | None = None,
    files: list[Path] | None = None,
    uncertainty: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Correct a DICOM file/folder or a NIfTI file and write the result as the same kind.

    Before any pixel is read the input is refused when it says it is no NC emission study (already
    attenuation- or scatter-corrected, spectac's own output, a mu-map or CT; see
    :func:`spectac.io.dicom.correction_refusal` and :func:`spectac.io.nifti.nifti_refusal`) or
    when its grid is no SPECT reconstruction's (:mod:`spectac.correction.checks`) or, for a DICOM
    output, when it lacks what the derived series needs (:data:`WRITER_NEEDS`); once read, when
    its values are substantially negative.

    Args:
        input: an NM multi-frame file, a folder of one series, or a .nii/.nii.gz file.
        output: a new folder or .dcm file for DICOM (a .nii.gz name gives NIfTI from DICOM too);
            a .nii/.nii.gz file for NIfTI. Never the input, inside it or around it.
        method: correction method name (default :data:`spectac.correction.DEFAULT_METHOD`).
        weights: a trained model folder or file for the network methods.
        overwrite: replace an existing output file (atomically) instead of refusing.
        force: correct an input that says it is already corrected (or a mu-map); the output
            then says so (DICOM Image Comments and description, NIfTI descrip).
        arc: the camera orbit of the acquisition (180 or 360 degrees); None: the standard
            180-degree cardiac arc for Chang, the orbit of its training data for a network.
        uid_seed: deterministic DICOM UIDs (tests).
        strict: refuse (nothing written) a study unlike the training data
            (:func:`spectac.correction.ood.ood_flags`); otherwise it is corrected and flagged.
        prepared: :func:`prepare_method`'s result for ``method`` when the caller keeps one for
            many studies (``spectac serve`` loads its network once); None: prepared here.
        report: also write a study report beside the output (``<stem>.report.html`` and
            ``.report.pdf``, :mod:`spectac.io.report_files`), made by this builder before anything
            is written; the report files are refused up front like the output.
        files: the DICOM files of the series when the caller has grouped them (one series of a
            folder holding several: :mod:`spectac.correction.batch`); ``input`` then names it.
        uncertainty: also run the network's partner and flag the study when the two disagree
            beyond the model's threshold (:mod:`spectac.correction.uncertainty`); a method
            without a partner is not checked.
        **options: further method options.

    Returns:
        {"output", "kind" ("dicom" | "nifti"), "method", "shape", "forced" (the reason overridden,
        or None), "ood_flags" (why the study is unlike the training data; [] when it is like it),
        "report" ((HTML path, PDF path) or None), "uncertainty" (None: not checked; else
        {"partner", "disagreement", "threshold", "flag"})}.
        A flagged output says so: DICOM Image Comments "spectac OOD: ...", NIfTI descrip "... OOD"
        and a sidecar ``<output>.json`` with the flags.

    Raises:
        SpectacError: a missing or unreadable input, an input already corrected (without
            ``force``) or of implausible geometry or values, an output equal to, inside or around
            the input or already there (also when it appears during the run), an unknown method or
            option, a volume the method cannot correct, or with ``strict`` a flagged study.
    """
    input, output = Path(input), Path(output)
    if not input.exists():
        raise SpectacError(f"{input}: no such file or folder")
    check_output_outside(output, input)
    if output.is_dir() or (output.exists() and not overwrite):
        raise SpectacError(f"{output}: already exists; choose another -o"
                           + ("" if output.is_dir() else " or pass --overwrite"))
    report_files = check_report_paths(output, input, overwrite=overwrite) if report is not None else None
    nifti_out = _is_nifti(output)
    dicom_in = files is not None or is_dicom_path(input)
    if not dicom_in and not nifti_out:
        raise SpectacError(f"{output}: a NIfTI input gives a NIfTI output; name it .nii or .nii.gz")
    if prepared is None:
        options = {**options, **_weights_option(method, weights)}
        # bad options or weights fail before the input is read; a network on onnxruntime leaves
        # one core to the out-of-distribution check that runs beside it (below)
        prepared = prepare_method(method, threads=None if strict else threads_beside_check(), **options)
    protocol = None if arc is None else Protocol.for_arc(arc)

    # What the file says, and its grid, from the header alone.
    if dicom_in:
        header = read_dicom_header(input, files=files)
        refusal = correction_refusal(header.header)
        grid = header.geometry
        check = (grid.shape, grid.spacing, grid.direction)
    else:
        nifti_header = read_nifti_header(input)
        refusal = nifti_refusal(nifti_header.descrip)
        check = (nifti_header.shape, nifti_header.spacing, nifti_header.direction)
    if refusal is not None and not force:
        raise SpectacError(f"{input}: {refusal}; refusing to correct it again (--force overrides)")
    check_plausible_geometry(*check, str(input))
    if dicom_in and not nifti_out:
        check_writable_source(header.header, str(input))
    note = f"{FORCED_NOTE} {refusal}" if refusal is not None else ""

    if dicom_in:
        nc, context = read_dicom_volume(input, files=files)
    else:
        nc = read_nifti(input)
    check_plausible_values(nc.array, str(input))
    header_info = header.header if dicom_in else None
    if strict:  # a study refused as unlike the training data is not corrected
        flags = ood_flags(nc, header_info, training_reference(prepared[2]))
        if flags:
            raise SpectacError(f"{input}: refused (--strict), unlike the training data: {'; '.join(flags)}")
    # Three pieces of work overlap, on two cores about 0.3 s less per study than one after another
    # (BENCHMARKS.md): the partner network runs in a second thread from the start (onnxruntime and
    # torch release the GIL); the out-of-distribution check (mostly Python: the LV fit) runs here
    # while the network's forward pass runs (``beside``), not while the Chang prior is made: that
    # prior's many small numpy steps and the LV fit's Python would wait for each other's GIL. The
    # check holds one core, so both networks' onnxruntime get the others (at least one; the
    # network's own threads were set when it was prepared, above).
    found_flags: list[list[str]] = []

    def check() -> None:
        found_flags.append(ood_flags(nc, header_info, training_reference(prepared[2])))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spectac-partner") as pool:
        partner = (pool.submit(partner_correction, nc, prepared[2], protocol, str(input),
                               threads_beside_check()) if uncertainty else None)
        corrected = correct_volume(nc, method, str(input), protocol, prepared, beside=None if strict else check)
        found = partner.result() if partner is not None else None
    if not strict:
        flags = found_flags[0]
    spread = compare_with_partner(nc, corrected, prepared[2], found) if found is not None else None
    if spread is not None and spread["flag"]:
        flags = [*flags, spread["flag"]]
        if strict:
            raise SpectacError(f"{input}: refused (--strict), unlike the training data: {spread['flag']}")
    summary = {"output": output, "method": method, "shape": corrected.shape, "forced": refusal, "ood_flags": flags,
               "report": report_files, "uncertainty": spread}
    model = _model_name(weights)
    pages = None
    if report is not None:  # made before anything is written: a failure leaves nothing behind
        facts = report_facts(input, method, prepared[2], flags, refusal, context if dicom_in else None)
        if dicom_in:
            facts["series_state"] = series_state(header.header)
        pages = report(nc, corrected, {**facts, "uncertainty": spread})
    if nifti_out:
        descrip = nifti_description(method, model, NIFTI_FORCED_NOTE if note else "")
        if flags:  # the mark survives the 80-character limit: "OOD" goes before the description's tail
            descrip = f"{descrip[:75]} OOD"
        write_nifti(corrected, output, descrip=descrip, replace=overwrite)
        write_ood_sidecar(output, flags)  # none left from an overwritten flagged output when unflagged
        if pages is not None:
            write_report_files(output, *pages, replace=overwrite)
        return {**summary, "kind": "nifti"}
    uncorrected = method == "nc"  # a copy of the NC image: no ATTN in Corrected Image, not called AC
    description = NC_COPY_DESCRIPTION if uncorrected else " ".join(p for p in ("spectac AC", method, model) if p)
    if note:
        description = f"{description[:55]} (forced)"
    if spread is not None:  # the value, before the OOD mark (which stays whole at the end)
        note = f"{note} {UNCERTAINTY_PREFIX}{uncertainty_text(spread)}".strip()
    write_dicom_series(corrected, context, output, method=method, model_name=model, uid_seed=uid_seed,
                       series_description=description, attenuation_corrected=not uncorrected,
                       image_comments=ood_comments(note, flags), replace=overwrite)
    if pages is not None:
        write_report_files(output, *pages, replace=overwrite)
    return {**summary, "kind": "dicom"}


def report_facts(input: Path, method: str, state: Any, flags: list[str], forced: str | None,
                 context: Any = None) -> dict[str, Any]:
    """What a study report says about the correction: method, model, weights (file and SHA-256),
    flags, and from a DICOM source the patient, study and series it names (see
    :func:`spectac.evaluation.study_report.build_study_report`)."""
    path = getattr(state, "path", None)
    weights = Path(path) if path is not None and Path(path).is_file() else None
    facts: dict[str, Any] = {
        "input": input.name, "method": method, "model": getattr(state, "name", None) or method,
        "weights": None if weights is None else f"{weights.parent.name}/{weights.name}",
        "weights_sha256": None if weights is None else sha256_file(weights),
        "ood_flags": list(flags), "forced": forced,
    }
    if context is not None:
        facts["patient_sex"] = context.patient_sex
        facts["series"] = context.series
        name = ", ".join(part for part in context.text("PatientName").split("^") if part)  # Family, Given
        facts["patient"] = {"Patient": name, "ID": context.patient_id,
                            "Study date": context.text("StudyDate"), "Series": context.series_description}
    return facts


def _model_name(weights: str | Path | None) -> str:
    """The model named in the series description: the model folder (not "best"), or the version."""
    if weights is None:
        return _model_version()
    path = Path(weights)
    return path.parent.name if path.is_file() and path.stem == "best" else path.stem


def _model_version() -> str:
    try:
        from importlib.metadata import version

        return f"v{version('spectac')}"
    except Exception:  # noqa: BLE001 - a source tree without metadata
        return ""
