"""A batched rotate-and-sum SPECT projector with attenuation and distance-dependent collimator blur.

The system matrix is H = (1/A) sum_views Sum_u PSF_{view,u} Att_{view} Rot_{view}, the same model as
PyTomography's ``SPECTSystemMatrix`` with ``SPECTAttenuationTransform`` and ``SPECTPSFTransform``
(tests compare the two), but evaluated for all views at once:

- Rot: bilinear resampling of the object onto a grid (u, v, z) per view, u along the direction
  toward the camera, v along the detector row, z axial: the weights of ``grid_sample``
  (``align_corners=True``, zero padding) as one sparse (views*U*V, X*Y) matrix per set of views,
  built once and applied to the object's (X*Y, Z) columns, so every axial slice shares it;
- Att: the probability that a photon emitted in a voxel reaches the camera,
  exp(-(sum of mu beyond the voxel + half its own mu) * du), precomputed once per mu-map
  (:func:`spectac.acquisition.attenuation.transmission`, the same path integral as Chang's
  correction; the factors stay in each view's rotated frame, where they are applied);
- PSF: a Gaussian whose variance grows with distance from the collimator, applied by incremental
  blurring (Wallis and Miller): planes are summed from the farthest to the nearest, and between
  two planes the running sum is blurred by the variance increment, so every plane ends with the
  blur of its own distance. The increments are exact-variance 3-tap kernels, applied along both
  detector axes with in-place shifted multiply-adds.

The 1/A factor makes an object in *counts* (what each voxel would contribute to the whole
acquisition without attenuation) project to the expected counts per projection bin: sum(H x) is the
expected total count of the study.

``backward`` is the exact adjoint (transpose) of ``forward``: the transposed sparse matrix, the
same attenuation factors, and the blur steps in reverse order
(the 3-tap kernels are symmetric). Activity outside the cylinder inscribed in the transaxial grid
is outside the camera's view and contributes nothing.

Internally the rotated object is laid out (views, U, V, Z), so each plane is a contiguous (V, Z)
projection. The sparse matrices, blur weights and sensitivities are cached per set of views (OSEM's
subsets recur every iteration). The grid_sample version this replaced is kept in the tests as the
reference it must equal to float32 rounding.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from spectac.acquisition.attenuation import transmission
from spectac.acquisition.protocol import Protocol

# Largest variance (in pixels^2) one 3-tap step may add; larger increments are split into
# several steps so the kernel weights stay positive and Gaussian-like.
_MAX_STEP_VARIANCE = 0.25
#: Sets of views whose rotation matrices and slices are kept (OSEM's subsets, all views).
_MAX_CACHED_VIEW_SETS = 32


def body_radii_mm(mask: np.ndarray, spacing_mm: float, azimuths_rad: np.ndarray, clearance_mm: float) -> np.ndarray:
    """Radius of rotation per view that follows the body: the body's extent toward the camera
    plus a clearance (the detector face distance from the rotation axis, in mm).

    Args:
        mask: (X, Y, Z) bool body mask, rotation axis through the grid centre.
    """
    nx, ny = mask.shape[:2]
    xs = (np.arange(nx) - (nx - 1) / 2) * spacing_mm
    ys = (np.arange(ny) - (ny - 1) / 2) * spacing_mm
    footprint = mask.any(axis=2)
    px, py = np.meshgrid(xs, ys, indexing="ij")
    px, py = px[footprint], py[footprint]
    if px.size == 0:
        return np.full(len(azimuths_rad), clearance_mm + spacing_mm)
    extent = np.array([np.max(px * math.cos(a) + py * math.sin(a)) for a in azimuths_rad])
    return extent + spacing_mm / 2 + clearance_mm


def bilinear_entries(n: int, azimuths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear interpolation of every view's rotated (U, V) grid from an (n, n) (X, Y) plane.

    Args:
        azimuths: (A,) the views' angles in radians (float64).

    Returns:
        columns: (A, U*V, 4) int64 index into the flattened (X, Y) plane of each corner;
        weights: (A, U*V, 4) float32 weight of each corner, 0 for corners outside the grid
        (zero padding, as ``grid_sample`` with ``align_corners=True`` and ``padding_mode="zeros"``).
        Both are read-only (projectors of the same geometry share them).
    """
    centred = np.arange(n) - (n - 1) / 2
    u, v = np.meshgrid(centred, centred, indexing="ij")
    cos, sin = np.cos(azimuths)[:, None, None], np.sin(azimuths)[:, None, None]
    # point = u * (cos, sin) + v * (-sin, cos) in pixels; u toward the camera, v along the detector row
    px = (u * cos - v * sin + (n - 1) / 2).reshape(len(azimuths), -1)
    py = (u * sin + v * cos + (n - 1) / 2).reshape(len(azimuths), -1)
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = px - x0, py - y0
    columns, weights = [], []
    # corners in increasing column order x * n + y
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 0, fx * (1 - fy)), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
        columns.append(np.where(inside, xi * n + yi, 0).astype(np.int64))
        weights.append(np.where(inside, w, 0.0).astype(np.float32))
    entries = np.stack(columns, axis=-1), np.stack(weights, axis=-1)
    for array in entries:
        array.flags.writeable = False
    return entries


#: The last geometry's :func:`bilinear_entries`, by (grid size, azimuths).
_ENTRIES: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = {}


def _csr(crow: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A float32 sparse CSR tensor (torch flags the layout as beta; only its product with a dense
    matrix is used here, which is stable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(torch.from_numpy(np.asarray(crow, dtype=np.int64)),
                                       torch.from_numpy(np.asarray(cols, dtype=np.int64)),
                                       torch.from_numpy(np.asarray(vals, dtype=np.float32)), shape)


class SpectProjector:
    """Forward and back projection for a parallel-hole SPECT camera on a cubic-voxel grid.

    Args:
        shape: (X, Y, Z) object grid; X == Y (transaxial), the rotation axis is z through the centre.
        spacing_mm: transaxial voxel size in mm (the projection bins have the same size).
        protocol: views and collimator.
        mu_map: (X, Y, Z) attenuation map in 1/cm, or None for no attenuation (NC).
        psf: model the distance-dependent collimator blur.
        radii_mm: (views,) detector distance from the rotation axis; default: following the
            mu-map's body outline plus the protocol's clearance, or a circular orbit just outside
            the grid when there is no mu-map.
        spacing_z_mm: axial voxel size, default ``spacing_mm``.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        spacing_mm: float,
        protocol: Protocol,
        mu_map: np.ndarray | torch.Tensor | None = None,
        psf: bool = True,
        radii_mm: np.ndarray | None = None,
        spacing_z_mm: float | None = None,
    ) -> None:
        nx, ny, nz = shape
        if nx != ny:
            raise ValueError(f"the transaxial grid must be square, got {shape}")
        self.shape = (nx, ny, nz)
        self.spacing_mm = float(spacing_mm)
        self.spacing_z_mm = float(spacing_z_mm or spacing_mm)
        self.protocol = protocol
        self.azimuths = torch.as_tensor(protocol.azimuths_rad(), dtype=torch.float32)
        self.n_views = len(self.azimuths)
        if radii_mm is None:
            if mu_map is not None:
                mu_np = mu_map.detach().cpu().numpy() if isinstance(mu_map, torch.Tensor) else np.asarray(mu_map)
                radii_mm = body_radii_mm(mu_np > 0.01, spacing_mm, protocol.azimuths_rad(), protocol.clearance_mm)
            else:
                radii_mm = np.full(self.n_views, nx / 2 * spacing_mm + protocol.clearance_mm)
        self.radii_mm = np.asarray(radii_mm, dtype=np.float64)
        if self.radii_mm.shape != (self.n_views,):
            raise ValueError(f"need one radius per view ({self.n_views}), got {self.radii_mm.shape}")
        self._entries = self._bilinear_entries()
        self._cache: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}
        self._buffers: dict[str, torch.Tensor] = {}
        self.psf = psf
        if psf:
            self._blur_steps, self._final_blur = self._blur_schedule()
        self._attenuation = None if mu_map is None else self._attenuation_factors(torch.as_tensor(mu_map))

    # -- geometry -------------------------------------------------------------------------
    def _bilinear_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`bilinear_entries` of this grid and these views, kept for the next projector of the
        same geometry (a simulated study builds three: the acquisition's and one per reconstruction)."""
        azimuths = self.azimuths.double().numpy()
        key = (self.shape[0], azimuths.tobytes())
        entries = _ENTRIES.get(key)
        if entries is None:
            entries = bilinear_entries(self.shape[0], azimuths)
            _ENTRIES.clear()  # one geometry at a time: at 128^3 and 60 views they take 47 MB
            _ENTRIES[key] = entries
        return entries

    def _views_cache(self, views: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per set of views (OSEM's subsets recur every iteration): the rotation as a sparse CSR
        matrix (a*U*V, X*Y) and the views' slices of the blur kernels; the transposed matrix, the
        attenuation factors and the sensitivity are added when first needed."""
        key = tuple(views.tolist())
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) >= _MAX_CACHED_VIEW_SETS:
            self._cache.pop(next(iter(self._cache)))
        columns, weights = self._entries
        index = views.numpy()
        cols, vals = columns[index].reshape(-1), weights[index].reshape(-1)
        keep = vals != 0
        # each row's corners are in increasing column order (see _bilinear_entries): already CSR
        counts = keep.reshape(-1, columns.shape[2]).sum(axis=1)
        crow = np.concatenate(([0], np.cumsum(counts)))
        entry = {"rotate": _csr(crow, cols[keep], vals[keep], (len(counts), self.shape[0] * self.shape[1]))}
        if self.psf:
            entry["steps"] = (self._blur_steps[:, :, views] / 2)[..., None, None].contiguous()
            entry["final"] = (self._final_blur[:, views] / 2)[..., None, None].contiguous()
            entry["steps_c"], entry["final_c"] = 1 - 2 * entry["steps"], 1 - 2 * entry["final"]
        self._cache[key] = entry
        return entry

    def _adjoint_matrix(self, views: torch.Tensor) -> torch.Tensor:
        """The transpose of the views' rotation matrix, CSR (X*Y, a*U*V), cached."""
        entry = self._views_cache(views)
        if "adjoint" not in entry:
            rotate = entry["rotate"]
            crow, cols, vals = (t.numpy() for t in (rotate.crow_indices(), rotate.col_indices(), rotate.values()))
            rows = np.repeat(np.arange(len(crow) - 1), np.diff(crow))
            order = np.argsort(cols, kind="stable")  # by column, rows ascending within each
            t_crow = np.concatenate(([0], np.cumsum(np.bincount(cols, minlength=rotate.shape[1]))))
            entry["adjoint"] = _csr(t_crow, rows[order], vals[order], (rotate.shape[1], rotate.shape[0]))
        return entry["adjoint"]

    def _buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A scratch tensor kept between calls (its contents are overwritten by the caller).

        Writing a fresh (a, U, V, Z) tensor costs more than the sparse product filling it (the
        memory of a large allocation is returned to the system when freed and page-faulted in
        again on every call), so forward and backward reuse theirs. Hence one projector must not
        serve two threads at once."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape:
            buffer = self._buffers[name] = torch.empty(shape)
        return buffer

    def _rotate_fast(self, x: torch.Tensor, views: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(X, Y, Z) -> (a, U, V, Z) object resampled (bilinear) in the frame of each view
        (into ``out``, (a, U, V, Z), when given)."""
        nx, ny, nz = self.shape
        flat = torch.as_tensor(x, dtype=torch.float32).reshape(nx * ny, nz)
        if out is None:
            out = torch.empty((len(views), nx, ny, nz))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.addmm(out.view(-1, nz), self._views_cache(views)["rotate"], flat, beta=0, out=out.view(-1, nz))
        return out

    def _rotate_fast_adjoint(self, y: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Adjoint of ``_rotate_fast``: (a, U, V, Z) -> (X, Y, Z)."""
        nx, ny, nz = self.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return (self._adjoint_matrix(views) @ y.reshape(-1, nz)).reshape(nx, ny, nz)

    def _attenuation_factors(self, mu_map: torch.Tensor) -> torch.Tensor:
        """(A, U, V, Z) probability of reaching the camera from each rotated voxel.

        The path integral is :func:`~spectac.acquisition.attenuation.transmission`, shared with
        :func:`spectac.correction.chang.detection_probability`; only the grid differs: here the
        projector's own (U, V) grid per view (square, the field of view's inscribed cylinder) and
        no resampling back to the voxels, since the system matrix works in the rotated frame.
        """
        mu_rot = self._rotate_fast(mu_map.float(), torch.arange(self.n_views))
        return transmission(mu_rot, self.spacing_mm / 10.0, dim=1)

    def _attenuation_of(self, views: torch.Tensor) -> torch.Tensor | None:
        """The views' (a, U, V, Z) attenuation factors, None without a mu-map: a view of the stored
        factors when the views are evenly spaced (OSEM's interleaved subsets, a run of views), else a
        copy cached per set of views. Read only."""
        if self._attenuation is None:
            return None
        steps = torch.diff(views)
        if len(views) == 1 or (bool((steps == steps[0]).all()) and int(steps[0]) > 0):
            start, step = int(views[0]), int(steps[0]) if len(views) > 1 else 1
            return self._attenuation[start:start + step * (len(views) - 1) + 1:step]
        entry = self._views_cache(views)
        if "attenuation" not in entry:
            entry["attenuation"] = self._attenuation[views].contiguous()
        return entry["attenuation"]

    def _blur_schedule(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Variance increments (pixels^2) per view and plane, split into safe 3-tap steps.

        Returns:
            steps: (U, R, A) variance of each of R repeated 3-tap steps applied before adding plane u
                (steps[0] is unused); final: (R_final, A) blur applied after the nearest plane.
        """
        n = self.shape[0]
        u = (np.arange(n) - (n - 1) / 2) * self.spacing_mm
        distance = self.radii_mm[None, :] - u[:, None]  # (U, A) plane to collimator face
        sigma_mm = self.protocol.collimator.fwhm_mm(distance) / (2 * math.sqrt(2 * math.log(2)))
        variance = (sigma_mm / self.spacing_mm) ** 2  # (U, A), decreasing with u
        increments = np.zeros_like(variance)
        increments[1:] = np.maximum(variance[:-1] - variance[1:], 0.0)
        repeats = max(1, math.ceil(increments.max() / _MAX_STEP_VARIANCE))
        steps = np.repeat((increments / repeats)[:, None, :], repeats, axis=1)
        final = variance[-1]
        final_repeats = max(1, math.ceil(final.max() / _MAX_STEP_VARIANCE))
        final_steps = np.repeat((final / final_repeats)[None, :], final_repeats, axis=0)
        return torch.as_tensor(steps, dtype=torch.float32), torch.as_tensor(final_steps, dtype=torch.float32)

    @staticmethod
    def _blur(p: torch.Tensor, w: torch.Tensor, plus: torch.Tensor | None = None,
              out: torch.Tensor | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric 3-tap blur [w, 1 - 2w, w] along both detector axes of (a, V, Z) planes, zero
        padded (the weight w (a, 1, 1) per plane: variance / 2; ``c`` = 1 - 2w when precomputed),
        plus ``plus`` when given, into ``out`` when given. In-place shifted multiply-adds: no padded copies."""
        c = 1 - 2 * w if c is None else c
        q = p * c
        q[..., 1:].addcmul_(p[..., :-1], w)
        q[..., :-1].addcmul_(p[..., 1:], w)
        if plus is None:
            r = torch.mul(q, c, out=out) if out is not None else q * c
        else:
            r = torch.addcmul(plus, q, c, out=out) if out is not None else torch.addcmul(plus, q, c)
        r[:, 1:].addcmul_(q[:, :-1], w)
        r[:, :-1].addcmul_(q[:, 1:], w)
        return r

    @property
    def has_attenuation(self) -> bool:
        """Whether the system matrix models attenuation (a mu-map was given)."""
        return self._attenuation is not None

    # -- projection -----------------------------------------------------------------------
    def _views(self, views: torch.Tensor | np.ndarray | None) -> torch.Tensor:
        if views is None:
            return torch.arange(self.n_views)
        return torch.as_tensor(views, dtype=torch.long)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Project an object.

        Args:
            x: (X, Y, Z) object in counts.
            views: indices of the views to project (default all).

        Returns:
            (a, V, Z) expected counts per projection bin (V along the detector row).
        """
        views = self._views(views)
        y = self._rotate_fast(x, views, out=self._buffer("rotated", (len(views),) + self.shape))
        attenuation = self._attenuation_of(views)
        if attenuation is not None:
            y.mul_(attenuation)
        return self._project(y, views)

    @torch.no_grad()
    def rotated(
        self, x: torch.Tensor, views: torch.Tensor | np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The object in each view's frame (a, Z, U, V) (U toward the camera) and the transmission
        factors there (None without a mu-map): what the scatter model needs besides ``forward``.

        Both are views of (a, U, V, Z) tensors, the projector's internal layout."""
        views = self._views(views)
        y = self._rotate_fast(x, views).permute(0, 3, 1, 2)
        attenuation = self._attenuation_of(views)
        return y, None if attenuation is None else attenuation.permute(0, 3, 1, 2).clone()

    @torch.no_grad()
    def project_rotated(self, y: torch.Tensor, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Sum an already rotated and attenuated object (a, Z, U, V) toward the camera with the
        collimator blur: (a, V, Z) expected counts."""
        return self._project(y.permute(0, 2, 3, 1), self._views(views))

    def _project(self, y: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """(a, U, V, Z) rotated, attenuated object -> (a, V, Z) projections (incremental blur)."""
        if not self.psf:
            return y.sum(dim=1) / self.n_views
        entry = self._views_cache(views)
        steps, final, steps_c, final_c = entry["steps"], entry["final"], entry["steps_c"], entry["final_c"]
        proj = y[:, 0].contiguous()
        for k in range(1, y.shape[1]):
            for r in range(steps.shape[1] - 1):
                proj = self._blur(proj, steps[k, r], c=steps_c[k, r])
            proj = self._blur(proj, steps[k, -1], plus=y[:, k], c=steps_c[k, -1])
        for r in range(final.shape[0]):
            proj = self._blur(proj, final[r], c=final_c[r])
        return proj.div_(self.n_views)

    @torch.no_grad()
    def backward(self, p: torch.Tensor, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Back-project projections with the exact transpose of ``forward``.

        Args:
            p: (a, V, Z) projections of the given views.

        Returns:
            (X, Y, Z) back projection.
        """
        views = self._views(views)
        nu = self.shape[0]
        g = torch.as_tensor(p, dtype=torch.float32) / self.n_views  # (a, V, Z), a new tensor
        if self.psf:
            entry = self._views_cache(views)
            steps, final, steps_c, final_c = entry["steps"], entry["final"], entry["steps_c"], entry["final_c"]
            for r in reversed(range(final.shape[0])):
                g = self._blur(g, final[r], c=final_c[r])
            y = self._buffer("planes", (len(views), nu) + tuple(g.shape[1:]))
            y[:, nu - 1] = g
            for k in range(nu - 1, 0, -1):
                for r in reversed(range(1, steps.shape[1])):
                    g = self._blur(g, steps[k, r], c=steps_c[k, r])
                g = self._blur(g, steps[k, 0], out=y[:, k - 1], c=steps_c[k, 0])
            attenuation = self._attenuation_of(views)
            if attenuation is not None:
                y.mul_(attenuation)
        else:
            y = g.unsqueeze(1).expand(-1, nu, -1, -1)
            attenuation = self._attenuation_of(views)
            y = y.contiguous() if attenuation is None else y * attenuation
        return self._rotate_fast_adjoint(y, views)

    def sensitivity(self, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """H^T 1 for the given views: (X, Y, Z) (cached per set of views; a copy is returned)."""
        views = self._views(views)
        entry = self._views_cache(views)
        if "sensitivity" not in entry:
            ones = torch.ones((len(views), self.shape[1], self.shape[2]))
            entry["sensitivity"] = self.backward(ones, views)
        return entry["sensitivity"].clone()
