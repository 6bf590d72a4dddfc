"""Summary of a simulated cohort: counts, NC/CT-AC ratio per LV wall, defect mix.

Run: python benchmarks/cohort_summary.py DATASET
The walls use the phantom's true LV geometry; the myocardium mask is rebuilt from the saved
patient parameters (seed -> parameters -> deterministic phantom).
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from spectac.io.dataset import Dataset
from spectac.phantom.anatomy import build_phantom
from spectac.phantom.population import PatientParams

WALLS = (("anterior", 0), ("septal", 90), ("inferior", 180), ("lateral", 270))


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
        big_breasts = case.sex == "F" and params.breast_radius_mm >= 60
        rows.append((case, lv["phantom"]["measured_counts"], ratios, big_breasts))
    print(f"dataset: {args.dataset} ({len(ds.cases)} studies, seed {ds.meta.get('seed')})")
    for state in ("stress", "rest"):
        counts = np.array([r[1] for r in rows if r[0].state == state])
        print(f"- {state}: measured counts per study {counts.mean() / 1e6:.2f} +- {counts.std() / 1e6:.2f} M")
    print("\nNC/CT-AC count ratio per LV wall (mean +- SD over normal studies, i.e. no defect in that study):")
    print("| group | n | anterior | septal | inferior | lateral | inferior/anterior |")
    print("|---|---|---|---|---|---|---|")
    groups = {
        "men": lambda c, b: c.sex == "M",
        "women, breast radius < 60 mm": lambda c, b: c.sex == "F" and not b,
        "women, breast radius >= 60 mm": lambda c, b: c.sex == "F" and b,
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
        print(f"| {name} | {len(sel)} | " + " | ".join(cells) + f" | {ia.mean():.2f} +- {ia.std():.2f} |")
    patients = {c.patient_id: c for c in ds.cases if c.state == "stress"}
    mix = Counter((c.defect_type, c.defect_territory) for c in patients.values())
    print("\nDefect mix (patients): " + ", ".join(f"{t or 'none'} {terr}: {n}".replace(" :", ":") for (t, terr), n in sorted(mix.items())))
    splits = Counter(c.split for c in patients.values())
    print("Split (patients): " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
    sexes = Counter(c.sex for c in patients.values())
    print("Sex: " + ", ".join(f"{k} {v}" for k, v in sorted(sexes.items())))


if __name__ == "__main__":
    main()
