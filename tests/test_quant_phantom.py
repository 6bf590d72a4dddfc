"""LV detection on the simulator's anthropomorphic phantom (spectac.phantom) at the default grid.

The full simulation (projection + OSEM) takes minutes per study, so the images here are the phantom
seen through a SPECT-like blur (AC-like) and, for NC-like images, first attenuated along the path
to the anterior-left camera arc. `spectac detect-lv --data DATASET` measures the same errors on
fully simulated cohorts (numbers in the issue report / BENCHMARKS.md): there every normal study of
two cohorts (48 studies, NC and CT-AC) was within 10 degrees and one voxel.

Seeds 0-9 all pass for NC and CT-AC (measured 2026-12: axis error at most 6.2 degrees, centre error
at most 4.7 mm against 6.8 mm, septal cosine at least 0.993 against 0.978). An earlier note kept only
seeds 5 and 11 because seed 3's AC-like image failed (centre 9.7 mm off, the fitted base slid 12 mm
toward the atria); that no longer happens (seed 3 AC: 5.9 degrees, 2.5 mm), so every seed is tested
and a failing seed is a regression of detect_lv. About 10 s per seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from spectac.phantom.anatomy import build_phantom
from spectac.phantom.population import draw_patient
from spectac.quant.geometry import LVGeometry, axis_error_deg, centre_error_mm
from spectac.quant.lv import detect_lv
from spectac.volume import Volume

SHAPE, SPACING = (64, 64, 64), 6.8


def _images(seed: int) -> tuple[Volume, Volume, LVGeometry]:
    params = draw_patient(np.random.default_rng(seed), f"T{seed}", defect_probability=0.0)
    phantom = build_phantom(params, "stress", SHAPE, SPACING, supersample=1)
    # mean path length to the camera: average the attenuation toward anterior (-y) and left (+x)
    to_anterior = np.cumsum(phantom.mu_map, axis=1) * SPACING / 10
    to_left = np.cumsum(phantom.mu_map[::-1], axis=0)[::-1] * SPACING / 10
    attenuation = 0.5 * (np.exp(-to_anterior) + np.exp(-to_left))
    blur = 14.0 / 2.3548 / SPACING  # ~14 mm FWHM at the heart
    rng = np.random.default_rng(seed + 100)

    def image(activity: np.ndarray) -> Volume:
        smooth = ndimage.gaussian_filter(activity.astype(np.float64), blur)
        counts = rng.poisson(np.clip(smooth, 0, None) * 200.0 / smooth.max())
        return Volume.centred(counts.astype(np.float32), SPACING)

    return image(phantom.activity * attenuation), image(phantom.activity), LVGeometry.from_lv_json(phantom.lv)


@pytest.mark.parametrize("seed", range(10))
def test_detect_lv_on_normal_phantoms(seed: int) -> None:
    nc, ac, truth = _images(seed)
    for name, volume in (("NC", nc), ("AC", ac)):
        found = detect_lv(volume)
        axis, centre = axis_error_deg(found, truth), centre_error_mm(found, truth)
        assert axis < 10.0, f"seed {seed} {name}: axis {axis:.1f} degrees off"
        assert centre < SPACING, f"seed {seed} {name}: centre {centre:.1f} mm off (over one voxel)"
        # the AHA frame agrees with the phantom's: septal toward the patient's right
        cos = float(found.septal @ truth.septal)
        assert cos > np.cos(np.radians(12)), f"seed {seed} {name}: septal {np.degrees(np.arccos(cos)):.1f} degrees off"
