"""Commands on a camera's raw projections: reconstruct them with spectac's OSEM (NIfTI or NM DICOM
out, attenuation from a mu-map NIfTI or the CT series), and check an image against them (qc)."""

from __future__ import annotations

from pathlib import Path

import typer

from spectac.cli.common import info, user_errors
from spectac.errors import SpectacError
from spectac.io.paths import check_output_outside, ensure_writable_parent

MU_HELP = ("Attenuation map: a NIfTI of mu in 1/cm (patient LPS; resampled onto the SPECT grid when on another "
           "grid), or the folder of the CT series (HU -> mu at its kVp, resampled through the shared frame of "
           "reference).")
FORCE_FRAME_HELP = ("Use a CT whose Frame of Reference UID is not the projections' (or missing), trusting both "
                    "series' patient coordinates as they are.")


def read_mu(mu: Path, acquisition, force_frame: bool):
    """The mu-map Volume (1/cm) from a NIfTI, or from a CT series folder (after the frame check)."""
    from spectac.io.nifti import read_nifti
    from spectac.reconstruction.files import is_nifti

    if mu.is_dir():
        from spectac.io.ct import frame_of_reference_of, read_ct_series
        from spectac.reconstruction.mumap import check_same_frame, mu_from_ct

        check_same_frame(acquisition, frame_of_reference_of(mu), str(mu), force_frame)  # before any pixel is read
        ct = read_ct_series(mu, max_pixel_mm=min(acquisition.pixel_mm) / 2)
        return mu_from_ct(ct, acquisition, str(mu), force_frame)
    if not is_nifti(mu):
        raise SpectacError(f"{mu}: --mu must be a NIfTI mu-map (.nii/.nii.gz) or the folder of a CT series")
    return read_nifti(mu)


@user_errors
def reconstruct_projections(
    projections: Path = typer.Argument(..., help="Raw projection NM DICOM file (Image Type TOMO or GATED TOMO)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output: a NIfTI file (.nii/.nii.gz), or NM DICOM: a new .dcm "
                             "file or a new folder (RECON TOMO series in the projections' study and frame of "
                             "reference)."),
    window: str | None = typer.Option(None, help="Energy window: 1-based number, energy in keV (e.g. 208) or "
                                      "name; default: the window holding Tc-99m's 140.5 keV."),
    collimator: str | None = typer.Option(None, help="Collimator of the table (LEHR, GE-MEGP, SIEMENS-LEHR, ...) "
                                          "when the file's is missing or unknown, or to override it."),
    iterations: int = typer.Option(4, help="OSEM iterations."),
    subsets: int = typer.Option(6, help="OSEM subsets."),
    mu: Path | None = typer.Option(None, help=MU_HELP + " OSEM with attenuation in the system matrix (AC)."),
    force_frame: bool = typer.Option(False, "--force-frame", help=FORCE_FRAME_HELP),
    psf: bool = typer.Option(True, help="Model the collimator's distance-dependent blur."),
    cutoff: float = typer.Option(0.4, help="Butterworth post-filter cutoff in cycles/cm (0: no filter)."),
    scatter: str = typer.Option("auto", help="Scatter correction from the energy windows: tew (triple energy "
                                "window), dew (dual), none, or auto: none for NC, and with --mu tew (else dew) "
                                "when the file has the windows, as the simulator's CT-AC."),
) -> None:
    """OSEM of a camera's raw projections with spectac's own projector (no vendor reconstruction)."""
    import time

    from spectac.reconstruction.files import (
        check_output,
        open_projections,
        reconstruct_window,
        scatter_choice,
        write_output,
    )
    from spectac.reconstruction.osem import ReconConfig

    if iterations < 1 or subsets < 1:
        raise SpectacError("--iterations and --subsets must be at least 1")
    if not 0 <= cutoff < float("inf"):  # NaN too
        raise SpectacError(f"--cutoff must be a finite number >= 0, got {cutoff:g}")
    scatter = scatter_choice(scatter)
    check_output_outside(out, projections, mu)  # a NIfTI output is replaced: never an input
    nifti = check_output(out)
    acquisition, w = open_projections(projections, window, nifti)
    mu_volume = read_mu(mu, acquisition, force_frame) if mu is not None else None
    config = ReconConfig(iterations=iterations, subsets=subsets, psf=psf, butterworth_cutoff_per_cm=cutoff)
    start = time.perf_counter()
    recon = reconstruct_window(acquisition, w, config, collimator, mu_volume, scatter)
    write_output(recon, out, nifti, projections, recon.description())
    info(f"{projections}: {acquisition.n_views} views, {acquisition.n_detectors} detector(s), window "
         f"{acquisition.windows[w]}, collimator {recon.result.collimator}; {recon.kind} OSEM {iterations}x{subsets} "
         f"in {time.perf_counter() - start:.0f} s")
    info(f"wrote {out} {recon.result.volume.shape} voxels of {recon.result.volume.spacing[0]:.2f} mm")


@user_errors
def qc(
    projections: Path = typer.Argument(..., help="Raw projection NM DICOM file the image was reconstructed from."),
    image: Path = typer.Option(..., "--image", help="Corrected activity image, NIfTI (patient LPS; best unfiltered: "
                               "spectac reconstruct --cutoff 0)."),
    mu: Path = typer.Option(..., "--mu", help=MU_HELP),
    window: str | None = typer.Option(None, help="Energy window of the photopeak (as for reconstruct)."),
    collimator: str | None = typer.Option(None, help="Collimator of the table (as for reconstruct)."),
    psf: bool = typer.Option(True, help="Model the collimator's distance-dependent blur."),
    force_frame: bool = typer.Option(False, "--force-frame", help=FORCE_FRAME_HELP),
    csv: Path | None = typer.Option(None, "--csv", help="Write the index per view and in total to this CSV file."),
    scatter: str = typer.Option("auto", help="Scatter estimate added to the model's projections: tew, dew, none, or "
                                "auto (tew, else dew, when the file has the windows; else none)."),
    qc_threshold: float | None = typer.Option(None, "--qc-threshold", help="Flag the study when its index D/E "
                                              "exceeds this (default: the calibrated threshold of the mu model "
                                              "given with --weights; without either, no flag)."),
    weights: Path | None = typer.Option(None, "--weights", help="Mu model whose calibrated threshold (config.json "
                                        "\"qc\") is the default: a model folder, .pt file or imported model's "
                                        "name. Its threshold was calibrated on the indirect route's unfiltered "
                                        "image; a filtered image scores far higher, so it is not applied unless "
                                        "asked for."),
) -> None:
    """Consistency of an attenuation-corrected image and its mu-map with the measured projections.

    Prints the Poisson deviance per bin (D), its expectation for Poisson data (E) and the index D/E:
    about 1 when image and mu-map explain the projections, larger for a wrong or misregistered
    mu-map or patient motion (docs/projections.md). The study is flagged when the index exceeds the
    threshold calibrated for a mu model (--weights; the indirect route's, docs/projections.md
    "Calibrating the threshold", valid for its unfiltered image) or --qc-threshold; without
    either, no flag.
    """
    from spectac.correction.deep import mu_model_qc_threshold
    from spectac.io.nifti import read_nifti
    from spectac.io.projections import read_projections
    from spectac.io.projections.output import write_consistency_csv
    from spectac.reconstruction.consistency import QcThreshold, QcVerdict
    from spectac.reconstruction.files import acquisition_consistency, is_nifti, scatter_choice
    from spectac.reconstruction.projections import acquisition_grid, mu_on_grid, on_grid

    scatter = scatter_choice(scatter)
    if qc_threshold is not None and not 0 < qc_threshold < float("inf"):
        raise SpectacError(f"--qc-threshold must be a finite number > 0, got {qc_threshold:g}")
    if csv is not None:
        if csv.exists():
            raise SpectacError(f"{csv}: already exists; choose a new CSV file")
        ensure_writable_parent(csv)
    if not is_nifti(image):
        raise SpectacError(f"{image}: --image must be a NIfTI file (.nii/.nii.gz)")
    # the mu model's threshold holds for the indirect route's unfiltered image only: not a default here
    threshold = QcThreshold(qc_threshold, "--qc-threshold") if qc_threshold is not None else \
        mu_model_qc_threshold(weights) if weights is not None else None
    acquisition = read_projections(projections)
    w = acquisition.window_index(window)
    grid = acquisition_grid(acquisition)
    activity = on_grid(read_nifti(image), grid, str(image), min_coverage=0.99)
    mu_array = mu_on_grid(read_mu(mu, acquisition, force_frame), grid, str(mu))
    result, key, scatter = acquisition_consistency(acquisition, w, activity, mu_array, collimator, psf, scatter)
    worst = int(result.per_view_index.argmax())
    info(f"{projections}: window {acquisition.windows[w]}, collimator {key}, {acquisition.n_views} views, "
         f"{result.bins} bins, scatter estimate {scatter}")
    info(f"deviance per bin D = {result.deviance_per_bin:.4g}, Poisson expectation E = {result.expected_per_bin:.4g}, "
         f"index D/E = {result.index:.4g} (worst view {worst + 1}: {result.per_view_index[worst]:.4g}); "
         f"model scaled by {result.scale:.4g} to the measured counts")
    verdict = QcVerdict(result.index, threshold)
    info(verdict.line())
    if csv is not None:
        rows = [{**row, "threshold": "" if threshold is None else threshold.value,
                 "flagged": "" if row["view"] != "all" or verdict.flagged is None else str(verdict.flagged).lower()}
                for row in result.rows()]
        write_consistency_csv(rows, csv)
        info(f"wrote {csv}")


@user_errors
def export_projections(
    dataset: Path = typer.Argument(..., help="Simulated dataset folder (its studies keep projections.npz)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one OUT/<case_id>.dcm per study; files "
                             "already there are kept (a rerun resumes)."),
    case: list[str] = typer.Option([], "--case", help="Study to export (repeatable); default: every study of "
                                   "--split."),
    split: str = typer.Option("all", help="Split to export: train, val, test or all."),
    vendor: str = typer.Option("ge", help="File layout: ge (one detector) or siemens (two heads, the views in "
                               "halves)."),
    gates: int = typer.Option(1, help="Gates: more than 1 writes GATED TOMO, the counts split over the gates."),
) -> None:
    """Write simulated studies' raw projections (every energy window, the study's own orbit, collimator and
    pixel size) as vendor-like NM TOMO DICOM, for spectac reconstruct, qc and correct --route indirect."""
    from spectac.reconstruction.export import export_projections as run_export
    from spectac.reconstruction.export import plan_export

    plan = plan_export(dataset, out, case, split, vendor.lower(), gates)
    ensure_writable_parent(out, folder=True)
    if plan.done:
        info(f"{len(plan.done)} of {len(plan.done) + len(plan.todo)} studies already in {out}: kept")
    written = run_export(plan, vendor.lower(), gates)
    info(f"wrote {len(written)} projection file(s) ({vendor.lower()}, {gates} gate(s)) in {out}")
