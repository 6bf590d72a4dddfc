"""Leave-one-patient-out figures of the normal limits on the normal patients of a dataset.

Usage:
    python benchmarks/normals_loo.py DATASET [--split all] [--geometry-cache FILE]

For the normal patients (``defect_type == "none"``, with a stress and a rest study) of the split:

- the mean SD of the limits built from all of them, per family (nc, ac), sex and state;
- leaving each patient out in turn, limits from the others, and that patient's maps scored against
  them: the patient's own normal TPD and SSS/SRS, and, with the LCx territory multiplied by 0.5,
  the **fixed-scar SDS** (the same defect at stress and rest: should be about 0) and the
  **stress-only SDS** (the defect at stress only, against the normal rest map: clearly positive).

Polar maps are made as patients are scored (``detect_lv`` then ``polar_map``). ``--geometry-cache``
keeps the detected geometries in a pickle keyed by the source of ``spectac/quant/lv.py`` (a change of
the detector recomputes them), so polar-map experiments rerun in seconds. Prints Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pickle
import time
from pathlib import Path

import numpy as np

import spectac.quant.lv as lv_module
from spectac.io.dataset import Dataset
from spectac.quant.lv import detect_lv
from spectac.quant.normals import FAMILIES, database_from_maps
from spectac.quant.polar import polar_map
from spectac.quant.scores import score_polar_map
from spectac.quant.segments import territory_mask
from spectac.volume import SpectacError

SCAR_FACTOR = 0.5  # the LCx territory keeps half its uptake


def geometries(dataset: Dataset, cases: list, cache: Path | None) -> dict:
    key = hashlib.sha256(Path(lv_module.__file__).read_bytes()).hexdigest()
    if cache is not None and cache.is_file():
        stored = pickle.loads(cache.read_bytes())
        if stored.get("key") == key:
            return stored["geoms"]
    geoms = {}
    for case in cases:
        for family in FAMILIES:
            try:
                geoms[(case.case_id, family)] = detect_lv(dataset.load(case.case_id, family))
            except SpectacError as exc:
                print(f"<!-- no LV in {case.case_id}/{family}: {exc} -->")
    if cache is not None:
        cache.write_bytes(pickle.dumps({"key": key, "geoms": geoms}))
    return geoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--split", default="all", help="split whose normal patients are used (default all)")
    parser.add_argument("--geometry-cache", type=Path, default=None)
    args = parser.parse_args()

    t0 = time.perf_counter()
    dataset = Dataset.open(args.dataset)
    by_patient: dict[str, dict] = {}
    for case in dataset.split(args.split):
        if case.defect_type == "none":
            by_patient.setdefault(case.patient_id, {})[case.state] = case
    by_patient = {p: d for p, d in by_patient.items() if {"stress", "rest"} <= set(d)}
    cases = [c for d in by_patient.values() for c in d.values()]
    if not cases:
        raise SystemExit(f"{args.dataset}: no normal patient with stress and rest in split {args.split!r}")
    geoms = geometries(dataset, cases, args.geometry_cache)
    maps = {k: polar_map(dataset.load(k[0], k[1]), g) for k, g in geoms.items()}

    def database(patients: list[str]):
        recs, names = [], []
        for p in patients:
            for case in by_patient[p].values():
                for family in FAMILIES:
                    if (case.case_id, family) in maps:
                        recs.append((family, case.sex, case.state, maps[(case.case_id, family)]))
                        names.append(f"{case.case_id}/{family}")
        return database_from_maps(recs, {}, names)

    patients = sorted(by_patient)
    full = database(patients)
    print(f"## Normal limits, leave one patient out (`python benchmarks/normals_loo.py {args.dataset} "
          f"--split {args.split}`)\n")
    print(f"{len(patients)} normal patients; quality check rejected {len(full.meta['rejected'])} studies: "
          + (", ".join(r["study"] for r in full.meta["rejected"]) or "none") + "\n")
    print("Mean SD of the limits (all patients):\n")
    print("| family | M stress | M rest | F stress | F rest | all stress | all rest |\n|---|---|---|---|---|---|---|")
    for family in FAMILIES:
        cells = []
        for sex in ("M", "F", "all"):
            for state in ("stress", "rest"):
                group = full.groups.get((family, sex, state))
                cells.append("-" if group is None else f"{float(np.mean(group.sd)):.3f}")
        print(f"| {family} | " + " | ".join(cells) + " |")

    lcx = territory_mask("LCx")

    def score(db, case, family, factor=1.0):
        pm = maps[(case.case_id, family)]
        pm = dataclasses.replace(pm, values=(pm.values * np.where(lcx, factor, 1.0)).astype(np.float32))
        return score_polar_map(pm, db.limits(family, case.sex, case.state))

    rows: dict[tuple[str, str], list] = {}
    for p in patients:
        db = database([q for q in patients if q != p])
        stress, rest = by_patient[p]["stress"], by_patient[p]["rest"]
        for family in FAMILIES:
            if (stress.case_id, family) not in maps or (rest.case_id, family) not in maps:
                continue
            s0, r0 = score(db, stress, family), score(db, rest, family)
            s5, r5 = score(db, stress, family, SCAR_FACTOR), score(db, rest, family, SCAR_FACTOR)
            rows.setdefault((family, stress.sex), []).append(
                (s5.summed_score - r5.summed_score, s5.summed_score - r0.summed_score, s0.tpd, r0.tpd,
                 s0.summed_score, r0.summed_score))
    print(f"\nEach patient against the limits of the others; LCx territory x {SCAR_FACTOR} for the scar:\n")
    print("| family | sex | n | fixed-scar SDS mean [min, max] | stress-only SDS mean [min] | normal TPD stress / rest "
          "(max rest) | normal SSS / SRS |\n|---|---|---|---|---|---|---|")
    for (family, sex), values in sorted(rows.items()):
        a = np.asarray(values, dtype=float)
        print(f"| {family} | {sex} | {len(a)} | {a[:, 0].mean():+.1f} [{a[:, 0].min():+.0f}, {a[:, 0].max():+.0f}] | "
              f"{a[:, 1].mean():+.1f} [{a[:, 1].min():+.0f}] | {a[:, 2].mean():.1f} / {a[:, 3].mean():.1f} "
              f"({a[:, 3].max():.1f}) | {a[:, 4].mean():.1f} / {a[:, 5].mean():.1f} |")
    print(f"\n<!-- {time.perf_counter() - t0:.0f} s -->")


if __name__ == "__main__":
    main()
