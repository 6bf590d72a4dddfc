"""A simulated study's acquisition rebuilt from its dataset folder (reconstruction/study.py), the
acquisition faults of reconstruction/faults.py, and the calibration of the consistency threshold
(reconstruction/consistency.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spectac.acquisition.protocol import Protocol
from spectac.correction.indirect import correct_acquisition
from spectac.errors import SpectacError
from spectac.io.dataset import Dataset
from spectac.io.projections import acquisition_from_projections
from spectac.reconstruction.consistency import calibrated_threshold, consistency, flag_rate
from spectac.reconstruction.faults import moved, sub_arc, truncated
from spectac.reconstruction.files import acquisition_consistency, reconstruct_consistent, reconstruct_window
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.projections import acquisition_projector
from spectac.reconstruction.study import study_acquisition, study_recon_config, true_mu
from spectac.simulate import SimulationConfig, simulate_cohort
from spectac.training.data import load_pair

torch.set_num_threads(1)

TINY = SimulationConfig(protocol=Protocol(n_views=12, pixel_mm=13.6), recon=ReconConfig(iterations=1, subsets=3),
                        shape=(32, 32, 32), supersample=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    root = tmp_path_factory.mktemp("study") / "data"
    simulate_cohort(root, patients=1, seed=5, config=TINY, workers=1)
    return Dataset.open(root)


def _relative_max(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_the_rebuilt_acquisition_reconstructs_the_stored_nc_and_ct_ac(dataset: Dataset) -> None:
    """Physics against physics: OSEM of the rebuilt acquisition with the dataset's settings gives
    the simulator's NC, and with the stored mu-map and TEW its CT-AC, up to the orbit's radii
    (rebuilt from the misregistered mu-map: a voxel at most, a slightly different blur). A wrong
    view order, orientation or grid would be off by tens of percent."""
    case_id = "P000_stress"
    acquisition = study_acquisition(dataset, case_id)
    config = study_recon_config(dataset)
    assert config == TINY.recon
    w = acquisition.window_index()
    assert acquisition.windows[w].name == "photopeak" and acquisition.n_views == 12
    nc = reconstruct_window(acquisition, w, config, None, None, "none")
    stored_nc = dataset.load(case_id, "nc")
    assert nc.result.volume.same_grid(stored_nc)
    assert _relative_max(nc.result.volume.array, stored_nc.array) < 0.01
    ac, qc = reconstruct_consistent(acquisition, w, config, None, dataset.load(case_id, "mu"))
    assert ac.kind == "AC+TEW"
    assert _relative_max(ac.result.volume.array, dataset.load(case_id, "ac").array) < 0.01
    assert np.isfinite(qc.index) and qc.index > 0
    # a circular orbit (the wrong radii) is measurably further from the stored NC
    circle = replace(acquisition, radii_mm=np.full(12, acquisition.radii_mm.max() + 60.0))
    far = reconstruct_window(circle, w, config, None, None, "none").result.volume.array
    assert _relative_max(far, stored_nc.array) > 2 * _relative_max(nc.result.volume.array, stored_nc.array)


def test_the_study_orbit_and_collimator_come_from_the_dataset(tmp_path: Path) -> None:
    """A 360-degree orbit with the Siemens LEUHR collimator: the rebuilt acquisition has the
    study's views and collimator (its NC is the stored one; a 180-degree GE-LEHR one is not)."""
    from spectac.acquisition.collimators import find_collimator

    leuhr = find_collimator("SIEMENS-LEUHR")
    config = replace(TINY, protocol=Protocol.for_arc(360.0, n_views=12, pixel_mm=13.6, collimator=leuhr.collimator()),
                     misregistration_mm=0.0)
    simulate_cohort(tmp_path / "d", patients=1, seed=2, config=config, workers=1)
    data = Dataset.open(tmp_path / "d")
    case = data.case("P000_rest")
    assert (case.orbit_deg, case.collimator) == (360.0, "SIEMENS-LEUHR")
    acquisition = study_acquisition(data, "P000_rest")
    np.testing.assert_allclose(acquisition.azimuths_deg, config.protocol.azimuths_deg())
    w = acquisition.window_index()
    stored = data.load("P000_rest", "nc").array
    nc = reconstruct_window(acquisition, w, TINY.recon, None, None, "none")
    assert nc.result.collimator == "SIEMENS-LEUHR"
    error = _relative_max(nc.result.volume.array, stored)  # no misregistration: the radii are exact
    assert error < 1e-4
    ge = reconstruct_window(acquisition, w, TINY.recon, "GE-LEHR", None, "none").result.volume.array
    assert _relative_max(ge, stored) > 100 * error


def test_true_mu_is_the_mu_target_of_training(dataset: Dataset) -> None:
    """true_mu undoes the recorded misregistration exactly as the mu model's training target."""
    for case in dataset.cases:
        np.testing.assert_array_equal(true_mu(dataset, case.case_id).array,
                                      load_pair(dataset, case.case_id, 99.9, target="mu").ac)


def test_correct_acquisition_with_the_true_mu_is_ct_ac_with_the_true_mu(dataset: Dataset, monkeypatch) -> None:
    """The file-free indirect route: a model that predicts the true mu-map gives OSEM with it."""
    from spectac.correction import indirect

    case_id = "P000_rest"
    acquisition, config = study_acquisition(dataset, case_id), study_recon_config(dataset)
    mu = true_mu(dataset, case_id)
    monkeypatch.setattr(indirect, "predict_mu", lambda nc, model: nc.with_array(mu.array))
    monkeypatch.setattr(indirect, "training_reference", lambda model: None)
    result = correct_acquisition(acquisition, acquisition.window_index(), None, config)  # type: ignore[arg-type]
    ac, qc = reconstruct_consistent(acquisition, acquisition.window_index(), config, None, mu)
    np.testing.assert_array_equal(result.ac.result.volume.array, ac.result.volume.array)
    assert result.qc.index == qc.index and result.ac.kind == "AC+TEW"
    # the index projected with OSEM's own projector is spectac qc's, which builds a new one
    qc_alone, _, _ = acquisition_consistency(acquisition, acquisition.window_index(),
                                             reconstruct_window(acquisition, acquisition.window_index(),
                                                                replace(config, butterworth_cutoff_per_cm=0.0),
                                                                None, mu).result.volume.array, mu.array)
    assert qc.index == pytest.approx(qc_alone.index, rel=1e-6)
    # and no result keeps OSEM's projector (its attenuation factors are 0.5 GB at 128^3)
    assert result.ac.result.projector is None and result.nc.result.projector is None



def test_the_scatter_image_is_one_recipe_for_training_and_the_route(dataset: Dataset, monkeypatch) -> None:
    """Training's scatter-window image (written by the simulator, else made by load_pair and
    cached as scatter.nii.gz) and the one the indirect route gives a scatter-input mu model are the
    same function of the same acquisition: equal arrays. The cache is read back, and a cache of
    another recipe is remade."""
    from pathlib import Path

    from spectac.correction import indirect
    from spectac.correction.deep import DeepModel
    from spectac.io.nifti import write_nifti
    from spectac.reconstruction import scatter_image as recipe

    case_id = "P000_rest"
    acquisition = study_acquisition(dataset, case_id)
    expected = recipe.scatter_image(acquisition, acquisition.window_index())
    assert expected.role == "dew_lower" and expected.volume.same_grid(dataset.load(case_id, "nc"))
    # the simulator wrote it; training remakes it when it is missing
    np.testing.assert_array_equal(dataset.load(case_id, "scatter").array, expected.volume.array)
    dataset.path(case_id, "scatter").unlink()
    pair = load_pair(dataset, case_id, 99.9, target="mu", scatter=True)
    assert dataset.description(case_id, "scatter") == recipe.DESCRIPTION
    cached = dataset.load(case_id, "scatter").array
    np.testing.assert_array_equal(cached, expected.volume.array)
    np.testing.assert_allclose(pair.scatter * float(np.percentile(cached, 99.9)), cached, rtol=1e-5, atol=1e-6)
    with monkeypatch.context() as patched:  # read back, not remade
        patched.setattr(recipe, "scatter_image", lambda *a, **k: pytest.fail("remade"))
        np.testing.assert_array_equal(recipe.study_scatter_image(dataset, case_id).array, cached)
    write_nifti(expected.volume.with_array(np.zeros_like(cached)), dataset.path(case_id, "scatter"), descrip="old")
    np.testing.assert_array_equal(recipe.study_scatter_image(dataset, case_id).array, cached)
    # the route: what a scatter-input mu model is given
    seen = []
    model = DeepModel("unet3d-mu", None, {"network": {"scatter_input": True}}, Path("best.pt"))  # type: ignore[arg-type]
    mu = true_mu(dataset, case_id)
    monkeypatch.setattr(indirect, "predict_mu", lambda nc, model, scatter: seen.append(scatter) or nc.with_array(mu.array))
    monkeypatch.setattr(indirect, "training_reference", lambda model: None)
    result = correct_acquisition(acquisition, acquisition.window_index(), model, study_recon_config(dataset))
    np.testing.assert_array_equal(seen[0].array, cached)
    assert result.scatter is not None and result.scatter.role == "dew_lower"


def test_a_study_without_projections_or_scatter_image_is_refused(tmp_path) -> None:
    from spectac.io.dataset import Case, write_manifest, write_study
    from spectac.reconstruction.scatter_image import study_scatter_image
    from spectac.volume import Volume

    grid = Volume.centred(np.ones((8, 8, 8), np.float32), 6.8)
    write_study(tmp_path, "p00_rest", {"nc": grid, "ac": grid, "mu": grid})
    write_manifest(tmp_path, {"source": "test"}, [Case("p00_rest", "p00", "rest", "F", split="train")])
    with pytest.raises(SpectacError, match=r"no scatter\.nii\.gz and no projections\.npz"):
        study_scatter_image(Dataset.open(tmp_path), "p00_rest")


def _acquisition(views: int = 8, n: int = 12, seed: int = 0):
    protocol = Protocol(n_views=views, matrix=n, pixel_mm=13.6)
    counts = np.random.default_rng(seed).poisson(50.0, (4, views, n, n)).astype(np.float32)
    return acquisition_from_projections(counts, protocol, np.full(views, 150.0), collimator="GE-LEHR")


def test_truncated_zeroes_the_outer_bins_of_every_window() -> None:
    acq = _acquisition()
    cut = truncated(acq, 0.25)  # 3 of 12 bins each side
    assert np.all(cut.counts[:, :, :3] == 0) and np.all(cut.counts[:, :, -3:] == 0)
    np.testing.assert_array_equal(cut.counts[:, :, 3:-3], acq.counts[:, :, 3:-3])
    assert acq.counts[:, :, :3].sum() > 0  # the input is left alone
    with pytest.raises(SpectacError):
        truncated(acq, 0.5)


def test_moved_shifts_the_second_half_of_the_views_axially() -> None:
    acq = _acquisition()
    shifted = moved(acq, 2)
    np.testing.assert_array_equal(shifted.counts[:, :4], acq.counts[:, :4])
    np.testing.assert_array_equal(shifted.counts[:, 4:, :, 2:], acq.counts[:, 4:, :, :-2])
    assert np.all(shifted.counts[:, 4:, :, :2] == 0)
    down = moved(acq, -1, from_view=6)
    np.testing.assert_array_equal(down.counts[:, 6:, :, :-1], acq.counts[:, 6:, :, 1:])
    with pytest.raises(SpectacError):
        moved(acq, 12)


def test_a_sub_arc_keeps_its_views_geometry() -> None:
    """The projector of the sub-arc acquisition gives the full orbit's projections of those views
    (per view 1/views of the image: a sub-arc's views are each twice as bright per unit image)."""
    acq = replace(_acquisition(), radii_mm=np.linspace(120.0, 180.0, 8))
    part = sub_arc(acq, slice(0, 4))
    assert part.n_views == 4 and np.array_equal(part.azimuths_deg, acq.azimuths_deg[:4])
    image = torch.rand(12, 12, 12)
    full, _, _ = acquisition_projector(acq, 0)
    cut, _, _ = acquisition_projector(part, 0)
    np.testing.assert_allclose(cut.forward(image, torch.arange(4)).numpy(),
                               2.0 * full.forward(image, torch.arange(8))[:4].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(SpectacError):
        sub_arc(acq, slice(0, 1))


def test_the_calibrated_threshold_flags_its_share_of_poisson_consistent_studies() -> None:
    """Indices of Poisson draws from the model itself: the 90th percentile of 150 of them flags
    about 10% of 300 fresh draws (binomial 99.9% bounds), and motion raises the index."""
    n = 8
    acq = _acquisition(views=4, n=n)
    projector, _, _ = acquisition_projector(acq, 0)
    image = np.zeros((n, n, n), np.float32)
    image[2:6, 3:6, 2:7] = 1.0
    mean = projector.forward(torch.from_numpy(image), torch.arange(4)).numpy()
    mean *= 20.0 / mean.max()
    rng = np.random.default_rng(1)

    def index(counts: np.ndarray) -> float:
        return consistency(counts, image, projector).index

    calibration = [index(rng.poisson(mean)) for _ in range(150)]
    threshold = calibrated_threshold(calibration, 0.9)
    fresh = [index(rng.poisson(mean)) for _ in range(300)]
    assert 0.04 < flag_rate(fresh, threshold) < 0.17
    assert abs(np.median(fresh) - 1.0) < 0.1
    counts = rng.poisson(mean).astype(np.float32)
    moved_counts = moved(replace(acq, counts=counts[None].repeat(4, axis=0)), 2).counts[0]
    assert index(moved_counts) > threshold
    with pytest.raises(ValueError):
        calibrated_threshold(calibration, 1.0)
    with pytest.raises(ValueError):
        calibrated_threshold([1.0], 0.9)
    with pytest.raises(ValueError):
        calibrated_threshold([1.0, float("inf")], 0.9)
    assert flag_rate([1.0, 2.0, 3.0, float("inf")], 2.0) == 0.5


def test_a_study_protocol_needs_a_simulated_dataset(dataset: Dataset, tmp_path: Path) -> None:
    from spectac.reconstruction.study import study_protocol

    assert study_protocol(dataset, "P000_rest").n_views == 12
    bare = Dataset(tmp_path, {"source": "import"}, dataset.cases)
    with pytest.raises(SpectacError, match="no acquisition protocol"):
        study_protocol(bare, "P000_rest")
