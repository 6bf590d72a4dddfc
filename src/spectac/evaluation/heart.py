"""The heart region in which the ``heart_*`` metrics are computed, found in the CT-AC reference.

The region is a sphere (70 mm radius by default) around the centre of the left-ventricular
myocardium. Where the LV is, and its maximum counts, come from quant's one LV entry point,
:func:`spectac.quant.centre.lv_centre_and_maximum` (the shell-model detector, or a cruder blob
fallback when that finds no LV); this module only builds the region from them.

The LV maximum that normalises NMAE and NRMSE is the clinical one: the scale of the reference's
maximal-count polar map, not the hottest voxel of the region, which is often the liver or the gut
(see :mod:`spectac.quant.centre` for the fallback).
"""

from __future__ import annotations

import numpy as np

from spectac.quant.centre import lv_centre_and_maximum, sphere_mask
from spectac.volume import SpectacError, Volume

__all__ = ["HEART_RADIUS_MM", "heart_region", "heart_region_and_lv_max", "sphere_mask"]

HEART_RADIUS_MM = 70.0


def heart_region(reference: Volume, radius_mm: float = HEART_RADIUS_MM) -> np.ndarray:
    """(X, Y, Z) bool heart region: a sphere around the detected LV centre of the reference."""
    return heart_region_and_lv_max(reference, radius_mm)[0]


def heart_region_and_lv_max(reference: Volume, radius_mm: float = HEART_RADIUS_MM) -> tuple[np.ndarray, float]:
    """The heart region of :func:`heart_region` and the LV maximum of the reference, in counts."""
    centre, lv_max = lv_centre_and_maximum(reference)
    mask = sphere_mask(reference, centre, radius_mm)
    if not mask.any():
        raise SpectacError("the heart region is empty")
    if not lv_max > 0:
        raise SpectacError("the LV maximum of the reference is not positive")
    return mask, lv_max
