"""Commands that make or move data: simulate a cohort, a phantom from a CT, import a clinic's
series, export DICOM, the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spectac.cli.common import (
    info,
    user_errors,
)
from spectac.errors import SpectacError
from spectac.io.paths import ensure_writable_parent


@user_errors
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write (created or resumed)."),
    patients: int = typer.Option(100, help="Number of patients (each gives a rest and a stress study)."),
    seed: int = typer.Option(0, help="Cohort seed: the same seed gives the same bytes."),
    workers: int = typer.Option(1, help="Studies simulated in parallel (processes; with --engine dask and no --scheduler, the LocalCluster's workers)."),
    engine: str = typer.Option("local", help="Where studies are simulated: local (a process pool) or dask (a Dask cluster; pip install 'spectac[cluster]'; docs/scaling.md)."),
    scheduler: str | None = typer.Option(None, help="With --engine dask: the scheduler's address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster)."),
    counts: float | None = typer.Option(None, help="Expected total counts per study (default: drawn from each patient's one-day or two-day dose protocol)."),
    views: int = typer.Option(60, help="Number of projection views."),
    arc: float = typer.Option(180.0, help="Orbit arc in degrees: 180 (RAO 45 to LPO 45) or 360."),
    iterations: int = typer.Option(4, help="OSEM iterations."),
    subsets: int = typer.Option(6, help="OSEM subsets."),
    scatter: str = typer.Option(
        "tew", "--scatter",
        help="Scatter in every energy window, corrected in CT-AC by 'tew' (triple energy window) or 'dew' (dual "
             "energy window); 'none': no scatter simulated and none corrected (the previous default).",
    ),
    no_scatter: bool = typer.Option(False, "--no-scatter", hidden=True, help="Same as --scatter none."),
    split: str = typer.Option("40/40/20", help="Patient-wise train/val/test proportions."),
    bmi: str | None = typer.Option(None, help="Population body-mass index as MEAN,SD (normal; default: the US adult lognormal, 42% BMI >= 30); e.g. 36,3 for an obese cohort."),
    population: str = typer.Option("referral", help="Clinical population: referral (MPI referrals: 80% diseased, multivessel, scar and ischaemia) or low-risk (fewer, smaller single defects)."),
    defect_probability: float | None = typer.Option(None, help="Share of patients with perfusion defects, replacing the population's (0: a normal cohort, e.g. for normal limits)."),
    misregistration_mm: float = typer.Option(7.0, help="SD in mm of the drawn CT-to-SPECT shift of the CT-AC mu-map (cranio-caudal; 0.6x transaxially); 0 disables."),
    collimator: str = typer.Option("GE-LEHR", help="Collimator: GE-LEHR (7.4 mm at 10 cm), SIEMENS-LEHR (7.5 mm), SIEMENS-LEUHR (6.0 mm)."),
    matrix: int = typer.Option(64, help="Matrix: 64 (6.8 mm pixels) or 128 (3.4 mm); one per cohort, training needs one grid."),
    protocol_mix: bool = typer.Option(False, help="Draw each patient's orbit (180/360) and collimator (GE/Siemens LEHR, LEUHR) instead of using --arc and --collimator."),
    activity: Path | None = typer.Option(None, help="A user's activity phantom (NIfTI, RAS affine), e.g. from XCAT."),
    mu: Path | None = typer.Option(None, help="The matching mu-map in 1/cm at 140 keV (NIfTI)."),
    expected_ac: bool = typer.Option(False, "--expected-ac", help="Also reconstruct each study's CT-AC from its expected counts (no Poisson noise): ac_expected.nii.gz, a noise-free target for spectac train --clean-target. The other files are the same bytes as without it."),
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
        counts=counts, views=views, arc=arc, iterations=iterations, subsets=subsets,
        scatter="none" if no_scatter else scatter.lower(), split=split,
        bmi=bmi_mean_sd, population=population, misregistration_mm=misregistration_mm, collimator=collimator,
        matrix=matrix, protocol_mix=protocol_mix, defect_probability=defect_probability, expected_ac=expected_ac,
    )
    if (activity is None) != (mu is None):
        raise SpectacError("--activity and --mu go together")
    ensure_writable_parent(out, folder=True)
    if activity is not None:
        path = simulate_user_phantom(activity, mu, out, config=config, seed=seed)
        info(f"wrote {path}")
        return
    from spectac.engine import executor_factory

    executor = executor_factory(engine, scheduler)
    summary = simulate_cohort(out, patients=patients, seed=seed, config=config, workers=workers, executor=executor)
    info(f"{summary['written']} studies written, {summary['skipped']} already present, in {out}")


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


@user_errors
def demo(
    out: Path = typer.Option(Path("spectac-demo"), "--out", "-o", help="Folder for the demo cohort (data/) and run (run/)."),
    patients: int = typer.Option(8, help="Patients in the demo test cohort (a rest and a stress study each)."),
    workers: int = typer.Option(2, help="Studies simulated in parallel."),
) -> None:
    """The main job on its default: simulate a test cohort, correct it (NC, Chang, shipped networks),
    score image quality and clinical scores, and write a self-contained report.html."""
    from spectac.demo import run_demo
    from spectac.evaluation.stats import table1_markdown

    ensure_writable_parent(out, folder=True)
    summary = run_demo(out, patients=patients, workers=workers)
    if not summary["networks"]:
        info("note: no shipped network weights found; the demo ran NC and Chang only")
    info(table1_markdown(summary["table1"]).rstrip())
    info(f"report: {summary['outputs']['report']}")


@user_errors
def phantom_from_ct(
    ct: Annotated[Path, typer.Option("--ct", help="Folder of an axial chest CT series (DICOM, any scanner).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for activity.nii.gz, mu.nii.gz, lv.json, phantom.json.")],
    kvp: Annotated[float | None, typer.Option(help="Tube voltage when the CT header has no KVP (80-140).")] = None,
    lv_centre: Annotated[str | None, typer.Option("--lv-centre", help="LV centre X,Y,Z in mm (LPS, the CT's frame); default: found in the heart.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the LV shape, uptake and defects (those of patient P000 of `spectac simulate --seed`).")] = 0,
    state: Annotated[str, typer.Option(help="stress or rest (uptake ratios, defect severity).")] = "stress",
    defect_probability: Annotated[float, typer.Option(help="Probability of a perfusion defect, as in the cohort.")] = 0.5,
) -> None:
    """Make an activity and mu phantom (140 keV) from a patient's chest CT, for `spectac simulate --activity/--mu`."""
    from spectac.phantom.from_ct import parse_point, write_ct_phantom

    centre = parse_point(lv_centre) if lv_centre is not None else None
    ensure_writable_parent(out)
    phantom = write_ct_phantom(ct, out, kvp=kvp, seed=seed, state=state, lv_centre_mm=centre,
                               defect_probability=defect_probability)
    d = phantom.description
    info(f"CT: {d['ct']['model'] or 'unknown model'}, {d['ct']['kvp']:g} kVp, {d['ct']['slices']} slices; "
         f"heart {d['body']['heart_ml']:.0f} mL, LV {d['lv']['placed_by']}")
    for note in d["ct"]["notes"]:
        info(f"note: {note}")
    info(f"wrote {out}")
