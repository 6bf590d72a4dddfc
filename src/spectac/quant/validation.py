"""Validation of automatic LV detection against the simulator's truth (lv.json)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from spectac.io.atomic import write_text_atomic
from spectac.io.dataset import Dataset
from spectac.progress import track
from spectac.quant.geometry import LVGeometry, axis_error_deg, centre_error_mm
from spectac.quant.lv import detect_lv
from spectac.volume import SpectacError


def geometry_errors(found: LVGeometry, truth: LVGeometry, voxel_mm: float) -> dict[str, float]:
    """Axis, anterior-direction and centre errors of a detected geometry against the truth."""
    anterior = float(np.degrees(np.arccos(np.clip(found.anterior @ truth.anterior, -1, 1))))
    centre = centre_error_mm(found, truth)
    return {
        "axis_error_deg": axis_error_deg(found, truth),
        "anterior_error_deg": anterior,
        "centre_error_mm": centre,
        "centre_error_vox": centre / voxel_mm,
        "radius_error_mm": found.radius_mm - truth.radius_mm,
        "length_error_mm": found.length_mm - truth.length_mm,
    }


def detection_errors(data: str | Path, split: str | None = "all", out: str | Path | None = None) -> pd.DataFrame:
    """Detect the LV in the NC and CT-AC image of every study with an lv.json and compare.

    Returns:
        A row per (study, image): case_id, image, has_defect, found, the errors of
        :func:`geometry_errors` and ``seconds``. Written to ``out`` (CSV) when given.
    """
    dataset = Dataset.open(data)
    cases = [c for c in dataset.split(split) if dataset.lv(c.case_id) is not None]
    if not cases:
        raise SpectacError(f"{dataset.root}: no study with an lv.json truth in split {split!r}")
    rows = []
    for case in track(cases, "detect LV", total=len(cases)):
        truth = LVGeometry.from_lv_json(dataset.lv(case.case_id))  # type: ignore[arg-type]
        for image in ("nc", "ac"):
            volume = dataset.load(case.case_id, image)
            row: dict[str, object] = {"case_id": case.case_id, "image": image, "has_defect": case.has_defect}
            start = time.perf_counter()
            try:
                found = detect_lv(volume)
            except SpectacError:
                row["found"] = False
            else:
                row["found"] = True
                row.update(geometry_errors(found, truth, float(min(volume.spacing))))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    table = pd.DataFrame(rows)
    if out is not None:
        write_text_atomic(out, table.to_csv(index=False, float_format="%.4g"))
    return table


def summarise_detection_errors(table: pd.DataFrame) -> str:
    """One line per image type: found, median and 95th percentile of the axis and centre errors."""
    lines = []
    for image, part in table.groupby("image", sort=False):
        ok = part[part["found"].astype(bool)]
        if len(ok) == 0:
            lines.append(f"{image}: LV found in 0/{len(part)}")
            continue
        ax, ce = ok["axis_error_deg"], ok["centre_error_mm"]
        lines.append(
            f"{image}: LV found in {len(ok)}/{len(part)}; axis error median {ax.median():.1f} deg, "
            f"p95 {ax.quantile(0.95):.1f}, max {ax.max():.1f}; centre error median {ce.median():.1f} mm, "
            f"p95 {ce.quantile(0.95):.1f}, max {ce.max():.1f}; under 10 deg and 1 voxel: "
            f"{int(((ax < 10) & (ok['centre_error_vox'] < 1)).sum())}/{len(part)}"
        )
    return "\n".join(lines)
