"""The indirect route against the direct one, and the consistency index as a quality control:
its threshold calibrated on validation studies, its flag rate on faulty test studies.

Usage:
    PYTHONPATH=<spectac src> OMP_NUM_THREADS=1 python benchmarks/indirect_qc.py DATASET \\
        [--mu-model MU_MODEL | --mu-model oracle] [--method unet-gan3d-chang] [--weights DIR] \\
        [--split test] [--calibration-split val] [--limit N] [--quantile 0.95] \\
        [--truncate 0.15] [--motion-rows 2] [--arc-fraction 0.5] [--csv per_study.csv] [--threads 1] \\
        [--write-threshold MODEL_DIR]

DATASET is a simulated dataset that keeps every study's window projections (projections.npz),
mu-map, truth and lv.json. No DICOM is written: each study's acquisition is rebuilt in memory
(``spectac.reconstruction.study.study_acquisition``) and corrected by the package's own code paths:

- direct route: the correction method ``--method`` (default: ``spectac correct``'s, the shipped
  network closest to CT-AC; ``--weights`` for other weights) on the dataset's NC image, as
  ``spectac predict`` runs it (``spectac.correction.run.apply_method``);
- indirect route: ``spectac.correction.indirect.correct_acquisition`` with the mu model
  ``--mu-model`` (default: the shipped unet3d-mu when installed), the dataset's OSEM settings
  (dataset.json), TEW scatter correction; ``--mu-model oracle`` gives it the true mu-map instead of
  a prediction (the route's physics alone: the NC reconstruction and the network are skipped);
- CT-AC: OSEM with the stored (misregistered) mu-map and TEW, as the simulator made ac.nii.gz,
  for the index of the clinic's reference.

Per study of ``--split``: MAE against CT-AC (whole volume, and inside the heart region the
evaluation uses: ``spectac.evaluation.heart.heart_region`` of CT-AC), MAE against the truth inside
that region (``spectac.evaluation.against_truth.truth_metrics``), the mu-map MAE inside the body
(true mu > 0.01 1/cm) against the true mu-map (mu.nii.gz moved back by the recorded
misregistration), and the consistency index (``spectac.reconstruction.consistency``) of the
indirect result and of CT-AC.

QC calibration: threshold = the ``--quantile`` of the indirect route's index on the
``--calibration-split`` studies (in distribution, nothing altered;
``consistency.calibrated_threshold``). Flag rates at that threshold on the ``--split`` studies, as
they are and altered (``spectac.reconstruction.faults``; every energy window alike):

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

Prints two Markdown tables (direct vs indirect; QC flag rates); ``--csv`` also writes one row per
study and condition. A study the route refuses (a predicted mu beyond any tissue) counts as
flagged and is counted in the table.
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

from spectac.correction import DEFAULT_METHOD
from spectac.correction.chang import protocol_of
from spectac.correction.deep import DeepModel, resolve_mu_model
from spectac.correction.indirect import correct_acquisition
from spectac.correction.methods import MethodContext, get_method
from spectac.correction.run import apply_method, resolve_options
from spectac.errors import SpectacError
from spectac.evaluation.against_truth import truth_metrics
from spectac.evaluation.heart import HEART_RADIUS_MM, heart_region
from spectac.evaluation.metrics import compute_mae
from spectac.io.dataset import Dataset
from spectac.io.projections import Acquisition
from spectac.io.training_files import read_config_if_any, write_config_block
from spectac.reconstruction.consistency import QC_KEY, calibrated_threshold, flag_rate, qc_block
from spectac.reconstruction.faults import moved, sub_arc, truncated
from spectac.reconstruction.files import reconstruct_consistent
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.study import BODY_MU_PER_CM, study_acquisition, study_recon_config, true_mu
from spectac.training.card import write_model_card
from spectac.volume import Volume

CONDITIONS = ("in distribution", "(a) truncated", "(b) motion", "(c) sub-arc", "(d) wrong anatomy")


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


@dataclass(frozen=True)
class References:
    """What one test study is scored against."""

    ctac: Volume
    truth: np.ndarray
    mu: Volume  # the true (unshifted) mu-map
    body: np.ndarray
    heart: np.ndarray

    def scores(self, image: Volume | None, mu: Volume | None) -> dict:
        """MAE against CT-AC (whole volume, heart region), against the truth (heart region), and
        the mu-map's MAE in the body."""
        if image is None:
            return {}
        out = {"mae_ctac": compute_mae(image.array, self.ctac.array),
               "heart_mae_ctac": compute_mae(image.array, self.ctac.array, self.heart),
               "heart_mae_truth": truth_metrics(image.array, self.truth, self.heart)["mae"]}
        if mu is not None:
            out["mu_mae_body"] = compute_mae(mu.array, self.mu.array, self.body)
        return out


def study_rows(dataset: Dataset, cid: str, args: argparse.Namespace, config: ReconConfig, model: DeepModel | None,
               method, options: dict, state, protocol, other: str) -> list[dict]:
    """The rows of one test study: direct, CT-AC, and the indirect route as it is and altered."""
    acquisition = study_acquisition(dataset, cid)
    reference, stored_mu, mu_true = dataset.load(cid, "ac"), dataset.load(cid, "mu"), true_mu(dataset, cid)
    refs = References(reference, dataset.load(cid, "truth").array, mu_true, mu_true.array > BODY_MU_PER_CM,
                      heart_region(reference, HEART_RADIUS_MM))
    base = {"case_id": cid, "split": args.split}
    direct = apply_method(method, dataset.load(cid, "nc"), MethodContext(cid, protocol, options, state))
    rows = [{**base, "condition": "direct", **refs.scores(direct, None)}]
    ctac, ctac_qc = reconstruct_consistent(acquisition, acquisition.window_index(), config, None, stored_mu)
    rows.append({**base, "condition": "CT-AC", "qc": ctac_qc.index, **refs.scores(ctac.result.volume, stored_mu)})
    oracle_mu = mu_true if model is None else None
    kept = slice(0, max(2, round(args.arc_fraction * acquisition.n_views)))
    altered = {
        "in distribution": (acquisition, oracle_mu),
        "(a) truncated": (truncated(acquisition, args.truncate), oracle_mu),
        "(b) motion": (moved(acquisition, args.motion_rows), oracle_mu),
        "(c) sub-arc": (sub_arc(acquisition, kept), oracle_mu),
        "(d) wrong anatomy": (acquisition, true_mu(dataset, other)),
    }
    for condition, (acq, mu) in altered.items():
        result = run_indirect(acq, config, model, mu)
        row = {**base, "condition": condition, "qc": result.index, "refused": result.refused, "ood": result.ood}
        if condition == "in distribution":
            row.update(refs.scores(result.image, result.mu))
        rows.append(row)
    return rows


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
    parser.add_argument("--limit", type=int, default=None, help="at most N studies of each split")
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--truncate", type=float, default=0.15)
    parser.add_argument("--motion-rows", type=int, default=2)
    parser.add_argument("--arc-fraction", type=float, default=0.5)
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
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
    method = get_method(args.method)
    options = resolve_options(method, {"weights": args.weights} if args.weights else {})
    state = method.prepare(options) if method.prepare is not None else None
    protocol = protocol_of(dataset.meta)
    calibration = dataset.split(args.calibration_split)[:args.limit]
    cases = dataset.split(args.split)[:args.limit]
    if len(calibration) < 2 or not cases:
        raise SystemExit(f"need >= 2 {args.calibration_split} studies and >= 1 {args.split} study")

    rows: list[dict] = []
    calib_index = []
    for case in calibration:
        acquisition = study_acquisition(dataset, case.case_id)
        result = run_indirect(acquisition, config, model, true_mu(dataset, case.case_id) if oracle else None)
        calib_index.append(result.index)
        rows.append({"case_id": case.case_id, "split": args.calibration_split, "condition": "calibration",
                     "qc": result.index, "refused": result.refused, "ood": result.ood})
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
    for case in cases:
        rows += study_rows(dataset, case.case_id, args, config, model, method, options, state, protocol,
                           other_patient(case.case_id, anatomy_pool, dataset))
        print(f"{case.case_id}: done ({time.perf_counter() - start:.0f} s)", flush=True)

    frame = pd.DataFrame(rows)
    if args.csv is not None:
        frame.to_csv(args.csv, index=False)
    print_tables(frame, args, threshold, mu_name, calib_index, time.perf_counter() - start)


def check_threshold_target(folder: Path, oracle: bool) -> None:
    """Refuse, before any work, a --write-threshold that is not a mu model's folder."""
    if oracle:
        raise SystemExit("--write-threshold: the oracle is no model; calibrate with --mu-model")
    config = read_config_if_any(folder) if folder.is_dir() else None
    if config is None or config.get("target") != "mu":
        raise SystemExit(f"--write-threshold {folder}: not the folder of a mu model (config.json with target mu)")


def print_tables(frame: pd.DataFrame, args: argparse.Namespace, threshold: float, mu_name: str,
                 calib_index: list[float], seconds: float) -> None:
    def col(condition: str, name: str) -> list[float]:
        part = frame[frame["condition"] == condition]
        return [float(v) for v in part[name]] if name in part else []

    n = int((frame["condition"] == "direct").sum())
    print(f"\n{args.split} split, {n} studies; mu model: {mu_name}; direct: {args.method}; "
          f"{seconds / 60:.1f} min at {args.threads} thread(s)\n")
    print("| route | MAE vs CT-AC (counts) | heart MAE vs CT-AC | heart MAE vs truth | mu MAE in body (1/cm) "
          "| QC index median [IQR] |")
    print("|---|---|---|---|---|---|")
    for label, condition in ((f"direct ({args.method})", "direct"), (f"indirect ({mu_name})", "in distribution"),
                             ("CT-AC (stored misregistered mu-map)", "CT-AC")):
        cells = [mean_sd(col(condition, c)) for c in ("mae_ctac", "heart_mae_ctac", "heart_mae_truth")]
        mu_cell = mean_sd(col(condition, "mu_mae_body"), 4) if condition != "direct" else "-"
        qc_cell = median_iqr(col(condition, "qc")) if condition != "direct" else "-"
        print(f"| {label} | {' | '.join(cells)} | {mu_cell} | {qc_cell} |")
    usable = [x for x in calib_index if np.isfinite(x)]
    print(f"\nQC threshold = {threshold:.4f}: the {100 * args.quantile:g}th percentile of the indirect route's index "
          f"on the {len(usable)} {args.calibration_split} studies it did not refuse, of {len(calib_index)} "
          "(nan: fewer than 2; then no flag rate)\n")
    print("| condition | studies | QC index median [IQR] | flagged | refused (mu beyond tissue) | OOD warning |")
    print("|---|---|---|---|---|---|")
    calib = frame[frame["condition"] == "calibration"]
    print(f"| {args.calibration_split}, in distribution (calibration) | {len(calib)} | {median_iqr(calib_index)} | "
          f"{rate(calib_index, threshold)} | {int(calib['refused'].sum())} | {int(calib['ood'].sum())} |")
    for condition in CONDITIONS:
        part = frame[frame["condition"] == condition]
        print(f"| {args.split}, {condition} | {len(part)} | {median_iqr(list(part['qc']))} | "
              f"{rate(list(part['qc']), threshold)} | {int(part['refused'].sum())} | "
              f"{int(part['ood'].sum())} |")
    ctac = col("CT-AC", "qc")
    print(f"| {args.split}, CT-AC with the stored (misregistered) mu-map | {len(ctac)} | {median_iqr(ctac)} | "
          f"{rate(ctac, threshold)} | - | - |")


if __name__ == "__main__":
    main()
