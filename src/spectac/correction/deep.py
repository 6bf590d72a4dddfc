"""Deep-learning attenuation correction: apply a trained network to an NC volume.

``correct_nc`` normalises the NC volume by a scale computed from it alone, runs the generator on
the whole volume (resampled to the training voxel size if the study's differs), and returns the
AC prediction in counts on the NC grid. Models are model folders written by ``spectac train``
(``best.pt`` + ``config.json``) or the shipped ones in ``spectac/data/models/<name>/``.

Every name of :mod:`spectac.nn.registry` is a correction method (:mod:`spectac.correction.methods`)
with one option, ``weights`` (a model folder or a ``.pt`` file; default: the shipped weights).

Two runtimes: the shipped weights of a model whose folder holds an ONNX export of exactly those
weights (``model.onnx``, :mod:`spectac.io.onnx_model`) run with onnxruntime on the CPU
(:class:`spectac.nn.onnx_runtime.OnnxGenerator`), without importing torch (about 1.5-2 s of a
``spectac correct``); any other weights (``--weights``, a fine-tuned or imported model), another
device, or ``SPECTAC_RUNTIME=torch`` run the torch network. The input preparation
(:func:`network_input`) and the way back to counts (:func:`finish_prediction`) are the same code
for both; the two agree to float rounding (tests/test_onnx.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spectac.acquisition.protocol import Protocol
from spectac.correction.prior import prior_channels
from spectac.devices import autocast, check_amp, resolve_device
from spectac.io.model_archive import installed_model_dir
from spectac.io.onnx_model import ONNX_KEY, matching_onnx, onnx_runtime_wanted, open_onnx_session
from spectac.io.training_files import CONFIG, read_config_if_any
from spectac.nn.normalisation import DEFAULT_PERCENTILE, denormalise, normalise
from spectac.nn.onnx_runtime import OnnxGenerator
from spectac.nn.registry import target_of
from spectac.resample import zoom_to_shape
from spectac.volume import SpectacError, Volume

if TYPE_CHECKING:  # torch is imported only where a torch network is loaded or run
    from torch import nn

    from spectac.reconstruction.consistency import QcThreshold

WEIGHTS_NAME = "best.pt"
#: A study whose voxel size differs from the training one by more than this is resampled.
SPACING_TOLERANCE = 0.02


@dataclass
class DeepModel:
    """A trained generator ready for inference, on ``device`` (None: the CPU), with mixed
    precision when ``amp`` (CUDA only: :mod:`spectac.devices`). The generator is a torch module,
    or for shipped weights with a matching ONNX export an :class:`OnnxGenerator` (CPU only);
    ``path`` is the weights file either way."""

    name: str
    generator: nn.Module | OnnxGenerator
    config: dict[str, Any]
    path: Path
    device: Any = None
    amp: bool = False

    @property
    def runtime(self) -> str:
        """"onnx" (onnxruntime, CPU) or "torch"."""
        return "onnx" if isinstance(self.generator, OnnxGenerator) else "torch"

    def placed(self, device: str | None, amp: bool = False) -> DeepModel:
        """This model on ``device`` (a ``--device`` value; None or "cpu": unchanged); an ONNX
        model is reloaded as its torch network for any other device.

        Raises:
            SpectacError: a device this machine lacks, or amp off CUDA.
        """
        if (device is None or device == "cpu") and not amp:
            return self
        where = resolve_device(device)
        check_amp(where, amp)
        if where.type == "cpu":
            return self
        model = load_model(self.path) if self.runtime == "onnx" else self
        return replace(model, generator=model.generator.to(where), device=where, amp=amp)

    @property
    def target(self) -> str:
        """What the model predicts: "ac" (the AC image) or "mu" (the mu-map in 1/cm)."""
        return target_of(self.config)

    @property
    def percentile(self) -> float:
        return float(self.config.get("normalisation", {}).get("percentile", DEFAULT_PERCENTILE))

    @property
    def prior(self) -> str:
        return str(self.config["network"].get("prior", "none"))

    @property
    def protocol(self) -> Protocol:
        """The acquisition of the training data (its orbit sets a Chang prior), or the default."""
        saved = self.config.get("data", {}).get("protocol")
        return Protocol.from_dict(saved) if isinstance(saved, dict) else Protocol()

    @property
    def qc_threshold(self) -> QcThreshold | None:
        """The consistency threshold calibrated for this mu model (config.json ``qc`` block,
        docs/projections.md), or None when it has none."""
        from spectac.reconstruction.consistency import qc_threshold_from_config

        return qc_threshold_from_config(self.config, self.name, f"{self.path.parent / CONFIG}")

    @property
    def spacing_mm(self) -> tuple[float, float, float] | None:
        spacing = self.config.get("data", {}).get("spacing_mm")
        return tuple(float(s) for s in spacing) if spacing else None  # type: ignore[return-value]


def shipped_model_dir(name: str) -> Path:
    """Where the shipped weights of a model live: ``spectac/data/models/<name>/``."""
    return Path(str(resources.files("spectac"))) / "data" / "models" / name


def load_model(model_dir_or_weights: str | Path) -> DeepModel:
    """Load a generator from a model folder (its best.pt) or a weights file (.pt).

    Raises:
        SpectacError: missing or unreadable weights, or weights that do not fit their config.
    """
    from spectac.io.checkpoint import load_checkpoint
    from spectac.nn.registry import build_generator
    from spectac.reconstruction.consistency import QC_KEY, qc_threshold_from_config

    path = Path(model_dir_or_weights)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    if path.is_dir() and not weights.is_file():
        raise SpectacError(f"{path}: no {WEIGHTS_NAME} in this model folder; train with spectac train")
    state = load_checkpoint(weights)
    config = state.get("config")
    if not isinstance(config, dict) or "network" not in config or "generator" not in state:
        raise SpectacError(f"{weights}: not a spectac model checkpoint (no config or generator weights)")
    try:
        generator = build_generator(config["network"])
        generator.load_state_dict(state["generator"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise SpectacError(f"{weights}: the weights do not fit their configuration ({exc})") from exc
    generator.eval()
    saved = read_config_if_any(weights.parent)  # the folder's config.json may hold a later calibration
    if saved is not None and saved.get("model") == config["model"] and QC_KEY in saved:
        config = {**config, QC_KEY: saved[QC_KEY]}
        qc_threshold_from_config(config, config["model"], str(weights.parent / CONFIG))  # refused now if bad
    return DeepModel(config["model"], generator, config, weights)


def load_onnx_model(folder: str | Path, threads: int | None = None) -> DeepModel | None:
    """The network of a model folder on the ONNX runtime, when that may be used
    (:func:`spectac.io.onnx_model.onnx_runtime_wanted`) and the folder holds an ONNX export of
    its ``best.pt`` (:func:`spectac.io.onnx_model.matching_onnx`); else None. The configuration is
    the folder's config.json, which the export checked against the checkpoint's. ``threads``:
    onnxruntime's intra-op threads (None: :func:`spectac.io.onnx_model.onnx_threads`)."""
    if not onnx_runtime_wanted():
        return None
    found = matching_onnx(folder)
    if found is None:
        return None
    onnx, config = found
    generator = OnnxGenerator(open_onnx_session(onnx, threads), config[ONNX_KEY]["pad_multiple"])
    return DeepModel(config["model"], generator, config, Path(folder) / WEIGHTS_NAME)


def resolve_model(name: str, weights: str | Path | None = None, threads: int | None = None) -> DeepModel:
    """The model to run for method ``name``: ``weights`` if given (a model folder, a .pt file, or
    the name of a model installed by ``spectac import-model``), else the shipped weights
    (on onnxruntime with ``threads`` intra-op threads when it has a matching ONNX export).

    Raises:
        SpectacError: no weights given and none shipped, or weights of another model.
    """
    if weights is not None and not Path(weights).exists():
        weights = installed_model_dir(str(weights)) or weights
    model = None
    if weights is None:
        folder = shipped_model_dir(name)
        if not (folder / WEIGHTS_NAME).is_file():
            raise SpectacError(f"no shipped weights for {name}; train with spectac train or pass --weights")
        weights = folder
        model = load_onnx_model(folder, threads)
    model = model or load_model(weights)
    if model.target == "mu":
        raise SpectacError(f"{model.path}: weights of {model.name}, a mu-map model; use it with "
                           "spectac correct --route indirect")
    if model.name != name:
        raise SpectacError(f"{model.path}: these are weights of {model.name}, not {name}")
    return model


#: The shipped mu-map model of ``spectac correct --route indirect``.
MU_MODEL = "unet3d-mu"


def resolve_mu_model(weights: str | Path | None = None) -> DeepModel:
    """The mu-map model of the indirect route: ``weights`` if given (a model folder, a .pt file or
    an imported model's name), else the shipped :data:`MU_MODEL`.

    Raises:
        SpectacError: no weights given and no mu model shipped, or weights of an AC model.
    """
    if weights is not None and not Path(weights).exists():
        weights = installed_model_dir(str(weights)) or weights
    if weights is None:
        folder = shipped_model_dir(MU_MODEL)
        if not (folder / WEIGHTS_NAME).is_file():
            raise SpectacError(f"no mu model is installed ({MU_MODEL}); train one (scripts/train_mu.sh) and "
                               "pass it with --weights")
        weights = folder
    model = load_model(weights)
    if model.target != "mu":
        raise SpectacError(f"{model.path}: weights of {model.name}, which predicts AC images, not mu-maps; "
                           f"--route indirect needs a mu model ({MU_MODEL})")
    return model


def mu_model_qc_threshold(weights: str | Path | None = None) -> QcThreshold | None:
    """The calibrated consistency threshold of a mu model (``weights`` as for
    :func:`resolve_mu_model`; None: the shipped one), or None when it has none or, with no
    ``weights``, no mu model is shipped."""
    if weights is None and not (shipped_model_dir(MU_MODEL) / WEIGHTS_NAME).is_file():
        return None
    return resolve_mu_model(weights).qc_threshold


def predict_mu(nc: Volume, model: DeepModel, protocol: Protocol | None = None,
               scatter: Volume | None = None) -> Volume:
    """The mu-map (1/cm, >= 0) a mu model predicts from one NC volume, on the NC grid.

    The input is prepared as for an AC model (:func:`network_input`: the NC normalised by its own
    percentile, resampled to the training voxel size); with ``scatter`` (the scatter-window image
    on the NC grid) that image is channel 1, normalised by its own percentile and resampled with
    NC, as :func:`spectac.training.data.load_pair` prepares it. The output is mu itself, so there
    is no count scale to undo.
    """
    inputs, _, resampled = network_input(nc, model, protocol)
    if scatter is not None:
        image = zoom_to_shape(scatter.array, inputs.shape[-3:]) if resampled else scatter.array
        channel = normalise(image, model.percentile)[0]
        inputs = np.stack([inputs, channel]) if inputs.ndim == 3 else \
            np.concatenate([inputs[:1], channel[None], inputs[1:]])
    prediction = predict_normalised(model.generator, inputs, model.device, model.amp)
    if resampled:
        prediction = zoom_to_shape(prediction, nc.shape)
    return nc.with_array(np.clip(prediction, 0, None).astype(np.float32))


def predict_normalised(generator: nn.Module | OnnxGenerator, inputs: np.ndarray, device: Any = None,
                       amp: bool = False) -> np.ndarray:
    """Run a generator on one network input: normalised NC (X, Y, Z), or (C, X, Y, Z) with prior
    channels -> (X, Y, Z) normalised AC, >= 0; or on a batch (B, C, X, Y, Z) -> (B, X, Y, Z)."""
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    batched = x.ndim == 5
    x = x if batched else (x[None, None] if x.ndim == 3 else x[None])
    if isinstance(generator, OnnxGenerator):
        y = generator(x)[:, 0]
    else:
        y = _torch_forward(generator, x, device, amp)
    return y if batched else y[0]


def _torch_forward(generator: nn.Module, x: np.ndarray, device: Any, amp: bool) -> np.ndarray:
    """A torch generator on a (B, C, X, Y, Z) batch -> (B, X, Y, Z) on the CPU."""
    import torch

    generator.eval()
    tensor = torch.from_numpy(x)
    on_device = device is not None and device.type != "cpu"
    if on_device:
        tensor = tensor.to(device)
    with torch.no_grad(), autocast(device, amp):
        y = generator(tensor)
    return y[:, 0].float().cpu().numpy() if on_device else y[:, 0].numpy()


def correct_nc(nc: Volume, model: DeepModel, protocol: Protocol | None = None,
               beside: Callable[[], None] | None = None) -> Volume:
    """Predict the AC volume of one study from its NC volume alone.

    Args:
        nc: NC volume in counts, (X, Y, Z), axes along +x, +y, +z of LPS.
        model: a loaded model (:func:`load_model`).
        protocol: the acquisition orbit, for a model with the Chang prior; None: the orbit of the
            model's training data (the standard 180-degree cardiac arc for older models).
        beside: work to do in this thread while the forward pass runs in a second one (``spectac
            correct``'s out-of-distribution check); its exceptions propagate once the pass is done.

    Returns:
        The AC prediction in counts (>= 0) on the NC grid.
    """
    inputs, scale, resampled = network_input(nc, model, protocol)
    if beside is None:
        prediction = predict_normalised(model.generator, inputs, model.device, model.amp)
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spectac-network") as pool:
            running = pool.submit(predict_normalised, model.generator, inputs, model.device, model.amp)
            try:
                beside()
            finally:
                prediction = running.result()
    return finish_prediction(nc, prediction, scale, resampled)


def network_input(nc: Volume, model: DeepModel, protocol: Protocol | None = None) -> tuple[np.ndarray, float, bool]:
    """The network input of one study (see :func:`correct_nc`): (C, X, Y, Z) or (X, Y, Z), the
    normalisation scale, and whether the study was resampled to the training voxel size."""
    trained = model.spacing_mm
    resampled = trained is not None and not np.allclose(nc.spacing, trained, rtol=SPACING_TOLERANCE)
    study = nc
    if resampled:
        # values are interpolated, not summed: counts per voxel stay on the study's own scale
        shape = tuple(max(1, round(n * s / t)) for n, s, t in zip(nc.shape, nc.spacing, trained))
        study = Volume(zoom_to_shape(nc.array, shape), trained, nc.origin, nc.direction)  # type: ignore[arg-type]
    # the prior is made on the grid the network sees, exactly as in training
    prior = prior_channels(study, model.prior, protocol or model.protocol)
    normalised, scale = normalise(study.array, model.percentile)
    inputs = np.concatenate([normalised[None], prior]) if len(prior) else normalised
    return inputs, scale, resampled


def finish_prediction(nc: Volume, prediction: np.ndarray, scale: float, resampled: bool) -> Volume:
    """The network's normalised prediction back on the study's grid, in counts."""
    if resampled:
        prediction = zoom_to_shape(prediction, nc.shape)
    return nc.with_array(denormalise(prediction, scale))


def correct_nc_batch(ncs: list[Volume], model: DeepModel, protocol: Protocol | None = None) -> list[Volume]:
    """:func:`correct_nc` of several studies with one forward pass per run of studies whose
    network inputs have the same shape (the same outputs to float rounding: instance norm and the
    convolutions treat every item of a batch alone)."""
    prepared = [network_input(nc, model, protocol) for nc in ncs]
    results: list[Volume] = []
    start = 0
    while start < len(ncs):
        stop = start + 1
        while stop < len(ncs) and prepared[stop][0].shape == prepared[start][0].shape:
            stop += 1
        stack = np.stack([p[0] if p[0].ndim == 4 else p[0][None] for p in prepared[start:stop]])
        predictions = predict_normalised(model.generator, stack, model.device, model.amp)
        results += [finish_prediction(nc, y, p[1], p[2])
                    for nc, y, p in zip(ncs[start:stop], predictions, prepared[start:stop])]
        start = stop
    return results


def place(state: Any, device: str | None, amp: bool) -> Any:
    """A prepared network state on ``device``; any other state as it is (a bad device is still
    refused, so a typo is not silently ignored for Chang)."""
    if isinstance(state, DeepModel):
        return state.placed(device, amp)
    if device not in (None, "cpu") or amp:
        check_amp(resolve_device(device), amp)
    return state
