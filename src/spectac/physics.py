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

The tube voltage changes the CT number of bone (lower kVp, more photoelectric effect, higher HU),
so the slope above 0 HU depends on the kVp (:func:`hu_to_mu` with ``kvp``). HU of cortical bone at
each kVp scale as the inverse of the bone-branch slopes of Carney et al., Med Phys 33:976 (2006),
Table I (a = 3.64, 4.43, 5.10, 5.64 x 1e-5 1/cm per HU at 80, 100, 120, 140 kVp;
their slopes are for 511 keV, but the ratio between kVps is the CT side of the conversion and
carries over to 140 keV), anchored at 1900 HU for 120 kVp::

    kVp   HU of cortical bone   slope above 0 HU (1/cm per HU at 140 keV)
     80          2662                  4.857e-5
    100          2187                  5.911e-5
    120          1900                  6.805e-5   (the 120 kVp model above)
    140          1718                  7.526e-5

Between table entries the HU of bone is interpolated linearly in kVp; outside 80-140 kVp the
conversion is refused (no data).
"""

from __future__ import annotations

import numpy as np

MU_WATER = 0.1537  # 1/cm at 140 keV
MU_SOFT_TISSUE = 0.153  # 1/cm at 140 keV: the phantom's soft tissue
MU_BONE = 0.2830  # 1/cm, cortical bone at 140 keV
HU_BONE = 1900.0  # HU of cortical bone at 120 kVp

#: Bone-branch slopes of Carney et al. 2006 (Table I), 1e-5 per HU, by kVp.
CARNEY_BONE_SLOPE = {80.0: 3.64, 100.0: 4.43, 120.0: 5.10, 140.0: 5.64}
#: HU of cortical bone by kVp: HU_BONE at 120 kVp scaled by Carney's slope ratios.
HU_BONE_BY_KVP = {kvp: HU_BONE if kvp == 120.0 else HU_BONE * CARNEY_BONE_SLOPE[120.0] / a
                  for kvp, a in CARNEY_BONE_SLOPE.items()}
KVP_RANGE = (80.0, 140.0)


def hu_bone(kvp: float) -> float:
    """HU of cortical bone on a CT at ``kvp`` (interpolated in the table of the module docstring).

    Raises:
        ValueError: ``kvp`` outside 80-140.
    """
    kvp = float(kvp)
    if not KVP_RANGE[0] <= kvp <= KVP_RANGE[1]:
        raise ValueError(f"the CT-to-mu conversion covers {KVP_RANGE[0]:g}-{KVP_RANGE[1]:g} kVp, got {kvp:g}")
    kvps = sorted(HU_BONE_BY_KVP)
    return float(np.interp(kvp, kvps, [HU_BONE_BY_KVP[k] for k in kvps]))


def bone_slope(kvp: float = 120.0) -> float:
    """Slope of the bilinear conversion above 0 HU (1/cm per HU at 140 keV) for a CT at ``kvp``."""
    return (MU_BONE - MU_WATER) / hu_bone(kvp)


def hu_to_mu(hu: np.ndarray, kvp: float = 120.0) -> np.ndarray:
    """Linear attenuation coefficient at 140 keV (1/cm) from CT numbers (HU), bilinear model.

    ``kvp``: the CT's tube voltage (80-140); 120 is the model of the module docstring.
    """
    hu = np.asarray(hu, dtype=np.float32)
    bone_hu = hu_bone(kvp)
    mu = np.where(hu <= 0, MU_WATER * (1 + hu / 1000.0), MU_WATER + hu * (MU_BONE - MU_WATER) / bone_hu)
    return np.clip(mu, 0, None).astype(np.float32)


def mu_to_hu(mu: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hu_to_mu` (for mu >= 0): HU that give these mu at 140 keV."""
    mu = np.asarray(mu, dtype=np.float32)
    hu = np.where(
        mu <= MU_WATER, (mu / MU_WATER - 1) * 1000.0, (mu - MU_WATER) * HU_BONE / (MU_BONE - MU_WATER)
    )
    return hu.astype(np.float32)
