"""Photopeak scatter estimated from energy-window projections, as clinical software does.

Any reader of multi-window projections (simulated or a camera's) can use these: they take count
arrays (views, bins, rows) and window widths in keV, nothing specific to the simulator.

- TEW (Ogawa et al., IEEE Trans Med Imaging 1991): the scatter under the photopeak is the
  trapezoid between the count densities of two narrow windows beside it,
  S = (C_lower / w_lower + C_upper / w_upper) * w_peak / 2.
- DEW (Jaszczak et al., J Nucl Med 1984): S = k C_lower with a broad lower window (92-125 keV for
  Tc-99m) and k = 0.5.

The narrow TEW windows hold few counts, so the estimate is smoothed (a 2-D Gaussian per view, as
vendors smooth their scatter windows) before it enters OSEM as the additive term of the forward
model, y ~ A x + s (:func:`spectac.reconstruction.osem.osem`).
"""

from __future__ import annotations

import numpy as np
import torch

from spectac.errors import SpectacError

#: The scatter corrections :func:`scatter_estimate` knows.
METHODS = ("tew", "dew")
#: FWHM of the smoothing of the scatter estimate, mm.
SMOOTHING_FWHM_MM = 20.0


def tew_estimate(lower: np.ndarray, lower_kev: float, upper: np.ndarray | None, upper_kev: float,
                 peak_kev: float) -> np.ndarray:
    """Triple-energy-window scatter in the photopeak (``upper`` None: taken as zero, as is common
    for Tc-99m)."""
    density = np.asarray(lower, dtype=np.float64) / lower_kev
    if upper is not None:
        density = density + np.asarray(upper, dtype=np.float64) / upper_kev
    return density * peak_kev / 2.0


def dew_estimate(lower: np.ndarray, k: float = 0.5) -> np.ndarray:
    """Dual-energy-window scatter in the photopeak: k times the lower window's counts."""
    return k * np.asarray(lower, dtype=np.float64)


def smooth_projections(projections: np.ndarray, fwhm_mm: float, pixel_mm: tuple[float, float]) -> np.ndarray:
    """Gaussian smoothing of every view (views, bins, rows) with FWHM ``fwhm_mm`` (no smoothing
    across views); the total of every view is kept except what spreads past the edge."""
    from scipy.ndimage import gaussian_filter

    if fwhm_mm <= 0:
        return np.asarray(projections, dtype=np.float64)
    sigma = fwhm_mm / (2 * np.sqrt(2 * np.log(2)))
    return gaussian_filter(np.asarray(projections, dtype=np.float64),
                           sigma=(0.0, sigma / pixel_mm[0], sigma / pixel_mm[1]), mode="constant")


def scatter_estimate(
    counts: dict[str, np.ndarray | torch.Tensor],
    bounds_kev: dict[str, tuple[float, float]],
    method: str = "tew",
    pixel_mm: tuple[float, float] = (6.8, 6.8),
    fwhm_mm: float = SMOOTHING_FWHM_MM,
    k: float = 0.5,
) -> torch.Tensor:
    """The smoothed photopeak scatter estimate (views, bins, rows), float32.

    Args:
        counts: projections per window name: "photopeak" and, for TEW, "tew_lower" (and
            "tew_upper" when acquired), for DEW "dew_lower".
        bounds_kev: (lower, upper) keV of the same windows.
        method: "tew" or "dew".
        pixel_mm: bin size along the detector row and axially.
    """
    if method not in METHODS:
        raise SpectacError(f"unknown scatter correction {method!r}; choose from {', '.join(METHODS)} or none")
    needed = ("photopeak", "tew_lower") if method == "tew" else ("photopeak", "dew_lower")
    missing = [n for n in needed if n not in counts or n not in bounds_kev]
    if missing:
        raise SpectacError(f"{method.upper()} scatter correction needs the {', '.join(missing)} window projections")

    def width(name: str) -> float:
        return float(bounds_kev[name][1] - bounds_kev[name][0])

    def array(name: str) -> np.ndarray:
        value = counts[name]
        return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)

    if method == "tew":
        upper = array("tew_upper") if "tew_upper" in counts and "tew_upper" in bounds_kev else None
        raw = tew_estimate(array("tew_lower"), width("tew_lower"), upper,
                           width("tew_upper") if upper is not None else 1.0, width("photopeak"))
    else:
        raw = dew_estimate(array("dew_lower"), k)
    return torch.from_numpy(smooth_projections(raw, fwhm_mm, pixel_mm).astype(np.float32))
