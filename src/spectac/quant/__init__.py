"""Clinical quantification: LV detection and reorientation, polar maps, the AHA 17 segments,
normal databases and perfusion scores (SSS, SRS, SDS, TPD). See docs/quantification.md.

The names below are loaded on first use (PEP 562), so importing one submodule (``spectac correct``'s
out-of-distribution check needs only :mod:`spectac.quant.lv`) does not import the others and
scipy.stats with them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spectac.quant.geometry import LVGeometry
    from spectac.quant.lv import detect_lv
    from spectac.quant.polar import PolarMap, polar_map
    from spectac.quant.scores import NormalLimits, PerfusionScores, score_polar_map
    from spectac.quant.study import StudyQuantification, quantify

_WHERE = {
    "LVGeometry": "geometry", "detect_lv": "lv", "PolarMap": "polar", "polar_map": "polar",
    "NormalLimits": "scores", "PerfusionScores": "scores", "score_polar_map": "scores",
    "StudyQuantification": "study", "quantify": "study",
}

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"spectac.quant.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'spectac.quant' has no attribute {name!r}")
