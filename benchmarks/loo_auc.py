"""Detection AUC of the perfusion scores on a cohort, with normal limits from normal patients.

Usage:
    PYTHONPATH=<spectac src> python benchmarks/loo_auc.py DATASET NORMALS --label after \\
        [--json after.json] [--geometry-cache DIR] [--bootstrap 2000] [--seed 0]
    python benchmarks/loo_auc.py --merge before.json after.json

DATASET is the cohort to score (cases.csv with defect_type, "none" = normal, and defect_territory,
several territories joined by "+"); NORMALS holds normal patients of the same simulator (another
seed), each with a stress and a rest study. The script imports whichever spectac is on PYTHONPATH,
so the same file measures two versions of the quantification on the same patients.

Normal limits, per family (nc: NC images, ac: CT-AC images), sex and state, are built with the
package's own ``database_from_maps`` from the polar maps of NORMALS plus the cohort's normal
patients. A normal patient of the cohort is scored against limits built **without it** (leave one
patient out: otherwise its own maps would pull its limits toward it and flatter the specificity);
every abnormal patient against the limits of all normal patients. ``--limits normals`` instead
builds the limits from NORMALS only (independent patients, no leave-one-out needed, but the
cohort's normal patients no longer behind the limits).

Per patient and family: the stress TPD and SSS (any defect: ``defect_type != "none"``), and per
territory (LAD, LCx, RCA) the territory TPD and the sum of the territory's stress segment scores
(that territory among ``defect_territory``, against every other patient). AUC by
``sklearn.metrics.roc_auc_score`` (ties count one half), 95% percentile CI from ``--bootstrap``
resamples of the patients, stratified (abnormal and normal patients resampled separately, as in
docs/evaluation.md). An image whose LV is not found gets no score and its patient is left out of
that family's rows (n says how many remain; ``spectac evaluate`` counts it an abnormal call
instead, but the question here is the scoring, which such an image never reaches).

The package adapter is one line: the older ``database_from_maps(records, meta)`` takes the maps'
values, the newer one ``database_from_maps(records, meta, names, check)`` whole ``PolarMap``
objects (for the extracardiac flags and the quality check); which one is used is decided by the
function's signature. Everything else (``detect_lv``, ``polar_map``, ``NormalDatabase.limits``,
``score_polar_map``, ``PerfusionScores.tpd / segment_scores / territory_tpd``) has the same call in
both. Each version uses its own LV detector, polar map, limits and scoring.

``--json`` keeps every patient's scores; ``--merge A.json B.json`` prints the AUC table of both
versions side by side and the paired difference B - A (the same bootstrap resamples of the patients
scored by both). ``--geometry-cache DIR`` keeps the detected LV geometries in a pickle per detector
(keyed by the source of the detector's modules), so reruns skip the detection.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import spectac
from spectac.io.dataset import Dataset
from spectac.quant.lv import detect_lv
from spectac.quant.normals import FAMILIES, database_from_maps
from spectac.quant.polar import polar_map
from spectac.quant.scores import score_polar_map
from spectac.quant.segments import TERRITORY_SEGMENTS
from spectac.volume import SpectacError

TERRITORIES = ("LAD", "LCx", "RCA")
FAMILY_NAMES = {"nc": "NC", "ac": "CT-AC"}
DETECTOR_MODULES = ("spectac.quant.lv", "spectac.quant.geometry", "spectac.resample", "spectac.phantom.lv")
NEW_DATABASE_API = "names" in inspect.signature(database_from_maps).parameters


def detector_key() -> str:
    """Hash of the source of the LV detector and the modules it uses (those that exist)."""
    digest = hashlib.sha256()
    for name in DETECTOR_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        digest.update(name.encode() + Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def polar_maps(jobs: list[tuple[str, Dataset, str]], cache_dir: Path | None) -> dict:
    """{(tag, case_id, family): PolarMap or None (LV not found)} for every (tag, dataset, case_id)."""
    cache_file = None if cache_dir is None else cache_dir / f"geometries-{detector_key()}.pkl"
    geoms: dict = {}
    if cache_file is not None and cache_file.is_file():
        geoms = pickle.loads(cache_file.read_bytes())
    out, changed = {}, False
    for i, (tag, dataset, case_id) in enumerate(jobs):
        for family in FAMILIES:
            key = (str(dataset.root.resolve()), case_id, family)
            volume = dataset.load(case_id, family)
            if key not in geoms:
                try:
                    geoms[key] = detect_lv(volume)
                except SpectacError as exc:
                    print(f"<!-- no LV in {tag}:{case_id}/{family}: {exc} -->", file=sys.stderr)
                    geoms[key] = None
                changed = True
            out[(tag, case_id, family)] = None if geoms[key] is None else polar_map(volume, geoms[key])
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(jobs)} studies", file=sys.stderr, flush=True)
            if changed and cache_file is not None:
                cache_file.write_bytes(pickle.dumps(geoms))
                changed = False
    if changed and cache_file is not None:
        cache_file.write_bytes(pickle.dumps(geoms))
    return out


def bootstrap_aucs(y: np.ndarray, scores: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """(resamples, versions) AUC of every version on the same stratified patient-bootstrap
    resamples (abnormal and normal patients resampled separately, as pROC does by default and
    spectac.evaluation does, so every resample holds both classes)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out = np.empty((n_boot, len(scores)))
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        out[b] = [roc_auc_score(y[idx], s[idx]) for s in scores]
    return out


def metrics() -> list[tuple[str, str, str | None]]:
    """(row name, score key, territory or None for 'any defect') of every table row."""
    rows = []
    for family in FAMILIES:
        f = FAMILY_NAMES[family]
        rows += [(f"{f} stress TPD", f"{family}/tpd", None), (f"{f} SSS", f"{family}/sss", None)]
        for t in TERRITORIES:
            rows += [(f"{f} {t} territory TPD", f"{family}/tpd_{t}", t), (f"{f} {t} territory SSS", f"{family}/sss_{t}", t)]
    return rows


def labels_and_scores(patients: dict, key: str, territory: str | None, only: set | None = None):
    ids = [p for p, d in sorted(patients.items()) if d["scores"].get(key) is not None and (only is None or p in only)]
    if territory is None:
        y = np.array([patients[p]["defect"] for p in ids], dtype=int)
    else:
        y = np.array([territory in patients[p]["territories"] for p in ids], dtype=int)
    return ids, y, np.array([patients[p]["scores"][key] for p in ids], dtype=float)


def table(results: list[dict], n_boot: int, seed: int) -> str:
    """Markdown: one row per score, one column per version, and the paired difference of two."""
    labels = [r["label"] for r in results]
    head = "| score | " + " | ".join(f"AUC {lab} [95% CI]" for lab in labels) + " | n (abnormal / normal) |"
    if len(results) == 2:
        head += f" {labels[1]} - {labels[0]} [95% CI] |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, key, territory in metrics():
        common = set.intersection(*[{p for p, d in r["patients"].items() if d["scores"].get(key) is not None}
                                    for r in results])
        ys, scores = zip(*(labels_and_scores(r["patients"], key, territory, common)[1:] for r in results))
        y = ys[0]
        aucs = [float(roc_auc_score(y, s)) for s in scores]
        boots = bootstrap_aucs(y, list(scores), n_boot, seed)
        cells = [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, (lo, hi) in zip(aucs, np.percentile(boots, [2.5, 97.5], axis=0).T)]
        line = f"| {name} | " + " | ".join(cells) + f" | {len(y)} ({int(y.sum())} / {len(y) - int(y.sum())}) |"
        if len(results) == 2:
            lo, hi = np.percentile(boots[:, 1] - boots[:, 0], [2.5, 97.5])
            line += f" {aucs[1] - aucs[0]:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
        lines.append(line)
    return "\n".join(lines)


def score_cohort(args: argparse.Namespace) -> dict:
    cohort, normals = Dataset.open(args.dataset), Dataset.open(args.normals)
    by_patient: dict[tuple[str, str], dict] = {}
    for tag, dataset in (("N", normals), ("C", cohort)):
        for case in dataset.cases:
            by_patient.setdefault((tag, case.patient_id), {})[case.state] = case
    normal_patients = [k for k, d in by_patient.items()
                       if all(c.defect_type == "none" for c in d.values()) and {"stress", "rest"} <= set(d)]
    if args.limits == "normals":
        normal_patients = [k for k in normal_patients if k[0] == "N"]
    scored = sorted(k for k in by_patient if k[0] == "C" and "stress" in by_patient[k])
    jobs = {(k[0], c.case_id) for k in normal_patients for c in by_patient[k].values()}
    jobs |= {(k[0], by_patient[k]["stress"].case_id) for k in scored}
    datasets = {"N": normals, "C": cohort}
    maps = polar_maps([(tag, datasets[tag], cid) for tag, cid in sorted(jobs)], args.geometry_cache)

    def database(patients: list[tuple[str, str]]):
        recs, names = [], []
        for tag, pid in patients:
            for case in by_patient[(tag, pid)].values():
                for family in FAMILIES:
                    pm = maps[(tag, case.case_id, family)]
                    if pm is not None:
                        recs.append((family, case.sex, case.state, pm if NEW_DATABASE_API else pm.values))
                        names.append(f"{tag}:{case.case_id}/{family}")
        return database_from_maps(recs, {}, names) if NEW_DATABASE_API else database_from_maps(recs, {})

    full = database(normal_patients)
    rejected = len(full.meta.get("rejected", []))
    patients = {}
    for key in scored:
        case = by_patient[key]["stress"]
        db = database([k for k in normal_patients if k != key]) if key in normal_patients else full
        scores: dict[str, float | None] = {}
        for family in FAMILIES:
            pm = maps[("C", case.case_id, family)]
            if pm is None:
                continue
            sc = score_polar_map(pm, db.limits(family, case.sex, "stress"))
            scores[f"{family}/tpd"], scores[f"{family}/sss"] = float(sc.tpd), float(sc.summed_score)
            for t in TERRITORIES:
                scores[f"{family}/tpd_{t}"] = float(sc.territory_tpd(t))
                segs = np.asarray(TERRITORY_SEGMENTS[t]) - 1
                scores[f"{family}/sss_{t}"] = float(np.sum(sc.segment_scores[segs]))
        patients[key[1]] = {
            "defect": case.defect_type != "none",
            "territories": [t for t in case.defect_territory.split("+") if t] if case.defect_territory else [],
            "sex": case.sex,
            "scores": scores,
        }
    return {
        "label": args.label,
        "spectac_version": spectac.__version__,
        "limits": args.limits,
        "database_api": "PolarMap records, quality check" if NEW_DATABASE_API else "value records",
        "normal_patients_behind_limits": len(normal_patients),
        "studies_rejected_by_quality_check": rejected,
        "lv_not_found": sorted(f"{k[0]}:{k[1]}/{k[2]}" for k, v in maps.items() if v is None),
        "patients": patients,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("dataset", nargs="?", help="the cohort to score")
    parser.add_argument("normals", nargs="?", help="normal patients (stress and rest) for the limits")
    parser.add_argument("--label", default=None, help="the version's name in the table (default: spectac's version)")
    parser.add_argument("--limits", choices=("loo", "normals"), default="loo",
                        help="loo: NORMALS plus the cohort's other normal patients (default); normals: NORMALS only")
    parser.add_argument("--json", type=Path, default=None, help="write every patient's scores here")
    parser.add_argument("--geometry-cache", type=Path, default=None, help="folder for the LV-geometry cache")
    parser.add_argument("--bootstrap", type=int, default=2000, help="patient bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merge", type=Path, nargs=2, metavar=("A_JSON", "B_JSON"),
                        help="print the table of two --json results side by side instead")
    args = parser.parse_args()

    if args.merge:
        results = [json.loads(p.read_text()) for p in args.merge]
    else:
        if args.dataset is None or args.normals is None:
            parser.error("DATASET and NORMALS are required (or --merge A_JSON B_JSON)")
        args.label = args.label or f"spectac {spectac.__version__}"
        if args.geometry_cache is not None:
            args.geometry_cache.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        results = [score_cohort(args)]
        if args.json is not None:
            args.json.write_text(json.dumps(results[0], indent=1))
        print(f"<!-- {time.perf_counter() - t0:.0f} s -->")
    for r in results:
        print(f"{r['label']}: limits {r['limits']} ({r['normal_patients_behind_limits']} normal patients, "
              f"{r['database_api']}; {r['studies_rejected_by_quality_check']} normal images rejected by the "
              f"quality check); LV not found: {', '.join(r['lv_not_found']) or 'none'}\n")
    print(table(results, args.bootstrap, args.seed))


if __name__ == "__main__":
    main()
