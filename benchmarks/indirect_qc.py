"""The direct route against the indirect one on the same studies, and the consistency index as a QC.

Direct against indirect: Table 1, TPD agreement, detection, 17-segment error against the truth,
mu-map error. The consistency index as a quality control: its threshold calibrated on validation
studies, its flag rate on faulty test studies.

Usage:
    PYTHONPATH=<spectac src> OMP_NUM_THREADS=1 python benchmarks/indirect_qc.py DATASET \\
        [--mu-model MU_MODEL | --mu-model oracle] [--method unet-gan3d-chang] [--weights DIR] \\
        [--split test] [--calibration-split val] [--no-faults] [--no-chang] [--normals NPZ] \\
        [--limit N] [--quantile 0.95] [--truncate 0.15] [--motion-rows 2] [--arc-fraction 0.5] \\
        [--csv per_study.csv] [--threads 1] [--write-threshold MODEL_DIR]

Examples (one torch thread; minutes per study measured on a shared 2-core machine: about 0.6 with
``--no-faults``, 1.5 with the four faults, 0.3 per calibration study):

    # in distribution: the test split, the QC threshold from the whole validation split
    python benchmarks/indirect_qc.py data/cohort0 --csv runs/indirect_test.csv
    # out of distribution: an obese cohort, and phantoms made from a real CT (benchmarks/ct_cohort.py)
    spectac simulate --patients 10 --seed 101 --bmi 36,3 --split 0/0/1 --out data/obese
    python benchmarks/indirect_qc.py data/obese --no-faults --csv runs/indirect_obese.csv
    python benchmarks/indirect_qc.py runs/ct/cohort --no-faults --csv runs/indirect_ct.csv

DATASET is a simulated dataset that keeps every study's window projections (projections.npz),
mu-map, NC and CT-AC images, and for the truth-based figures truth.nii.gz and lv.json (a study
without them gets no truth columns, and the script says so). No DICOM is written: each study's
acquisition is rebuilt in memory (``spectac.reconstruction.study.study_acquisition``) and
corrected by the package's own code paths:

- direct route: the correction method ``--method`` (default: ``spectac correct``'s, the shipped
  network closest to CT-AC; ``--weights`` for other weights) on the dataset's NC image, as
  ``spectac predict`` runs it (``spectac.correction.run.apply_method``);
- indirect route: ``spectac.correction.indirect.correct_acquisition`` with the mu model
  ``--mu-model`` (default: the shipped unet3d-mu when installed), the dataset's OSEM settings
  (dataset.json), TEW scatter correction; ``--mu-model oracle`` gives it the true mu-map instead of
  a prediction (the route's physics alone: the NC reconstruction and the network are skipped);
- references: NC (the dataset's nc.nii.gz), first-order Chang (``--no-chang`` skips it), and CT-AC:
  the dataset's ac.nii.gz for every image and clinical score, and OSEM of the in-memory
  acquisition with the stored (misregistered) mu-map and TEW, as the simulator made ac.nii.gz, for
  the consistency index of the clinic's reference (its image metrics, against ac.nii.gz, check
  the rebuild: about 0).

Per study of ``--split`` and route (``--csv`` writes one row per study and route or condition):

- Table 1 against CT-AC: ME, MAE, RMSE, SSIM, PSNR, NMAE, NRMSE, whole volume and ``heart_*``
  inside the heart region, with ``spectac evaluate``'s functions
  (``spectac.evaluation.metrics.image_metrics``, ``heart_region_and_lv_max`` of CT-AC); the heart
  MAE against the truth (``spectac.evaluation.against_truth.truth_metrics``);
- TPD, territory TPDs and the summed score (SSS of a stress study, SRS of a rest one) with
  automatic LV detection (``spectac.quant.study.quantify``) against the normal limits shipped
  with spectac (``--normals`` for others; NC against the NC family, every AC image against the AC
  family, as ``spectac evaluate``), and ``dtpd`` = TPD - CT-AC's TPD;
- ``segment_error``: the mean |relative 17-segment uptake - the truth's| in percentage points on
  the phantom's LV (lv.json), as ``benchmarks/segment_truth_error.py --geometry truth``;
- the mu-map MAE inside the body (true mu > 0.01 1/cm) against the true mu-map (mu.nii.gz moved
  back by the recorded misregistration), for the indirect route and the stored CT mu-map;
- the consistency index (``spectac.reconstruction.consistency``) of the indirect result and of
  CT-AC; the study's truth (``spectac.evaluation.truth.study_truth``).

Per route it prints Table 1 (mean +- SD, ``spectac.evaluation.stats.table1``) and a table of
heart MAE, mean |dTPD| and the share of studies with |dTPD| <= 2 points, segment error and its
ratio to CT-AC's, mu MAE, QC index, and the ROC AUC of stress TPD for a visible defect with its
95% stratified bootstrap CI and the paired difference to CT-AC's (``spectac.evaluation.detection``:
one stress study per patient; a study whose LV is not found, or which the indirect route refuses,
counts as an abnormal call); then each other route's share of studies whose TPD is within 2 points
of the indirect route's. With ``--mu-model oracle`` that route is OSEM with the body's own mu-map:
the image an exact correction without a CT would make, so CT-AC's share there is how far CT-AC's
own mu-map displacement moves the TPD (the ceiling of any such correction's agreement with CT-AC).

QC (skipped with ``--no-faults``, which also needs no calibration split: the mode for
out-of-distribution cohorts such as an obese or a CT-derived one): threshold = the ``--quantile``
of the indirect route's index on the ``--calibration-split`` studies (in distribution, nothing
altered; ``consistency.calibrated_threshold``). Flag rates at that threshold on the ``--split``
studies, as they are and altered (``spectac.reconstruction.faults``; every energy window alike):

(a) truncated: the outer ``--truncate`` of every detector row zeroed on each side (a body cut by
    the field);
(b) motion: the second half of the views shifted ``--motion-rows`` rows axially (patient motion);
(c) sub-arc: only the first ``--arc-fraction`` of the views (an orbit the model never saw;
    re-simulating a 360-degree orbit would cost a new cohort, so the same views are cut instead);
(d) wrong anatomy: the true mu-map of another patient (the next patient of the split, or of the
    calibration split when the split has one) in place of the prediction.

``--write-threshold MODEL_DIR`` stores that threshold in the mu model's config.json as its ``qc``
block (threshold, quantile, calibrated_on, studies; atomically, the rest of the file kept; its
MODEL_CARD.md, when there is one, is rewritten from the folder's files), where
``spectac correct --route indirect`` and ``spectac qc`` read it as their default
(docs/projections.md, "Calibrating the threshold"). MODEL_DIR should be the folder of the model
``--mu-model`` names; refused with ``--mu-model oracle`` (no model was calibrated).

A study the route refuses (a predicted mu beyond any tissue) counts as flagged and is counted in
the table. With ``--csv``, the file is rewritten after every study and a rerun with the same
settings skips the studies already in it (resumes); other settings are refused.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from segment_truth_error import relative_uptake, segment_error

from spectac.correction import DEFAULT_METHOD
from spectac.correction.chang import protocol_of
from spectac.correction.deep import DeepModel, resolve_mu_model
from spectac.correction.indirect import correct_acquisition
from spectac.correction.methods import MethodContext, get_method
from spectac.correction.run import apply_method, resolve_options
from spectac.errors import SpectacError
from spectac.evaluation.against_truth import truth_metrics
from spectac.evaluation.agreement import TPD_AGREEMENT_POINTS as DTPD_AGREEMENT
from spectac.evaluation.columns import NC, REFERENCE
from spectac.evaluation.detection import detection_tables
from spectac.evaluation.heart import HEART_RADIUS_MM, heart_region_and_lv_max
from spectac.evaluation.metrics import compute_mae, image_metrics
from spectac.evaluation.stats import table1, table1_markdown
from spectac.evaluation.truth import study_truth
from spectac.io.atomic import write_text_atomic
from spectac.io.dataset import Case, Dataset
from spectac.io.projections import Acquisition
from spectac.io.training_files import read_config_if_any, write_config_block
from spectac.io.window_projections import FILE_NAME as PROJECTIONS_FILE
from spectac.quant.geometry import LVGeometry
from spectac.quant.normals import NormalDatabase, NormalLimits, method_family
from spectac.quant.study import quantify
from spectac.reconstruction.consistency import QC_KEY, calibrated_threshold, flag_rate, qc_block
from spectac.reconstruction.faults import moved, sub_arc, truncated
from spectac.reconstruction.files import reconstruct_consistent
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.study import BODY_MU_PER_CM, study_acquisition, study_recon_config, true_mu
from spectac.segments import TERRITORIES
from spectac.training.card import write_model_card
from spectac.volume import Volume

CONDITIONS = ("in distribution", "(a) truncated", "(b) motion", "(c) sub-arc", "(d) wrong anatomy")
INDIRECT = "in distribution"  # the indirect route's row, as it is (the condition's name in the QC table)
CHANG = "chang"


@dataclass
class Indirect:
    """One run of the indirect route: the AC image, the mu-map used, the index, the OOD reasons."""

    image: Volume | None
    mu: Volume | None
    index: float
    ood: int
    refused: bool


def run_indirect(acquisition: Acquisition, config: ReconConfig, model: DeepModel | None,
                 mu: Volume | None = None) -> Indirect:
    """The indirect route on one acquisition: the mu model's prediction, or ``mu`` when given (the
    oracle's true map, another patient's)."""
    w = acquisition.window_index()
    if mu is not None or model is None:
        ac, qc = reconstruct_consistent(acquisition, w, config, None, mu)
        return Indirect(ac.result.volume, mu, qc.index, 0, False)
    try:
        result = correct_acquisition(acquisition, w, model, config)
    except SpectacError:
        return Indirect(None, None, math.inf, 0, True)
    return Indirect(result.ac.result.volume, result.mu, result.qc.index, int(bool(result.ood_flags)), False)


def median_iqr(values: list[float]) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not v.size:
        return "-"
    q1, q2, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return f"{q2:.3f} [{q1:.3f}-{q3:.3f}]"


def mean_sd(values: list[float], digits: int = 2) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not v.size:
        return "-"
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def rate(indices: list[float], threshold: float) -> str:
    """The flag rate in percent (a refused study, index inf, is flagged), "-" without a threshold."""
    return "-" if not np.isfinite(threshold) else f"{100 * flag_rate(indices, threshold):.0f}%"


def other_patient(case_id: str, pool: list, dataset: Dataset) -> str:
    """The study of the next patient (cyclically) in ``pool`` with the same state, else any."""
    patient, state = dataset.case(case_id).patient_id, dataset.case(case_id).state
    others = [c for c in pool if c.patient_id != patient]
    if not others:
        raise SystemExit(f"{case_id}: no study of another patient for the wrong-anatomy condition")
    same = [c for c in others if c.state == state] or others
    after = [c for c in same if c.patient_id > patient]
    return (after or same)[0].case_id


def check_studies(dataset: Dataset, cases: list[Case]) -> list[str]:
    """Stop with one clear line when a study lacks what the routes need (projections.npz, mu, NC,
    CT-AC); return notes on what only the truth-based columns need (truth.nii.gz, lv.json)."""
    for case in cases:
        folder = dataset.study_dir(case.case_id)
        if not (folder / PROJECTIONS_FILE).is_file():
            raise SystemExit(f"{folder}: no {PROJECTIONS_FILE}; the indirect route needs the window projections "
                             "(simulate the cohort again with this spectac)")
        for name in ("mu", "nc", "ac"):
            if not dataset.has(case.case_id, name):
                raise SystemExit(f"{dataset.path(case.case_id, name)}: missing; the routes need the study's "
                                 "mu-map, NC and CT-AC")
    notes = []
    no_truth = [c.case_id for c in cases if not dataset.has(c.case_id, "truth")]
    no_lv = [c.case_id for c in cases if dataset.lv(c.case_id) is None]
    if no_truth:
        notes.append(f"{len(no_truth)} studies without truth.nii.gz (no heart MAE against the truth, no segment "
                     f"error): {', '.join(no_truth[:5])}{' ...' if len(no_truth) > 5 else ''}")
    if no_lv:
        notes.append(f"{len(no_lv)} studies without lv.json (no segment error; detection truth from cases.csv; "
                     "no recorded misregistration, so the stored mu-map counts as the true one): "
                     f"{', '.join(no_lv[:5])}{' ...' if len(no_lv) > 5 else ''}")
    return notes


@dataclass(frozen=True)
class References:
    """What one test study is scored against."""

    ctac: Volume  # the dataset's ac.nii.gz
    truth: np.ndarray | None
    mu: Volume  # the true (unshifted) mu-map
    body: np.ndarray
    heart: np.ndarray
    lv_max: float
    geometry: LVGeometry | None  # the phantom's LV (lv.json)
    truth_uptake: np.ndarray | None  # the truth's relative 17-segment uptake on ``geometry``
    limits: dict[str, NormalLimits]  # by family: "nc", "ac"

    @classmethod
    def of(cls, dataset: Dataset, case: Case, normals: NormalDatabase) -> References:
        cid = case.case_id
        reference, mu = dataset.load(cid, "ac"), true_mu(dataset, cid)
        heart, lv_max = heart_region_and_lv_max(reference, HEART_RADIUS_MM)
        truth = dataset.load(cid, "truth") if dataset.has(cid, "truth") else None
        lv = dataset.lv(cid)
        geometry = LVGeometry.from_lv_json(lv) if lv is not None else None
        uptake = relative_uptake(truth, geometry) if truth is not None and geometry is not None else None
        limits = {f: normals.limits(f, case.sex, case.state) for f in ("nc", "ac")}
        return cls(reference, None if truth is None else truth.array, mu, mu.array > BODY_MU_PER_CM, heart,
                   lv_max, geometry, uptake, limits)

    def image_scores(self, image: Volume | None, mu: Volume | None) -> dict:
        """Table 1 against CT-AC (whole volume, ``heart_*``), the heart MAE against the truth, and
        the mu-map's MAE in the body."""
        if image is None:
            return {}
        out = image_metrics(image.array, self.ctac.array, heart=self.heart, lv_max=self.lv_max)
        if self.truth is not None:
            out["heart_mae_truth"] = truth_metrics(image.array, self.truth, self.heart)["mae"]
        if mu is not None:
            out["mu_mae_body"] = compute_mae(mu.array, self.mu.array, self.body)
        return out

    def clinical_scores(self, image: Volume | None, method: str) -> dict:
        """TPD, territory TPDs, SSS (SRS at rest) with LV detection, and the 17-segment error
        against the truth on the phantom's LV. No image (refused) or no LV found: ``lv_found``
        False, which detection counts as an abnormal call."""
        if image is None:
            return {"lv_found": False}
        out: dict = {"lv_found": False}
        try:
            q = quantify(image, self.limits[method_family(method)])
            out = {"lv_found": True, "tpd": q.scores.tpd, "sss": q.scores.summed_score,
                   **{f"tpd_{t}": q.scores.territory_tpd(t) for t in TERRITORIES}}
        except SpectacError:
            pass
        if self.truth_uptake is not None:
            out["segment_error"] = segment_error(image, self.truth_uptake, self.geometry)
        return out


@dataclass(frozen=True)
class Corrector:
    """A correction method of ``spectac predict`` ready to run (the direct route, Chang)."""

    name: str
    method: object
    options: dict
    state: object

    @classmethod
    def of(cls, name: str, weights: str | None = None) -> Corrector:
        method = get_method(name)
        options = resolve_options(method, {"weights": weights} if weights else {})
        return cls(name, method, options, method.prepare(options) if method.prepare is not None else None)

    def __call__(self, nc: Volume, case_id: str, protocol) -> Volume:
        return apply_method(self.method, nc, MethodContext(case_id, protocol, self.options, self.state))


def study_rows(dataset: Dataset, case: Case, args: argparse.Namespace, config: ReconConfig,
               model: DeepModel | None, direct: Corrector, chang: Corrector | None, protocol,
               normals: NormalDatabase, other: str | None, settings: str) -> list[dict]:
    """The rows of one test study: the routes (NC, Chang, direct, indirect, CT-AC) and, unless
    ``other`` is None (no faults), the indirect route on the altered acquisitions."""
    cid = case.case_id
    acquisition = study_acquisition(dataset, cid)
    stored_mu, mu_true = dataset.load(cid, "mu"), true_mu(dataset, cid)
    refs = References.of(dataset, case, normals)
    truth = study_truth(case, dataset.lv(cid))
    base = {"case_id": cid, "split": args.split, "patient_id": case.patient_id, "state": case.state,
            "sex": case.sex, "truth_abnormal": truth.abnormal, "truth_territories": ";".join(sorted(truth.territories)),
            "settings": settings}
    nc = dataset.load(cid, "nc")
    rows = [{**base, "condition": NC, **refs.image_scores(nc, None), **refs.clinical_scores(nc, NC)}]
    if chang is not None:
        image = chang(nc, cid, protocol)
        rows.append({**base, "condition": CHANG, **refs.image_scores(image, None), **refs.clinical_scores(image, CHANG)})
    image = direct(nc, cid, protocol)
    rows.append({**base, "condition": "direct", **refs.image_scores(image, None),
                 **refs.clinical_scores(image, direct.name)})
    ctac, ctac_qc = reconstruct_consistent(acquisition, acquisition.window_index(), config, None, stored_mu)
    # image metrics: the in-memory rebuild against ac.nii.gz (a check); clinical scores: ac.nii.gz
    rows.append({**base, "condition": "CT-AC", "qc": ctac_qc.index, **refs.image_scores(ctac.result.volume, stored_mu),
                 **refs.clinical_scores(refs.ctac, REFERENCE)})
    oracle_mu = mu_true if model is None else None
    result = run_indirect(acquisition, config, model, oracle_mu)
    rows.append({**base, "condition": INDIRECT, "qc": result.index, "refused": result.refused, "ood": result.ood,
                 **refs.image_scores(result.image, result.mu), **refs.clinical_scores(result.image, "indirect")})
    reference_tpd = next(r for r in rows if r["condition"] == "CT-AC").get("tpd", math.nan)
    for row in rows:
        row["dtpd"] = row.get("tpd", math.nan) - reference_tpd
    if other is None:
        return rows
    kept = slice(0, max(2, round(args.arc_fraction * acquisition.n_views)))
    altered = {
        "(a) truncated": (truncated(acquisition, args.truncate), oracle_mu),
        "(b) motion": (moved(acquisition, args.motion_rows), oracle_mu),
        "(c) sub-arc": (sub_arc(acquisition, kept), oracle_mu),
        "(d) wrong anatomy": (acquisition, true_mu(dataset, other)),
    }
    for condition, (acq, mu) in altered.items():
        result = run_indirect(acq, config, model, mu)
        rows.append({**base, "condition": condition, "qc": result.index, "refused": result.refused,
                     "ood": result.ood})
    return rows


def load_rows(path: Path | None, settings: str) -> list[dict]:
    """The rows of an earlier run with the same settings (resume), none without a file."""
    if path is None or not path.is_file():
        return []
    frame = pd.read_csv(path, keep_default_na=True)
    found = set(frame["settings"].dropna()) if "settings" in frame else {"(none recorded)"}
    if found and found != {settings}:
        raise SystemExit(f"{path}: written with other settings ({'; '.join(sorted(found))}), not {settings}; "
                         "give another --csv or delete it")
    return frame.to_dict("records")


def save_rows(path: Path | None, rows: list[dict]) -> None:
    if path is not None:
        write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--mu-model", default=None,
                        help="mu model folder or imported name; 'oracle': the true mu-map (default: the shipped one)")
    parser.add_argument("--method", default=DEFAULT_METHOD, help="direct route's correction method")
    parser.add_argument("--weights", default=None, help="weights of --method (default: the shipped ones)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--calibration-split", default="val")
    parser.add_argument("--no-faults", action="store_true",
                        help="compare the routes only: no calibration split, no altered acquisitions")
    parser.add_argument("--no-chang", action="store_true", help="leave first-order Chang out of the references")
    parser.add_argument("--normals", type=Path, default=None,
                        help="normal limits (normals.npz; default: the ones shipped with spectac)")
    parser.add_argument("--limit", type=int, default=None, help="at most N studies of each split")
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--truncate", type=float, default=0.15)
    parser.add_argument("--motion-rows", type=int, default=2)
    parser.add_argument("--arc-fraction", type=float, default=0.5)
    parser.add_argument("--csv", type=Path, default=None, help="per-study rows; rewritten after each study, resumed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--write-threshold", type=Path, default=None, metavar="MODEL_DIR",
                        help="write the calibrated threshold into this mu model folder's config.json (qc block)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    dataset = Dataset.open(args.dataset)
    config = study_recon_config(dataset)
    oracle = args.mu_model == "oracle"
    model = None if oracle else resolve_mu_model(args.mu_model)
    mu_name = "oracle (true mu-map)" if oracle else model.name  # type: ignore[union-attr]
    if args.write_threshold is not None:
        check_threshold_target(args.write_threshold, oracle)
    direct = Corrector.of(args.method, args.weights)
    chang = None if args.no_chang else Corrector.of(CHANG)
    normals = NormalDatabase.load(args.normals)
    protocol = protocol_of(dataset.meta)
    faults = not args.no_faults
    calibration = dataset.split(args.calibration_split)[:args.limit] if faults else []
    cases = dataset.split(args.split)[:args.limit]
    if not cases or (faults and len(calibration) < 2):
        raise SystemExit(f"need >= 1 {args.split} study" + (f" and >= 2 {args.calibration_split} studies "
                                                             "(or --no-faults)" if faults else ""))
    for note in check_studies(dataset, calibration + cases):
        print(f"note: {note}", flush=True)
    settings = (f"mu={mu_name}; direct={args.method}; weights={args.weights or 'shipped'}; faults={faults}; "
                f"chang={chang is not None}; normals={args.normals or 'shipped'}"
                + (f"; truncate={args.truncate}; motion={args.motion_rows}; arc={args.arc_fraction}" if faults else ""))
    rows = load_rows(args.csv, settings)
    done = {(r["split"], r["case_id"]) for r in rows}
    if done:
        print(f"resuming: {len(done)} studies already in {args.csv}", flush=True)

    todo = [c for c in calibration if (args.calibration_split, c.case_id) not in done]
    for i, case in enumerate(todo, 1):
        acquisition = study_acquisition(dataset, case.case_id)
        result = run_indirect(acquisition, config, model, true_mu(dataset, case.case_id) if oracle else None)
        rows.append({"case_id": case.case_id, "split": args.calibration_split, "condition": "calibration",
                     "qc": result.index, "refused": result.refused, "ood": result.ood, "settings": settings})
        save_rows(args.csv, rows)
        print(f"calibration {i}/{len(todo)} {case.case_id}: {time.perf_counter() - start:.0f} s", flush=True)
    calibration_ids = {c.case_id for c in calibration}
    calib_index = [float(r["qc"]) for r in rows
                   if r["condition"] == "calibration" and r["case_id"] in calibration_ids]
    usable = [x for x in calib_index if np.isfinite(x)]  # a refused study has no index to calibrate on
    threshold = calibrated_threshold(usable, args.quantile) if len(usable) >= 2 else math.nan
    if args.write_threshold is not None:
        if not np.isfinite(threshold):
            raise SystemExit(f"fewer than 2 {args.calibration_split} studies with an index: no threshold to write")
        on = f"{dataset.root.name} {args.calibration_split} split" + (
            f", first {args.limit} studies" if args.limit is not None else "")
        path = write_config_block(args.write_threshold, QC_KEY, qc_block(threshold, args.quantile, on, len(usable)))
        print(f"wrote threshold {threshold:.4f} ({len(usable)} studies) to {path}", flush=True)
        if (args.write_threshold / "MODEL_CARD.md").is_file():
            print(f"rewrote {write_model_card(args.write_threshold)} (its Quality control section)", flush=True)

    anatomy_pool = cases if len({c.patient_id for c in cases}) > 1 else calibration
    todo = [c for c in cases if (args.split, c.case_id) not in done]
    first = time.perf_counter()
    for i, case in enumerate(todo, 1):
        other = other_patient(case.case_id, anatomy_pool, dataset) if faults else None
        rows += study_rows(dataset, case, args, config, model, direct, chang, protocol, normals, other, settings)
        save_rows(args.csv, rows)
        per = (time.perf_counter() - first) / i
        print(f"{args.split} {i}/{len(todo)} {case.case_id}: {time.perf_counter() - start:.0f} s "
              f"({per / 60:.1f} min per study, {per * (len(todo) - i) / 60:.0f} min left)", flush=True)

    ids = {c.case_id for c in cases}
    frame = pd.DataFrame([r for r in rows if r["split"] == args.split and r["case_id"] in ids])
    labels = route_labels(args.method, mu_name, chang is not None)
    print(f"\n{args.split} split of {args.dataset.name}, {len(cases)} studies; mu model: {mu_name}; direct: "
          f"{args.method}; normal limits: {args.normals or 'shipped'}; {(time.perf_counter() - start) / 60:.1f} min "
          f"at {args.threads} thread(s) ({len(todo)} studies computed now)\n")
    print_comparison(frame, labels)
    if faults:
        calib = pd.DataFrame([r for r in rows if r["condition"] == "calibration" and r["case_id"] in calibration_ids])
        print_qc(frame, args, threshold, calib)


def check_threshold_target(folder: Path, oracle: bool) -> None:
    """Refuse, before any work, a --write-threshold that is not a mu model's folder."""
    if oracle:
        raise SystemExit("--write-threshold: the oracle is no model; calibrate with --mu-model")
    config = read_config_if_any(folder) if folder.is_dir() else None
    if config is None or config.get("target") != "mu":
        raise SystemExit(f"--write-threshold {folder}: not the folder of a mu model (config.json with target mu)")


def route_labels(method: str, mu_name: str, chang: bool) -> dict[str, str]:
    """{condition in the CSV: the route's label in the tables}, in table order."""
    labels = {NC: "NC"}
    if chang:
        labels[CHANG] = "Chang (first order)"
    labels.update({"direct": f"direct ({method})", INDIRECT: f"indirect ({mu_name})",
                   "CT-AC": "CT-AC (stored mu-map)"})
    return labels


def print_comparison(frame: pd.DataFrame, labels: dict[str, str]) -> None:
    """Table 1 per route, then agreement, truth-based errors and detection per route."""
    routes = frame[frame["condition"].isin(list(labels))].copy()
    routes["method"] = routes["condition"]
    routes = routes.set_index("condition").loc[[c for c in labels if c in set(routes["condition"])]].reset_index()

    def col(condition: str, name: str) -> list[float]:
        part = routes[routes["condition"] == condition]
        return [float(v) for v in part[name]] if name in part else []

    scored = routes.dropna(subset=["mae"]).replace({"method": labels})
    scored.loc[scored["condition"] == "CT-AC", "method"] = "CT-AC rebuilt in memory (check, against ac.nii.gz)"
    print("Table 1 against CT-AC (whole volume; mean ± SD over the studies the route corrected):\n")
    print(table1_markdown(table1(scored)))
    print("Heart region (70 mm sphere around CT-AC's LV), clinical agreement and truth:\n")
    clinical = routes.rename(columns={"condition": "key"}).assign(method=lambda f: f["key"].map(
        {NC: NC, "CT-AC": REFERENCE}).fillna(f["key"]))
    detection, differences = detection_tables(clinical)
    reference_error = np.nanmean(col("CT-AC", "segment_error")) if col("CT-AC", "segment_error") else math.nan
    print("| route | heart MAE vs CT-AC | heart MAE vs truth | mean \\|dTPD\\| | \\|dTPD\\| <= 2 | segment error vs "
          "truth (pp) | / CT-AC's | mu MAE in body (1/cm) | QC index median [IQR] | AUC stress TPD (95% CI) "
          "| AUC - CT-AC's (95% CI) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for condition, label in labels.items():
        key = {NC: NC, "CT-AC": REFERENCE}.get(condition, condition)
        dtpd = np.abs([x for x in col(condition, "dtpd") if np.isfinite(x)])
        agree = f"{100 * np.mean(dtpd <= DTPD_AGREEMENT):.0f}% of {len(dtpd)}" if len(dtpd) else "-"
        seg = [x for x in col(condition, "segment_error") if np.isfinite(x)]
        ratio = f"{np.mean(seg) / reference_error:.2f}" if seg and np.isfinite(reference_error) else "-"
        print(f"| {label} | {mean_sd(col(condition, 'heart_mae'))} | {mean_sd(col(condition, 'heart_mae_truth'))} | "
              f"{mean_sd(list(dtpd))} | {agree} | {mean_sd(seg)} | {ratio} | "
              f"{mean_sd(col(condition, 'mu_mae_body'), 4)} | {median_iqr(col(condition, 'qc'))} | "
              f"{auc_cell(detection, key)} | {difference_cell(differences, key)} |")
    refused = int(routes.loc[routes["condition"] == INDIRECT, "refused"].fillna(False).astype(bool).sum())
    lost = {labels[c]: int((~routes.loc[routes["condition"] == c, "lv_found"].fillna(False).astype(bool)).sum())
            for c in labels}
    print(f"\nStudies the indirect route refused (mu beyond tissue): {refused}. Studies without an LV found "
          f"(no TPD; an abnormal call in the AUC): {', '.join(f'{k} {v}' for k, v in lost.items())}. "
          "dTPD: TPD - CT-AC's TPD (ac.nii.gz), every study; AUC: stress studies (one per patient), truth = a "
          "segment with >= 10% true count loss, stratified bootstrap (2000, paired between routes).\n")
    agreement = agreement_with_indirect(routes, labels)
    if agreement:
        print(f"TPD within {DTPD_AGREEMENT:g} points of the indirect route's (with --mu-model oracle: OSEM with the "
              f"body's own mu-map, the image an exact correction without a CT would make): {agreement}.\n")


def agreement_with_indirect(routes: pd.DataFrame, labels: dict[str, str]) -> str:
    """'label k% of n' per route but the indirect one: the share of studies whose TPD is within
    DTPD_AGREEMENT of the indirect route's (studies with an LV in both); '' without the indirect route."""
    tpd = routes.pivot_table(index="case_id", columns="condition", values="tpd")
    if INDIRECT not in tpd:
        return ""
    cells = []
    for condition, label in labels.items():
        if condition == INDIRECT or condition not in tpd:
            continue
        difference = (tpd[condition] - tpd[INDIRECT]).dropna().abs()
        if len(difference):
            cells.append(f"{label} {100 * np.mean(difference <= DTPD_AGREEMENT):.0f}% of {len(difference)}")
    return ", ".join(cells)


def auc_cell(detection: pd.DataFrame, method: str) -> str:
    row = detection[(detection["method"] == method) & (detection["target"] == "any")]
    if row.empty:
        return "- (no stress study with a known truth)"
    r = row.iloc[0]
    size = f"n {int(r['n'])}, {int(r['positives'])} abnormal"
    if not np.isfinite(r["auc"]):
        return f"{r['note']}; {size}"
    return f"{r['auc']:.2f} ({r['auc_ci_low']:.2f}-{r['auc_ci_high']:.2f}); {size}"


def difference_cell(differences: pd.DataFrame, method: str) -> str:
    row = differences[(differences["method"] == method) & (differences["compared_to"] == REFERENCE)
                      & (differences["target"] == "any")]
    if row.empty or not np.isfinite(row.iloc[0]["auc_difference"]):
        return "-"
    r = row.iloc[0]
    return f"{r['auc_difference']:+.2f} ({r['ci_low']:+.2f} to {r['ci_high']:+.2f})"


def print_qc(frame: pd.DataFrame, args: argparse.Namespace, threshold: float, calib: pd.DataFrame) -> None:
    """The QC threshold and the flag rate per condition."""
    calib_index = [float(v) for v in calib["qc"]]
    usable = [x for x in calib_index if np.isfinite(x)]
    print(f"QC threshold = {threshold:.4f}: the {100 * args.quantile:g}th percentile of the indirect route's index "
          f"on the {len(usable)} {args.calibration_split} studies it did not refuse, of {len(calib_index)} "
          "(nan: fewer than 2; then no flag rate)\n")
    print("| condition | studies | QC index median [IQR] | flagged | refused (mu beyond tissue) | OOD warning |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.calibration_split}, in distribution (calibration) | {len(calib_index)} | "
          f"{median_iqr(calib_index)} | {rate(calib_index, threshold)} | {int(calib['refused'].astype(bool).sum())} "
          f"| {int(calib['ood'].sum())} |")
    for condition in CONDITIONS:
        part = frame[frame["condition"] == condition]
        print(f"| {args.split}, {condition} | {len(part)} | {median_iqr(list(part['qc']))} | "
              f"{rate(list(part['qc']), threshold)} | {int(part['refused'].astype(bool).sum())} | "
              f"{int(part['ood'].sum())} |")
    ctac = [float(v) for v in frame.loc[frame["condition"] == "CT-AC", "qc"]]
    print(f"| {args.split}, CT-AC with the stored (misregistered) mu-map | {len(ctac)} | {median_iqr(ctac)} | "
          f"{rate(ctac, threshold)} | - | - |")


if __name__ == "__main__":
    main()
