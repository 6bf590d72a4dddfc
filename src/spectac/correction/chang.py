"""Chang's attenuation correction from the NC image alone (no CT): the classical baseline.

A SPECT-only clinic has no attenuation map, so the body is taken as a uniform attenuator
(``mu`` in 1/cm, 0.12 by default: the "effective" value used without scatter correction; 0.153
is the narrow-beam value of water at 140 keV) inside a body contour found in the NC image.

First-order Chang (Chang 1978): every voxel is multiplied by

    C(r) = 1 / ( (1/N) * sum_views exp(-mu * l(r, phi)) ),

where ``l(r, phi)`` is the path length inside the contour from ``r`` toward the camera at azimuth
``phi`` (unit vector ``(cos phi, sin phi, 0)`` in the LPS frame, see
:mod:`spectac.acquisition.protocol`), over the views the camera actually acquired (a 180-degree
cardiac arc or a full 360-degree orbit).

Iterative (multiple-order) Chang: the measured projections are not kept in a dataset, so the
pseudo-measured projections are the forward projection of the NC image *without* attenuation
(which is what the NC reconstruction is consistent with). The corrected image is reprojected with
the uniform-mu model, the projection error is reconstructed and corrected with the Chang factors,
and added to the image.

The path lengths are computed like PyTomography's attenuation transform: for each view the mask
is resampled on a grid whose first axis points toward the camera, a reverse cumulative sum along
that axis gives the path length (the voxel itself counts half), and the result is sampled back at
the voxel centres. :func:`detection_probability` does it with torch's ``grid_sample`` (a batch of
views at once, any device) and its path integral is
:func:`spectac.acquisition.attenuation.transmission`, the one the projector's attenuation factors
use (tests/test_attenuation.py checks both against a cylinder). :func:`detection_probability_numpy`
is the same computation in numpy (the same bilinear weights, zero padding going out, border
padding coming back, the same midpoint rule), so that Chang's factors and the Chang prior of a
network need no torch (``spectac correct`` on the ONNX runtime never imports it);
tests/test_chang.py checks the two agree. :func:`chang_factors` uses the numpy one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.correction import DEFAULT_MU_PER_CM
from spectac.volume import SpectacError, Volume, to_lps_axes

if TYPE_CHECKING:
    import torch

# --------------------------------------------------------------------------------------------
# Body contour
# --------------------------------------------------------------------------------------------


#: The last few body contours, by the image's bytes and the options: ``spectac correct`` needs the
#: contour of the same NC image three times (the out-of-distribution check, the Chang prior, the
#: partners' disagreement), about 0.05 s each.
_CONTOURS: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CONTOURS_KEPT = 4
_CONTOURS_LOCK = threading.Lock()


def body_contour(
    nc: np.ndarray,
    spacing: tuple[float, float, float] | float,
    *,
    smoothing_mm: float = 8.0,
    fraction: float = 0.35,
) -> np.ndarray:
    """Body mask from the NC image itself (a copy of a remembered one for an image seen before:
    :func:`find_body_contour` does the work).
    """
    image = np.ascontiguousarray(nc)
    spacing_key = tuple(float(v) for v in np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,)))
    key = (hashlib.blake2b(image.tobytes(), digest_size=16).digest(), image.shape, image.dtype.str, spacing_key,
           float(smoothing_mm), float(fraction))
    # found under the lock: the out-of-distribution check (its own thread) and the Chang prior ask
    # for the same contour at the same moment, and the second waits for the first's
    with _CONTOURS_LOCK:
        known = _CONTOURS.get(key)
        if known is None:
            known = find_body_contour(image, spacing, smoothing_mm=smoothing_mm, fraction=fraction)
        _CONTOURS[key] = known
        _CONTOURS.move_to_end(key)
        while len(_CONTOURS) > _CONTOURS_KEPT:
            _CONTOURS.popitem(last=False)
    return known.copy()


def find_body_contour(
    nc: np.ndarray,
    spacing: tuple[float, float, float] | float,
    *,
    smoothing_mm: float = 8.0,
    fraction: float = 0.35,
) -> np.ndarray:
    """Body mask from the NC image itself.

    The body shows a low but nonzero background uptake; outside the body an OSEM image is near
    zero, the lungs are darker than soft tissue, the liver and heart much hotter. So the
    threshold is a fraction of a robust *body level* (the median of the clearly non-air voxels,
    dominated by soft tissue and insensitive to the small hot organs), taken on a smoothed image
    so that low-count noise does not punch holes; lungs and other dark enclosed regions are then
    filled slice by slice and in 3D, and only the largest component is kept.

    Args:
        nc: (X, Y, Z) NC image in counts.
        spacing: voxel size in mm (one value or one per axis).
        smoothing_mm: FWHM of the Gaussian smoothing applied before thresholding.
        fraction: threshold as a fraction of the body level.

    Returns:
        (X, Y, Z) bool body mask.
    """
    image = np.asarray(nc, dtype=np.float64)
    if image.ndim != 3:
        raise SpectacError(f"body_contour needs a 3D image, got shape {image.shape}")
    spacing_arr = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    sigma_vox = smoothing_mm / 2.3548 / spacing_arr
    # "nearest" borders: the body goes on beyond the axial field of view, so the end slices must
    # not be darkened by the smoothing.
    smooth = ndimage.gaussian_filter(np.clip(image, 0, None), sigma=sigma_vox, mode="nearest")
    high = float(np.percentile(smooth, 99.5))
    if not high > 0:
        raise SpectacError("the NC image is empty: no body to find")
    # Air after smoothing sits far below 2% of the hot organs; what is above is body (or
    # reconstruction halo), and its median is the soft-tissue background.
    candidates = smooth[smooth > 0.02 * high]
    body_level = float(np.median(candidates))
    mask = smooth > fraction * body_level
    # Close small gaps of noisy low-count edges; the padding keeps the closing from eroding the
    # first and last slices (the body is open at both ends of the field of view).
    padded = np.pad(mask, 1, mode="edge")
    mask = ndimage.binary_closing(padded, structure=ndimage.generate_binary_structure(3, 1))[1:-1, 1:-1, 1:-1]
    # Lungs are enclosed in every axial slice but open to the neck/abdomen ends in 3D only through
    # the FOV edge, so fill slice-wise first, then in 3D.
    for k in range(mask.shape[2]):
        mask[:, :, k] = ndimage.binary_fill_holes(mask[:, :, k])
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n == 0:
        raise SpectacError("no body found in the NC image")
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


# --------------------------------------------------------------------------------------------
# Chang factors
# --------------------------------------------------------------------------------------------


def _normalised(coord: torch.Tensor, n: int) -> torch.Tensor:
    """Continuous index in [0, n-1] -> grid_sample coordinate in [-1, 1] (align_corners=True)."""
    return coord * (2.0 / max(n - 1, 1)) - 1.0


def detection_probability(
    attenuation: np.ndarray | torch.Tensor,
    spacing_mm: tuple[float, float, float] | float,
    azimuths_rad: np.ndarray,
    *,
    batch: int = 16,
) -> torch.Tensor:
    """Mean over views of the probability that a photon emitted in a voxel reaches the camera.

    The path integral is :func:`~spectac.acquisition.attenuation.transmission`, as in the
    projector; the grid differs from the projector's because Chang needs one value per *voxel*
    (anisotropic or non-square grids too): a rotated grid covering the whole field-of-view
    diagonal, sampled back at the voxel centres.

    Args:
        attenuation: (X, Y, Z) linear attenuation coefficient in 1/cm.
        spacing_mm: voxel size in mm.
        azimuths_rad: (V,) camera azimuths (LPS convention of the protocol module).
        batch: views resampled at once (memory ~ batch * Z * (1.5 X)^2 floats).

    Returns:
        (X, Y, Z) float32 tensor: (1/V) * sum_v exp(-integral of mu toward camera v).
    """
    import torch
    import torch.nn.functional as F

    from spectac.acquisition.attenuation import transmission

    mu = torch.as_tensor(np.asarray(attenuation, dtype=np.float32) if not torch.is_tensor(attenuation)
                         else attenuation.float())
    nx, ny, nz = mu.shape
    sx, sy, _ = (float(s) for s in np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)))
    step = min(sx, sy)  # sampling step of the rotated grid, mm
    # A square rotated grid that covers the whole (rotated) field of view.
    extent = float(np.hypot(nx * sx, ny * sy))
    n_rot = int(np.ceil(extent / step)) + 2
    centre = torch.tensor([(nx - 1) / 2 * sx, (ny - 1) / 2 * sy], dtype=torch.float32)

    ax = (torch.arange(n_rot, dtype=torch.float32) - (n_rot - 1) / 2) * step  # along the ray (toward camera)
    ix = torch.arange(nx, dtype=torch.float32) * sx - centre[0]
    iy = torch.arange(ny, dtype=torch.float32) * sy - centre[1]
    px, py = torch.meshgrid(ix, iy, indexing="ij")  # (X, Y) voxel positions relative to the centre, mm

    # grid_sample sees the volume as (N, C=Z, H=X, W=Y); grid[..., 0] indexes W (y), [..., 1] H (x).
    source = mu.permute(2, 0, 1).unsqueeze(0)  # (1, Z, X, Y)
    total = torch.zeros((nz, nx, ny), dtype=torch.float32)
    azimuths = np.asarray(azimuths_rad, dtype=np.float64).reshape(-1)
    if azimuths.size == 0:
        raise SpectacError("no view azimuths given")
    for start in range(0, azimuths.size, batch):
        phi = torch.as_tensor(azimuths[start : start + batch], dtype=torch.float32)
        b = phi.numel()
        u = torch.stack([torch.cos(phi), torch.sin(phi)], dim=1)  # (B, 2) toward the camera
        v = torch.stack([-torch.sin(phi), torch.cos(phi)], dim=1)  # (B, 2) across the ray
        # Rotated grid point (a, c) sits at centre + ax[a] * u + ax[c] * v  (mm).
        pos = (ax[None, :, None, None] * u[:, None, None, :] + ax[None, None, :, None] * v[:, None, None, :])
        grid = torch.stack(
            [_normalised((pos[..., 1] + centre[1]) / sy, ny), _normalised((pos[..., 0] + centre[0]) / sx, nx)],
            dim=-1,
        )  # (B, A, C, 2)
        rotated = F.grid_sample(source.expand(b, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=True)  # (B, Z, A, C)
        # Path integral from a sample toward +a (the camera); the sample itself counts half.
        prob = transmission(rotated, step / 10.0, dim=2)
        # Sample back at every voxel: a = p.u / step, c = p.v / step (continuous indices).
        a_idx = (px[None] * u[:, 0, None, None] + py[None] * u[:, 1, None, None]) / step + (n_rot - 1) / 2
        c_idx = (px[None] * v[:, 0, None, None] + py[None] * v[:, 1, None, None]) / step + (n_rot - 1) / 2
        back_grid = torch.stack([_normalised(c_idx, n_rot), _normalised(a_idx, n_rot)], dim=-1)  # (B, X, Y, 2)
        back = F.grid_sample(prob, back_grid, mode="bilinear", padding_mode="border", align_corners=True)
        total += back.sum(dim=0)  # (Z, X, Y)
    return (total / azimuths.size).permute(1, 2, 0).contiguous()


def _rotated_geometry(shape: tuple[int, ...], spacing_mm: tuple[float, float, float] | float) -> tuple:
    """The rotated grid of :func:`detection_probability`: (step mm, n_rot, ax (n_rot,) mm,
    px and py (X, Y) voxel positions relative to the centre in mm, centre (2,) mm, sx, sy)."""
    nx, ny = shape[:2]
    sx, sy, _ = (float(s) for s in np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)))
    step = min(sx, sy)
    n_rot = int(np.ceil(float(np.hypot(nx * sx, ny * sy)) / step)) + 2
    centre = np.array([(nx - 1) / 2 * sx, (ny - 1) / 2 * sy])
    ax = (np.arange(n_rot) - (n_rot - 1) / 2) * step
    px, py = np.meshgrid(np.arange(nx) * sx - centre[0], np.arange(ny) * sy - centre[1], indexing="ij")
    return step, n_rot, ax, px, py, centre, sx, sy


def _bilinear(ix: np.ndarray, iy: np.ndarray, nx: int, ny: int, border: bool) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (4, P) into an (nx * ny) plane and bilinear weights (4, P) at continuous
    indices ``ix``, ``iy`` (P,), as ``grid_sample(align_corners=True)``: ``border`` clamps the
    position into the plane (padding_mode "border"), otherwise a corner outside it weighs 0
    ("zeros")."""
    if border:
        ix, iy = np.clip(ix, 0, nx - 1), np.clip(iy, 0, ny - 1)
    x0, y0 = np.floor(ix), np.floor(iy)
    fx, fy = ix - x0, iy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    index, weight = [], []
    for dx, wx in ((0, 1 - fx), (1, fx)):
        for dy, wy in ((0, 1 - fy), (1, fy)):
            cx, cy = x0 + dx, y0 + dy
            inside = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
            index.append(np.where(inside, np.clip(cx, 0, nx - 1) * ny + np.clip(cy, 0, ny - 1), 0))
            weight.append(np.where(inside, wx * wy, 0.0))
    return np.stack(index), np.stack(weight).astype(np.float32)


def _sample(plane: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Bilinear samples (P, Z) of the columns of ``plane`` (N, Z) at :func:`_bilinear` corners;
    only the points with a non-zero weight are gathered (the others are 0)."""
    used = np.flatnonzero(weight.any(axis=0))
    if used.size < index.shape[1]:
        out = np.zeros((index.shape[1], plane.shape[1]), dtype=plane.dtype)
        out[used] = _sample(plane, index[:, used], weight[:, used])
        return out
    out = plane[index[0]] * weight[0][:, None]
    term = np.empty_like(out)
    for k in range(1, 4):
        out += np.multiply(plane[index[k]], weight[k][:, None], out=term)
    return out


def detection_probability_numpy(
    attenuation: np.ndarray,
    spacing_mm: tuple[float, float, float] | float,
    azimuths_rad: np.ndarray,
) -> np.ndarray:
    """:func:`detection_probability` in numpy: the same rotated grid, bilinear resampling (zeros
    outside going out, border coming back), midpoint-rule path integral and mean over the views,
    so it agrees with the torch one to float32 rounding (tests/test_chang.py) without torch.

    Every axial slice sees the same rotated grid, so the bilinear corners and weights of a view are
    computed once and gathered for all slices at once (rows of an (X * Y, Z) array).

    Returns:
        (X, Y, Z) float32 array: (1/V) * sum_v exp(-integral of mu toward camera v).
    """
    mu = np.asarray(attenuation, dtype=np.float32)
    nx, ny, nz = mu.shape
    step, n_rot, ax, px, py, centre, sx, sy = _rotated_geometry(mu.shape, spacing_mm)
    azimuths = np.asarray(azimuths_rad, dtype=np.float64).reshape(-1)
    if azimuths.size == 0:
        raise SpectacError("no view azimuths given")
    plane = mu.reshape(nx * ny, nz)
    total = np.zeros((nx * ny, nz), dtype=np.float64)
    middle = (n_rot - 1) / 2
    for phi in azimuths:
        u = np.array([np.cos(phi), np.sin(phi)])  # toward the camera
        v = np.array([-np.sin(phi), np.cos(phi)])  # across the ray
        # rotated grid point (a, c) sits at centre + ax[a] * u + ax[c] * v (mm), at continuous
        # voxel index (ix, iy); only the rows and columns of points within one voxel of the volume
        # can be non-zero, so only they (and two more each side, for the way back) are resampled:
        # the path integral beyond them toward the camera adds nothing.
        ix = (ax[:, None] * u[0] + ax[None, :] * v[0] + centre[0]) / sx
        iy = (ax[:, None] * u[1] + ax[None, :] * v[1] + centre[1]) / sy
        near = (ix > -1) & (ix < nx) & (iy > -1) & (iy < ny)
        rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
        a0, a1 = max(rows[0] - 2, 0), min(rows[-1] + 3, n_rot)
        c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, n_rot)
        index, weight = _bilinear(ix[a0:a1, c0:c1].ravel(), iy[a0:a1, c0:c1].ravel(), nx, ny, border=False)
        rotated = _sample(plane, index, weight).reshape(a1 - a0, c1 - c0, nz)
        # path integral from a sample toward +a (the camera), the sample itself counting half: a
        # reverse cumulative sum row by row (the order of torch.cumsum, and much faster than
        # np.cumsum along the first axis)
        integral = rotated.copy()
        for a in range(integral.shape[0] - 2, -1, -1):
            integral[a] += integral[a + 1]
        integral -= np.float32(0.5) * rotated
        prob = np.exp(integral * np.float32(-step / 10.0)).reshape(-1, nz)
        a_idx = (px * u[0] + py * u[1]) / step + middle - a0
        c_idx = (px * v[0] + py * v[1]) / step + middle - c0
        index, weight = _bilinear(a_idx.ravel(), c_idx.ravel(), a1 - a0, c1 - c0, border=True)
        total += _sample(prob, index, weight)
    return (total / azimuths.size).astype(np.float32).reshape(nx, ny, nz)


def chang_factors(
    mask: np.ndarray,
    spacing_mm: tuple[float, float, float] | float,
    azimuths_rad: np.ndarray,
    mu_per_cm: float = DEFAULT_MU_PER_CM,
) -> np.ndarray:
    """First-order Chang correction factors for a uniform attenuator inside ``mask``.

    Args:
        mask: (X, Y, Z) bool body contour.
        spacing_mm: voxel size in mm.
        azimuths_rad: (V,) camera azimuths of the acquired views.
        mu_per_cm: uniform linear attenuation coefficient inside the contour.

    Returns:
        (X, Y, Z) float32 factors >= 1 inside the body, exactly 1 outside it (Chang corrects the
        activity of the body; what an NC image shows outside the contour is reconstruction halo).
    """
    if not mu_per_cm >= 0:
        raise SpectacError(f"mu must be non-negative, got {mu_per_cm}")
    mask = np.asarray(mask, dtype=bool)
    factors = np.ones(mask.shape, dtype=np.float32)
    if not mask.any():
        return factors
    # Only the body's bounding box matters (the factor is 1 outside the body, where Chang makes
    # no claim): cropping makes the rotated grids ~3x smaller than the field of view.
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(mask))
    mu = mask[box].astype(np.float32) * np.float32(mu_per_cm)
    prob = detection_probability_numpy(mu, spacing_mm, azimuths_rad)
    inside = 1.0 / np.maximum(prob, np.float32(1e-6))
    factors[box] = np.where(mask[box], inside, 1.0)
    return factors


def array_azimuths(volume: Volume, protocol: Protocol) -> np.ndarray:
    """The protocol's camera azimuths expressed in the volume's array axes.

    For the usual axis-aligned LPS grid this is the protocol's azimuths; a grid stored with flipped
    or swapped transaxial axes gets the azimuths of the same physical directions.
    """
    phi = protocol.azimuths_rad()
    toward = np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], axis=1)  # (V, 3) LPS
    in_array = toward @ volume.direction  # components along the array axes
    if np.max(np.abs(in_array[:, 2])) > 1e-3:
        raise SpectacError("the volume's z axis is not the scanner axis; Chang needs transaxial slices")
    return np.arctan2(in_array[:, 1], in_array[:, 0])


def protocol_of(meta: dict | None) -> Protocol:
    """The acquisition protocol stored in a dataset's meta (``meta['protocol']``), or the default."""
    if meta and isinstance(meta.get("protocol"), dict):
        return Protocol.from_dict(meta["protocol"])
    return Protocol()


def chang_first_order(nc: Volume, protocol: Protocol | None = None, mu: float = DEFAULT_MU_PER_CM) -> Volume:
    """First-order Chang correction of an NC volume (contour from the NC image itself)."""
    protocol = protocol or Protocol()
    mask = body_contour(nc.array, nc.spacing)
    factors = chang_factors(mask, nc.spacing, array_azimuths(nc, protocol), mu)
    return nc.with_array(nc.array * factors)


def chang_iterative(
    nc: Volume,
    protocol: Protocol | None = None,
    mu: float = DEFAULT_MU_PER_CM,
    iterations: int = 1,
    psf: bool = False,
) -> Volume:
    """Multiple-order Chang correction (first order followed by ``iterations`` error updates).

    Pseudo-measured projections p = P0 nc (no attenuation; the measured ones are not stored).
    x_0 = C * nc; then x_{k+1} = x_k + C * R(p - P_mu x_k), where P_mu is the uniform-mu
    projector inside the contour and R the normalised backprojection
    R(e) = P0^T (e / P0 1) / P0^T 1 (one SIRT step).

    Args:
        nc: NC volume.
        protocol: the acquisition (views, arc).
        mu: uniform attenuation coefficient inside the contour, 1/cm.
        iterations: number of error updates (0 gives first-order Chang).
        psf: model the collimator response in the projector (slower, rarely changes the result).
    """
    import torch

    from spectac.acquisition.projector import SpectProjector  # lazy: the projector is heavy

    protocol = protocol or Protocol()
    if iterations < 0:
        raise SpectacError(f"the number of Chang iterations must be >= 0, got {iterations}")
    ordered, order = to_lps_axes(nc)
    if not order.identity:  # the projector's view angles are those of an [x, y, z] LPS array
        corrected = chang_iterative(ordered, protocol, mu, iterations, psf)
        return order.undo(corrected.array, nc)
    mask = body_contour(nc.array, nc.spacing)
    factors = torch.from_numpy(chang_factors(mask, nc.spacing, array_azimuths(nc, protocol), mu))
    x0 = torch.from_numpy(np.clip(nc.array, 0, None).astype(np.float32))
    x = x0 * factors
    if iterations == 0:
        return nc.with_array(x.numpy())
    spacing = float(nc.spacing[0])
    p0 = SpectProjector(shape=nc.shape, spacing_mm=spacing, protocol=protocol, mu_map=None, psf=psf)
    p_mu = SpectProjector(shape=nc.shape, spacing_mm=spacing, protocol=protocol,
                          mu_map=mask.astype(np.float32) * np.float32(mu), psf=psf)
    measured = p0.forward(x0)
    row_sum = p0.forward(torch.ones_like(x0)).clamp_min(1e-6)
    col_sum = p0.backward(torch.ones_like(measured)).clamp_min(1e-6)
    for _ in range(iterations):
        error = measured - p_mu.forward(x)
        x = torch.clamp(x + factors * p0.backward(error / row_sum) / col_sum, min=0)
    return nc.with_array(x.numpy().astype(np.float32))
