"""Run a correction method over the studies of a dataset: ``spectac predict``.

Predictions go to ``RUN/predictions/<method>/<case_id>.nii.gz`` (each written atomically; a
prediction already there is kept, so an interrupted run resumes), and the resolved options to
``RUN/predictions/<method>/config.json``. A run folder made with other options for the same
method is refused rather than mixed.

The methods themselves are the table of :mod:`spectac.correction.methods`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spectac.correction.chang import protocol_of
from spectac.correction.checks import check_plausible_geometry, check_plausible_values
from spectac.correction.methods import METHODS, Method, MethodContext, get_method
from spectac.io.dataset import Dataset
from spectac.io.nifti import nifti_description, read_nifti_header, write_nifti
from spectac.io.run import RunFolder
from spectac.progress import track
from spectac.volume import SpectacError, Volume, check_finite, to_lps_axes


def available_methods() -> dict[str, Method]:
    """Every correction method by name (a copy of :data:`spectac.correction.methods.METHODS`)."""
    return dict(METHODS)


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


class _Once:
    """A :attr:`MethodContext.beside` callable that runs at most once, however often called."""

    def __init__(self, work: Callable[[], None] | None) -> None:
        self.work = work

    def __call__(self) -> None:
        work, self.work = self.work, None
        if work is not None:
            work()


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
    beside = _Once(context.beside)
    try:
        result = method.predict(ordered, context if context.beside is None else dataclasses.replace(context, beside=beside))
    except SpectacError as exc:
        message = str(exc)
        raise SpectacError(message if name in message else f"{name}: {message}") from None
    beside()  # a method that does not overlap it: after the method
    if not isinstance(result, Volume) or not result.same_grid(ordered):
        raise SpectacError(f"method {method.name!r} returned a volume off the NC grid for {name}")
    check_finite(result.array, f"the {method.name} correction of {name}")
    return order.undo(result.array, nc)


def predict_dataset(
    data: str | Path,
    run: str | Path,
    method: str,
    split: str | None = "test",
    *,
    device: str | None = None,
    amp: bool = False,
    batch_size: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """Predict the AC volume of every study of a split with one method.

    Args:
        data: dataset folder.
        run: run folder; predictions go to RUN/predictions/<method>/.
        method: a registered method name (``available_methods()``).
        split: 'train', 'val', 'test', or None/'all' for every study.
        device, amp: where a network runs (:mod:`spectac.devices`; None: the CPU); not method
            options, so they are not in the run's config.json (they do not change a prediction
            beyond float rounding).
        batch_size: studies per forward pass of a network (other methods take one at a time).
        **options: method options (see each method's ``defaults``).

    Returns:
        {"method", "written", "skipped", "folder"}.

    Raises:
        SpectacError: unknown method or option, no study in the split, a missing or unreadable NC
            volume, a study whose grid or values no SPECT reconstruction has
            (:mod:`spectac.correction.checks`: every grid is checked before anything is written,
            the values of each study before it is corrected), a run folder made with other
            options, or a method returning a wrong grid.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpectacError(f"--batch-size must be a whole number of at least 1, got {batch_size!r}")
    dataset = Dataset.open(data)
    spec = get_method(method)
    resolved = resolve_options(spec, options)
    cases = dataset.split(split)
    if not cases:
        raise SpectacError(f"{dataset.root}: no study in split {split!r}")
    protocol = protocol_of(dataset.meta)
    folder = RunFolder(run)
    out = folder.predictions_dir(method)
    config = {
        "method": method,
        "options": resolved,
        "dataset": str(Path(data).resolve()),
        "split": split or "all",
        "protocol": protocol.to_dict(),
    }
    previous = folder.read_prediction_config(method)
    if previous is not None:
        same = {k: previous.get(k) for k in ("method", "options", "dataset")}
        if same != {k: config[k] for k in ("method", "options", "dataset")}:
            raise SpectacError(
                f"{folder.prediction_config(method)}: these predictions were made with other options "
                f"({json.dumps(previous.get('options'))}); use another --out or remove the folder"
            )
        config["split"] = previous.get("split") if previous.get("split") == config["split"] else "mixed"
    todo = [case for case in cases if not (out / f"{case.case_id}.nii.gz").is_file()]
    for case in todo:  # every grid, from the headers, before anything is written
        header = read_nifti_header(dataset.path(case.case_id, "nc"))
        check_plausible_geometry(header.shape, header.spacing, header.direction, f"study {case.case_id}")
    # options are checked (weights loaded, values validated) before anything is written
    state = spec.prepare(resolved, None) if spec.prepare is not None else None
    if device not in (None, "cpu") or amp:
        from spectac.correction.deep import place

        state = place(state, device, amp)
    folder.write_prediction_config(method, config)
    batched = batch_size > 1 and _is_network(state)

    written = skipped = 0
    pending: list[tuple[str, Volume]] = []

    def flush() -> None:
        contexts = [MethodContext(case_id, protocol, dict(resolved), state) for case_id, _ in pending]
        results = apply_network_batch(state, [nc for _, nc in pending], contexts) if batched else \
            [apply_method(spec, nc, context) for (_, nc), context in zip(pending, contexts)]
        for (case_id, _), result in zip(pending, results):
            write_nifti(result, folder.prediction_path(method, case_id), descrip=nifti_description(method))
        pending.clear()

    for case in track(cases, f"predict {method}", total=len(cases)):
        if folder.has_prediction(method, case.case_id):
            skipped += 1
            continue
        nc = dataset.load(case.case_id, "nc")
        check_plausible_values(nc.array, f"study {case.case_id}")
        pending.append((case.case_id, nc))
        written += 1
        if len(pending) >= (batch_size if batched else 1):
            flush()
    if pending:
        flush()
    return {"method": method, "written": written, "skipped": skipped, "folder": out}


def _is_network(state: Any) -> bool:
    from spectac.correction.deep import DeepModel

    return isinstance(state, DeepModel)


def apply_network_batch(model: Any, ncs: list[Volume], contexts: list[MethodContext]) -> list[Volume]:
    """:func:`apply_method` of a network over several studies with batched forward passes
    (:func:`spectac.correction.deep.correct_nc_batch`): the same checks and orientation per study."""
    from spectac.correction.deep import correct_nc_batch

    ordered = []
    for nc, context in zip(ncs, contexts):
        check_nc(nc, context.case_id)
        ordered.append(to_lps_axes(nc))
    results = correct_nc_batch([o for o, _ in ordered], model, contexts[0].protocol)
    out = []
    for (volume, order), result, context in zip(ordered, results, contexts):
        if not result.same_grid(volume):
            raise SpectacError(f"the network returned a volume off the NC grid for {context.case_id}")
        check_finite(result.array, f"the {model.name} correction of {context.case_id}")
        out.append(order.undo(result.array, ncs[len(out)]))
    return out
