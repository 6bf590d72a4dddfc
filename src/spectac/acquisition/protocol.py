"""The acquisition protocol of a clinical dual-head cardiac SPECT camera.

Camera azimuth convention (used by the projector, Chang and DICOM): ``phi`` is the angle of the
camera position in the transaxial LPS plane, measured from +x (patient's left) toward +y
(posterior). Anterior is -90 deg, so the standard 180-degree cardiac arc RAO 45 -> LPO 45 runs
from -135 deg through anterior (-90), LAO 45 (-45) and left lateral (0) to LPO 45 (+45).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spectac.acquisition.windows import DEFAULT_WINDOWS, EnergyWindow
from spectac.volume import SpectacError

#: Keys of protocol dicts written before the energy windows (the Gaussian scatter model), ignored.
_RETIRED_KEYS = ("scatter_fraction", "scatter_fwhm_mm")


@dataclass(frozen=True)
class Collimator:
    """Parallel-hole collimator and detector resolution (GE LEHR defaults).

    System FWHM at distance d from the collimator face:
    sqrt(intrinsic^2 + (hole * (length + d + gap) / length)^2) (Anger's geometric resolution;
    Cherry SR, Sorenson JA, Phelps ME, Physics in Nuclear Medicine, 4th ed., 2012, ch. 14).
    ``gap_mm`` is the effective distance from the collimator's back face to the image plane in the
    crystal (cover, air gap, mean depth of interaction; it also absorbs septal penetration),
    calibrated so that the model gives the vendor's published system FWHM at 10 cm (GE LEHR
    7.4 mm: :data:`spectac.acquisition.collimators.COLLIMATORS`). 0 in protocols saved before it.
    """

    hole_mm: float = 1.5
    length_mm: float = 35.0
    intrinsic_fwhm_mm: float = 3.8
    gap_mm: float = 13.2

    def fwhm_mm(self, distance_mm: np.ndarray | float) -> np.ndarray:
        distance = np.maximum(np.asarray(distance_mm, dtype=np.float64), 0.0)
        geometric = self.hole_mm * (self.length_mm + distance + self.gap_mm) / self.length_mm
        return np.sqrt(self.intrinsic_fwhm_mm**2 + geometric**2)


@dataclass(frozen=True)
class Protocol:
    """Acquisition settings. Counts are the expected total counts in the photopeak window of a study
    (primary and scatter). ``scatter``: simulate scatter in every energy window of ``windows``
    (:mod:`spectac.acquisition.scatter`); without it only the photopeak's primary photons."""

    n_views: int = 60
    arc_deg: float = 180.0
    start_deg: float = -135.0
    matrix: int = 64
    pixel_mm: float = 6.8
    counts: float = 4.0e6
    clearance_mm: float = 25.0
    collimator: Collimator = Collimator()
    scatter: bool = True
    windows: tuple[EnergyWindow, ...] = DEFAULT_WINDOWS

    def __post_init__(self) -> None:
        if self.n_views < 1:
            raise SpectacError(f"the number of views must be positive, got {self.n_views}")
        if self.arc_deg not in (180.0, 360.0):
            raise SpectacError(f"the orbit arc must be 180 or 360 degrees, got {self.arc_deg}")
        if self.matrix < 8:
            raise SpectacError(f"the matrix must be at least 8, got {self.matrix}")
        if self.pixel_mm <= 0:
            raise SpectacError(f"the pixel size must be positive, got {self.pixel_mm}")
        if not self.counts > 0:
            raise SpectacError(f"the counts per study must be positive, got {self.counts}")
        names = [w.name for w in self.windows]
        if "photopeak" not in names or len(set(names)) != len(names):
            raise SpectacError(f"the energy windows need one 'photopeak' and distinct names, got {names}")
        for w in self.windows:
            if not 0 < w.lower_kev < w.upper_kev or w.scatter < 0 or not 0 < w.broad_beam <= 1 or w.spread < 0:
                raise SpectacError(f"energy window {w.name!r}: bounds or scatter parameters out of range")

    @classmethod
    def for_arc(cls, arc_deg: float, **settings: object) -> Protocol:
        """The cardiac protocol of an orbit: 180 degrees from RAO 45 (-135) to LPO 45, or 360."""
        if arc_deg not in (180.0, 360.0):
            raise SpectacError(f"the orbit arc must be 180 or 360 degrees, got {arc_deg:g}")
        return cls(arc_deg=float(arc_deg), start_deg=-135.0 if arc_deg == 180.0 else -90.0, **settings)  # type: ignore[arg-type]

    def azimuths_deg(self) -> np.ndarray:
        """Camera azimuth of every view in degrees (see the module docstring)."""
        step = self.arc_deg / self.n_views
        return self.start_deg + step * np.arange(self.n_views)

    def azimuths_rad(self) -> np.ndarray:
        return np.deg2rad(self.azimuths_deg())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Protocol:
        """The protocol of a saved dict; dicts from before the energy windows (``"scatter": false``,
        no ``windows``) load with the default window table."""
        data = {k: v for k, v in data.items() if k not in _RETIRED_KEYS}
        collimator = Collimator(**{"gap_mm": 0.0, **data.pop("collimator", {})})  # saved before the gap: none
        if "windows" in data:
            data["windows"] = tuple(EnergyWindow(**w) for w in data["windows"])
        return cls(collimator=collimator, **data)
