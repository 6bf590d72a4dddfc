"""Quantification of one study: detect the LV, make the polar map, score it against normal limits."""

from __future__ import annotations

from dataclasses import dataclass

from spectac.quant.lv import LVGeometry, detect_lv
from spectac.quant.polar import PolarMap, polar_map
from spectac.quant.scores import NormalLimits, PerfusionScores, score_polar_map
from spectac.volume import Volume


@dataclass(frozen=True)
class StudyQuantification:
    """The LV geometry, polar map and scores of one image."""

    geometry: LVGeometry
    polar_map: PolarMap
    scores: PerfusionScores


def quantify(volume: Volume, limits: NormalLimits, geometry: LVGeometry | None = None) -> StudyQuantification:
    """Quantify one perfusion image against normal limits of its method family, sex and state.

    Args:
        volume: the image (X, Y, Z) in counts.
        limits: normal limits (see :meth:`spectac.quant.normals.NormalDatabase.limits`).
        geometry: a known LV geometry; None detects it from the image (the clinical way).
    """
    geom = detect_lv(volume) if geometry is None else geometry
    pm = polar_map(volume, geom)
    return StudyQuantification(geom, pm, score_polar_map(pm, limits))
