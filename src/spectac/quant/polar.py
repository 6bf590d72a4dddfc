"""Polar map (bull's-eye) from maximal-count circumferential profiles.

The LV mid-wall is modelled as the half-ellipsoid of :class:`~spectac.quant.geometry.LVGeometry` (radius
R across, length L from the base plane to the mid-wall apex). Samples are taken on a fixed layout:

- ``N_ANGLES`` = 72 angles, theta_k = (k + 0.5) * 5 degrees, measured from ``anterior`` toward
  ``septal`` (the AHA angle), so no sample sits on a segment boundary;
- ``N_RINGS`` = 28 rings from the apex (ring 0) to the base (ring 27): ``N_CAP`` = 4 rings of the
  apical cap (ellipsoidal polar angle psi uniform from 0 at the apex to the end of the cavity, the
  endocardial apex at u = L - wall/2 along the axis) and ``N_SA`` = 24 short-axis rings uniform in
  u from the end of the cavity to the base plane (u = 0); the SA rings split into apical, mid and
  basal thirds of 8 rings each.

Each sample is the maximum of the image along the normal of the mid-wall surface within the
myocardium (the maximal-count circumferential profile: along a short-axis ray in the basal and mid
rings, along a spherical-like ray in the cap). The search band is +-(wall/2 + ``BAND_MARGIN_MM``)
around the fitted mid-wall: the wall itself plus a margin for the fit's error and the blur of the
image (``BAND_MARGIN_MM`` = 4 mm: 9 mm each side for the 10 mm wall, i.e. 4 mm past the
epicardium, where the old +-12 mm reached 7 mm past it and into the liver or gut).

Extracardiac activity: the ray is followed ``PROBE_MM`` further out. A sample whose band maximum
lies past the fitted epicardium (offset > wall/2), or whose profile keeps rising out of the band,
and which is hotter than the wall (``EXTRACARDIAC_RATIO`` x the median of all samples) takes its
counts from outside the heart (liver, gut or stomach next to the inferior or lateral wall). Such a sample is flagged
(``PolarMap.extracardiac``), takes the value of the profile at the fitted mid-wall, capped at the
wall level, and is left out of every normalisation. A wall merged with such activity (the profile
still at ``MERGE_RATIO`` x its band maximum ``MERGE_MM`` past the fitted epicardium: no fall past
the epicardium at all) is flagged too, and takes the maximum of its profile up to the mid-wall
(the wall's rising edge, before the spill-over from outside).

Values are divided by a robust "LV maximum": the ``NORMALISATION_PERCENTILE`` percentile of the
samples not flagged as extracardiac. Scoring then normalises the map again, iteratively, to the
normal mean of its limits (:func:`spectac.quant.scores.normalise_to_limits`). Each ring carries its
share of the mid-wall surface area (``PolarMap.weights``) so extents are percentages of the LV
myocardium.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectac import resample
from spectac.quant.geometry import BAND_MARGIN_MM, LVGeometry
from spectac.volume import Volume

N_ANGLES = 72
N_CAP = 4
N_SA = 24
N_RINGS = N_CAP + N_SA
ANGLES_DEG = (np.arange(N_ANGLES) + 0.5) * (360.0 / N_ANGLES)
NORMALISATION_PERCENTILE = 95.0
PROBE_MM = 6.0  # how far past the band a ray looks for a rising extracardiac profile
EXTRACARDIAC_RATIO = 1.1  # hotter than this x the median sample: counts from outside the wall
MERGE_MM = 7.0  # a wall's profile has fallen this far past the fitted epicardium ...
MERGE_RATIO = 0.8  # ... to under this x its maximum, unless it merges with neighbouring activity
STEP_MM = 1.5


@dataclass(frozen=True)
class PolarMap:
    """A polar map on the fixed layout.

    Attributes:
        values: (N_RINGS, N_ANGLES) counts normalised to the LV maximum (1 = the maximum).
        weights: (N_RINGS, N_ANGLES) fraction of the LV mid-wall surface per sample (sums to 1).
        scale: the counts that ``values`` were divided by.
        extracardiac: (N_RINGS, N_ANGLES) True where the sample's counts come from outside the
            wall (see the module docstring); None when not assessed.
    """

    values: np.ndarray
    weights: np.ndarray
    scale: float
    extracardiac: np.ndarray | None = None

    @property
    def myocardial(self) -> np.ndarray:
        """(N_RINGS, N_ANGLES) True for the samples that normalisations may use."""
        if self.extracardiac is None:
            return np.ones(self.values.shape, dtype=bool)
        return ~self.extracardiac


def _ring_psi(geom: LVGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(N_RINGS,) ellipsoidal polar angle of each ring centre and (N_RINGS + 1,) of ring edges."""
    length = geom.length_mm
    u_end = max(length - geom.wall_mm / 2, 0.3 * length)
    psi_end = float(np.arccos(u_end / length))
    cap_edges = np.linspace(0.0, psi_end, N_CAP + 1)
    sa_u_edges = np.linspace(u_end, 0.0, N_SA + 1)
    edges = np.concatenate([cap_edges, np.arccos(np.clip(sa_u_edges[1:] / length, -1, 1))])
    cap_centres = (cap_edges[:-1] + cap_edges[1:]) / 2
    sa_u = (sa_u_edges[:-1] + sa_u_edges[1:]) / 2
    centres = np.concatenate([cap_centres, np.arccos(np.clip(sa_u / length, -1, 1))])
    return centres, edges


def _ring_areas(radius: float, length: float, edges: np.ndarray) -> np.ndarray:
    """Surface area of the ellipsoid zones between successive ring edges (psi)."""
    areas = []
    for lo, hi in itertools.pairwise(edges):
        psi = np.linspace(lo, hi, 9)
        # dA = 2 pi R sin(psi) * |d(point)/d psi| d psi
        integrand = 2 * np.pi * radius * np.sin(psi) * np.hypot(radius * np.cos(psi), length * np.sin(psi))
        areas.append(np.trapezoid(integrand, psi))
    return np.asarray(areas)


def band_half_width(geom: LVGeometry) -> float:
    """Half-width (mm) of the maximum-count search band around the fitted mid-wall."""
    return geom.wall_mm / 2 + BAND_MARGIN_MM


def sample_points(geom: LVGeometry, offsets_mm: np.ndarray) -> np.ndarray:
    """LPS points of every ray at signed distances ``offsets_mm`` from the mid-wall along its
    outward normal: (N_RINGS, N_ANGLES, len(offsets_mm), 3)."""
    psi, _ = _ring_psi(geom)
    theta = np.radians(ANGLES_DEG)
    pp, tt = np.meshgrid(psi, theta, indexing="ij")
    r, ell = geom.radius_mm, geom.length_mm
    # local coordinates (anterior, septal, long axis) of the mid-wall point and its outward normal
    local = np.stack([r * np.sin(pp) * np.cos(tt), r * np.sin(pp) * np.sin(tt), ell * np.cos(pp)], -1)
    normal = local / np.array([r, r, ell]) ** 2
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    offsets = np.asarray(offsets_mm, dtype=np.float64)
    local_pts = local[:, :, None, :] + offsets[None, None, :, None] * normal[:, :, None, :]
    return geom.base_mm + local_pts @ geom.rotation


def ray_profiles(volume: Volume, geom: LVGeometry, offsets_mm: np.ndarray) -> np.ndarray:
    """(N_RINGS, N_ANGLES, len(offsets_mm)) image profiles along the mid-wall normals."""
    return resample.sample_points(volume.array, volume.affine_lps, sample_points(geom, offsets_mm), order=1)


def polar_map(volume: Volume, geom: LVGeometry, band_mm: float | None = None) -> PolarMap:
    """The maximal-count polar map of an image on the LV geometry ``geom``.

    Args:
        volume: perfusion image (X, Y, Z) in counts.
        geom: the LV geometry (detected or truth).
        band_mm: half-width of the search band around the mid-wall along each ray; None for
            :func:`band_half_width` (the wall and a margin, see the module docstring).

    Returns:
        The :class:`PolarMap`, normalised to its robust maximum, extracardiac samples flagged.
    """
    half = band_half_width(geom) if band_mm is None else float(band_mm)
    n_band = int(np.floor(half / STEP_MM + 1e-6))
    n_probe = max(int(np.ceil(PROBE_MM / STEP_MM)), 1)
    offsets = np.arange(-n_band, n_band + n_probe + 1) * STEP_MM
    profiles = ray_profiles(volume, geom, offsets)
    band, beyond = profiles[..., : 2 * n_band + 1], profiles[..., 2 * n_band + 1 :]
    raw = band.max(axis=-1)
    wall = float(np.median(raw))
    # the band maximum lies past the fitted epicardium (or the profile rises on out of the band)
    outer = (offsets[band.argmax(axis=-1)] > geom.wall_mm / 2) | (beyond.max(axis=-1) > raw)
    extracardiac = outer & (raw > EXTRACARDIAC_RATIO * wall)
    # the profile has not fallen MERGE_MM past the epicardium: the wall merges with a hot neighbour
    i_merge = min(int(np.argmin(np.abs(offsets - (geom.wall_mm / 2 + MERGE_MM)))), len(offsets) - 1)
    merged = profiles[..., i_merge] >= MERGE_RATIO * raw
    raw = np.where(extracardiac, np.minimum(band[..., n_band], wall), raw)
    # a merged ray's wall value from its rising (endocardial) edge: the maximum up to the mid-wall
    raw = np.where(merged & ~extracardiac, band[..., : n_band + 1].max(axis=-1), raw)
    extracardiac |= merged
    myocardial = raw[~extracardiac] if (~extracardiac).any() else raw
    scale = float(np.percentile(myocardial, NORMALISATION_PERCENTILE))
    if scale <= 0:
        scale = 1.0
    return PolarMap((raw / scale).astype(np.float32), ring_weights(geom), scale, extracardiac)


def ring_weights(geom: LVGeometry) -> np.ndarray:
    """(N_RINGS, N_ANGLES) area fraction of each sample on the mid-wall surface of ``geom``."""
    _, edges = _ring_psi(geom)
    areas = _ring_areas(geom.radius_mm, geom.length_mm, edges)
    w = np.repeat((areas / areas.sum() / N_ANGLES)[:, None], N_ANGLES, axis=1)
    return w.astype(np.float64)


def bullseye_image(values: np.ndarray, size: int = 256) -> np.ndarray:
    """Raster a polar map as a bull's-eye: apex in the centre, base at the rim, anterior at the top,
    septum on the left (AHA display). Pixels outside the disc are NaN.

    Args:
        values: (N_RINGS, N_ANGLES) polar-map samples.
        size: side of the output image in pixels.

    Returns:
        (size, size) float array, row 0 at the top.
    """
    c = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = -c[:, None], c[None, :]  # y up, x right
    rho = np.hypot(x, y)
    theta = np.degrees(np.arctan2(-x, y)) % 360  # 0 at the top, 90 on the left (septal)
    ring = np.minimum((rho * values.shape[0]).astype(int), values.shape[0] - 1)
    angle = np.minimum((theta / 360 * values.shape[1]).astype(int), values.shape[1] - 1)
    img = values[ring, angle].astype(np.float64)
    img[rho > 1] = np.nan
    return img


def segment_outlines() -> list[tuple[np.ndarray, np.ndarray]]:
    """Line segments (x, y) in the bull's-eye frame of :func:`bullseye_image` (unit disc, y up)
    that outline the 17 AHA segments."""
    lines = []
    t = np.linspace(0, 2 * np.pi, 181)
    for ring_edge in (N_CAP, N_CAP + N_SA // 3, N_CAP + 2 * N_SA // 3, N_RINGS):
        rho = ring_edge / N_RINGS
        lines.append((rho * np.cos(t), rho * np.sin(t)))
    r_cap, r_apical, r_mid = N_CAP / N_RINGS, (N_CAP + N_SA // 3) / N_RINGS, 1.0
    for deg in (45, 135, 225, 315):  # apical boundaries
        th = np.radians(deg)
        lines.append((np.array([-r_cap, -r_apical]) * np.sin(th), np.array([r_cap, r_apical]) * np.cos(th)))
    for deg in (30, 90, 150, 210, 270, 330):  # mid and basal boundaries
        th = np.radians(deg)
        lines.append((np.array([-r_apical, -r_mid]) * np.sin(th), np.array([r_apical, r_mid]) * np.cos(th)))
    return lines


def plot_polar_map(
    ax: Any, values: np.ndarray, title: str = "", vmin: float = 0.0, vmax: float = 1.0, cmap: str = "jet"
) -> Any:
    """Draw a bull's-eye on a matplotlib axis with the AHA segment outlines; returns the image."""
    img = ax.imshow(bullseye_image(values), extent=(-1, 1, -1, 1), vmin=vmin, vmax=vmax, cmap=cmap, origin="upper")
    for x, y in segment_outlines():
        ax.plot(x, y, color="k", linewidth=0.6)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return img
