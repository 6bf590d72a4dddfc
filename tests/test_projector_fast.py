"""The fast projector (sparse bilinear rotation, depthwise-convolution blur, cached per subset)
computes the same system matrix as the reference implementation it replaced
(tests/projector_reference.py, the previous grid_sample and 3-tap-shift version), to float32
rounding: forward, backward, the scatter model's rotated frame, and a whole OSEM.

Tolerance: 1e-5 of the largest value (float32 sums of ~10^2 terms in a different order; the
rotation weights are computed in float64 instead of grid_sample's float32).
"""

from __future__ import annotations

import numpy as np
import projector_reference
import pytest
import torch
from projector_reference import SpectProjector as ReferenceProjector

import spectac.acquisition.projector as projector_module
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.reconstruction.osem import osem

N, NZ, SPACING, SPACING_Z = 24, 20, 6.8, 5.0
RTOL = 1e-5


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    scale = float(b.abs().max())
    assert scale > 0
    assert float((a - b).abs().max()) <= RTOL * scale, float((a - b).abs().max()) / scale


def _phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(N) - (N - 1) / 2)
    xx, yy = np.meshgrid(c, c, indexing="ij")
    body = ((xx / 10) ** 2 + (yy / 7) ** 2 <= 1)[:, :, None] & np.ones(NZ, bool)
    mu = np.where(body, 0.15, 0.0).astype(np.float32)
    mu[4:9, 8:14] *= 0.3
    activity = (body * (1.0 + rng.random((N, N, NZ)))).astype(np.float32)
    return activity, mu


@pytest.mark.parametrize("psf", [True, False])
@pytest.mark.parametrize("attenuation", [True, False])
@pytest.mark.parametrize("arc", [360.0, 180.0])
def test_fast_projector_equals_the_reference(psf: bool, attenuation: bool, arc: float) -> None:
    rng = np.random.default_rng(1)
    activity, mu = _phantom(rng)
    protocol = Protocol(n_views=30, arc_deg=arc, matrix=N, pixel_mm=SPACING)
    radii = 150.0 + 20.0 * rng.random(30)  # a body-contouring orbit
    kwargs = dict(mu_map=mu if attenuation else None, psf=psf, radii_mm=radii, spacing_z_mm=SPACING_Z)
    fast = SpectProjector((N, N, NZ), SPACING, protocol, **kwargs)
    reference = ReferenceProjector((N, N, NZ), SPACING, protocol, **kwargs)
    x = torch.from_numpy(activity)
    for views in (None, torch.arange(2, 30, 5), torch.tensor([7, 0, 19])):
        _close(fast.forward(x, views), reference.forward(x, views))
        p = torch.rand(fast.forward(x, views).shape, generator=torch.Generator().manual_seed(3))
        _close(fast.backward(p, views), reference.backward(p, views))
        _close(fast.sensitivity(views), reference.sensitivity(views))
        # twice: the second call is served from the per-subset cache
        _close(fast.backward(p, views), reference.backward(p, views))
    rotated, transmission = fast.rotated(x)
    ref_rotated, ref_transmission = reference.rotated(x)
    _close(rotated, ref_rotated)
    if attenuation:
        _close(transmission, ref_transmission)
        _close(fast.project_rotated(rotated * transmission), reference.project_rotated(ref_rotated * ref_transmission))
    else:
        assert transmission is None and ref_transmission is None


def test_repeated_blur_steps_equal_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several 3-tap steps per plane (the split of a large variance increment) in both directions."""
    for module in (projector_module, projector_reference):
        monkeypatch.setattr(module, "_MAX_STEP_VARIANCE", 0.01)
    activity, mu = _phantom(np.random.default_rng(4))
    protocol = Protocol(n_views=12, matrix=N, pixel_mm=SPACING)
    fast = SpectProjector((N, N, NZ), SPACING, protocol, mu_map=mu)
    reference = ReferenceProjector((N, N, NZ), SPACING, protocol, mu_map=mu)
    assert fast._blur_steps.shape[1] > 1 and fast._final_blur.shape[0] > 1
    views = torch.arange(1, 12, 3)
    x = torch.from_numpy(activity)
    _close(fast.forward(x, views), reference.forward(x, views))
    p = torch.rand((len(views), N, NZ), generator=torch.Generator().manual_seed(5))
    _close(fast.backward(p, views), reference.backward(p, views))


def test_fast_osem_equals_the_reference_osem() -> None:
    activity, mu = _phantom(np.random.default_rng(2))
    protocol = Protocol(n_views=24, matrix=N, pixel_mm=SPACING)
    fast = SpectProjector((N, N, NZ), SPACING, protocol, mu_map=mu, spacing_z_mm=SPACING_Z)
    reference = ReferenceProjector((N, N, NZ), SPACING, protocol, mu_map=mu, radii_mm=fast.radii_mm,
                                   spacing_z_mm=SPACING_Z)
    counts = torch.poisson(fast.forward(torch.from_numpy(activity) * 50), generator=torch.Generator().manual_seed(0))
    background = torch.full(counts.shape, 0.5)
    # OSEM's ratios amplify rounding a little per update; 2 x 4 updates stay within 1e-4
    got = osem(counts, fast, 2, 4, background)
    expected = osem(counts, reference, 2, 4, background)
    assert float((got - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


def test_window_components_by_chunks_of_views_equal_all_views_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acquisition projects a few views at a time; every window's primary and scatter are
    those of all views at once (the scatter slabs are the whole orbit's)."""
    import spectac.acquisition.acquire as acquire_module

    activity, mu = _phantom(np.random.default_rng(6))
    protocol = Protocol(n_views=16, matrix=N, pixel_mm=SPACING)
    projector = SpectProjector((N, N, NZ), SPACING, protocol, mu_map=mu)
    monkeypatch.setattr(acquire_module, "VIEW_CHUNK", 5)  # 5, 5, 5 and 1 views
    chunked = acquire_module.window_components(activity, projector, protocol)
    monkeypatch.setattr(acquire_module, "VIEW_CHUNK", 16)
    whole = acquire_module.window_components(activity, projector, protocol)
    assert set(chunked) == set(whole) and len(whole) == len(protocol.windows) > 1
    for name in whole:
        for got, expected in zip(chunked[name], whole[name]):
            _close(got, expected)
