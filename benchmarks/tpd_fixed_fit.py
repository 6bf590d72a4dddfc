"""How much of a method's TPD disagreement with CT-AC is its LV fit: each image scored on CT-AC's fit.

    python benchmarks/tpd_fixed_fit.py DATASET RUN [--split val] [--methods unet-gan3d-chang,nc] [--csv OUT.csv]

``spectac evaluate`` scores every image on the LV the detector finds in that image, as a clinic
does. Two images of one study can then differ in TPD because their polar maps differ or because
their fits (centre, axes, radius) do. For every study of the split with an LV in CT-AC's image,
this scores each method's image twice against the run's normal limits (those ``spectac evaluate``
chose): on its own fit and on CT-AC's (``<method>@ac-fit``). If the agreement with CT-AC's TPD
rises on CT-AC's fit, the fit carries the difference; if not, the image does. It prints the
agreement per band of CT-AC's TPD as ``benchmarks/tpd_bands.py`` does (``--edges``), and with
``--csv`` writes the per-study TPDs, which ``tpd_bands.py`` reads like a run's clinical.csv
(``case_id``, ``method``, ``tpd``). A study whose LV the detector does not find in a method's image
keeps a NaN for the own fit and is still scored on CT-AC's. A diagnostic: the clinic has no CT-AC
fit. Exit 2 when the dataset, the run or a method's predictions are missing, or the edges do not
increase; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tpd_bands import REFERENCE, bands, markdown, parse_edges, wide_tpd

from spectac.evaluation.clinical import choose_normals, study_image
from spectac.io.atomic import write_text_atomic
from spectac.io.dataset import Dataset
from spectac.io.run import RunFolder
from spectac.progress import track
from spectac.quant.normals import NormalDatabase, method_family
from spectac.quant.study import quantify
from spectac.volume import SpectacError, Volume

#: The suffix of a method scored on CT-AC's LV fit.
ON_AC_FIT = "@ac-fit"


def study_tpds(reference: Volume, images: dict[str, Volume], normals: NormalDatabase, sex: str, state: str
               ) -> dict[str, float] | None:
    """CT-AC's TPD and, per method, its TPD on its own fit and on CT-AC's; None without an LV in CT-AC's image."""
    try:
        ac = quantify(reference, normals.limits(method_family(REFERENCE), sex, state))
    except SpectacError:
        return None
    out = {REFERENCE: ac.scores.tpd}
    for method, volume in images.items():
        limits = normals.limits(method_family(method), sex, state)
        try:
            out[method] = quantify(volume, limits).scores.tpd
        except SpectacError:
            out[method] = np.nan
        out[method + ON_AC_FIT] = quantify(volume, limits, ac.geometry).scores.tpd
    return out


def fixed_fit_table(dataset: Dataset, run: Path, split: str, methods: list[str]) -> pd.DataFrame:
    """Long table (case_id, method, tpd) over the split's studies with an LV in CT-AC's image."""
    folder = RunFolder(run)
    cases = dataset.split(split)
    if not cases:
        raise SpectacError(f"{dataset.root}: no studies in the {split} split")
    for method in methods:
        if method != "nc" and not all(folder.has_prediction(method, c.case_id) for c in cases):
            raise SpectacError(f"{run}: not every {split} study has a prediction of {method}")
    normals, _ = choose_normals(dataset, run)
    rows = []
    for case in track(cases, "fixed-fit TPD", total=len(cases)):
        images = {m: study_image(dataset, run, m, case.case_id) for m in methods}
        tpds = study_tpds(study_image(dataset, run, REFERENCE, case.case_id), images, normals, case.sex, case.state)
        if tpds is not None:
            rows += [{"case_id": case.case_id, "method": m, "tpd": t} for m, t in tpds.items()]
    return pd.DataFrame(rows, columns=["case_id", "method", "tpd"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--methods", default="unet-gan3d-chang,nc", help="comma-separated (default: unet-gan3d-chang,nc)")
    parser.add_argument("--edges", default="4,12", help="band limits in TPD points (default 4,12)")
    parser.add_argument("--csv", type=Path, help="write the per-study TPDs here")
    args = parser.parse_args()
    try:
        edges = parse_edges(args.edges)
        table = fixed_fit_table(Dataset.open(args.dataset), args.run, args.split,
                                [m for m in args.methods.split(",") if m])
    except (SpectacError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.csv is not None:
        write_text_atomic(args.csv, table.to_csv(index=False))
    print(markdown(bands(wide_tpd(table), edges)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
