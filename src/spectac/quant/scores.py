"""Perfusion scores against normal limits: per-sample deviation, 17 segment scores 0-4, SSS, SRS,
SDS and the total perfusion deficit (TPD, after Slomka et al., J Nucl Cardiol 2005).

Exact definitions (also in docs/quantification.md). For a polar-map sample i with normalised
uptake x_i, normal mean mu_i and normal SD sigma_i (from the normal database of the image's
method family, sex and state):

- deviation ``z_i = (mu_i - x_i) / max(sigma_i, SD_FLOOR)``: SDs below normal (positive = lower);
- continuous severity ``s_i = clip(z_i - 2, 0, 4)``: 0 down to 2 SD below the mean, 1 at the
  abnormality threshold of 3 SD, 4 (absent uptake) at 6 SD or more;
- ``TPD = 100 * sum_i w_i s_i / (4 * sum_i w_i)`` with w_i the sample's share of the LV surface:
  extent and severity in one number, in percent of the LV (a region with s = 4 counts fully, one
  at the 3 SD threshold a quarter);
- territory TPD: the same sums restricted to the samples of the territory's segments (percent of
  the territory);
- segment score = ``floor(mean_s + 0.5)`` clipped to 0-4, where mean_s is the area-weighted mean
  severity of the segment's samples (0 normal, 1 equivocal/mild, 2 moderate, 3 severe, 4 absent);
- SSS = sum of the 17 stress segment scores, SRS = the same at rest, SDS = SSS - SRS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectac.quant.polar import PolarMap
from spectac.quant.segments import segment_values, territory_mask

SD_FLOOR = 0.03  # normalised-uptake units: keeps z finite where normals hardly vary
SEVERITY_START_SD = 2.0
SEVERITY_MAX = 4.0


@dataclass(frozen=True)
class NormalLimits:
    """Normal mean and SD of every polar-map sample for one method family, sex and state.

    Attributes:
        mean: (N_RINGS, N_ANGLES) mean normalised uptake of the normal patients.
        sd: (N_RINGS, N_ANGLES) its standard deviation.
        n: number of normal studies behind the limits.
    """

    mean: np.ndarray
    sd: np.ndarray
    n: int


@dataclass(frozen=True)
class PerfusionScores:
    """Scores of one polar map against normal limits.

    Attributes:
        deviation: (N_RINGS, N_ANGLES) z, SDs below the normal mean.
        severity: (N_RINGS, N_ANGLES) continuous severity s in [0, 4].
        segment_scores: (17,) integer scores 0-4 (index 0 = segment 1).
        tpd: total perfusion deficit in percent of the LV.
        weights: (N_RINGS, N_ANGLES) the sample areas used.
    """

    deviation: np.ndarray
    severity: np.ndarray
    segment_scores: np.ndarray
    tpd: float
    weights: np.ndarray

    @property
    def summed_score(self) -> int:
        """The sum of the 17 segment scores (SSS for a stress map, SRS for a rest map)."""
        return int(self.segment_scores.sum())

    def territory_tpd(self, territory: str) -> float:
        """TPD restricted to a coronary territory (LAD, LCx, RCA), in percent of the territory."""
        return tpd_of(self.severity, self.weights, territory_mask(territory))


def deviation(values: np.ndarray, limits: NormalLimits) -> np.ndarray:
    """(N_RINGS, N_ANGLES) SDs below the normal mean."""
    return (limits.mean - values) / np.maximum(limits.sd, SD_FLOOR)


def severity(z: np.ndarray) -> np.ndarray:
    """Continuous severity 0-4 of deviations z (see the module docstring)."""
    return np.clip(z - SEVERITY_START_SD, 0.0, SEVERITY_MAX)


def tpd_of(sev: np.ndarray, weights: np.ndarray, mask: np.ndarray | None = None) -> float:
    """TPD in percent from per-sample severities and areas, optionally within a mask."""
    if mask is not None:
        sev, weights = sev[mask], weights[mask]
    return float(100.0 * np.sum(weights * sev) / (SEVERITY_MAX * np.sum(weights)))


def segment_scores_of(sev: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(17,) integer segment scores from per-sample severities."""
    mean_s = segment_values(sev, weights)
    return np.clip(np.floor(mean_s + 0.5), 0, SEVERITY_MAX).astype(np.int64)


def score_polar_map(pm: PolarMap, limits: NormalLimits) -> PerfusionScores:
    """Score a polar map against normal limits of the same layout."""
    if limits.mean.shape != pm.values.shape:
        raise ValueError(f"normal limits {limits.mean.shape} do not match the polar map {pm.values.shape}")
    z = deviation(pm.values, limits)
    sev = severity(z)
    return PerfusionScores(z, sev, segment_scores_of(sev, pm.weights), tpd_of(sev, pm.weights), pm.weights)


def summed_difference_score(stress: PerfusionScores, rest: PerfusionScores) -> int:
    """SDS = SSS - SRS of one patient's stress and rest studies."""
    return stress.summed_score - rest.summed_score

