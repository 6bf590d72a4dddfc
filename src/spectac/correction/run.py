"""Run a correction method over the studies of a dataset: ``spectac predict``.

Predictions go to ``RUN/predictions/<method>/<case_id>.nii.gz`` (each written atomically; a
prediction already there is kept, so an interrupted run resumes), and the resolved options to
``RUN/predictions/<method>/config.json``. A run folder made with other options for the same
method is refused rather than mixed.

Adding a method
---------------
A method is a function ``predict(nc: Volume, context: MethodContext) -> Volume`` that sees only
the NC volume and the context (case id, the acquisition protocol, the options and whatever the
method's ``prepare`` returned): never the CT-AC target, the mu-map or the phantom truth. Register
it once, at import time of its module::

    from spectac.correction.run import MethodContext, register_method

    def _load(options: dict) -> MyNet:                  # optional: runs once per predict call
        return MyNet.load(options["checkpoint"])

    def _predict(nc: Volume, context: MethodContext) -> Volume:
        return nc.with_array(context.state.apply(nc.array))

    register_method("unet-gan3d", _predict, prepare=_load, defaults={"checkpoint": None},
                    description="3D U-Net GAN (issue 4)")

and add the module's name to :data:`METHOD_MODULES` so that ``spectac predict`` imports it.
Options reach the method from ``predict_dataset(..., **options)`` (the CLI's ``--mu``,
``--iterations`` and repeated ``--set key=value``); unknown options are refused.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import DEFAULT_MU_PER_CM, chang_first_order, chang_iterative, protocol_of
from spectac.io.atomic import write_text_atomic
from spectac.io.dataset import Dataset
from spectac.io.nifti import nifti_description, write_nifti
from spectac.progress import track
from spectac.volume import SpectacError, Volume, check_finite, to_lps_axes

#: Modules that register further methods when imported (e.g. the deep-learning correction).
#: A name whose module does not exist yet is skipped.
METHOD_MODULES: list[str] = ["spectac.correction.deep"]


@dataclass
class MethodContext:
    """What a method may know about a study besides its NC volume."""

    case_id: str
    protocol: Protocol | None  # None: the method's default acquisition
    options: dict[str, Any]
    state: Any = None  # what the method's ``prepare`` returned (a loaded network, ...)


PredictFn = Callable[[Volume, MethodContext], Volume]
PrepareFn = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Method:
    name: str
    predict: PredictFn
    prepare: PrepareFn | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    predict: PredictFn,
    *,
    prepare: PrepareFn | None = None,
    defaults: dict[str, Any] | None = None,
    description: str = "",
) -> None:
    """Register (or replace) a correction method under ``name`` (see the module docstring)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid method name {name!r}")
    _METHODS[name] = Method(name, predict, prepare, dict(defaults or {}), description)


def _load_method_modules() -> None:
    for module in METHOD_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but is broken: say so
                raise


def available_methods() -> dict[str, Method]:
    _load_method_modules()
    return dict(_METHODS)


def get_method(name: str) -> Method:
    methods = available_methods()
    if name not in methods:
        raise SpectacError(f"unknown method {name!r}; choose from {', '.join(sorted(methods))}")
    return methods[name]


# ---- the classical methods ---------------------------------------------------------------------


def _predict_nc(nc: Volume, context: MethodContext) -> Volume:
    return nc


def _chang_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated Chang options: mu a finite number in [0, 1] 1/cm, iterations a whole number >= 0."""
    try:
        mu = float(options["mu"])
    except (TypeError, ValueError):
        raise SpectacError(f"mu must be a number in 1/cm, got {options['mu']!r}") from None
    if not 0.0 <= mu <= 1.0:  # also refuses NaN
        raise SpectacError(f"mu must lie between 0 and 1 /cm (water: 0.153), got {options['mu']!r}")
    checked: dict[str, Any] = {"mu": mu}
    if "iterations" in options:
        iterations = options["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, int | float) or iterations != int(iterations) \
                or iterations < 0:
            raise SpectacError(f"iterations must be a whole number >= 0, got {iterations!r}")
        checked["iterations"] = int(iterations)
    return checked


def _predict_chang(nc: Volume, context: MethodContext) -> Volume:
    return chang_first_order(nc, context.protocol, mu=context.state["mu"])


def _predict_chang_iterative(nc: Volume, context: MethodContext) -> Volume:
    return chang_iterative(nc, context.protocol, mu=context.state["mu"], iterations=context.state["iterations"])


register_method("nc", _predict_nc, description="the NC image itself (how far NC is from CT-AC)")
register_method("chang", _predict_chang, prepare=_chang_options, defaults={"mu": DEFAULT_MU_PER_CM},
                description="first-order Chang")
register_method(
    "chang-iterative",
    _predict_chang_iterative,
    prepare=_chang_options,
    defaults={"mu": DEFAULT_MU_PER_CM, "iterations": 2},
    description="multiple-order Chang (first order + reprojection-error updates)",
)


# ---- running over a dataset --------------------------------------------------------------------


def predictions_dir(run: str | Path, method: str) -> Path:
    return Path(run) / "predictions" / method


def resolve_options(method: Method, options: dict[str, Any]) -> dict[str, Any]:
    """The method's defaults updated by the given options (``None`` values mean "default")."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(method.defaults))
    if unknown:
        known = ", ".join(sorted(method.defaults)) or "none"
        raise SpectacError(f"method {method.name!r} takes no option {', '.join(unknown)} (options: {known})")
    return {**method.defaults, **given}


def check_nc(nc: Volume, name: str) -> None:
    """Refuse an NC volume no method can correct: NaN/infinite values, or no counts at all."""
    check_finite(nc.array, f"{name}: the NC volume")
    if not np.any(nc.array > 0):
        raise SpectacError(f"{name}: the NC volume holds no counts (all zero or negative)")


def apply_method(method: Method, nc: Volume, context: MethodContext) -> Volume:
    """Apply a method to one NC volume in any axis-aligned orientation; the result is on its grid.

    The array is permuted and flipped to the [x, y, z] LPS order the methods are made for (no
    resampling) and the result put back; errors name the study (``context.case_id``).

    Raises:
        SpectacError: an uncorrectable NC volume, a failing method, or a result off the grid or
            holding NaN.
    """
    name = context.case_id
    check_nc(nc, name)
    ordered, order = to_lps_axes(nc)
    try:
        result = method.predict(ordered, context)
    except SpectacError as exc:
        message = str(exc)
        raise SpectacError(message if name in message else f"{name}: {message}") from None
    if not isinstance(result, Volume) or not result.same_grid(ordered):
        raise SpectacError(f"method {method.name!r} returned a volume off the NC grid for {name}")
    check_finite(result.array, f"the {method.name} correction of {name}")
    return order.undo(result.array, nc)


def predict_dataset(
    data: str | Path,
    run: str | Path,
    method: str,
    split: str | None = "test",
    **options: Any,
) -> dict[str, Any]:
    """Predict the AC volume of every study of a split with one method.

    Args:
        data: dataset folder.
        run: run folder; predictions go to RUN/predictions/<method>/.
        method: a registered method name (``available_methods()``).
        split: 'train', 'val', 'test', or None/'all' for every study.
        **options: method options (see each method's ``defaults``).

    Returns:
        {"method", "written", "skipped", "folder"}.

    Raises:
        SpectacError: unknown method or option, no study in the split, a missing or unreadable NC
            volume, a run folder made with other options, or a method returning a wrong grid.
    """
    dataset = Dataset.open(data)
    spec = get_method(method)
    resolved = resolve_options(spec, options)
    cases = dataset.split(split)
    if not cases:
        raise SpectacError(f"{dataset.root}: no study in split {split!r}")
    protocol = protocol_of(dataset.meta)
    out = predictions_dir(run, method)
    config = {
        "method": method,
        "options": resolved,
        "dataset": str(Path(data).resolve()),
        "split": split or "all",
        "protocol": protocol.to_dict(),
    }
    config_path = out / "config.json"
    if config_path.is_file():
        try:
            previous = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise SpectacError(f"{config_path}: not valid JSON ({exc})") from exc
        same = {k: previous.get(k) for k in ("method", "options", "dataset")}
        if same != {k: config[k] for k in ("method", "options", "dataset")}:
            raise SpectacError(
                f"{config_path}: these predictions were made with other options "
                f"({json.dumps(previous.get('options'))}); use another --out or remove the folder"
            )
        config["split"] = previous.get("split") if previous.get("split") == config["split"] else "mixed"
    # options are checked (weights loaded, values validated) before anything is written
    state = spec.prepare(resolved) if spec.prepare is not None else None
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config_path, json.dumps(config, indent=1, default=str) + "\n")

    written = skipped = 0
    for case in track(cases, f"predict {method}", total=len(cases)):
        target = out / f"{case.case_id}.nii.gz"
        if target.is_file():
            skipped += 1
            continue
        nc = dataset.load(case.case_id, "nc")
        result = apply_method(spec, nc, MethodContext(case.case_id, protocol, dict(resolved), state))
        write_nifti(result, target, descrip=nifti_description(method))
        written += 1
    return {"method": method, "written": written, "skipped": skipped, "folder": out}
