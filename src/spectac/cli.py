"""The `spectac` command: one thin command per stage, each calling a plain, importable function.

Only this module prints to the terminal. Errors caused by the user's input (SpectacError) are
printed as one line and exit with code 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from spectac.correction import DEFAULT_METHOD
from spectac.io.paths import ensure_writable_parent
from spectac.volume import SpectacError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="spectac: attenuation-corrected myocardial perfusion SPECT without a CT.",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


#: The longest error line printed; the rest is cut to "...".
MAX_ERROR_CHARS = 500


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` as one printable line of at most ``limit`` characters.

    Newlines and other whitespace collapse to single spaces; other non-printable characters (raw
    bytes of a damaged DICOM value, undecodable file names) are shown as escapes such as \\x00.
    """
    flat = " ".join(str(text).split())
    printable = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in flat)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def print_error(message: str) -> None:
    """The one error line: a bold "error:" and the message, printed literally (never as markup)."""
    console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)), highlight=False, soft_wrap=True)


def _os_error_message(exc: OSError) -> str:
    """An OSError of a command (an unwritable output, a full disk) as "<path>: cannot write (...)"."""
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    reason = exc.strerror or exc.__class__.__name__
    if isinstance(exc, FileNotFoundError) and path is not None and Path(str(path)).parent.is_dir():
        return f"{path}: {reason}"  # a missing input, not an output that cannot be made
    return f"{path}: cannot write ({reason})" if path is not None else f"cannot write ({reason})"


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SpectacError (bad input) into one clear line on stderr and exit code 2.

    An OSError escaping a command (an output that cannot be written: no permission, a parent that
    is a file, a full disk) is reported the same way, as the last line of defence behind the
    up-front checks of :func:`spectac.io.paths.ensure_writable_parent`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpectacError as exc:
            print_error(str(exc))
            raise typer.Exit(code=2) from None
        except OSError as exc:
            print_error(_os_error_message(exc))
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]: finished outputs are kept; run again to resume")
            raise typer.Exit(code=130) from None

    return wrapper


def info(message: str) -> None:
    """Print a message literally: paths and DICOM values may hold [brackets] or :colons:."""
    console.print(Text(str(message)), highlight=False, soft_wrap=True)


@app.command()
@user_errors
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write (created or resumed)."),
    patients: int = typer.Option(100, help="Number of patients (each gives a rest and a stress study)."),
    seed: int = typer.Option(0, help="Cohort seed: the same seed gives the same bytes."),
    workers: int = typer.Option(1, help="Studies simulated in parallel (processes)."),
    counts: float | None = typer.Option(None, help="Expected total counts per study (default: drawn around 4e6 stress, 3e6 rest)."),
    views: int = typer.Option(60, help="Number of projection views."),
    arc: float = typer.Option(180.0, help="Orbit arc in degrees: 180 (RAO 45 to LPO 45) or 360."),
    iterations: int = typer.Option(4, help="OSEM iterations."),
    subsets: int = typer.Option(6, help="OSEM subsets."),
    scatter: bool = typer.Option(False, help="Add a scatter component to the projections."),
    split: str = typer.Option("40/40/20", help="Patient-wise train/val/test proportions."),
    bmi: str | None = typer.Option(None, help="Population body-mass index as MEAN,SD (default 25.5,4.5); e.g. 36,3 for an obese cohort."),
    activity: Path | None = typer.Option(None, help="A user's activity phantom (NIfTI, RAS affine), e.g. from XCAT."),
    mu: Path | None = typer.Option(None, help="The matching mu-map in 1/cm at 140 keV (NIfTI)."),
) -> None:
    """Simulate a cohort of rest/stress MPI studies (NC and CT-AC OSEM, with truth) as a dataset."""
    from spectac.simulate import SimulationConfig, simulate_cohort, simulate_user_phantom

    bmi_mean_sd = None
    if bmi is not None:
        try:
            mean, sd = (float(v) for v in bmi.split(","))
        except ValueError:
            raise SpectacError(f"--bmi expects MEAN,SD such as 36,3, got {bmi!r}") from None
        bmi_mean_sd = (mean, sd)
    config = SimulationConfig.build(
        counts=counts, views=views, arc=arc, iterations=iterations, subsets=subsets, scatter=scatter, split=split,
        bmi=bmi_mean_sd,
    )
    if (activity is None) != (mu is None):
        raise SpectacError("--activity and --mu go together")
    ensure_writable_parent(out, folder=True)
    if activity is not None:
        path = simulate_user_phantom(activity, mu, out, config=config, seed=seed)
        info(f"wrote {path}")
        return
    summary = simulate_cohort(out, patients=patients, seed=seed, config=config, workers=workers)
    info(f"{summary['written']} studies written, {summary['skipped']} already present, in {out}")


def _parse_settings(settings: list[str]) -> dict[str, Any]:
    """--set key=value pairs; values parsed as JSON when they can be (numbers, true/false, null)."""
    import json

    options: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpectacError(f"--set expects key=value, got {item!r}")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


@app.command()
@user_errors
def predict(
    method: Annotated[str, typer.Option("--method", "-m", help="Correction method: nc, chang, chang-iterative, or a registered network.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; predictions go to RUN/predictions/<method>/.")],
    split: Annotated[str, typer.Option(help="Split to predict: train, val, test or all.")] = "test",
    mu: Annotated[float | None, typer.Option(help="Chang: uniform mu inside the body in 1/cm (default 0.12; water 0.153).")] = None,
    iterations: Annotated[int | None, typer.Option(help="chang-iterative: number of error updates (default 2).")] = None,
    settings: Annotated[list[str] | None, typer.Option("--set", help="Further method option key=value (repeatable).")] = None,
) -> None:
    """Correct the NC studies of a dataset with one method (resumable; existing predictions kept)."""
    from spectac.correction.run import predict_dataset

    options = {"mu": mu, "iterations": iterations, **_parse_settings(settings or [])}
    ensure_writable_parent(out, folder=True)
    summary = predict_dataset(data, out, method, None if split == "all" else split, **options)
    info(f"{method}: {summary['written']} predictions written, {summary['skipped']} already present, in {summary['folder']}")


@app.command()
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (the CT-AC references).")],
    run: Annotated[Path, typer.Option("--run", "-r", help="Run folder holding predictions/<method>/.")],
    split: Annotated[str, typer.Option(help="Split to evaluate: train, val, test or all.")] = "test",
) -> None:
    """Score every method of a run against CT-AC: metrics.csv, Table 1, Figure 3, Wilcoxon tests, report.html."""
    from spectac.evaluation.harness import evaluate_run

    if run.is_dir():
        ensure_writable_parent(run, folder=True)
    summary = evaluate_run(data, run, None if split == "all" else split)
    info(f"{len(summary['methods'])} methods x {summary['studies']} studies scored; report: {summary['outputs']['report']}")
    info(summary["outputs"]["table1_md"].read_text().rstrip())


@app.command()
@user_errors
def train(
    model: str = typer.Option("unet-gan3d", help="Network: unet-gan3d, unet3d, unet2d, pix2pix2d, resnet, or unet-gan3d-chang (on NC + the log Chang factor)."),
    data: Path = typer.Option(..., "--data", help="Dataset folder with train and val splits."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder (created, or resumed when it holds this run)."),
    epochs: int = typer.Option(60, help="Maximum number of epochs."),
    batch_size: int = typer.Option(1, help="Volumes per step."),
    lr: float | None = typer.Option(None, help="Adam learning rate (default: 1e-3)."),
    seed: int = typer.Option(0, help="Seed of weights, data order and augmentation."),
    patience: int = typer.Option(15, help="Stop after this many epochs without a better validation L1 (0: never)."),
    channels: str | None = typer.Option(None, help="U-Net channels per level, e.g. 8,16,32,64."),
    prior: str | None = typer.Option(None, help="Network input beside NC: none, or chang (the log first-order Chang factor, made from the NC image); default: the model's own (chang for unet-gan3d-chang)."),
    lr_schedule: str = typer.Option("constant", help="Learning rate over the epochs: constant or cosine (down to 1%)."),
    init: Path | None = typer.Option(None, help="Start from these weights (model folder or .pt of the same model); 'shipped' for spectac's own, to fine-tune them on your pairs."),
) -> None:
    """Train an NC -> AC network; the best validation checkpoint is MODEL_DIR/best.pt."""
    from spectac.training import TrainOptions, train_model

    try:
        network = {"channels": [int(c) for c in channels.split(",")]} if channels else {}
    except ValueError:
        raise SpectacError(f"--channels {channels!r}: give whole numbers separated by commas, e.g. 8,16,32,64") from None
    if prior is not None:
        network["prior"] = prior
    if init is not None and str(init) == "shipped" and not init.exists():
        from spectac.correction.deep import shipped_model_dir

        init = shipped_model_dir(model)
    options = TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
                           lr_schedule=lr_schedule, init=None if init is None else str(init))
    options.check()
    ensure_writable_parent(out, folder=True)
    argv = sys.argv if sys.argv[1:2] == ["train"] else None  # the command line, for training_record.json
    summary = train_model(data, out, model, options, network or None, argv=argv)
    if summary["epochs_run"] == 0:
        info(f"{out}: already trained to epoch {summary['last_epoch']} (best {summary['best_epoch']}); nothing to do")
        return
    info(
        f"{model}: epochs {summary['start_epoch']}-{summary['last_epoch']}"
        f"{' (stopped early)' if summary['stopped_early'] else ''}, best epoch {summary['best_epoch']} "
        f"val L1 {summary['best_val_l1']:.4g}, {summary['seconds_per_epoch']:.1f} s/epoch; weights in {out / 'best.pt'}"
    )


@app.command()
@user_errors
def correct(
    input: Path = typer.Argument(..., help="NC study: an NM DICOM file, a folder of one DICOM series, or NIfTI (.nii/.nii.gz)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: a new folder or .dcm (DICOM in), or .nii.gz; never inside or around the input."),
    method: str = typer.Option(DEFAULT_METHOD, help=f"Correction method (default {DEFAULT_METHOD}, the shipped network closest to CT-AC; also unet-gan3d and the other networks, chang, chang-iterative, nc)."),
    weights: Path | None = typer.Option(None, help="Model folder or .pt (default: the shipped weights)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file (never a folder, never the input)."),
    force: bool = typer.Option(False, "--force", help="Correct an input that says it is already attenuation/scatter-corrected or a mu-map; the output notes it was forced."),
    arc: float | None = typer.Option(None, help="Camera orbit of the acquisition in degrees, 180 or 360 (Chang and the Chang prior use it); default: 180 for Chang, a network's training orbit."),
) -> None:
    """Attenuation-correct one NC study: DICOM in gives a new derived DICOM series out, NIfTI in NIfTI out.

    Refused (exit 2, nothing written): an input already corrected (Corrected Image ATTN/SCAT, spectac's own output), a mu-map or CT, a grid no SPECT camera makes (voxels outside 1-20 mm, fewer than 16 or more than 256 voxels along an axis, oblique), and substantially negative values.
    """
    from spectac.correction.files import correct_path

    ensure_writable_parent(output)
    summary = correct_path(input, output, method, weights, overwrite=overwrite, force=force, arc=arc)
    if summary["forced"]:
        info(f"note: forced: {input} {summary['forced']}")
    info(f"{method}: wrote {summary['kind']} {summary['output']}")


@app.command("import")
@user_errors
def import_dicom(
    nc: Path = typer.Option(..., "--nc", help="Folder of NC SPECT DICOM series (any layout)."),
    ac: Path = typer.Option(..., "--ac", help="Folder of CT-AC SPECT DICOM series of the same studies."),
    out: Path = typer.Option(..., "--out", "-o", help="New dataset folder."),
    mu: Path | None = typer.Option(None, "--mu", help="Folder of CT (HU) or vendor NM mu-map series."),
    split: str = typer.Option("40/40/20", help="Patient-wise train/val/test proportions."),
    seed: int = typer.Option(0, help="Seed of the patient split."),
    arc: float = typer.Option(180.0, help="Camera orbit of the acquisitions in degrees: 180 (RAO 45 to LPO 45) or 360; Chang uses it."),
    key_file: Path | None = typer.Option(
        None, "--key-file",
        help="Secret key of the patient pseudonyms (default: $SPECTAC_PSEUDONYM_KEY_FILE or ~/.config/spectac/pseudonym.key; created when missing).",
    ),
    keep_patient_ids: bool = typer.Option(
        False, "--keep-patient-ids", help="Keep the DICOM Patient IDs as patient and case ids (no pseudonyms)."
    ),
) -> None:
    """Build a training dataset from a clinic's NC and CT-AC DICOM series, paired by study."""
    from spectac.io.importer import import_dicom_dataset

    ensure_writable_parent(out, folder=True)
    summary = import_dicom_dataset(nc, ac, out, mu_dir=mu, split=split, seed=seed, arc=arc,
                                   keep_patient_ids=keep_patient_ids, key_file=key_file)
    info(f"{summary['studies']} studies of {summary['patients']} patients imported into {summary['folder']}")
    if summary["key_file"] is not None:
        made = "created a new key in" if summary["key_created"] else "with the key in"
        info(f"Patient IDs pseudonymised, {made} {summary['key_file']}; keep it secret and keep it: "
             "the same key gives the same pseudonyms in later imports")
    if summary["unpaired"]:
        info(f"{len(summary['unpaired'])} NC series had no AC series and were skipped: {summary['unpaired'][0]} ...")
    if summary["skipped"]:
        shown = "; ".join(f"{s['path']}: {s['reason']}" for s in summary["skipped"][:3])
        more = " ..." if len(summary["skipped"]) > 3 else ""
        info(f"{len(summary['skipped'])} entries of the input folders were not read: {shown}{more}")


@app.command("export-dicom")
@user_errors
def export_dicom(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Export folder: OUT/nc, OUT/ac, OUT/mu."),
    split: str = typer.Option("all", help="Split to export: train, val, test or all."),
    mu_as: str = typer.Option("nm", help="Write the mu-map as an NM series (nm) or a CT series in HU (ct)."),
) -> None:
    """Write the studies of a dataset as GE-style NM DICOM series (NC, CT-AC, mu-map)."""
    from spectac.io.dicom import export_dataset_dicom

    if mu_as not in ("nm", "ct"):
        raise SpectacError(f"--mu-as {mu_as!r}: choose nm or ct")
    ensure_writable_parent(out, folder=True)
    summary = export_dataset_dicom(data, out, None if split == "all" else split, mu_as=mu_as)
    info(f"{summary['studies']} studies written as DICOM in {summary['folder']}")


@app.command()
@user_errors
def normals(
    data: Path = typer.Option(..., "--data", help="Dataset folder whose normal patients give the limits."),
    out: Path = typer.Option(..., "--out", "-o", help="Normal database to write (.npz)."),
    split: str = typer.Option("train", help="Split whose normal patients (defect_type none) are used."),
) -> None:
    """Build the NC and AC normal databases (polar-map mean and SD per sex and state)."""
    from spectac.io.dataset import Dataset
    from spectac.quant.normals import build_normal_database

    if out.suffix != ".npz":  # refuse before the slow part
        raise SpectacError(f"{out}: a normal database is an .npz file")
    ensure_writable_parent(out)
    db = build_normal_database(Dataset.open(data), split)
    path = db.save(out)
    failed = len(db.meta["detection_failures"])
    info(f"wrote {path}: {db.meta['patients']} normal patients, {db.meta['studies']} studies, LV not found in {failed}")


@app.command("detect-lv")
@user_errors
def detect_lv_report(
    data: Path = typer.Option(..., "--data", help="Simulated dataset (studies with lv.json)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of the per-study errors."),
    split: str = typer.Option("all", help="Split to check."),
) -> None:
    """Check automatic LV detection against the truth (lv.json): axis and centre errors."""
    from spectac.quant.validation import detection_errors, summarise_detection_errors

    if out is not None:
        ensure_writable_parent(out)
    table = detection_errors(data, split, out)
    info(summarise_detection_errors(table))


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("spectac-demo"), "--out", "-o", help="Folder for the demo cohort (data/) and run (run/)."),
    patients: int = typer.Option(8, help="Patients in the demo test cohort (a rest and a stress study each)."),
    workers: int = typer.Option(2, help="Studies simulated in parallel."),
) -> None:
    """The main job on its default: simulate a test cohort, correct it (NC, Chang, shipped networks),
    score image quality and clinical scores, and write a self-contained report.html."""
    from spectac.demo import run_demo

    ensure_writable_parent(out, folder=True)
    summary = run_demo(out, patients=patients, workers=workers)
    if not summary["networks"]:
        info("note: no shipped network weights found; the demo ran NC and Chang only")
    info(summary["outputs"]["table1_md"].read_text().rstrip())
    info(f"report: {summary['outputs']['report']}")


@app.command("quantify")
@user_errors
def quantify_command(
    study: Annotated[Path, typer.Argument(help="Stress study: DICOM (file or folder) or NIfTI.")],
    rest: Annotated[Path | None, typer.Option("--rest", help="Rest study of the same patient (DICOM or NIfTI).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the polar maps (PNG) and scores.json.")] = None,
    family: Annotated[str, typer.Option(help="Normal limits: ac (any attenuation-corrected image) or nc.")] = "ac",
    sex: Annotated[str | None, typer.Option(help="F or M; default: PatientSex of the DICOM, else pooled limits.")] = None,
    normals: Annotated[Path | None, typer.Option(help="Normal database (.npz); default: the shipped one.")] = None,
) -> None:
    """Score one patient like QPS/4DM: TPD, SSS (and SRS, SDS with --rest), with polar maps."""
    import json

    from spectac.io.atomic import write_text_atomic
    from spectac.io.dicom import is_dicom_path, read_dicom_volume
    from spectac.io.nifti import read_nifti
    from spectac.quant.normals import FAMILIES, NormalDatabase
    from spectac.quant.study import patient_position, position_note, quantify_patient
    from spectac.volume import Volume

    if family not in FAMILIES:
        raise SpectacError(f"--family must be one of {', '.join(FAMILIES)}, got {family!r}")

    positions: dict[str, str] = {}

    def read(path: Path, state: str) -> tuple[Volume, str]:
        if is_dicom_path(path):
            volume, context = read_dicom_volume(path)
            positions[state] = position_note(patient_position(context.series))
            return volume, context.patient_sex
        positions[state] = "not DICOM, PatientPosition unknown: assumed supine (HFS), as the normal limits are"
        return read_nifti(path), ""

    stress_volume, stress_sex = read(study, "stress")
    rest_volume, rest_sex = read(rest, "rest") if rest is not None else (None, "")
    if sex is not None:
        if sex.upper() not in ("F", "M"):
            raise SpectacError(f"--sex must be F or M, got {sex!r}")
        chosen, why = sex.upper(), "given with --sex"
    elif stress_sex in ("F", "M") or rest_sex in ("F", "M"):
        chosen = stress_sex if stress_sex in ("F", "M") else rest_sex
        why = "PatientSex of the DICOM"
    else:
        chosen, why = "all", "PatientSex missing or not F/M: the pooled (both sexes) limits were used"
    patient = quantify_patient(stress_volume, rest_volume, NormalDatabase.load(normals), family, chosen)
    summary = patient.summary()
    info(f"limits: {family}, sex {chosen} ({why})")
    for state, q in (("stress", patient.stress), ("rest", patient.rest)):
        if q is not None:
            g = q.geometry
            info(f"{state}: position {positions[state]}; LV fit confidence {g.confidence} (wall coverage "
                 f"{g.wall_coverage:.2f}, hot surroundings {g.hot_surroundings:.2f}, R {g.radius_mm:.0f} mm, "
                 f"L {g.length_mm:.0f} mm)")
    info("  ".join(f"{k} {v:.1f}" if isinstance(v, float) and not float(v).is_integer() else f"{k} {v:g}"
                   for k, v in summary.items()))
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from spectac.quant.polar import plot_polar_map

        out.mkdir(parents=True, exist_ok=True)
        for state, q in (("stress", patient.stress), ("rest", patient.rest)):
            if q is None:
                continue
            fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
            image = plot_polar_map(axes[0], q.scores.values, f"{state}: uptake (normalised)", vmin=0, vmax=1.2)
            fig.colorbar(image, ax=axes[0], shrink=0.7)
            image = plot_polar_map(axes[1], q.scores.severity, f"severity (TPD {q.scores.tpd:.1f}%)", vmin=0,
                                   vmax=4, cmap="hot_r")
            fig.colorbar(image, ax=axes[1], shrink=0.7)
            fig.savefig(out / f"{state}_polar.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
        write_text_atomic(out / "scores.json", json.dumps({"family": family, "sex": chosen, "sex_source": why,
                                                           "position": positions,
                                                           "lv_confidence": {st: q.geometry.confidence for st, q in
                                                                             (("stress", patient.stress),
                                                                              ("rest", patient.rest)) if q},
                                                           **summary}, indent=1))
        info(f"wrote {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
