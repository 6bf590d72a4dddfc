"""Synthetic LV shells for the quantification tests: a half-ellipsoid myocardium in a given frame,
optionally inside a torso with a hot liver, blurred like a SPECT image."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spectac.quant.geometry import LVGeometry
from spectac.volume import Volume


def shell_geometry(
    long_axis=(1.0, -1.0, -1.0), center_offset=(0.0, 0.0, 0.0), radius=27.0, length=60.0, wall=10.0
) -> LVGeometry:
    """A geometry whose base centre is placed so that the shell centroid is at ``center_offset``."""
    probe = LVGeometry.from_axes(np.zeros(3), np.asarray(long_axis, float), radius, length, wall)
    base = np.asarray(center_offset, float) - probe.center_mm
    return LVGeometry.from_axes(base, probe.long_axis, radius, length, wall)


def lv_coordinates(points: np.ndarray, geom: LVGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u along the axis from the base, r radial, theta AHA angle in degrees) of LPS points (..., 3)."""
    d = points - geom.base_mm
    u = d @ geom.long_axis
    a, s = d @ geom.anterior, d @ geom.septal
    return u, np.hypot(a, s), np.degrees(np.arctan2(s, a)) % 360


def draw_shell(
    geom: LVGeometry,
    shape=(48, 48, 48),
    spacing=6.8,
    supersample=3,
    defect=None,
    torso=False,
    liver=0.0,
    blur_mm=12.0,
    seed=None,
) -> Volume:
    """Rasterise the LV shell (value 1) into a centred volume.

    Args:
        defect: optional (theta_lo, theta_hi, u_lo_frac, u_hi_frac, remaining) reducing uptake in an
            angular sector (degrees, AHA angle) between two fractions of the mid-wall length (0 base,
            1 apex) to ``remaining``.
        torso: add a uniform body background (0.1) in an elliptic cylinder.
        liver: uptake of a large right-sided inferior liver blob (0 for none).
        blur_mm: FWHM of a Gaussian blur (0 for none).
        seed: Poisson-like Gaussian noise seed (None for no noise).
    """
    base = Volume.centred(np.zeros(shape, np.float32), spacing)
    n = np.array(shape) * supersample
    fine_spacing = spacing / supersample
    fine_origin = np.array(base.origin) - (supersample - 1) / 2 * fine_spacing
    axes = [fine_origin[i] + np.arange(n[i]) * fine_spacing for i in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    u, r, theta = lv_coordinates(pts, geom)
    w = geom.wall_mm
    q_out = (r / (geom.radius_mm + w / 2)) ** 2 + (u / (geom.length_mm + w / 2)) ** 2
    q_in = (r / (geom.radius_mm - w / 2)) ** 2 + (u / (geom.length_mm - w / 2)) ** 2
    img = ((q_out <= 1) & (q_in > 1) & (u >= 0)).astype(np.float32)
    if defect is not None:
        t0, t1, f0, f1, remaining = defect
        in_sector = ((theta - t0) % 360) <= ((t1 - t0) % 360)
        frac = u / geom.length_mm
        img[in_sector & (frac >= f0) & (frac <= f1) & (img > 0)] = remaining
    if torso:
        body = (pts[..., 0] / 150.0) ** 2 + (pts[..., 1] / 110.0) ** 2 <= 1
        img = np.where(img > 0, img, 0.1 * body).astype(np.float32)
    if liver:
        c = geom.center_mm + np.array([-80.0, 20.0, -60.0])
        blob = ((pts - c) / np.array([70.0, 60.0, 45.0])) ** 2
        img = np.where(blob.sum(-1) <= 1, liver, img).astype(np.float32)
    img = img.reshape(shape[0], supersample, shape[1], supersample, shape[2], supersample).mean(axis=(1, 3, 5))
    if blur_mm:
        img = ndimage.gaussian_filter(img, blur_mm / 2.3548 / spacing)
    if seed is not None:
        rng = np.random.default_rng(seed)
        img = img + rng.normal(0, 0.03, img.shape) * np.sqrt(np.clip(img, 0, None))
    return base.with_array(img.astype(np.float32))
