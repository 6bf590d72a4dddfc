"""The energy windows of a Tc-99m acquisition and what each window counts.

Clinical cameras record several energy windows at once: the photopeak (140 keV +-10%,
126-154 keV) and scatter windows from which the photopeak's scatter is estimated:

- dual-energy-window (DEW; Jaszczak et al., J Nucl Med 1984): a lower window 92-125 keV whose
  counts, times k = 0.5, estimate the photopeak scatter;
- triple-energy-window (TEW; Ogawa et al., IEEE Trans Med Imaging 1991): two narrow windows
  beside the photopeak (here 4 keV each, 122-126 and 154-158 keV); the scatter in the photopeak
  is the trapezoid (C_lower / w_lower + C_upper / w_upper) * w_peak / 2.

Each :class:`EnergyWindow` also carries the parameters of spectac's scatter model in that window
(:mod:`spectac.acquisition.scatter`): its amplitude, the effective (broad-beam) attenuation of
the scatter it counts and the lateral spread per unit depth. Their calibration is documented in
docs/simulation.md ("Scatter and energy windows").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Energy resolution of an Anger camera at 140 keV (FWHM / energy); 9-10% is typical.
ENERGY_RESOLUTION = 0.10
PHOTON_KEV = 140.5
#: Jaszczak's DEW multiplier (J Nucl Med 1984).
DEW_K = 0.5


@dataclass(frozen=True)
class EnergyWindow:
    """One energy window and the scatter model's parameters in it.

    Attributes:
        name: "photopeak", "tew_lower", "tew_upper" or "dew_lower" (any name for other tables).
        lower_kev, upper_kev: the window's bounds.
        scatter: amplitude a of the scatter counted in this window (see
            :func:`spectac.acquisition.scatter.scatter_projections`).
        broad_beam: b, the attenuation of the counted scatter relative to the narrow-beam mu
            (b < 1: scatter builds up with depth; Chang's "effective" 0.12/0.153 = 0.78).
        spread: lateral SD of the scatter per mm of depth below the body's surface.
    """

    name: str
    lower_kev: float
    upper_kev: float
    scatter: float
    broad_beam: float
    spread: float

    @property
    def width_kev(self) -> float:
        return self.upper_kev - self.lower_kev

    def primary_fraction(self, resolution: float = ENERGY_RESOLUTION) -> float:
        """Fraction of the unscattered 140.5 keV photons whose measured energy falls in the window
        (Gaussian energy response of FWHM ``resolution`` x 140.5 keV)."""
        sigma = resolution * PHOTON_KEV / (2 * math.sqrt(2 * math.log(2)))

        def cdf(e: float) -> float:
            return 0.5 * (1 + math.erf((e - PHOTON_KEV) / (sigma * math.sqrt(2))))

        return cdf(self.upper_kev) - cdf(self.lower_kev)


#: The default table. The photopeak's scatter gives a scatter fraction of about 32% in the thorax
#: of a typical patient; the TEW and DEW amplitudes are set so their estimates of the photopeak
#: scatter are unbiased on average over typical patients (docs/simulation.md).
DEFAULT_WINDOWS: tuple[EnergyWindow, ...] = (
    EnergyWindow("photopeak", 126.0, 154.0, scatter=1.3, broad_beam=0.74, spread=0.30),
    EnergyWindow("tew_lower", 122.0, 126.0, scatter=0.333, broad_beam=0.74, spread=0.40),
    EnergyWindow("tew_upper", 154.0, 158.0, scatter=0.005, broad_beam=0.74, spread=0.25),
    EnergyWindow("dew_lower", 92.0, 125.0, scatter=2.36, broad_beam=0.68, spread=0.60),
)


def window_named(windows: tuple[EnergyWindow, ...], name: str) -> EnergyWindow:
    for window in windows:
        if window.name == name:
            return window
    raise KeyError(f"no energy window named {name!r}")
