"""Summary and realism of a simulated cohort: counts, NC/CT-AC ratio per LV wall, population.

Run: python benchmarks/cohort_summary.py DATASET [--run RUN] [--normals LIMITS.npz]
The walls use the phantom's true LV geometry; the myocardium mask is rebuilt from the saved
patient parameters (seed -> parameters -> deterministic phantom). A wall ratio X/Y is
(NC_X / NC_Y) / (AC_X / AC_Y): how much more NC loses in wall X than in wall Y. Also printed: the BMI
distribution, the share of bodies the field cuts (true activity on a transaxial face of the grid), the
body gain (total CT-AC counts over total NC counts inside the body), the photopeak scatter
fraction recorded by the simulator, and the distribution of CT-AC stress TPD: of the test split's
stress studies scored in ``--run`` (a run that `spectac evaluate` scored), or, with ``--normals``, of
every stress study of the cohort quantified here against those limits (LV detected automatically).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from spectac.io.dataset import Dataset
from spectac.phantom.anatomy import breast_volume_ml, build_phantom
from spectac.phantom.population import PatientParams

WALLS = (("anterior", 0), ("septal", 90), ("inferior", 180), ("lateral", 270))
BIG_BREAST, BREAST_UNIT = 600.0, "volume mL"  # per breast


def wall_ratios(nc: np.ndarray, ac: np.ndarray, myocardium: np.ndarray, lv: dict, spacing: float) -> dict:
    idx = np.argwhere(myocardium > 0.5)
    rel = (idx - (np.asarray(nc.shape) - 1) / 2) * spacing - np.asarray(lv["center_mm"])
    theta = np.degrees(np.arctan2(rel @ np.asarray(lv["septal"]), rel @ np.asarray(lv["anterior"]))) % 360
    out = {}
    for wall, centre in WALLS:
        sel = tuple(idx[np.abs((theta - centre + 180) % 360 - 180) < 45].T)
        out[wall] = float(nc[sel].mean() / ac[sel].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--run", help="a run folder holding clinical.csv (spectac evaluate)")
    parser.add_argument("--normals", help="normal limits (.npz) to score every CT-AC stress study against")
    args = parser.parse_args()
    ds = Dataset.open(args.dataset)
    spacing = float(ds.meta["protocol"]["pixel_mm"])
    rows = []
    for case in ds.cases:
        lv = ds.lv(case.case_id)
        params = PatientParams.from_dict(lv["phantom"]["params"])
        phantom = build_phantom(params, case.state, tuple(ds.meta["config"]["shape"]), spacing, tuple(lv["shift_mm"]))
        nc, ac = ds.load(case.case_id, "nc").array, ds.load(case.case_id, "ac").array
        ratios = wall_ratios(nc, ac, phantom.myocardium, lv, spacing)
        big_breasts = case.sex == "F" and breast_volume_ml(params) >= BIG_BREAST
        mu = ds.load(case.case_id, "mu").array
        body = mu > 0
        emitting = ds.load(case.case_id, "truth").array > 0
        extra = {
            "cut": touches_face(emitting),
            "mu_at_face": touches_face(body),
            "gain": float(ac[body].sum() / max(nc[body].sum(), 1e-9)),
            "scatter_fraction": lv["phantom"].get("scatter_fraction"),
        }
        rows.append((case, lv["phantom"]["measured_counts"], ratios, big_breasts, extra))
    print(f"dataset: {args.dataset} ({len(ds.cases)} studies, seed {ds.meta.get('seed')})")
    for state in ("stress", "rest"):
        counts = np.array([r[1] for r in rows if r[0].state == state])
        print(f"- {state}: measured counts per study {counts.mean() / 1e6:.2f} +- {counts.std() / 1e6:.2f} M")
    print("\nNC/CT-AC count ratio per LV wall (mean +- SD over normal studies, i.e. no defect in that study):")
    print("| group | n | anterior | septal | inferior | lateral | inferior/anterior | septal/lateral |")
    print("|---|---|---|---|---|---|---|---|")
    groups = {
        "men": lambda c, b: c.sex == "M",
        f"women, breast {BREAST_UNIT} < {BIG_BREAST:g}": lambda c, b: c.sex == "F" and not b,
        f"women, breast {BREAST_UNIT} >= {BIG_BREAST:g}": lambda c, b: c.sex == "F" and b,
    }
    for name, pick in groups.items():
        sel = [r for r in rows if pick(r[0], r[3]) and not r[0].has_defect]
        if not sel:
            continue
        cells = []
        for wall, _ in WALLS:
            v = np.array([r[2][wall] for r in sel])
            cells.append(f"{v.mean():.3f} +- {v.std():.3f}")
        ia = np.array([r[2]["inferior"] / r[2]["anterior"] for r in sel])
        sl = np.array([r[2]["septal"] / r[2]["lateral"] for r in sel])
        print(f"| {name} | {len(sel)} | " + " | ".join(cells) + f" | {ia.mean():.2f} +- {ia.std():.2f} | "
              f"{sl.mean():.2f} +- {sl.std():.2f} |")
    patients = {c.patient_id: c for c in ds.cases if c.state == "stress"}
    mix = Counter((c.defect_type, c.defect_territory) for c in patients.values())
    print("\nDefect mix (patients): " + ", ".join(f"{t or 'none'} {terr}: {n}".replace(" :", ":") for (t, terr), n in sorted(mix.items())))
    splits = Counter(c.split for c in patients.values())
    print("Split (patients): " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
    sexes = Counter(c.sex for c in patients.values())
    print("Sex: " + ", ".join(f"{k} {v}" for k, v in sorted(sexes.items())))
    tpd = None
    if args.normals:
        tpd = cohort_stress_tpd(ds, args.normals)
    realism(rows, list(patients.values()), args.run, tpd)


def cohort_stress_tpd(ds: Dataset, normals: str | Path | None) -> list[tuple[str, str, float | None]]:
    """(case id, defect types, CT-AC stress TPD) of every stress study, scored as `spectac quantify`
    scores it (automatic LV detection) against ``normals`` (None: the shipped limits); the TPD is
    None where no LV is found (counted, not scored)."""
    from spectac.quant.normals import NormalDatabase
    from spectac.quant.study import quantify
    from spectac.volume import SpectacError

    db = NormalDatabase.load(normals)
    rows = []
    for case in ds.cases:
        if case.state != "stress":
            continue
        sex = case.sex if case.sex in ("F", "M") else "all"
        try:
            tpd = quantify(ds.load(case.case_id, "ac"), db.limits("ac", sex, "stress")).scores.tpd
        except SpectacError:
            tpd = None
        rows.append((case.case_id, case.defect_type or "none", tpd))
    return rows


def tpd_line(rows: list[tuple[str, str, float | None]]) -> str:
    """mean +- SD (n, LV not found, median, share >= 5%) of the scored rows."""
    t = np.array([tpd for _, _, tpd in rows if tpd is not None], dtype=float)
    return (f"{t.mean():.1f} +- {t.std(ddof=1):.1f} (n {len(t)}, LV not found {len(rows) - len(t)}, "
            f"median {np.median(t):.1f}, {np.mean(t >= 5):.0%} >= 5%)")


def realism(rows: list, patients: list, run: str | None, cohort_tpd: list | None = None) -> None:
    """The realism figures of the module docstring, as a markdown table."""
    bmi = np.array([c.bmi for c in patients], dtype=float)
    cut = np.array([r[4]["cut"] for r in rows])
    gain = np.array([r[4]["gain"] for r in rows])
    print("\n| realism figure | value |\n|---|---|")
    print(f"| BMI mean +- SD (range) | {bmi.mean():.1f} +- {bmi.std():.1f} ({bmi.min():.1f}-{bmi.max():.1f}) |")
    print(f"| BMI >= 30 / >= 35 / >= 40 | {np.mean(bmi >= 30):.0%} / {np.mean(bmi >= 35):.0%} / {np.mean(bmi >= 40):.0%} |")
    mu_face = np.array([r[4]["mu_at_face"] for r in rows])
    print(f"| bodies cut by the field (studies; the true activity on a transaxial face) | {cut.sum()} of {len(cut)} |")
    print(f"| CT-AC mu-maps reaching a transaxial face (the body displaced by the misregistration) | "
          f"{mu_face.sum()} of {len(mu_face)} |")
    print(f"| body gain CT-AC / NC counts, mean +- SD | {gain.mean():.2f} +- {gain.std():.2f} |")
    sf = np.array([r[4]["scatter_fraction"] for r in rows if r[4]["scatter_fraction"] is not None], dtype=float)
    if len(sf):
        print(f"| photopeak scatter fraction, mean +- SD (range) | {sf.mean():.3f} +- {sf.std():.3f} "
              f"({sf.min():.3f}-{sf.max():.3f}) |")
    else:
        print("| photopeak scatter fraction | not recorded (a dataset simulated without scatter) |")
    if cohort_tpd is not None:
        print(f"| CT-AC stress TPD, every stress study | {tpd_line(cohort_tpd)} |")
    if run:
        import pandas as pd

        clinical = pd.read_csv(Path(run) / "clinical.csv")
        tpd = clinical[(clinical["method"] == "ac") & (clinical["state"] == "stress")]["tpd"].dropna()
        print(f"| CT-AC stress TPD mean +- SD (n, median, share >= 5%) | {tpd.mean():.1f} +- {tpd.std():.1f} "
              f"(n {len(tpd)}, median {tpd.median():.1f}, {np.mean(tpd >= 5):.0%}) |")


def touches_face(mask: np.ndarray) -> bool:
    """Whether a mask reaches one of the four transaxial faces of the grid."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


if __name__ == "__main__":
    main()
