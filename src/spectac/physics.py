"""Physical constants of Tc-99m imaging at 140 keV, and the CT-number to mu conversion.

Linear attenuation coefficients in 1/cm at 140 keV (narrow beam):

- water 0.1537 (mass attenuation 0.1536 cm2/g; Hubbell & Seltzer, NIST XCOM / NISTIR 5632, 1995);
- soft tissue of the simulated phantom 0.153 (water-like tissue, density ~1.0 g/cm3);
- cortical bone 0.2830 (1.92 g/cm3, mass attenuation 0.1474 cm2/g).

CT to mu at 140 keV (bilinear model, after Blankespoor et al., IEEE Trans Nucl Sci 1996, and
Brown et al., Med Phys 2008)::

    mu = MU_WATER * (1 + HU / 1000)                         for HU <= 0  (air-water mixtures)
    mu = MU_WATER + HU * (MU_BONE - MU_WATER) / HU_BONE     for HU > 0   (water-bone mixtures)

with HU_BONE = 1900 (cortical bone on a 120 kVp CT); mu is clipped at 0 below -1000 HU. The break
at 0 HU exists because above water the CT's effective energy (~70 keV) sees the photoelectric
effect of calcium that 140 keV barely sees.
"""

from __future__ import annotations

import numpy as np

MU_WATER = 0.1537  # 1/cm at 140 keV
MU_SOFT_TISSUE = 0.153  # 1/cm at 140 keV: the phantom's soft tissue
MU_BONE = 0.2830  # 1/cm, cortical bone at 140 keV
HU_BONE = 1900.0  # HU of cortical bone at 120 kVp


def hu_to_mu(hu: np.ndarray) -> np.ndarray:
    """Linear attenuation coefficient at 140 keV (1/cm) from CT numbers (HU), bilinear model."""
    hu = np.asarray(hu, dtype=np.float32)
    mu = np.where(hu <= 0, MU_WATER * (1 + hu / 1000.0), MU_WATER + hu * (MU_BONE - MU_WATER) / HU_BONE)
    return np.clip(mu, 0, None).astype(np.float32)


def mu_to_hu(mu: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hu_to_mu` (for mu >= 0): HU that give these mu at 140 keV."""
    mu = np.asarray(mu, dtype=np.float32)
    hu = np.where(
        mu <= MU_WATER, (mu / MU_WATER - 1) * 1000.0, (mu - MU_WATER) * HU_BONE / (MU_BONE - MU_WATER)
    )
    return hu.astype(np.float32)
