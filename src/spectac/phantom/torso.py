"""The body wall and breasts of the parametric torso (shared by the drawing and the build).

The body is an ellipse (semi-axes a lateral, b antero-posterior) in each transverse slice. Its
wall has layers whose thickness varies around the body, qualitatively as CT body-composition
studies show (Kvist et al., Am J Clin Nutr 1988): subcutaneous fat thickest over the abdomen and
the lateral chest and growing with BMI, thin over the back, where the paraspinal muscles are
thick. The weights around the body are chosen, not fitted. Under the fat lies the chest wall
(pectoral and intercostal muscle, the ribs in its inner part); inside it, the thoracic and
abdominal cavities.

Breasts (women) are modelled supine: a flattened half ellipsoid standing on the skin of the
anterolateral chest, spread laterally and falling toward the axilla, its volume drawn from BMI.

Units: mm; angles of the body ellipse are elliptic angles (x = a cos phi, y = b sin phi; -90 deg
anterior, +90 deg posterior, 0 the patient's left).
"""

from __future__ import annotations

import numpy as np

#: breast centre: elliptic angle from anterior toward each side (supine: fallen laterally)
BREAST_ANGLE_DEG = 50.0
#: supine breast shape: lateral spread and height relative to the cranio-caudal half length
BREAST_SPREAD, BREAST_HEIGHT = 1.3, 0.45


def body_layers(a: float, b: float, fat_mm: float, chest_wall_mm: float, bmi: float, abdomen_z_mm: float,
                rel_x: np.ndarray, rel_y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """Depth below the skin and the local fat and muscle thickness (mm) at points relative to the
    body centre.

    ``depth`` is measured along the ray from the body centre (negative outside the body). The
    subcutaneous fat is ``fat_mm`` on the anterior chest, x1.05 laterally, x0.45 over the back,
    and grows below ``abdomen_z_mm`` (the abdomen) by a factor rising with BMI; the muscle layer
    is ``chest_wall_mm`` anteriorly and laterally, +20 mm posteriorly (paraspinal muscles).
    """
    radial = np.sqrt((rel_x / a) ** 2 + (rel_y / b) ** 2)
    phi = np.arctan2(rel_y / b, rel_x / a)
    cos2, sin = np.cos(phi) ** 2, np.sin(phi)
    edge = np.sqrt(a**2 * cos2 + b**2 * sin**2)
    posterior2 = np.where(sin > 0, sin**2, 0.0)
    weight = (1.0 + 0.05 * cos2) * (1.0 - 0.55 * posterior2)
    abdominal = float(np.clip(0.25 + 0.03 * (bmi - 25.0), 0.1, 0.8))
    weight = weight * (1.0 + abdominal * np.clip((abdomen_z_mm - z) / 80.0, 0.0, 1.0))
    return {
        "depth": (1.0 - radial) * edge,
        "fat": fat_mm * weight,
        "muscle": chest_wall_mm + 20.0 * posterior2,
        "phi": phi,
        "edge": edge,
    }


def breast_shape_mm(volume_ml: float) -> tuple[float, float, float]:
    """(lateral spread along the skin, cranio-caudal half length, height) of a supine breast of
    ``volume_ml``: a half ellipsoid of volume 2/3 pi * product of the three."""
    if volume_ml <= 0:
        return 0.0, 0.0, 0.0
    half_z = (volume_ml * 1000.0 / (2.0 / 3.0 * np.pi * BREAST_SPREAD * BREAST_HEIGHT)) ** (1.0 / 3.0)
    return BREAST_SPREAD * half_z, half_z, BREAST_HEIGHT * half_z


def breast_height_mm(volume_ml: float, phi: np.ndarray, edge: np.ndarray, dz: np.ndarray | float) -> np.ndarray:
    """Height of the breasts above the skin at elliptic angle ``phi`` (skin at radius ``edge``)
    and ``dz`` from the breast centre level (0 where there is no breast)."""
    spread, half_z, height = breast_shape_mm(volume_ml)
    top = np.zeros(np.broadcast(phi, dz).shape)
    if volume_ml <= 0:
        return top
    for side in (-1.0, 1.0):
        phi_c = np.deg2rad(-90.0 + side * BREAST_ANGLE_DEG)
        arc = np.abs(np.mod(phi - phi_c + np.pi, 2 * np.pi) - np.pi) * edge
        profile = 1.0 - (arc / spread) ** 2 - (dz / half_z) ** 2
        top = np.maximum(top, height * np.sqrt(np.clip(profile, 0.0, None)))
    return top


def body_extent_mm(a: float, b: float, breast_volume_ml: float) -> tuple[float, float, float]:
    """(half width, anterior extent, posterior extent) of the body outline with its breasts,
    from the body centre (mm)."""
    phi = np.linspace(-np.pi, np.pi, 721)
    edge = np.sqrt((a * np.cos(phi)) ** 2 + (b * np.sin(phi)) ** 2)
    scale = 1.0 + breast_height_mm(breast_volume_ml, phi, edge, 0.0) / edge
    x, y = a * np.cos(phi) * scale, b * np.sin(phi) * scale
    return float(np.max(np.abs(x))), float(-np.min(y)), float(np.max(y))
