"""The indirect route: attenuation correction from the raw projections with a predicted mu-map.

``spectac correct --route indirect PROJECTIONS -o OUT``:

1. OSEM of the photopeak without attenuation (NC, no scatter correction: the image the networks
   are trained on, as ``spectac reconstruct`` makes it);
2. a mu model (target "mu", :mod:`spectac.nn.registry`) predicts the mu-map in 1/cm from that
   NC image and, for a model that takes it (the shipped one does), the scatter-window image: a
   quick OSEM of the window below the photopeak
   (:func:`spectac.reconstruction.scatter_image.scatter_image`, the same function that made the
   training studies' images);
3. OSEM with that mu-map in the system matrix and the window-based scatter estimate (TEW, else
   DEW, when the file has the windows), exactly as ``spectac reconstruct --mu`` does with a CT's;
4. the consistency index (:mod:`spectac.reconstruction.consistency`, as ``spectac qc`` computes
   it) of the AC image before its post-filter (the filter removes signal that is in the data and
   raises the index) and the predicted mu-map with the measured projections; and, as on the
   direct route, the reasons the NC image is unlike the mu model's training data
   (:func:`spectac.correction.ood.ood_flags`).

The direct route (a network maps NC to the AC image) never sees the projections; here the network
only supplies the attenuation map and the physics makes the image, so the counts stay those the
camera measured and the consistency index checks the predicted mu-map against them. Deep-learning
mu-maps from emission data: e.g. Shi et al., Eur J Nucl Med Mol Imaging 2020 (from the photopeak
and scatter windows, as here); Hwang et al., J Nucl Med 2018 (PET).

An acquisition with no window below the photopeak has no scatter-window image: a mu model that
takes one refuses it with one line before the NC reconstruction (use the direct route, a CT
mu-map, or an NC-only mu model with ``--weights``; no NC-only model is shipped, so that a study is
never silently corrected by a weaker network than the one its report names). A scatter image from
another kind of window than the training data's (a narrow TEW window where the model learnt from
a broad DEW window) is used, and the difference is among the study's out-of-distribution flags.

Everything the user can get wrong is refused before the first OSEM: the outputs (existing, the
report files included, or an NM DICOM output the projections cannot carry), the mu model (none
installed, or an AC model), the input (an image instead of projections). The image is written first (with the verdict of its
consistency index against the mu model's calibrated threshold: docs/projections.md), then the
mu-map, then with ``--report`` the study report (made before the image is written); all are atomic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectac.correction import deep
from spectac.correction.deep import DeepModel, resolve_mu_model
from spectac.correction.files import ReportBuilder, report_facts
from spectac.correction.ood import ood_comments, ood_flags, training_reference
from spectac.errors import SpectacError
from spectac.io.nifti import write_nifti, write_sidecar_record
from spectac.io.paths import check_output_outside, ensure_writable_parent
from spectac.io.projections import Acquisition
from spectac.io.report_files import check_report_paths, write_report_files
from spectac.nn.registry import takes_scatter
from spectac.reconstruction.consistency import Consistency, QcThreshold, QcVerdict
from spectac.reconstruction.files import (
    WindowRecon,
    check_output,
    is_nifti,
    open_projections,
    reconstruct_consistent,
    reconstruct_window,
    scatter_choice,
    write_output,
)
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.projections import MAX_MU_PER_CM
from spectac.reconstruction.scatter_image import (
    WINDOW_ROLES,
    ScatterImage,
    no_scatter_window_message,
    scatter_image,
    scatter_window,
)
from spectac.volume import Volume

#: How the flags name the scatter-image windows.
ROLE_TEXT = {"dew_lower": "the broad window below the photopeak (DEW's)",
             "tew_lower": "the narrow window just below the photopeak (TEW's)"}


def check_projections_input(path: Path) -> None:
    """Refuse what is plainly no raw projection file (a NIfTI image, a folder) with one line; a
    reconstructed DICOM image is refused by the reader (Image Type RECON TOMO)."""
    if not path.exists():
        raise SpectacError(f"{path}: no such file")
    if is_nifti(path) or path.is_dir():
        raise SpectacError(f"{path}: --route indirect takes the raw projections (an NM TOMO DICOM file), not a "
                           "reconstructed image; correct an NC image with --route direct")


@dataclass(frozen=True)
class IndirectResult:
    """What the indirect route makes of one acquisition (nothing written).

    Attributes:
        nc: the NC reconstruction the mu model saw (no scatter correction).
        mu: the predicted mu-map (1/cm) on the SPECT grid.
        ac: the AC reconstruction with that mu-map and the scatter estimate, post-filtered.
        qc: the consistency index of the unfiltered AC image and the mu-map with the photopeak.
        ood_flags: why the NC image is unlike the mu model's training data.
        scatter: the scatter-window image the mu model saw, or None (an NC-only model).
    """

    nc: WindowRecon
    mu: Volume
    ac: WindowRecon
    qc: Consistency
    ood_flags: list[str]
    scatter: ScatterImage | None = None


def model_takes_scatter(model: DeepModel | None) -> bool:
    """Whether a mu model's input has the scatter-window image (config.json network
    ``scatter_input``; models saved before it take NC alone)."""
    return model is not None and takes_scatter(model.config.get("network", {}))


def trained_scatter_role(model: DeepModel) -> str | None:
    """The window role (:data:`~spectac.reconstruction.scatter_image.WINDOW_ROLES`) of the training
    data's scatter images: the first of the training protocol's windows by name, or None."""
    names = {w.name for w in model.protocol.windows}
    return next((role for role in WINDOW_ROLES if role in names), None)


def predict_mu(nc: Volume, model: DeepModel, scatter: Volume | None = None) -> Volume:
    """The mu-map (1/cm, >= 0) a mu model predicts, on the NC grid, from NC alone or with the
    scatter-window image ``scatter`` (on the NC grid; :func:`spectac.correction.deep.predict_mu`).

    Raises:
        SpectacError: ``scatter`` given to a model that takes NC alone.
    """
    if scatter is not None and not model_takes_scatter(model):
        raise SpectacError(f"the mu model {model.name} takes NC alone, not the scatter-window image")
    return deep.predict_mu(nc, model, scatter=scatter)


def correct_acquisition(acquisition: Acquisition, w: int, model: DeepModel, config: ReconConfig | None = None,
                        collimator: str | None = None, scatter: str = "auto", where: str = "") -> IndirectResult:
    """Steps 1-4 of the module docstring on an acquisition in memory (a projection file read by
    :func:`spectac.io.projections.read_projections`, or a simulated study's
    :func:`spectac.reconstruction.study.study_acquisition`): window ``w`` (0-based), a loaded mu
    model (:func:`spectac.correction.deep.resolve_mu_model`). ``where`` names the input in errors.

    A mu model that takes the scatter-window image gets it from
    :func:`spectac.reconstruction.scatter_image.scatter_image` (window ``w`` is the photopeak).

    Raises:
        SpectacError: the predicted mu-map holds values beyond any tissue, a window the scatter
            method needs is missing, or the mu model takes the scatter-window image and the
            acquisition has no window below the photopeak (before any OSEM).
    """
    config = config or ReconConfig()
    scatter = scatter_choice(scatter)
    where = where or acquisition.source or "the acquisition"
    wants_scatter = model_takes_scatter(model)
    if wants_scatter and scatter_window(acquisition, w) is None:
        raise SpectacError(no_scatter_window_message(where, model.name, acquisition))
    nc = reconstruct_window(acquisition, w, config, collimator, None, "none")
    flags = ood_flags(nc.result.volume, None, training_reference(model))
    image = scatter_image(acquisition, w, collimator) if wants_scatter else None
    if image is not None:
        trained = trained_scatter_role(model)
        if trained is not None and image.role != trained:
            flags.append(f"the scatter-window image is from {ROLE_TEXT[image.role]}; the mu model learnt from "
                         f"{ROLE_TEXT[trained]}")
    mu = predict_mu(nc.result.volume, model) if image is None else predict_mu(nc.result.volume, model, image.volume)
    highest = float(mu.array.max())
    if highest > MAX_MU_PER_CM:
        raise SpectacError(f"{where}: the mu model {model.name} predicts mu up to {highest:.3g} 1/cm, beyond "
                           f"any tissue (at most {MAX_MU_PER_CM:g}): this study is unlike its training data, or the "
                           "model is not trained enough; use the direct route or a CT mu-map (spectac reconstruct --mu)")
    ac, qc = reconstruct_consistent(acquisition, w, config, collimator, mu, scatter)
    return IndirectResult(nc, mu, ac, qc, flags, image)


def correct_projections(
    projections: str | Path,
    output: str | Path,
    weights: str | Path | None = None,
    *,
    mu_out: str | Path | None = None,
    scatter: str = "auto",
    config: ReconConfig | None = None,
    window: str | None = None,
    collimator: str | None = None,
    device: str | None = None,
    amp: bool = False,
    qc_threshold: float | None = None,
    report: ReportBuilder | None = None,
) -> dict[str, Any]:
    """Correct one raw projection file by the indirect route (see the module docstring).

    Args:
        projections: a raw projection NM DICOM file (TOMO or GATED TOMO).
        output: a new NIfTI file, or a new .dcm file or folder (NM RECON TOMO series).
        weights: a mu model folder, .pt file or imported model's name; None: the shipped one.
        mu_out: also write the predicted mu-map (1/cm, on the SPECT grid) to this new NIfTI file.
        scatter: auto, tew, dew or none for the AC reconstruction (auto: TEW, else DEW, when the
            file has the windows); the NC reconstruction never corrects scatter.
        config: OSEM iterations, subsets, PSF and post-filter (default: ``spectac reconstruct``'s).
        window, collimator: as ``spectac reconstruct``'s options.
        device, amp: where the mu model runs (:mod:`spectac.devices`).
        qc_threshold: flag the study when its consistency index exceeds this; None: the mu
            model's calibrated threshold (config.json ``qc``), and without one no flag.
        report: also write the study report of the direct route beside the output
            (``<stem>.report.html`` and ``.report.pdf``, :mod:`spectac.io.report_files`), made by
            this builder (:class:`spectac.evaluation.study_report.StudyReporter`) before anything
            is written: NC is the NC reconstruction the mu model saw, AC the output image (both
            post-filtered alike), the model lines name the mu model and the QC verdict is among
            its flags (flagged) or notes. The report files are refused up front like the output.

    Returns:
        {"output", "kind" ("nifti" | "dicom"), "kind_text" (``AC+TEW``, ...), "mu_out", "model",
        "scatter", "collimator", "qc" (the :class:`~spectac.reconstruction.consistency.Consistency`),
        "shape", "ood_flags" (why the NC image is unlike the mu model's training data, as the direct
        route's :func:`spectac.correction.ood.ood_flags`), "verdict" (the
        :class:`~spectac.reconstruction.consistency.QcVerdict`), "sidecar" (the NIfTI output's
        JSON sidecar, or None), "report" ((HTML path, PDF path) or None)}. The verdict (flagged, not flagged, or no threshold) is written
        with the image: in every DICOM image's Image Comments, or in the NIfTI output's sidecar
        JSON (``<output>.json``: ``spectac_qc`` and ``spectac_ood_flags``) and, when flagged, at
        the end of its description.

    Raises:
        SpectacError: see the module docstring.
    """
    projections, output = Path(projections), Path(output)
    scatter = scatter_choice(scatter)
    if qc_threshold is not None and not (0 < qc_threshold < float("inf")):
        raise SpectacError(f"--qc-threshold must be a finite number > 0, got {qc_threshold:g}")
    config = config or ReconConfig()
    check_projections_input(projections)
    outputs = [output] + ([Path(mu_out)] if mu_out is not None else [])
    for out in outputs:
        check_output_outside(out, projections)
    if mu_out is not None:
        mu_out = Path(mu_out)
        if not is_nifti(mu_out):
            raise SpectacError(f"{mu_out}: --mu-out is a NIfTI file; name it .nii or .nii.gz")
        if mu_out.exists() or mu_out.resolve() == output.resolve():
            raise SpectacError(f"{mu_out}: already exists (or is the output); choose a new --mu-out file")
        ensure_writable_parent(mu_out)
    if is_nifti(output) and output.exists():
        raise SpectacError(f"{output}: already exists; choose another -o")
    nifti = check_output(output)
    report_files = check_report_paths(output, projections, overwritable=False) if report is not None else None
    model = resolve_mu_model(weights).placed(device, amp)  # before the projections are read
    acquisition, w = open_projections(projections, window, nifti)
    threshold = model.qc_threshold if qc_threshold is None else QcThreshold(float(qc_threshold), "--qc-threshold")
    result = correct_acquisition(acquisition, w, model, config, collimator, scatter, str(projections))
    ac, qc, flags = result.ac, result.qc, result.ood_flags
    verdict = QcVerdict(qc.index, threshold)
    description = ac.description(f"mu {model.name}")
    if verdict.flagged:  # the mark survives NIfTI's 80-character limit
        description = f"{description[:69]} QC FLAGGED"
    pages = None
    if report is not None:  # made before anything is written: a failure leaves nothing behind
        facts = report_facts(projections, "indirect", model, flags, None)
        facts["qc"] = {**verdict.record(), "line": verdict.line()}
        pages = report(result.nc.result.volume, ac.result.volume, facts)
    write_output(ac, output, nifti, projections, description, ood_comments(verdict.line(), flags))
    sidecar = write_sidecar_record(output, {"spectac_qc": verdict.record(), "spectac_ood_flags": list(flags)}) \
        if nifti else None
    if mu_out is not None:
        write_nifti(result.mu, mu_out, descrip=f"spectac mu-map (1/cm) predicted by {model.name}")
    if pages is not None:
        write_report_files(output, *pages)
    return {"output": output, "kind": "nifti" if nifti else "dicom", "mu_out": mu_out, "model": model.name,
            "scatter": ac.scatter, "collimator": ac.result.collimator, "qc": qc, "shape": ac.result.volume.shape,
            "kind_text": ac.kind, "ood_flags": flags, "verdict": verdict, "sidecar": sidecar,
            "report": report_files}
