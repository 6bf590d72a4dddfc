"""Perfusion scores against normal limits: per-sample deviation, 17 segment scores 0-4, SSS, SRS,
SDS and the total perfusion deficit (TPD, after Slomka et al., J Nucl Cardiol 2005).

Exact definitions (also in docs/quantification.md). For a polar-map sample i with uptake x_i,
normal mean mu_i and normal SD sigma_i (from the normal database of the image's method family, sex
and state) and area weight w_i:

- normalisation (Slomka et al. 2005): the map is multiplied by the factor f that makes its mean
  over the samples *within normal limits* equal the normal mean there,
  ``f = sum_i w_i mu_i / sum_i w_i x_i`` over the samples with ``|mu_i - f x_i| <= 3 sigma_i`` and
  not flagged as extracardiac, iterated from f fitted on every sample until it changes by less
  than 0.1% (at most 20 iterations); ``x_i`` below is the normalised ``f x_i``;
- deviation ``z_i = (mu_i - x_i) / max(sigma_i, SD_FLOOR)``: SDs below normal (positive = lower);
- continuous severity ``s_i = clip(z_i - 2, 0, 4)``: 0 down to 2 SD below the mean, 1 at the
  abnormality threshold of 3 SD, 4 (absent uptake) at 6 SD or more;
- ``TPD = 100 * sum_i w_i s_i / (4 * sum_i w_i)`` with w_i the sample's share of the LV surface:
  extent and severity in one number, in percent of the LV (a region with s = 4 counts fully, one
  at the 3 SD threshold a quarter);
- count-based reduction ``r_i = clip(1 - x_i / mu_i, 0, 1)``: the fraction below the normal mean,
  in counts, the same scale whatever the SD of the limits (NC, Chang, DL and CT-AC compare on it);
  **count deficit** ``CD = 100 * sum_i w_i r_i [r_i >= 0.2] / sum_i w_i``: percent of the normal
  LV counts missing, from samples at least 20% below the normal mean;
- territory TPD: the same sums restricted to the samples of the territory's segments (percent of
  the territory);
- segment score = ``floor(mean_s + 0.5)`` clipped to 0-4, where mean_s is the area-weighted mean
  severity of the segment's samples (0 normal, 1 equivocal/mild, 2 moderate, 3 severe, 4 absent);
- SSS = sum of the 17 stress segment scores, SRS = the same at rest, SDS = SSS - SRS (the summed
  definition, which a rest map scored worse than its stress map makes negative);
- segmental SDS = ``sum_k max(stress_k - rest_k, 0)`` over the 17 segments (never negative);
- ischaemic TPD = ``100 * sum_i w_i max(s_i^stress - s_i^rest, 0) / (4 * sum_i w_i)`` (never
  negative): the reversible part of the stress TPD, sample by sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectac.quant.polar import PolarMap
from spectac.quant.segments import segment_values, territory_mask

SD_FLOOR = 0.03  # normalised-uptake units: keeps z finite where normals hardly vary
SEVERITY_START_SD = 2.0
SEVERITY_MAX = 4.0
NORMAL_LIMIT_SD = 3.0  # samples within this many SDs of the mean drive the normalisation
NORMALISE_TOLERANCE = 1e-3
NORMALISE_MAX_ITERATIONS = 20
COUNT_DEFICIT_THRESHOLD = 0.2  # reductions below 20% of the normal mean are not counted


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
        values: (N_RINGS, N_ANGLES) the polar map normalised to the normal mean.
        factor: the normalisation factor applied to the polar map's values.
        reduction: (N_RINGS, N_ANGLES) count-based reduction r, fraction below the normal mean.
    """

    deviation: np.ndarray
    severity: np.ndarray
    segment_scores: np.ndarray
    tpd: float
    weights: np.ndarray
    values: np.ndarray
    factor: float
    reduction: np.ndarray

    @property
    def count_deficit(self) -> float:
        """Percent of the normal LV counts missing (see the module docstring)."""
        return count_deficit_of(self.reduction, self.weights)

    def segment_reduction(self) -> np.ndarray:
        """(17,) area-weighted mean count reduction of each segment, in percent of the normal mean."""
        return 100.0 * segment_values(self.reduction, self.weights)

    @property
    def summed_score(self) -> int:
        """The sum of the 17 segment scores (SSS for a stress map, SRS for a rest map)."""
        return int(self.segment_scores.sum())

    def territory_tpd(self, territory: str) -> float:
        """TPD restricted to a coronary territory (LAD, LCx, RCA), in percent of the territory."""
        return tpd_of(self.severity, self.weights, territory_mask(territory))


def normalise_to_limits(
    values: np.ndarray, weights: np.ndarray, limits: NormalLimits, usable: np.ndarray | None = None
) -> float:
    """The factor that scales ``values`` to the normal mean over the samples within normal limits
    (iterative normalisation, Slomka et al. 2005; see the module docstring).

    Args:
        values: (N_RINGS, N_ANGLES) polar-map samples.
        weights: (N_RINGS, N_ANGLES) sample areas.
        limits: the normal limits to match.
        usable: (N_RINGS, N_ANGLES) samples allowed in the fit (e.g. not extracardiac); None for all.
    """
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64) * (np.ones(x.shape, bool) if usable is None else usable)
    mu, sd = limits.mean.astype(np.float64), np.maximum(limits.sd, SD_FLOOR)

    def fit(mask: np.ndarray) -> float:
        den = float(np.sum(w * x * mask))
        return float(np.sum(w * mu * mask)) / den if den > 0 else 1.0

    factor = fit(np.ones(x.shape, bool))
    for _ in range(NORMALISE_MAX_ITERATIONS):
        within = np.abs(mu - factor * x) <= NORMAL_LIMIT_SD * sd
        if np.sum(w * within) < 0.2 * np.sum(w):  # hardly anything normal left: keep the last fit
            break
        new = fit(within)
        converged = abs(new - factor) <= NORMALISE_TOLERANCE * factor
        factor = new
        if converged:
            break
    return factor


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


def count_deficit_of(reduction: np.ndarray, weights: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Count deficit in percent from per-sample reductions r (fraction below the normal mean)."""
    if mask is not None:
        reduction, weights = reduction[mask], weights[mask]
    counted = np.where(reduction >= COUNT_DEFICIT_THRESHOLD, reduction, 0.0)
    return float(100.0 * np.sum(weights * counted) / np.sum(weights))


def segment_scores_of(sev: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(17,) integer segment scores from per-sample severities."""
    mean_s = segment_values(sev, weights)
    return np.clip(np.floor(mean_s + 0.5), 0, SEVERITY_MAX).astype(np.int64)


def score_polar_map(pm: PolarMap, limits: NormalLimits, normalise: bool = True) -> PerfusionScores:
    """Score a polar map against normal limits of the same layout.

    Args:
        pm: the polar map.
        limits: normal limits of the image's family, sex and state.
        normalise: normalise the map to the normal mean first (:func:`normalise_to_limits`); False
            scores ``pm.values`` as they are.
    """
    if limits.mean.shape != pm.values.shape:
        raise ValueError(f"normal limits {limits.mean.shape} do not match the polar map {pm.values.shape}")
    factor = normalise_to_limits(pm.values, pm.weights, limits, pm.myocardial) if normalise else 1.0
    values = (pm.values * factor).astype(np.float32)
    z = deviation(values, limits)
    sev = severity(z)
    reduction = np.clip(1.0 - values / np.maximum(limits.mean, 1e-6), 0.0, 1.0)
    return PerfusionScores(z, sev, segment_scores_of(sev, pm.weights), tpd_of(sev, pm.weights), pm.weights,
                           values, float(factor), reduction)


def summed_difference_score(stress: PerfusionScores, rest: PerfusionScores) -> int:
    """SDS = SSS - SRS of one patient's stress and rest studies (negative when rest scores worse)."""
    return stress.summed_score - rest.summed_score


def segmental_difference_score(stress: PerfusionScores, rest: PerfusionScores) -> int:
    """Segmental SDS = sum over the 17 segments of max(stress - rest, 0): never negative."""
    return int(np.maximum(stress.segment_scores - rest.segment_scores, 0).sum())


def ischemic_tpd(stress: PerfusionScores, rest: PerfusionScores) -> float:
    """Ischaemic TPD: stress minus rest severity per sample, clipped at 0, as a TPD (percent of the LV)."""
    return tpd_of(np.maximum(stress.severity - rest.severity, 0.0), stress.weights)
