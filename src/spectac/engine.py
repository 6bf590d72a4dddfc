"""Simulation on several machines: ``spectac simulate --engine dask [--scheduler ADDRESS]``.

The unit of work is :mod:`spectac.simulate`'s own per-study task (a patient drawn from the seed,
acquired and reconstructed: seconds to minutes of numpy, a few MB of result), and the dataset is
written by the driver exactly as a local run writes it, so an engine only decides where the tasks
run. :func:`dask_executor` gives :func:`spectac.simulate.simulate_cohort` a
``concurrent.futures.Executor`` backed by a Dask cluster in place of its ProcessPoolExecutor:
studies already on disk are skipped (resume), the progress bar counts finished studies, and a
study's bytes do not depend on where it ran (each study's random stream comes from the seed and
its index alone).

Why Dask (dask.distributed; Rocklin, "Dask: parallel computation with blocked algorithms and task
scheduling", SciPy 2015) and not Ray: the tasks are plain Python functions over numpy that already
run under ``concurrent.futures``, and distributed's client offers exactly that interface
(``Client.get_executor``); a cluster is two commands on ordinary machines (``dask scheduler``,
``dask worker ADDRESS``) or a ``LocalCluster`` on one, with a dashboard of the tasks; it is
pure Python with wheels everywhere spectac runs. Ray's strengths (actors, a shared object store,
GPU scheduling) are not needed by independent CPU tasks with small results.

Dask is optional (the ``cluster`` extra: ``pip install spectac[cluster]``) and imported only when
this engine is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from spectac.errors import SpectacError

ENGINES = ("local", "dask")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise SpectacError("--engine dask needs dask.distributed: pip install 'spectac[cluster]'") from None
    return distributed


class DaskExecutor(Executor):
    """A ``concurrent.futures.Executor`` running tasks on a Dask cluster: the scheduler at
    ``address``, or a LocalCluster of ``workers`` single-threaded worker processes (threads of
    this process with ``processes=False``) that is closed with the executor."""

    def __init__(self, address: str | None = None, workers: int = 1, processes: bool = True) -> None:
        distributed = _distributed()
        self._cluster = None
        try:
            if address is None:
                self._cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                                         processes=processes, dashboard_address=None)
                self.client = distributed.Client(self._cluster)
            else:
                self.client = distributed.Client(address, timeout="20s")
        except OSError as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise SpectacError(f"--scheduler {address}: cannot reach the Dask scheduler ({exc})") from None
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._executor.shutdown(wait=wait)
        finally:
            # the workers' heartbeats can race the closing scheduler and log tracebacks of a
            # closed connection; the work is done and written by then, so they are not shown
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def executor_factory(engine: str, scheduler: str | None = None, processes: bool = True) -> Callable[..., Executor] | None:
    """What :func:`spectac.simulate.simulate_cohort` takes as ``executor``: None for the local
    engine (its own process pool), else a factory called with ``max_workers`` (the LocalCluster's
    size; ignored with a scheduler, whose workers are what ``dask worker`` started).

    Raises:
        SpectacError: an unknown engine, a scheduler without the dask engine, or dask missing.
    """
    if engine not in ENGINES:
        raise SpectacError(f"--engine {engine!r}: choose {' or '.join(ENGINES)}")
    if engine == "local":
        if scheduler is not None:
            raise SpectacError("--scheduler goes with --engine dask")
        return None
    _distributed()  # missing dask is refused before anything is written

    def factory(max_workers: int = 1) -> Executor:
        return DaskExecutor(scheduler, max_workers, processes)

    return factory
