"""How a correction's TPD agreement with CT-AC depends on the CT-AC target's own misregistration.

    python benchmarks/tpd_by_misregistration.py DATA RUN [--split val] [--edges 3,6,9]

A simulated study's CT-AC is reconstructed, as in clinics, with a mu-map displaced from the body
that attenuated the projections (lv.json ``phantom.mu_shift_mm``, docs/simulation.md); a
correction made without a CT cannot know that displacement, and a displaced mu-map moves a wall
by several points of the LV maximum. For every method of RUN/clinical.csv (`spectac evaluate`'s
clinical output) this prints, per band of the displacement's length in mm, the share of studies
whose TPD is within 2 points of CT-AC's, over every study with an LV found in both and over those
whose CT-AC LV fit is also confident (the ``lv_confidence`` column). Exit 2 when RUN has no
clinical.csv or DATA records no displacement for the split's studies.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from spectac.errors import SpectacError
from spectac.evaluation.agreement import TPD_AGREEMENT_POINTS as WITHIN
from spectac.io.dataset import Dataset, recorded_mu_shift


def band_labels(edges: list[float]) -> list[str]:
    """'0-3', '3-6', ..., '9+' for edges [3, 6, 9]."""
    bounds = [0.0, *edges]
    return [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(bounds)] + [f"{bounds[-1]:g}+"]


def agreement_by_band(clinical: pd.DataFrame, shift_mm: pd.Series, edges: list[float]) -> pd.DataFrame:
    """One row per method and band: studies within WITHIN points of CT-AC's TPD, of how many, over
    all studies with an LV in both and over those with a confident CT-AC fit too."""
    ref = clinical[clinical["method"] == "ac"].set_index("case_id")
    bands = pd.cut(shift_mm, [0.0, *edges, np.inf], right=False, labels=band_labels(edges))
    rows = []
    for method in clinical["method"].unique():
        if method == "ac":
            continue
        tpd = clinical[clinical["method"] == method].set_index("case_id")["tpd"]
        both = tpd.dropna().index.intersection(ref["tpd"].dropna().index).intersection(shift_mm.index)
        within = (tpd[both] - ref.loc[both, "tpd"]).abs() <= WITHIN
        confident = ref.loc[both, "lv_confidence"].astype(str) == "high"
        for band in bands.cat.categories:
            in_band = bands[both] == band
            rows.append({"method": method, "shift_mm": band,
                         "within": int(within[in_band].sum()), "n": int(in_band.sum()),
                         "within_confident": int(within[in_band & confident].sum()),
                         "n_confident": int((in_band & confident).sum())})
    return pd.DataFrame(rows)


def share(k: int, n: int) -> str:
    return f"{k / n:.0%} ({k}/{n})" if n else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--edges", default="3,6,9", help="band edges of the displacement in mm (default 3,6,9)")
    args = parser.parse_args()
    try:
        edges = sorted(float(e) for e in args.edges.split(","))
    except ValueError:
        edges = []
    if not edges or edges[0] <= 0:
        print(f"--edges must be positive numbers in mm, got {args.edges!r}", file=sys.stderr)
        return 2
    if not (args.run / "clinical.csv").is_file():
        print(f"{args.run}: no clinical.csv; run `spectac evaluate` first", file=sys.stderr)
        return 2
    try:
        dataset = Dataset.open(args.data)
        shifts = {c.case_id: float(np.linalg.norm(recorded_mu_shift(dataset, c.case_id)))
                  for c in dataset.split(args.split)}
    except SpectacError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not shifts or not any(shifts.values()):
        print(f"{args.data}: no CT-SPECT misregistration recorded in split {args.split!r}", file=sys.stderr)
        return 2
    table = agreement_by_band(pd.read_csv(args.run / "clinical.csv"), pd.Series(shifts), edges)
    print(f"TPD within {WITHIN:g} points of CT-AC's, by the length of CT-AC's mu-map displacement "
          f"({len(shifts)} studies of the {args.split} split; median {np.median(list(shifts.values())):.1f} mm)\n")
    print("| method | displacement (mm) | all | CT-AC's LV fit confident |")
    print("|---|---|---|---|")
    for row in table.itertuples():
        print(f"| {row.method} | {row.shift_mm} | {share(row.within, row.n)} "
              f"| {share(row.within_confident, row.n_confident)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
