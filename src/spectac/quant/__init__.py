"""Clinical quantification: LV detection and reorientation, polar maps, the AHA 17 segments,
normal databases and perfusion scores (SSS, SRS, SDS, TPD). See docs/quantification.md."""

from __future__ import annotations

from spectac.quant.geometry import LVGeometry
from spectac.quant.lv import detect_lv
from spectac.quant.polar import PolarMap, polar_map
from spectac.quant.scores import NormalLimits, PerfusionScores, score_polar_map
from spectac.quant.study import StudyQuantification, quantify

__all__ = [
    "LVGeometry",
    "NormalLimits",
    "PerfusionScores",
    "PolarMap",
    "StudyQuantification",
    "detect_lv",
    "polar_map",
    "quantify",
    "score_polar_map",
]
