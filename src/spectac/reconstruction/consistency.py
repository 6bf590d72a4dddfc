"""Consistency of a corrected image with the projections it came from: a quality-control index.

An attenuation-corrected image and its mu-map predict the photopeak projections: ``yhat = s H(mu) x``
(spectac's projector with attenuation and collimator blur, the acquisition's own orbit). When the
mu-map is right and the patient did not move, the measured counts ``y`` are Poisson draws of
``yhat`` up to what OSEM and the post-filter leave out; a mu-map shifted against the emission data
(misregistration), a missing mu-map or patient motion make the two disagree in a structured way.
Data-consistency conditions of this kind are how attenuation and motion errors are detected from
the emission data alone (e.g. Bronnikov, IEEE Trans Med Imaging 2000; Welch et al., IEEE Trans
Med Imaging 1997, for transmission-emission misregistration).

Definitions (all bins of the window; views in acquisition order):

- scaling: ``s = (sum y - sum b) / sum H x``, one factor for the whole study, so that the model
  has the measured total counts (the image may be in counts, kBq/ml or any unit; OSEM and the
  post-filter do not keep the total exactly). ``b`` is an optional additive term (a scatter
  estimate), 0 by default. ``yhat`` is floored at :data:`FLOOR` counts so that a count where the
  model expects none gives a large but finite term.
- Poisson deviance per bin: ``d = 2 (y log(y / yhat) - (y - yhat))`` (``y log y = 0`` at y = 0);
- **deviance per bin**: ``D = sum d / number of bins`` (per view: over that view's bins);
- its Poisson expectation under the model, ``E = sum E[d | yhat] / number of bins``, where
  ``E[d | m]`` is the mean deviance of a Poisson(m) count (about 1 + 1/(6 m) for large m, McCullagh
  and Nelder, Generalized Linear Models, 2nd ed., 1989, section 6.2; smaller for low counts, 0 at m = 0);
- **index** ``= D / E``: about 1 for Poisson-consistent data at any count level, larger when the
  image and mu-map do not explain the projections. OSEM fits some noise (below 1) and the
  post-filter removes some signal (above 1), so a study is flagged by ``index > threshold`` with a
  threshold calibrated on studies known to be right:
  :func:`calibrated_threshold` is the chosen quantile of their indices (the 95th flags about 5% of
  right studies, by construction), :func:`flag_rate` the share of other studies above it
  (benchmarks/indirect_qc.py, docs/projections.md). A mu model's calibrated threshold is stored in
  its config.json (``qc`` block, :func:`qc_threshold_from_config`) and is the default of
  ``spectac correct --route indirect`` and ``spectac qc`` (:class:`QcVerdict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.errors import SpectacError
from spectac.reconstruction.osem import one_thread

#: Smallest model expectation (counts per bin) used in the deviance.
FLOOR = 1e-3
#: Above this mean the expected deviance is 1 + 1/(6 m) (error below 1e-5).
_ASYMPTOTIC_MEAN = 200.0


@dataclass(frozen=True)
class Consistency:
    """The consistency of an image (and mu-map) with measured projections.

    Attributes:
        deviance_per_bin: D, the Poisson deviance per bin of the whole study.
        expected_per_bin: E, its expectation for Poisson data drawn from the model.
        index: D / E.
        per_view_deviance, per_view_expected, per_view_index: the same per view (acquisition order).
        scale: the factor s applied to the forward projection.
        bins: number of projection bins.
    """

    deviance_per_bin: float
    expected_per_bin: float
    index: float
    per_view_deviance: np.ndarray
    per_view_expected: np.ndarray
    per_view_index: np.ndarray
    scale: float
    bins: int

    def flagged(self, threshold: float) -> bool:
        """Whether the study is inconsistent at ``threshold`` (compare the index, not D)."""
        return bool(self.index > threshold)

    def rows(self) -> list[dict[str, float | int | str]]:
        """One row per view and a last row "all", for a CSV."""
        rows: list[dict[str, float | int | str]] = [
            {"view": i + 1, "deviance_per_bin": float(d), "expected_per_bin": float(e), "index": float(r)}
            for i, (d, e, r) in enumerate(zip(self.per_view_deviance, self.per_view_expected, self.per_view_index))
        ]
        rows.append({"view": "all", "deviance_per_bin": self.deviance_per_bin,
                     "expected_per_bin": self.expected_per_bin, "index": self.index})
        return rows


def poisson_deviance(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """Per-bin Poisson deviance 2 (y log(y / yhat) - (y - yhat)), 0 log 0 = 0."""
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    ratio = np.where(y > 0, y / yhat, 1.0)
    return 2.0 * (np.where(y > 0, y * np.log(ratio), 0.0) - (y - yhat))


@lru_cache(maxsize=1)
def _expected_table() -> tuple[np.ndarray, np.ndarray]:
    """E[d | m] for Poisson(m) counts on a log grid of means up to :data:`_ASYMPTOTIC_MEAN`."""
    means = np.logspace(-4, np.log10(_ASYMPTOTIC_MEAN), 400)
    values = np.empty_like(means)
    top = int(_ASYMPTOTIC_MEAN + 12 * np.sqrt(_ASYMPTOTIC_MEAN) + 30)
    # log y! by a running sum (exact to rounding here), so that scipy.stats (about 1 s to import)
    # is not loaded by every reconstruction that reports the index
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top)))])
    for i, m in enumerate(means):
        y = np.arange(0, int(m + 12 * np.sqrt(m) + 30))
        pmf = np.exp(y * np.log(m) - m - log_factorial[y])  # Poisson(m) probabilities
        values[i] = float(np.sum(pmf * poisson_deviance(y, np.full(y.shape, m))))
    return means, values


def expected_deviance(mean: np.ndarray) -> np.ndarray:
    """E[2 (y log(y / m) - (y - m))] for y ~ Poisson(m), per bin (0 at m = 0, ~1 for large m)."""
    mean = np.asarray(mean, dtype=np.float64)
    means, values = _expected_table()
    low = np.interp(np.log(np.maximum(mean, means[0])), np.log(means), values)
    low = np.where(mean < means[0], values[0] * mean / means[0], low)
    high = 1.0 + 1.0 / (6.0 * np.maximum(mean, _ASYMPTOTIC_MEAN))
    return np.where(mean >= _ASYMPTOTIC_MEAN, high, low)


@torch.no_grad()
def consistency(measured: np.ndarray, image: np.ndarray, projector: SpectProjector,
                background: np.ndarray | None = None, groups: Sequence[torch.Tensor] | None = None) -> Consistency:
    """The index of an activity image against measured projections (see the module docstring).

    Args:
        measured: (views, V, Z) photopeak counts, in the projector's view order.
        image: (X, Y, Z) activity on the projector's grid (any unit; scaled to the counts).
        projector: the system model, with the mu-map for an AC image (``SpectProjector(mu_map=...)``).
        background: (views, V, Z) additive expected counts (a scatter estimate), or None.
        groups: project the views in these groups (each view once), e.g. the OSEM subsets that
            made the image, whose rotations the projector has cached; None: all views at once.
            The projection of a view does not depend on the others projected with it.
    """
    y = np.asarray(measured, dtype=np.float64)
    x = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
    groups = [torch.arange(projector.n_views)] if groups is None else list(groups)
    forward = None
    seen = np.zeros(projector.n_views, dtype=bool)
    with one_thread():  # thousands of small operations: see spectac.reconstruction.osem.one_thread
        for views in groups:
            part, index = projector.forward(x, views).numpy(), views.numpy()
            if forward is None:
                forward = np.zeros((projector.n_views,) + part.shape[1:], dtype=np.float64)
            forward[index] = part
            seen[index] = True
    if forward is None or not seen.all():
        raise ValueError(f"the view groups miss views {np.flatnonzero(~seen).tolist()}")
    if forward.shape != y.shape:
        raise ValueError(f"projections {y.shape} and the model's {forward.shape} differ")
    b = np.zeros_like(y) if background is None else np.asarray(background, dtype=np.float64)
    total = float(forward.sum())
    scale = (float(y.sum()) - float(b.sum())) / total if total > 0 else 0.0
    yhat = np.maximum(scale * forward + b, FLOOR)
    d = poisson_deviance(y, yhat)
    e = expected_deviance(yhat)
    per_view_d = d.reshape(len(d), -1).mean(axis=1)
    per_view_e = e.reshape(len(e), -1).mean(axis=1)
    deviance, expected = float(d.mean()), float(e.mean())
    return Consistency(
        deviance_per_bin=deviance,
        expected_per_bin=expected,
        index=deviance / expected if expected > 0 else float("inf"),
        per_view_deviance=per_view_d,
        per_view_expected=per_view_e,
        per_view_index=np.divide(per_view_d, per_view_e, out=np.full_like(per_view_d, np.inf), where=per_view_e > 0),
        scale=scale,
        bins=int(y.size),
    )


def calibrated_threshold(indices: np.ndarray | list[float], quantile: float = 0.95) -> float:
    """The ``quantile`` of the indices of studies known to be right (in-distribution, correct
    mu-map): a threshold that flags about ``1 - quantile`` of such studies. Linear interpolation
    between order statistics (numpy's default); at least 2 finite indices.

    Raises:
        ValueError: ``quantile`` outside (0, 1), fewer than 2 indices, or a non-finite index.
    """
    values = np.asarray(indices, dtype=np.float64).ravel()
    if not 0 < quantile < 1:
        raise ValueError(f"the quantile must lie in (0, 1), got {quantile}")
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"need at least 2 finite indices to calibrate a threshold, got {values.size}")
    return float(np.quantile(values, quantile))


def flag_rate(indices: np.ndarray | list[float], threshold: float) -> float:
    """The share of indices above ``threshold`` (:meth:`Consistency.flagged`'s rule); nan when empty."""
    values = np.asarray(indices, dtype=np.float64).ravel()
    return float(np.mean(values > threshold)) if values.size else float("nan")


# ---- the built-in threshold: a mu model's calibrated one ---------------------------------------

#: The key of the threshold block in a mu model's config.json (written by
#: ``benchmarks/indirect_qc.py --write-threshold``; docs/projections.md "Calibrating the threshold").
QC_KEY = "qc"


@dataclass(frozen=True)
class QcThreshold:
    """A consistency threshold and where it comes from.

    Attributes:
        value: a study is flagged when its index exceeds it (:meth:`Consistency.flagged`).
        source: who set it, for the outputs: ``--qc-threshold`` or the mu model's calibration
            ("unet3d-mu: 95th percentile of 10 studies (cohort0 val)").
    """

    value: float
    source: str


def qc_threshold_from_config(config: dict, model: str, where: str) -> QcThreshold | None:
    """The threshold block of a mu model's config (``{"qc": {"threshold": 1.15, "quantile": 0.95,
    "calibrated_on": "...", "studies": 10}}``); None when the config has none.

    Raises:
        SpectacError: a block that is not an object, or a threshold that is not a finite number > 0.
    """
    block = config.get(QC_KEY)
    if block is None:
        return None
    value = block.get("threshold") if isinstance(block, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (np.isfinite(value) and value > 0):
        raise SpectacError(f"{where}: \"{QC_KEY}\" must be an object whose \"threshold\" is a finite number > 0, "
                           f"got {block!r}")
    quantile, studies, on = block.get("quantile"), block.get("studies"), block.get("calibrated_on")
    how = f"{100 * float(quantile):g}th percentile" if isinstance(quantile, int | float) else "calibrated"
    of = f" of {studies} studies" if isinstance(studies, int) else ""
    return QcThreshold(float(value), f"{model}: {how}{of}" + (f" ({on})" if on else ""))


def qc_block(threshold: float, quantile: float, calibrated_on: str, studies: int) -> dict:
    """The block :func:`qc_threshold_from_config` reads, as the benchmark writes it."""
    return {"threshold": round(float(threshold), 6), "quantile": float(quantile), "calibrated_on": calibrated_on,
            "studies": int(studies)}


@dataclass(frozen=True)
class QcVerdict:
    """A study's index against a threshold (None: no threshold, so no flag)."""

    index: float
    threshold: QcThreshold | None

    @property
    def flagged(self) -> bool | None:
        """True above the threshold, False at or below it, None without a threshold."""
        return None if self.threshold is None else bool(self.index > self.threshold.value)

    @property
    def status(self) -> str:
        return {True: "flagged", False: "not flagged", None: "no threshold"}[self.flagged]

    def line(self) -> str:
        """One line for the console and the DICOM Image Comments."""
        if self.threshold is None:
            return (f"spectac QC: consistency index D/E = {self.index:.4g}; no threshold (no calibrated one "
                    "applies and no --qc-threshold was given), so no flag")
        sign = ">" if self.flagged else "<="
        return (f"spectac QC: {self.status.upper()}: consistency index D/E = {self.index:.4g} {sign} threshold "
                f"{self.threshold.value:.4g} ({self.threshold.source})")

    def record(self) -> dict:
        """The verdict as JSON/CSV values."""
        return {"index": float(self.index), "threshold": None if self.threshold is None else self.threshold.value,
                "threshold_source": None if self.threshold is None else self.threshold.source,
                "flagged": self.flagged}
