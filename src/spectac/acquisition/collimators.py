"""Parallel-hole collimators of clinical cameras, by vendor and the name the camera writes in
Collimator/Grid Name (0018,1180), and a protocol with the views of a real acquisition.

Hole diameter, septa and hole length are the design values of the SIMIND Monte Carlo program's
collimator database ``collim.col`` (M. Ljungberg; the copy shipped with PyTomography,
``pytomography/data/collim.col``: codes GI-* for GE Infinia/Discovery, SY-* for Siemens Symbia).
The detector's intrinsic resolution is 3.8 mm FWHM for every camera (Tc-99m, UFOV; spectac's
simulator uses the same). The model is spectac's :class:`~spectac.acquisition.protocol.Collimator`
(geometric Anger resolution added in quadrature to the intrinsic one), so the GE LEHR entry is the
very collimator the training pairs were simulated with. ``published_fwhm_10cm_mm`` is the vendor's
system resolution at 10 cm where spectac quotes one (docs/projections.md): GE LEHR 7.4 mm,
Siemens Symbia LEHR 7.5 mm and LEUHR 6.0 mm (vendor data sheets). Those rows carry a ``gap_mm``
(collimator back face to the image plane in the crystal, absorbing septal penetration) calibrated
so that the model's FWHM at 10 cm equals the published figure; the other rows have none and are a
little sharper than the real collimators. The Siemens LEUHR row (1.16 mm holes, 0.13 mm septa,
35.8 mm long) is not in ``collim.col``: its values are those of the Symbia data sheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectac.acquisition.protocol import Collimator, Protocol
from spectac.errors import SpectacError

INTRINSIC_FWHM_MM = 3.8


@dataclass(frozen=True)
class CollimatorSpec:
    """One row of the collimator table."""

    vendor: str  # "GE" or "SIEMENS"
    name: str  # as written in Collimator/Grid Name
    hole_mm: float
    septa_mm: float
    length_mm: float
    simind_code: str
    published_fwhm_10cm_mm: float | None = None
    gap_mm: float = 0.0  # calibrated to the published FWHM where there is one (Collimator.gap_mm)

    @property
    def key(self) -> str:
        return f"{self.vendor}-{self.name}"

    def collimator(self) -> Collimator:
        return Collimator(hole_mm=self.hole_mm, length_mm=self.length_mm, intrinsic_fwhm_mm=INTRINSIC_FWHM_MM,
                          gap_mm=self.gap_mm)


COLLIMATORS: tuple[CollimatorSpec, ...] = (
    CollimatorSpec("GE", "LEHR", 1.5, 0.2, 35.0, "GI-LEHR", 7.4, 13.2),
    CollimatorSpec("GE", "LEGP", 1.9, 0.2, 35.0, "GI-LEGP"),
    CollimatorSpec("GE", "ELEGP", 2.5, 0.4, 40.0, "GI-ELEG"),
    CollimatorSpec("GE", "MEGP", 3.0, 1.05, 58.0, "GI-MEGP"),
    CollimatorSpec("GE", "HEGP", 4.0, 1.8, 66.0, "GI-HEGP"),
    CollimatorSpec("SIEMENS", "LEHR", 1.11, 0.16, 24.05, "SY-LEHR", 7.5, 16.0),
    CollimatorSpec("SIEMENS", "LEUHR", 1.16, 0.13, 35.8, "SY-LEUHR", 6.0, 7.5),
    CollimatorSpec("SIEMENS", "LEAP", 1.45, 0.2, 24.05, "SY-LEAP"),
    CollimatorSpec("SIEMENS", "ME", 2.94, 1.14, 40.64, "SY-ME"),
    CollimatorSpec("SIEMENS", "HE", 4.0, 2.0, 59.7, "SY-HE"),
)

#: Other spellings cameras write for the same collimator.
ALIASES = {"LPHR": "LEHR", "LEHRS": "LEHR", "MELP": "ME", "MEGP": "MEGP", "ME": "ME", "HE": "HE", "HEGP": "HEGP"}


def vendor_of(manufacturer: str) -> str:
    """"GE" or "SIEMENS" from a Manufacturer (0008,0070) value, else the value upper-cased."""
    text = (manufacturer or "").upper()
    if "GE " in text + " " or "GENERAL ELECTRIC" in text:
        return "GE"
    if "SIEMENS" in text:
        return "SIEMENS"
    return text.strip()


def _normalise(name: str) -> str:
    flat = "".join(c for c in name.upper() if c.isalnum())
    return ALIASES.get(flat, flat)


def find_collimator(name: str, manufacturer: str = "") -> CollimatorSpec:
    """The table row of a collimator name (``LEHR``, ``GE-LEHR``, ``siemens lehr``).

    A plain name is looked up among the rows of the file's vendor; a name that several vendors use
    with different holes needs the vendor (``GE-LEHR``) when the manufacturer is unknown.

    Raises:
        SpectacError: no row matches, or the match is ambiguous.
    """
    known = ", ".join(spec.key for spec in COLLIMATORS)
    text = name.strip().upper().replace("_", "-").replace(" ", "-")
    for spec in COLLIMATORS:
        if text == spec.key or text == spec.simind_code:
            return spec
    wanted = _normalise(text)
    vendor = vendor_of(manufacturer)
    rows = [s for s in COLLIMATORS if _normalise(s.name) == wanted]
    same_vendor = [s for s in rows if s.vendor == vendor]
    if len(same_vendor) == 1:
        return same_vendor[0]
    if len(rows) == 1:
        return rows[0]
    if rows:
        raise SpectacError(f"collimator {name!r} of an unknown vendor ({manufacturer or 'no Manufacturer'}) is "
                           f"ambiguous; give --collimator with the vendor, one of {known}")
    raise SpectacError(f"unknown collimator {name!r} ({manufacturer or 'no Manufacturer'}); give --collimator "
                       f"NAME, one of {known}")


@dataclass(frozen=True)
class AcquiredProtocol(Protocol):
    """A protocol whose views are those of a real acquisition: any angles, in acquisition order.

    ``azimuths_deg`` returns ``angles_deg`` (spectac's azimuth convention); ``arc_deg`` and
    ``start_deg`` are nominal (the nearest of 180/360 and the first view) and used by nothing that
    projects.
    """

    angles_deg: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.angles_deg) != self.n_views:
            raise SpectacError(f"{len(self.angles_deg)} view angles for {self.n_views} views")

    def azimuths_deg(self) -> np.ndarray:
        return np.asarray(self.angles_deg, dtype=np.float64)
