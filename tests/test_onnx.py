"""The shipped networks on onnxruntime against the same weights in torch, the numpy Chang transform
against the torch one, and ``spectac correct`` that never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import (
    body_contour,
    detection_probability,
    detection_probability_numpy,
    find_body_contour,
)
from spectac.correction.deep import correct_nc, load_model, resolve_model, shipped_model_dir
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.onnx_model import ONNX_KEY, ONNX_NAME, RUNTIME_ENV, matching_onnx
from spectac.io.paths import sha256_file
from spectac.nn.registry import REGISTRY
from spectac.quant.lv_seeds import fftconvolve_same, shell_kernel
from spectac.quant.simplex import nelder_mead
from spectac.volume import SpectacError, Volume

pytest.importorskip("onnxruntime")

#: Largest accepted max |onnx - torch| / max |torch| of a whole correction, and of the mean
#: |onnx - torch| / max |torch|. onnxruntime's float32 kernels sum in another order than torch's and
#: the instance normalisation of low-variance channels magnifies that at some voxels. Measured: 1e-5
#: to 2e-5 (max) on random inputs (scripts/export_onnx.py); up to 6.6e-4 (max) and 2.7e-6 (mean) on
#: the sharp synthetic torso below; at most 6e-5 and 6e-7 on simulated cohort studies. A wrong
#: padding, prior or normalisation differs by percents.
TOLERANCE = 1e-3
MEAN_TOLERANCE = 5e-6


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two corrections agree within the tolerances above (relative to max |b|)."""
    diff = np.abs(a - b) / np.abs(b).max()
    return bool(diff.max() <= TOLERANCE and diff.mean() <= MEAN_TOLERANCE)
SHIPPED = ("unet-gan3d-chang", "unet-gan3d")  # the default method and its partner
#: Every shipped AC model with an ONNX export (2D, 3D, U-Net and dilated ResNet).
EXPORTED = tuple(name for name, spec in REGISTRY.items()
                 if spec.target == "ac" and (shipped_model_dir(name) / ONNX_NAME).is_file())
SRC = Path(__file__).resolve().parents[1] / "src"


def torso(shape: tuple[int, int, int] = (40, 36, 32), spacing: float = 6.8, seed: int = 0) -> Volume:
    """An NC-like study: elliptic torso, darker lungs, a hot LV ring, Poisson noise (~1.5 M counts)."""
    axes = [(np.arange(n) - (n - 1) / 2) * spacing for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    body = (x / 120.0) ** 2 + (y / 90.0) ** 2 <= 1
    image = 1.0 * body
    for side in (-1, 1):
        image[(((x - side * 55) / 35) ** 2 + (y / 45) ** 2 <= 1) & body] = 0.3
    r = np.sqrt((x - 25.0) ** 2 + (y + 15.0) ** 2 + (z / 1.3) ** 2)
    image += 12.0 * (np.abs(r - 22.0) < 6.0)
    image = ndimage.gaussian_filter(image, 1.2)
    counts = np.random.default_rng(seed).poisson(image * 1.5e6 / image.sum())
    return Volume.centred(counts.astype(np.float32), spacing)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_onnx_export_is_of_the_shipped_weights(name):
    folder = shipped_model_dir(name)
    block = json.loads((folder / "config.json").read_text())[ONNX_KEY]
    assert block["weights_sha256"] == sha256_file(folder / "best.pt")
    assert block["sha256"] == sha256_file(folder / ONNX_NAME)
    assert matching_onnx(folder) is not None


def test_every_shipped_ac_model_has_its_export_without_the_exporters_traces():
    assert set(SHIPPED) <= set(EXPORTED) and len(EXPORTED) >= 6
    for name in EXPORTED:  # the exporter's stack traces name the machine's files: stripped
        data = (shipped_model_dir(name) / ONNX_NAME).read_bytes()
        assert b"stack_trace" not in data and b"site-packages" not in data and b'File "' not in data


@pytest.mark.parametrize("name", EXPORTED)
@pytest.mark.parametrize("shape", [(64, 64, 64), (44, 37, 30)])  # the training grid; no multiple of 8
def test_onnx_corrects_as_torch_on_the_shipped_weights(name, shape):
    onnx, torch_model = resolve_model(name), load_model(shipped_model_dir(name))
    assert (onnx.runtime, torch_model.runtime) == ("onnx", "torch")
    nc = torso(shape)
    a, b = correct_nc(nc, onnx).array, correct_nc(nc, torch_model).array
    assert a.shape == b.shape == shape
    assert close(a, b)
    assert not np.allclose(a, nc.array, rtol=0.05)  # a real correction, not the input back


def test_weights_without_their_export_run_in_torch(tmp_path, monkeypatch):
    folder = shipped_model_dir("unet-gan3d")
    for name in ("best.pt", "config.json", ONNX_NAME):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    assert matching_onnx(tmp_path) is not None
    (tmp_path / ONNX_NAME).write_bytes((folder.parent / "unet3d" / ONNX_NAME).read_bytes())  # another graph
    assert matching_onnx(tmp_path) is None
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    assert resolve_model("unet-gan3d").runtime == "torch"


@pytest.mark.parametrize(("shape", "spacing", "arc"), [((30, 26, 6), 6.8, 180.0), ((28, 33, 5), (4.0, 5.5, 3.0), 360.0)])
def test_numpy_chang_transform_is_the_torch_one(shape, spacing, arc):
    rng = np.random.default_rng(3)
    mu = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
    mu = mu * np.float32(0.15) + rng.random(shape).astype(np.float32) * 0.01  # not only a binary body
    azimuths = Protocol(arc_deg=arc).azimuths_rad()
    expected = detection_probability(mu, spacing, azimuths).numpy()
    got = detection_probability_numpy(mu, spacing, azimuths)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert expected.min() < 0.9  # the volume attenuates: the comparison is not of ones


def test_a_remembered_body_contour_is_the_contour_and_a_copy():
    nc = torso()
    first = body_contour(nc.array, nc.spacing)
    assert np.array_equal(first, find_body_contour(nc.array, nc.spacing)) and first.any()
    first[:] = False  # the caller's copy
    assert np.array_equal(body_contour(nc.array, nc.spacing), find_body_contour(nc.array, nc.spacing))
    finer = body_contour(nc.array, 3.4)  # another spacing is another contour
    assert np.array_equal(finer, find_body_contour(nc.array, 3.4))
    assert not np.array_equal(finer, find_body_contour(nc.array, nc.spacing))


def test_fft_convolution_is_scipy_signals():
    from scipy.signal import fftconvolve

    image = np.random.default_rng(0).random((37, 30, 24)).astype(np.float32)
    kernel = shell_kernel((6.8, 6.0, 7.5))
    np.testing.assert_array_equal(fftconvolve_same(image, kernel), fftconvolve(image, kernel, mode="same"))


def test_nelder_mead_is_scipys_step_for_step():
    from scipy.optimize import minimize

    def rosenbrock(x: np.ndarray) -> float:
        return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))

    def bumpy(x: np.ndarray) -> float:
        return float(np.sum(x**2) + 0.3 * np.sin(5 * x).sum())

    rng = np.random.default_rng(5)
    for fun, maxfev in ((rosenbrock, 500), (bumpy, 500), (rosenbrock, 40)):  # converged, and cut short
        start = rng.normal(size=4)
        simplex = np.vstack([start] + [start + np.eye(4)[i] * 0.5 for i in range(4)])
        options = {"maxfev": maxfev, "xatol": 1e-3, "fatol": 1e-6}
        expected = minimize(fun, start, method="Nelder-Mead", options={"initial_simplex": simplex, **options})
        x, value = nelder_mead(fun, simplex, **options)
        assert np.array_equal(x, expected.x) and value == expected.fun


#: Runs ``spectac correct`` as the command line does, then says whether torch was imported.
RUN_CLI = """
import runpy, sys
sys.argv = ["spectac", "correct", *sys.argv[1:]]
try:
    runpy.run_module("spectac.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(code)
"""


def test_correct_runs_without_torch_and_as_the_torch_path(tmp_path):
    nc = torso((48, 48, 40))
    source, output = tmp_path / "nc.nii.gz", tmp_path / "ac.nii.gz"
    write_nifti(nc, source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop(RUNTIME_ENV, None)
    done = subprocess.run([sys.executable, "-c", RUN_CLI, str(source), "-o", str(output)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch not imported" in done.stdout
    assert "uncertainty: D = " in done.stderr + done.stdout  # the partner ran too
    got = read_nifti(output).array
    # the torch path, in this process, on the file as written
    expected = correct_nc(read_nifti(source), load_model(shipped_model_dir("unet-gan3d-chang"))).array
    assert close(got, expected)

    torch_output = tmp_path / "ac-torch.nii.gz"
    done = subprocess.run([sys.executable, "-c", RUN_CLI, str(source), "-o", str(torch_output)],
                          env={**env, RUNTIME_ENV: "torch"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch imported" in done.stdout
    other = read_nifti(torch_output).array
    assert close(got, other)


def _recorder(calls: list[str], fail: bool = False):
    import threading

    def work() -> None:
        calls.append(threading.current_thread().name)
        if fail:
            raise SpectacError("the work beside failed")
    return work


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_work_beside_the_network_runs_once_in_the_callers_thread_and_changes_nothing(runtime):
    import threading

    model = resolve_model("unet-gan3d") if runtime == "onnx" else load_model(shipped_model_dir("unet-gan3d"))
    nc, calls = torso(), []
    alone = correct_nc(nc, model).array
    beside = correct_nc(nc, model, beside=_recorder(calls)).array
    assert calls == [threading.current_thread().name]
    np.testing.assert_array_equal(beside, alone)
    with pytest.raises(SpectacError, match="beside failed"):
        correct_nc(nc, model, beside=_recorder(calls, fail=True))


@pytest.mark.parametrize("method", ["chang", "unet-gan3d"])
def test_correct_volume_does_the_work_beside_exactly_once(method):
    from spectac.correction.files import correct_volume

    nc, calls = torso(), []
    out = correct_volume(nc, method, beside=_recorder(calls))
    assert len(calls) == 1
    np.testing.assert_array_equal(out.array, correct_volume(nc, method).array)


def test_the_partner_beside_the_check_gets_the_threads_asked_for():
    from spectac.correction.uncertainty import partner_model

    like = resolve_model("unet-gan3d-chang")
    one = partner_model("unet-gan3d", like, threads=1)
    assert one.runtime == "onnx"
    assert one.generator.session.get_session_options().intra_op_num_threads == 1
    two = partner_model("unet-gan3d", like, threads=2)
    assert two.generator.session.get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize("strict", [False, True])
def test_correct_leaves_one_core_to_the_check_beside_the_network(tmp_path, monkeypatch, strict):
    from spectac.correction import files

    seen = []
    real = files.prepare_method

    def spy(method, **kwargs):
        seen.append(kwargs.get("threads"))
        return real(method, **kwargs)

    monkeypatch.setattr(files, "prepare_method", spy)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    nc = tmp_path / "nc.nii.gz"
    write_nifti(torso(), nc)
    try:
        files.correct_path(nc, tmp_path / "ac.nii.gz", "unet-gan3d", strict=strict, uncertainty=False)
    except SpectacError as exc:  # --strict may refuse the synthetic torso; the network was prepared
        assert strict and "refused" in str(exc)
    assert seen == [None if strict else 2]
