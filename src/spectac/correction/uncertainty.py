"""An uncertainty signal for a network's correction: how much a partner network disagrees.

Two networks trained on the same data agree where the data resemble their training and drift
apart where they do not; the spread of an ensemble is the classical uncertainty estimate of deep
networks (Lakshminarayanan, Pritzel and Blundell, "Simple and scalable predictive uncertainty
estimation using deep ensembles", NeurIPS 2017). spectac ships two GANs trained on the same
cohort, ``unet-gan3d-chang`` (with the Chang prior) and ``unet-gan3d`` (without): their
disagreement is an ensemble of two at the cost of one more forward pass (BENCHMARKS.md, round 4: a
whole ``spectac correct`` of a 64^3 study with onnxruntime, 2.01 s with it against 1.81 s without).

The measure (:func:`disagreement`) is the relative mean absolute difference inside the body:

    D = mean_body |A - B| / mean_body (A + B) / 2

with A the applied network's AC image, B the partner's, both in counts on the NC grid, and the
body the outline of the NC image (:func:`spectac.correction.chang.body_contour`; the whole volume
when none is found). D does not depend on the count level (A and B scale together, and the body
outline is found relative to the image's own level), is 0 for a network with itself and is
symmetric in A and B.

A model names its partner and threshold in its ``config.json``'s ``uncertainty`` block
(docs/models.md, "Out-of-distribution warnings"; calibrated by ``benchmarks/uncertainty.py``)::

    "uncertainty": {"partner": "unet-gan3d", "threshold": 0.12, "quantile": 0.95, "studies": 10,
                    "calibrated_on": "..."}

Without the block the two shipped GANs are each other's partner (:data:`DEFAULT_PARTNERS`); a model
without a partner is not checked. Above the threshold the study is flagged out of distribution
like the checks of :mod:`spectac.correction.ood`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from spectac.errors import SpectacError
from spectac.volume import Volume

#: The partner of each shipped network when its config names none.
DEFAULT_PARTNERS = {"unet-gan3d-chang": "unet-gan3d", "unet-gan3d": "unet-gan3d-chang"}
#: The Image Comments mark of the value.
UNCERTAINTY_PREFIX = "spectac uncertainty: "


def disagreement(a: np.ndarray, b: np.ndarray, body: np.ndarray | None = None) -> float:
    """D = mean |a - b| / mean (a + b)/2 over ``body`` (None: every voxel); negative values count as
    0; NaN when both are 0 there."""
    a = np.clip(np.asarray(a, np.float64), 0, None)
    b = np.clip(np.asarray(b, np.float64), 0, None)
    if a.shape != b.shape:
        raise SpectacError(f"the two corrections differ in shape: {a.shape} and {b.shape}")
    if body is not None and body.any():
        a, b = a[body], b[body]
    mean = float((a + b).mean()) / 2
    return float(np.abs(a - b).mean()) / mean if mean > 0 else float("nan")


def body_mask(nc: Volume) -> np.ndarray | None:
    """The body outline of an NC image, or None when none is found."""
    from spectac.correction.chang import body_contour

    try:
        return body_contour(nc.array, nc.spacing)
    except SpectacError:
        return None


def _config_block(model: Any) -> dict[str, Any]:
    """The ``uncertainty`` block of the model's config.json: the one beside its weights (a model
    folder), else the shipped one of that model, else the checkpoint's own config."""
    from spectac.correction.deep import shipped_model_dir
    from spectac.io.training_files import CONFIG, has_file, read_config

    folders = [model.path.parent] if getattr(model, "path", None) is not None else []
    for folder in [*folders, shipped_model_dir(model.name)]:
        if has_file(folder, CONFIG):
            config = read_config(folder)
            if config.get("model") == model.name and isinstance(config.get("uncertainty"), dict):
                return config["uncertainty"]
    block = model.config.get("uncertainty") if isinstance(model.config, dict) else None
    return block if isinstance(block, dict) else {}


def uncertainty_settings(model: Any) -> dict[str, Any] | None:
    """{"partner", "threshold" (None: not calibrated, the value is reported but never flagged)} of
    a loaded network (:class:`spectac.correction.deep.DeepModel`); None when it has no partner
    (or is no network)."""
    from spectac.correction.deep import DeepModel

    if not isinstance(model, DeepModel):
        return None
    block = _config_block(model)
    partner = block.get("partner", DEFAULT_PARTNERS.get(model.name))
    if not partner:
        return None
    threshold = block.get("threshold")
    return {"partner": str(partner), "threshold": None if threshold is None else float(threshold)}


@lru_cache(maxsize=4)
def _shipped(name: str, threads: int | None) -> Any:
    from spectac.correction.deep import resolve_model

    return resolve_model(name, threads=threads)


def partner_model(name: str, like: Any, threads: int | None = None) -> Any:
    """The shipped network ``name``, loaded once per process (per ``threads``: onnxruntime's
    intra-op threads, None: all it may use), on the device of ``like``."""
    partner = _shipped(name, threads)
    device = getattr(like, "device", None)
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        partner = partner.placed(str(device), bool(getattr(like, "amp", False)))
    return partner


def partner_correction(nc: Volume, model: Any, protocol: Any = None, name: str = "input",
                       threads: int | None = None) -> tuple[dict[str, Any], Volume] | None:
    """The partner's settings (:func:`uncertainty_settings`) and its correction of ``nc``, or None
    when ``model`` has no partner. It needs nothing of ``model``'s own correction, so ``spectac
    correct`` runs it beside the out-of-distribution check, leaving that one core (``threads``:
    onnxruntime's intra-op threads for the partner; None: all it may use)."""
    settings = uncertainty_settings(model)
    if settings is None:
        return None
    from spectac.correction.methods import MethodContext, get_method
    from spectac.correction.run import apply_method

    partner = partner_model(settings["partner"], model, threads)
    other = apply_method(get_method(partner.name), nc, MethodContext(name, protocol, {"weights": None}, partner))
    return settings, other


def compare_with_partner(nc: Volume, corrected: Volume, model: Any,
                         found: tuple[dict[str, Any], Volume]) -> dict[str, Any]:
    """{"partner", "disagreement" (D), "threshold" (None: not calibrated), "flag" (the OOD sentence
    when D exceeds the threshold, else None)} of ``model``'s correction against the partner's
    (``found``: :func:`partner_correction`)."""
    settings, other = found
    value = disagreement(corrected.array, other.array, body_mask(nc))
    threshold = settings["threshold"]
    flag = None
    if threshold is not None and not value <= threshold:  # NaN is flagged too
        flag = (f"the shipped networks disagree: D = {value:.2f} > threshold {threshold:.2f} "
                f"({model.name} against {settings['partner']}); the correction is uncertain here")
    return {**settings, "disagreement": value, "flag": flag}


def network_disagreement(nc: Volume, corrected: Volume, model: Any, protocol: Any = None,
                         name: str = "input") -> dict[str, Any] | None:
    """The disagreement of ``model``'s correction ``corrected`` of ``nc`` with its partner's.

    Returns:
        None when the model has no partner; else :func:`compare_with_partner`'s result.
    """
    found = partner_correction(nc, model, protocol, name)
    return None if found is None else compare_with_partner(nc, corrected, model, found)


def uncertainty_text(result: dict[str, Any] | None) -> str:
    """One short line of the value: "D = 0.07 against unet-gan3d (threshold 0.12)"; "" without."""
    if not result:
        return ""
    threshold = result.get("threshold")
    limit = "not calibrated" if threshold is None else f"threshold {threshold:.2f}"
    return f"D = {result['disagreement']:.3f} against {result['partner']} ({limit})"
