"""The correction methods, in one explicit table: :data:`METHODS`.

A method is a function ``predict(nc: Volume, context: MethodContext) -> Volume`` that sees only
the NC volume and the context (case id, the acquisition protocol, the options and whatever the
method's ``prepare`` returned): never the CT-AC target, the mu-map or the phantom truth.

Adding a method is one row of :data:`METHODS`; a new network is one row of
:data:`spectac.nn.registry.REGISTRY` and becomes a method here by itself when it predicts the AC
image (target "ac"); a mu-map network (target "mu") is no method: ``correct --route indirect``
uses it. Options reach a method
from ``predict_dataset(..., **options)`` (the CLI's ``--mu``, ``--iterations`` and repeated
``--set key=value``); an option not in the method's ``defaults`` is refused. Nothing is
registered by importing a module: tests that need a probe method add it to the table for the
test alone (``monkeypatch.setitem(METHODS, name, Method(...))``).

The table imports neither torch nor the methods' code (Chang's, the networks'), so that the
command line can list the methods in its help at once; each method imports its code when it runs
or is prepared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spectac.correction import DEFAULT_MU_PER_CM
from spectac.errors import SpectacError
from spectac.nn.registry import REGISTRY

if TYPE_CHECKING:
    from spectac.acquisition.protocol import Protocol
    from spectac.volume import Volume


@dataclass
class MethodContext:
    """What a method may know about a study besides its NC volume."""

    case_id: str
    protocol: Protocol | None  # None: the method's default acquisition
    options: dict[str, Any]
    state: Any = None  # what the method's ``prepare`` returned (a loaded network, ...)
    # work of the caller's to overlap with the method: a network calls it while its forward pass
    # runs in a second thread (onnxruntime and torch release the GIL); apply_method calls it after
    # any other method. Called exactly once, in the caller's thread.
    beside: Callable[[], None] | None = None


PredictFn = Callable[["Volume", MethodContext], "Volume"]
#: (resolved options, threads) -> the method's state; ``threads``: onnxruntime's intra-op threads
#: for a network (None: all it may use); the classical methods ignore it.
PrepareFn = Callable[[dict[str, Any], "int | None"], Any]


@dataclass(frozen=True)
class Method:
    name: str
    predict: PredictFn
    prepare: PrepareFn | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


# ---- the classical methods ---------------------------------------------------------------------


def _predict_nc(nc: Volume, context: MethodContext) -> Volume:
    return nc


def _chang_options(options: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
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
    from spectac.correction.chang import chang_first_order

    return chang_first_order(nc, context.protocol, mu=context.state["mu"])


def _predict_chang_iterative(nc: Volume, context: MethodContext) -> Volume:
    from spectac.correction.chang import chang_iterative

    return chang_iterative(nc, context.protocol, mu=context.state["mu"], iterations=context.state["iterations"])


# ---- the networks ------------------------------------------------------------------------------


def _network_preparer(name: str) -> PrepareFn:
    def prepare(options: dict[str, Any], threads: int | None = None) -> Any:
        from spectac.correction.deep import resolve_model

        return resolve_model(name, options.get("weights"), threads)

    return prepare


def _predict_network(nc: Volume, context: MethodContext) -> Volume:
    from spectac.correction.deep import correct_nc

    return correct_nc(nc, context.state, context.protocol, beside=context.beside)


# ---- the table ---------------------------------------------------------------------------------

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("nc", _predict_nc, description="the NC image itself (how far NC is from CT-AC)"),
        Method("chang", _predict_chang, _chang_options, {"mu": DEFAULT_MU_PER_CM}, "first-order Chang"),
        Method("chang-iterative", _predict_chang_iterative, _chang_options,
               {"mu": DEFAULT_MU_PER_CM, "iterations": 2},
               "multiple-order Chang (first order + reprojection-error updates)"),
        *(Method(name, _predict_network, _network_preparer(name), {"weights": None},
                 f"network: {spec.description}")
          for name, spec in REGISTRY.items() if spec.target == "ac"),
    )
}


def get_method(name: str) -> Method:
    """The method called ``name``.

    Raises:
        SpectacError: no such method (the message lists them).
    """
    if name not in METHODS:
        raise SpectacError(f"unknown method {name!r}; choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]
