"""Commands that correct: predict over a dataset, correct one study, train a network."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from spectac.cli.common import (
    METHOD_NAMES,
    MODEL_NAMES,
    MODELS_WITH_CHANNELS,
    NETWORK_OPTIONS_HELP,
    _parse_settings,
    info,
    user_errors,
)
from spectac.correction import DEFAULT_METHOD
from spectac.devices import DEVICE_HELP
from spectac.errors import SpectacError
from spectac.io.paths import ensure_writable_parent
from spectac.nn.registry import resolve_config


@user_errors
def predict(
    method: Annotated[str, typer.Option("--method", "-m", help=f"Correction method: {METHOD_NAMES}.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; predictions go to RUN/predictions/<method>/.")],
    split: Annotated[str, typer.Option(help="Split to predict: train, val, test or all.")] = "test",
    mu: Annotated[float | None, typer.Option(help="Chang: uniform mu inside the body in 1/cm (default 0.12; water 0.153).")] = None,
    iterations: Annotated[int | None, typer.Option(help="chang-iterative: number of error updates (default 2).")] = None,
    settings: Annotated[list[str] | None, typer.Option("--set", help="Further method option key=value (repeatable).")] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP + " Networks only; default cpu.")] = "cpu",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision on CUDA (refused elsewhere).")] = False,
    batch_size: Annotated[int, typer.Option(help="Studies per forward pass of a network.")] = 1,
) -> None:
    """Correct the NC studies of a dataset with one method (resumable; existing predictions kept)."""
    from spectac.correction.run import predict_dataset

    options = {"mu": mu, "iterations": iterations, **_parse_settings(settings or [])}
    ensure_writable_parent(out, folder=True)
    summary = predict_dataset(data, out, method, None if split == "all" else split, device=device, amp=amp,
                              batch_size=batch_size, **options)
    info(f"{method}: {summary['written']} predictions written, {summary['skipped']} already present, in {summary['folder']}")


ROUTES = ("direct", "indirect")


@user_errors
def correct(
    input: Path = typer.Argument(..., help="NC study: an NM DICOM file, a folder of one DICOM series, or NIfTI (.nii/.nii.gz); or an archive folder of many series (a batch); with --route indirect the raw projections (NM TOMO DICOM, as spectac reconstruct reads)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: a new folder or .dcm (DICOM in), or .nii.gz; for a batch the output folder (an existing one is resumed); never inside or around the input."),
    method: str | None = typer.Option(None, help=f"Correction method of the direct route: {METHOD_NAMES} (default {DEFAULT_METHOD}, the shipped network closest to CT-AC)."),
    weights: Path | None = typer.Option(None, help="Model folder or .pt (default: the shipped weights); with --route indirect a mu model (unet3d-mu)."),
    route: str = typer.Option("direct", help="direct: a network maps the NC image to the AC image; indirect: from the raw projections, NC OSEM, a network predicts the mu-map, OSEM with it and window-based scatter correction (docs/projections.md)."),
    mu_out: Path | None = typer.Option(None, "--mu-out", help="--route indirect: also write the predicted mu-map (1/cm) to this new NIfTI file."),
    scatter: str | None = typer.Option(None, help="--route indirect: scatter correction of the AC OSEM, as spectac reconstruct's (auto: TEW, else DEW, when the file has the windows; tew, dew, none)."),
    iterations: int | None = typer.Option(None, help="--route indirect: OSEM iterations (default 4, as spectac reconstruct)."),
    subsets: int | None = typer.Option(None, help="--route indirect: OSEM subsets (default 6, as spectac reconstruct)."),
    qc_threshold: float | None = typer.Option(None, "--qc-threshold", help="--route indirect: flag the study when its consistency index D/E exceeds this (default: the mu model's calibrated threshold, config.json \"qc\"; without one no flag). The verdict goes into the DICOM Image Comments or the NIfTI's JSON sidecar."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file (never a folder, never the input)."),
    force: bool = typer.Option(False, "--force", help="Correct an input that says it is already attenuation/scatter-corrected or a mu-map; the output notes it was forced."),
    arc: float | None = typer.Option(None, help="Camera orbit of the acquisition in degrees, 180 or 360 (Chang and the Chang prior use it); default: 180 for Chang, a network's training orbit."),
    strict: bool = typer.Option(False, "--strict", help="Refuse (exit 2, nothing written) a study unlike the training data instead of correcting it with warnings."),
    device: str = typer.Option("cpu", help=DEVICE_HELP + " Networks only; default cpu."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision on CUDA (refused elsewhere)."),
    report: bool = typer.Option(False, "--report", help="Also write a one-page study report beside the output: OUT-stem.report.html and OUT-stem.report.pdf (OUT without .nii.gz/.nii/.dcm): NC beside AC in SA/VLA/HLA slices, polar maps, TPD and SSS against the shipped normal limits, OOD flags, model and weights SHA-256; not for diagnostic use (docs/dicom.md). With --route indirect: NC is the route's NC OSEM (the image the mu model saw), AC its output, the model the mu model, and the consistency QC verdict is listed (docs/projections.md)."),
    sex: str | None = typer.Option(None, "--sex", help="With --report: F or M for the normal limits (default: PatientSex of the DICOM, else pooled limits)."),
    state: str | None = typer.Option(None, "--state", help="With --report: stress or rest for the normal limits (default: the state a DICOM series names in its Series Description, Protocol Name, Image ID or Image Type; else stress, and the report says it was assumed; --route indirect: stress assumed)."),
    batch: bool = typer.Option(False, "--batch", help="Treat INPUT as an archive folder even when it holds a single series (output: OUTPUT/<name>, resumable)."),
    uncertainty: str = typer.Option("on", "--uncertainty", help="on: also run the network's partner (the other shipped GAN: one more forward pass, under a second on a CPU) and flag the study when the two disagree beyond the model's calibrated threshold (docs/models.md); off: skip it. Methods without a partner are not checked."),
) -> None:
    """Attenuation-correct one NC study (DICOM in gives a new derived DICOM series out, NIfTI in NIfTI out), or every series of an archive folder.

    A study unlike the training data (another camera, grid, field of view or count level, a body cut by the field, no LV: docs/models.md) is corrected with one "warning:" line per reason and flagged in the output; --strict refuses it.

    Refused (exit 2, nothing written): an input already corrected (Corrected Image ATTN/SCAT, spectac's own output), a mu-map or CT, a grid no SPECT camera makes (voxels outside 1-20 mm, fewer than 16 or more than 256 voxels along an axis, oblique), substantially negative values, and for a DICOM output a source without a Study Instance UID.

    --route indirect takes the raw projections instead and prints the consistency index D/E of the result (as spectac qc), flagged above the mu model's calibrated threshold (--qc-threshold overrides); --report writes the same study report with that verdict in it.

    A folder holding more than one DICOM series (any nesting) or any NIfTI file is a batch: each series is corrected into OUTPUT (a DICOM series into the folder named after its Series Instance UID, a NIfTI file into <its path>.nii.gz), refused with the reason above or flagged, never stopping the rest; OUTPUT/summary.csv lists every series, and a rerun skips the outputs already there. Exit 0 when the batch ran, refusals included; 2 when there is nothing to correct or OUTPUT lies inside INPUT.
    """
    if route not in ROUTES:
        raise SpectacError(f"--route must be direct or indirect, got {route!r}")
    if uncertainty not in ("on", "off"):
        raise SpectacError(f"--uncertainty must be on or off, got {uncertainty!r}")
    if route == "indirect":
        _correct_indirect(input, output, weights, mu_out, scatter, iterations, subsets, device, amp, qc_threshold,
                          _reporter(report, sex, state),
                          {"--method": method is not None, "--overwrite": overwrite, "--force": force,
                           "--arc": arc is not None, "--strict": strict, "--batch": batch,
                           "--uncertainty off": uncertainty == "off"})
        return
    indirect_only = {"--mu-out": mu_out, "--scatter": scatter, "--iterations": iterations, "--subsets": subsets,
                     "--qc-threshold": qc_threshold}
    given = [flag for flag, value in indirect_only.items() if value is not None]
    if given:
        raise SpectacError(f"{', '.join(given)}: options of --route indirect only")
    from spectac.correction.files import correct_path
    from spectac.correction.uncertainty import uncertainty_text

    method = method or DEFAULT_METHOD
    reporter = _reporter(report, sex, state)
    if input.is_dir():
        from spectac.io.batch import list_batch

        listing = list_batch(input)
        if batch or listing.is_batch:
            if overwrite:
                raise SpectacError(f"{input}: a folder of several series is a batch, which keeps the outputs already "
                                   "in its output folder; --overwrite does not apply (delete an output to redo it)")
            ensure_writable_parent(output, folder=True)
            _correct_batch(input, output, method, weights, listing, force=force, arc=arc, strict=strict,
                           device=device, amp=amp, report=reporter, uncertainty=uncertainty == "on")
            return
    elif batch:
        raise SpectacError(f"{input}: --batch takes a folder")
    ensure_writable_parent(output)
    summary = correct_path(input, output, method, weights, overwrite=overwrite, force=force, arc=arc, strict=strict,
                           device=device, amp=amp, report=reporter, uncertainty=uncertainty == "on")
    for flag in summary.get("ood_flags", []):
        info(f"warning: {flag}")
    if summary.get("uncertainty"):
        info(f"uncertainty: {uncertainty_text(summary['uncertainty'])}")
    if summary["forced"]:
        info(f"note: forced: {input} {summary['forced']}")
    info(f"{method}: wrote {summary['kind']} {summary['output']}")
    if summary.get("report"):
        info(f"report: wrote {summary['report'][0]} and {summary['report'][1]}")


def _reporter(report: bool, sex: str | None, state: str | None) -> object | None:
    """The study report builder of ``--report`` (sex and state checked, normal limits loaded, before
    anything runs), or None; ``--sex`` and ``--state`` without ``--report`` are refused."""
    if report:
        from spectac.evaluation.study_report import StudyReporter

        return StudyReporter(sex, state)
    if sex is not None or state is not None:
        raise SpectacError("--sex and --state set the normal limits of the report: give --report too")
    return None


def _correct_indirect(projections: Path, output: Path, weights: Path | None, mu_out: Path | None, scatter: str | None,
                      iterations: int | None, subsets: int | None, device: str, amp: bool,
                      qc_threshold: float | None, reporter: object | None, direct_only: dict[str, bool]) -> None:
    """``correct --route indirect``: the options of the direct route are refused, not ignored."""
    given = [flag for flag, value in direct_only.items() if value]
    if given:
        raise SpectacError(f"{', '.join(given)}: options of --route direct only")
    ensure_writable_parent(output)
    from spectac.correction.indirect import correct_projections
    from spectac.reconstruction.osem import ReconConfig

    config = ReconConfig()
    config = ReconConfig(iterations=config.iterations if iterations is None else iterations,
                         subsets=config.subsets if subsets is None else subsets)
    if config.iterations < 1 or config.subsets < 1:
        raise SpectacError("--iterations and --subsets must be at least 1")
    if mu_out is not None:
        ensure_writable_parent(mu_out)
    summary = correct_projections(projections, output, weights, mu_out=mu_out, scatter=scatter or "auto",
                                  config=config, device=device, amp=amp, qc_threshold=qc_threshold,
                                  report=reporter)
    for flag in summary["ood_flags"]:
        info(f"warning: {flag}")
    qc = summary["qc"]
    info(f"indirect: {summary['kind_text']} OSEM {config.iterations}x{config.subsets} {summary['collimator']} with the "
         f"mu-map of {summary['model']}; consistency index D/E = {qc.index:.4g} (spectac qc; about 1 when image and "
         f"mu-map explain the projections)")
    info(summary["verdict"].line())
    info(f"indirect: wrote {summary['kind']} {summary['output']}" + (
        f" and its QC sidecar {summary['sidecar']}" if summary["sidecar"] is not None else ""))
    if summary["mu_out"] is not None:
        info(f"indirect: wrote mu-map {summary['mu_out']}")
    if summary["report"] is not None:
        info(f"report: wrote {summary['report'][0]} and {summary['report'][1]}")


def _correct_batch(input: Path, output: Path, method: str, weights: Path | None, listing: object,
                   **kwargs: object) -> None:
    """The batch form of ``correct``: one line per refused or flagged series, then the counts."""
    from spectac.correction.batch import correct_batch

    result = correct_batch(input, output, method, weights, listing=listing, **kwargs)
    for row in result["rows"]:
        if row["status"] in ("refused", "failed"):
            info(f"{row['status']}: {row['reason']}")
        elif row["status"] == "flagged":
            info(f"warning: {row['input']}: {row['reason']}")
    if result["ignored"]:
        info(f"ignored: {len(result['ignored'])} entries neither DICOM nor NIfTI, or links (e.g. "
             f"{result['ignored'][0]['path']}: {result['ignored'][0]['reason']})")
    counts = ", ".join(f"{n} {status}" for status, n in result["counts"].items() if n)
    info(f"{method}: {len(result['rows'])} series: {counts}; summary in {result['summary']}")


@user_errors
def train(
    model: str = typer.Option("unet-gan3d", help=f"Network: {MODEL_NAMES} (docs/models.md)."),
    data: Path = typer.Option(..., "--data", help="Dataset folder with train and val splits."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder (created, or resumed when it holds this run)."),
    epochs: int = typer.Option(60, help="Maximum number of epochs."),
    batch_size: int = typer.Option(1, help="Volumes per step."),
    lr: float | None = typer.Option(None, help="Adam learning rate (default: 1e-3)."),
    seed: int = typer.Option(0, help="Seed of weights, data order and augmentation."),
    patience: int = typer.Option(15, help="Stop after this many epochs without a better validation L1 (0: never)."),
    net: list[str] | None = typer.Option(None, "--net", help=f"Network option key=value (repeatable; lists as 8,16,32), one of the model's own: {NETWORK_OPTIONS_HELP}."),
    channels: str | None = typer.Option(None, help=f"Same as --net channels=...: channels per level, e.g. 8,16,32,64 ({MODELS_WITH_CHANNELS})."),
    prior: str | None = typer.Option(None, help="Same as --net prior=...: network input beside NC: none, or chang (the log first-order Chang factor, made from the NC image); default: the model's own."),
    lr_schedule: str = typer.Option("constant", help="Learning rate over the epochs: constant or cosine (down to 1%)."),
    init: Path | None = typer.Option(None, help="Start from these weights (model folder or .pt of the same model); 'shipped' for spectac's own, to fine-tune them on your pairs."),
    augment: str = typer.Option("clinic", help="Augmentation: clinic (lateral truncation p=0.3 cutting up to 20% of the body width a side, counts x0.5-2 with matching noise, smoothing sigma up to 1 voxel, shifts up to 4 voxels), basic (earlier versions': intensity +-10%, shifts up to 3 voxels) or none."),
    aug: list[str] | None = typer.Option(None, "--aug", help="Change one augmentation range key=value (repeatable; 0 disables): intensity, shift_voxels, counts, noise, smooth_sigma, smooth_target, truncation, truncation_max, body_fraction."),
    extra_train: list[Path] | None = typer.Option(None, "--extra-train", help="Another dataset whose train split is trained on too (repeatable), on --data's grid: a second simulated cohort (another --seed), or a clinic's imported pairs beside spectac's cohort. Checkpoints are still chosen on --data's val split."),
    clean_target: bool = typer.Option(False, "--clean-target", help="Train and select against each study's CT-AC of the expected counts (noise-free; a dataset simulated with --expected-ac) instead of its noisy CT-AC."),
    device: str = typer.Option("cpu", help=DEVICE_HELP + " Default cpu."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (bfloat16 autocast) on CUDA; refused elsewhere."),
    distributed: bool | None = typer.Option(None, "--distributed/--no-distributed", help="Data-parallel over torchrun's processes (default: when launched by torchrun; docs/scaling.md). --batch-size is per process."),
    stream: str = typer.Option("off", help="Read studies from disk per step instead of holding them in memory: off, on, or auto (above 400 training studies)."),
    workers: int = typer.Option(0, help="With --stream: DataLoader worker processes reading studies (0: in the training process)."),
) -> None:
    """Train an NC -> AC network (or NC -> mu-map: unet3d-mu, for correct --route indirect); the best validation checkpoint is MODEL_DIR/best.pt."""
    from spectac.training import TrainOptions, train_model
    from spectac.training.distributed import Runtime
    from spectac.training.options import augmentation_from

    network = _parse_settings(net or [], "--net", lists=True)
    for key, given in (("channels", channels), ("prior", prior)):
        if given is not None and key in network:
            raise SpectacError(f"--{key} and --net {key}=... both given; give one")
    if channels is not None:
        try:
            network["channels"] = [int(c) for c in channels.split(",")]
        except ValueError:
            raise SpectacError(f"--channels {channels!r}: give whole numbers separated by commas, e.g. 8,16,32,64") from None
    if prior is not None:
        network["prior"] = prior
    resolve_config(model, network)  # an option the model does not have is refused here, in one line
    if init is not None and str(init) == "shipped" and not init.exists():
        from spectac.correction.deep import shipped_model_dir

        init = shipped_model_dir(model)
    from spectac.io.training_files import weights_of  # numpy: not at import (the CLI starts without it)

    if init is not None and not weights_of(init).is_file():  # before the data are loaded, not after
        raise SpectacError(f"--init {init}: no weights there (a model folder with best.pt, or a .pt file)")
    options = TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
                           lr_schedule=lr_schedule, init=None if init is None else str(init), clean_target=clean_target,
                           augmentation=augmentation_from(augment, _parse_settings(aug or [], "--aug")))
    options.check()
    ensure_writable_parent(out, folder=True)
    argv = sys.argv if sys.argv[1:2] == ["train"] else None  # the command line, for training_record.json
    runtime = Runtime(device=device, amp=amp, distributed=distributed, stream=stream, workers=workers)
    summary = train_model(data, out, model, options, network or None, argv=argv, runtime=runtime,
                          extra_train=extra_train or ())
    if summary.get("rank", 0) != 0:
        return  # rank 0 reports
    if summary["epochs_run"] == 0:
        info(f"{out}: already trained to epoch {summary['last_epoch']} (best {summary['best_epoch']}); nothing to do")
        return
    info(
        f"{model}: epochs {summary['start_epoch']}-{summary['last_epoch']}"
        f"{' (stopped early)' if summary['stopped_early'] else ''}, best epoch {summary['best_epoch']} "
        f"val L1 {summary['best_val_l1']:.4g}, {summary['seconds_per_epoch']:.1f} s/epoch; weights in {out / 'best.pt'}"
    )


@user_errors
def export_model(
    model: str = typer.Argument(..., help="Model folder written by spectac train (or a shipped model's name, e.g. unet-gan3d-chang)."),
    out: Path = typer.Argument(..., help="The archive to write (.zip; not replaced if it exists)."),
    name: str | None = typer.Option(None, help="Name the model travels under (default: the folder's name)."),
) -> None:
    """Write a model as one .zip with a versioned manifest (weights sha256, config, card) for another site."""
    from spectac.correction.exchange import export_model as export

    ensure_writable_parent(out)
    manifest = export(model, out, name)
    info(f"{manifest['name']} ({manifest['model']}): wrote {out}; weights sha256 {manifest['weights_sha256']}")


@user_errors
def import_model(
    archive: Path = typer.Argument(..., help="A .zip written by spectac export-model."),
    name: str | None = typer.Option(None, help="Install under this name (default: the archive's)."),
) -> None:
    """Verify a model archive (every sha256, format version, weights that load) and install it; then use it with --weights NAME."""
    from spectac.correction.exchange import import_model as install

    summary = install(archive, name)
    from spectac.nn.registry import get_spec

    use = ("correct --route indirect" if get_spec(summary["model"]).target == "mu"
           else f"--method {summary['model']}")
    info(f"{summary['name']} ({summary['model']}): installed in {summary['folder']}; "
         f"use {use} --weights {summary['name']}")
