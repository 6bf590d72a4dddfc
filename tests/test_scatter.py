"""Scatter and energy windows: the model's physics, the window estimates, the scatter-corrected
CT-AC, the projections file and old protocol dicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spectac.acquisition.acquire import acquire_windows, scale_to_counts, window_components
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.acquisition.windows import DEFAULT_WINDOWS, window_named
from spectac.io.dataset import Dataset, write_manifest, write_study
from spectac.io.window_projections import read_window_projections, write_window_projections
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.pair import reconstruct_nc_ac
from spectac.reconstruction.scatter_windows import dew_estimate, scatter_estimate, tew_estimate
from spectac.volume import SpectacError, Volume

N, SPACING = 32, 13.6  # the 435 mm field of the default grid, coarsely
PROTOCOL = Protocol(n_views=24, pixel_mm=SPACING, matrix=N)
WATER = 0.153  # 1/cm at 140 keV
# The protocol as models trained before the energy windows saved it in their config.json.
OLD_PROTOCOL = {"n_views": 60, "arc_deg": 180.0, "start_deg": -135.0, "matrix": 64, "pixel_mm": 6.8,
                "counts": 4000000.0, "clearance_mm": 25.0,
                "collimator": {"hole_mm": 1.5, "length_mm": 35.0, "intrinsic_fwhm_mm": 3.8},
                "scatter": False, "scatter_fraction": 0.3, "scatter_fwhm_mm": 60.0}


def ellipse(a_mm: float, b_mm: float, length_mm: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform activity in a water elliptic cylinder (semi-axes a, b), axis along z: (activity, mu)."""
    c = (np.arange(N) - (N - 1) / 2) * SPACING
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    inside = ((x / a_mm) ** 2 + (y / b_mm) ** 2 <= 1) & (np.abs(z) <= length_mm / 2)
    return inside.astype(np.float32), (WATER * inside).astype(np.float32)


def components(activity: np.ndarray, mu: np.ndarray, counts: float = 1e6) -> dict:
    truth, mu = scale_to_counts(activity, mu, counts, PROTOCOL, SPACING)
    projector = SpectProjector(truth.shape, SPACING, PROTOCOL, mu_map=mu, psf=True)
    return {k: (p.numpy(), s.numpy()) for k, (p, s) in window_components(truth, projector, PROTOCOL).items()}


def scatter_fraction(parts: dict) -> float:
    primary, scatter = parts["photopeak"]
    return float(scatter.sum() / (primary.sum() + scatter.sum()))


def test_scatter_fraction_is_plausible_and_grows_with_body_size() -> None:
    """Tc-99m in a 20% window: scatter is 30-60% of the primaries in a body-sized water phantom
    (SF 23-38%; Kojima et al., Ann Nucl Med 1991), more in a larger body."""
    small = scatter_fraction(components(*ellipse(110, 80)))
    typical = scatter_fraction(components(*ellipse(160, 110)))
    large = scatter_fraction(components(*ellipse(200, 140)))
    assert 0.15 < small < typical < large < 0.5
    assert 0.23 < typical < 0.40


def test_scatter_is_non_negative_and_broader_in_the_lower_window() -> None:
    activity, mu = ellipse(160, 110)
    point = np.zeros_like(activity)
    point[N // 2, N // 2, N // 2] = 1.0
    parts = components(point, mu)
    profiles = {}
    for name, (primary, scatter) in parts.items():
        assert primary.min() >= 0 and scatter.min() >= 0
        row = scatter[0].sum(axis=1)  # first view, along the detector row
        pos = np.arange(len(row))
        mean = (row * pos).sum() / row.sum()
        profiles[name] = np.sqrt((row * (pos - mean) ** 2).sum() / row.sum())
    primary_row = parts["photopeak"][0][0].sum(axis=1)
    pos = np.arange(len(primary_row))
    mean = (primary_row * pos).sum() / primary_row.sum()
    primary_sd = np.sqrt((primary_row * (pos - mean) ** 2).sum() / primary_row.sum())
    assert primary_sd < profiles["photopeak"] < profiles["dew_lower"]
    assert parts["dew_lower"][1].sum() > parts["photopeak"][1].sum()


def test_tew_and_dew_estimate_the_photopeak_scatter() -> None:
    """Noise-free, the window estimates match the true photopeak scatter of a typical-size water
    phantom within 25% in total and 40% per bin (mean absolute error over the body's bins)."""
    parts = components(*ellipse(160, 110))
    total = {k: p + s for k, (p, s) in parts.items()}
    width = {w.name: w.width_kev for w in DEFAULT_WINDOWS}
    true = parts["photopeak"][1]
    tew = tew_estimate(total["tew_lower"], width["tew_lower"], total["tew_upper"], width["tew_upper"],
                       width["photopeak"])
    dew = dew_estimate(total["dew_lower"], 0.5)
    body = true > 0.2 * true.max()
    for estimate in (tew, dew):
        assert abs(estimate.sum() / true.sum() - 1) < 0.25
        assert np.abs(estimate - true)[body].mean() / true[body].mean() < 0.4
    # the smoothed estimate keeps the total (nothing near the edges here)
    smoothed = scatter_estimate(total, {w.name: (w.lower_kev, w.upper_kev) for w in DEFAULT_WINDOWS}, "tew",
                                pixel_mm=(SPACING, SPACING))
    assert abs(float(smoothed.sum()) / tew.sum() - 1) < 0.02
    with pytest.raises(SpectacError, match="dew_lower"):
        scatter_estimate({"photopeak": total["photopeak"]}, {"photopeak": (126, 154)}, "dew")


def test_scatter_corrected_ct_ac_is_closer_to_the_truth() -> None:
    """A uniform water cylinder: CT-AC with the TEW (or DEW) scatter term is closer to the truth
    than CT-AC without it, which keeps the scatter as excess counts in the centre."""
    activity, mu = ellipse(150, 150)
    truth, mu = scale_to_counts(activity, mu, 4e6, PROTOCOL, SPACING)
    windows, projector = acquire_windows(truth, mu, PROTOCOL, SPACING, np.random.default_rng(0))
    inside = ellipse(110, 110, 120)[0] > 0
    errors = {}
    for method in ("none", "tew", "dew"):
        recon = ReconConfig(iterations=3, subsets=4, scatter_correction=method)
        ac = reconstruct_nc_ac(windows, projector, mu, PROTOCOL, SPACING, recon)["ac"]
        errors[method] = float(np.abs(ac[inside] - truth[inside]).mean() / truth[inside].mean())
    assert errors["tew"] < 0.75 * errors["none"]
    assert errors["dew"] < 0.75 * errors["none"]


def test_window_projections_round_trip_through_the_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    counts = {"photopeak": rng.poisson(50.0, (4, 8, 6)).astype(np.float32),
              "tew_lower": rng.poisson(2.0, (4, 8, 6)).astype(np.float32)}
    counts["photopeak"][0, 0, 0] = 70000  # past uint16
    bounds = {"photopeak": (126.0, 154.0), "tew_lower": (122.0, 126.0)}
    vol = Volume.centred(np.zeros((4, 4, 4), np.float32), SPACING)
    write_manifest(tmp_path, {"source": "test"}, [])
    write_study(tmp_path, "s1", {"nc": vol, "ac": vol}, projections=(counts, bounds))
    read, read_bounds = Dataset.open(tmp_path).projections("s1")
    assert list(read) == ["photopeak", "tew_lower"] and read_bounds == bounds
    assert read["photopeak"].dtype == np.uint32 and read["tew_lower"].dtype == np.uint16
    for name in counts:
        np.testing.assert_array_equal(read[name], counts[name])
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    write_window_projections(a, counts, bounds)
    write_window_projections(b, counts, bounds)
    assert a.read_bytes() == b.read_bytes()  # byte-reproducible
    with pytest.raises(SpectacError, match="no window projections"):
        read_window_projections(tmp_path / "missing.npz")


def test_old_protocol_dicts_still_load() -> None:
    """A protocol saved before the energy windows ("scatter": false, a Gaussian's fraction and
    width, no windows), as the config.json of models trained then holds it, loads as a no-scatter
    protocol."""
    saved = dict(OLD_PROTOCOL)
    assert saved["scatter"] is False and "windows" not in saved
    protocol = Protocol.from_dict(saved)
    assert protocol.scatter is False and window_named(protocol.windows, "photopeak").lower_kev == 126.0
    new = Protocol()
    assert new.scatter and Protocol.from_dict(json.loads(json.dumps(new.to_dict()))) == new
    truth = np.zeros((N, N, N), np.float32)
    truth[N // 2, N // 2, N // 2] = 1000.0
    no_scatter = Protocol.from_dict({**saved, "n_views": 8, "pixel_mm": SPACING, "matrix": N})
    windows, _ = acquire_windows(truth, ellipse(150, 150)[1], no_scatter, SPACING, np.random.default_rng(0))
    assert list(windows) == ["photopeak"] and isinstance(windows["photopeak"], torch.Tensor)
