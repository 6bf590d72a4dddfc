"""The workers of ``spectac serve``: ``workers`` separate processes that take steps from the queue.

Each worker is a process of its own (``multiprocessing``, spawn: a fresh interpreter, so no lock or
thread of the receiving process is copied into it), which loads the network once and then loops:
claim the first step waiting (:meth:`spectac.io.node_store.NodeStore.claim_next`: every
correction before any report, each oldest first), run it, take it out of the queue, and look again.
The claim is a lock the kernel holds for the worker, so no step is run by two workers, and a
worker that dies frees its step for the next start (the job files say where it stopped).

Processes rather than threads in one process: the C-STORE receiver keeps its interpreter to itself
while studies are corrected, the report's figures (matplotlib's pyplot, not thread-safe) can be
drawn by two workers at once, and the quantification's Python-heavy parts run on both cores. Each
worker's PyTorch uses its share of the cores (:func:`threads_per_worker`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spectac.errors import SpectacError
from spectac.io.node_store import REPORT, REPORTING, NodeStore, now
from spectac.node.config import ServeConfig

if TYPE_CHECKING:  # the worker's module (PyTorch, the correction) is imported by the workers only
    from spectac.node.worker import AttachmentHook, Worker

#: Seconds between two looks at an empty queue.
POLL = 0.2
#: A worker that died is started again, but not sooner than this after its last start (no
#: busy loop of a worker that cannot start).
REVIVE_AFTER = 10.0


def threads_per_worker(workers: int) -> int:
    """PyTorch threads of each worker: the cores this process may use shared among the workers
    (at least 1), and no more than ``OMP_NUM_THREADS`` when that is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // max(1, workers))
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(limit)) if limit.isdigit() and int(limit) > 0 else share


def work(store: NodeStore, worker: Worker, stopping: Callable[[], bool], log: Callable[[str], None]) -> None:
    """Run steps from the queue until ``stopping()``; a step being run is finished first."""
    while not stopping():
        claim = store.claim_next()
        if claim is None:
            time.sleep(POLL)
            continue
        try:
            job = worker.run_step(claim.job_id, claim.step)
            if job.get("status") == REPORTING:
                store.mark(claim.job_id, REPORT)  # before the correction leaves the queue: never lost
            claim.finish()
        except Exception as exc:  # noqa: BLE001 - one broken job must not stop the worker
            log(f"job {claim.job_id}: {claim.step} crashed ({exc!r}); left for the next start")
            claim.release()


def _stderr(prefix: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"{now()} {prefix}{message}", file=sys.stderr, flush=True)

    return log


def worker_main(config: ServeConfig, index: int, stop: Any, ready: Any, attachments: AttachmentHook | None) -> None:
    """One worker process: loads the method, says on ``ready`` that it did (None) or why it could
    not (one line), then runs steps. It stops once its step is done when the node says so
    (``stop``), on SIGINT or SIGTERM (a Ctrl-C or a ``kill`` of the process group must not cut a
    step short), and when the node's process is gone (killed)."""
    asked: list[int] = []  # SIGINT or SIGTERM received: stop after the step being run

    def stop_after_step(number: int, frame: Any) -> None:
        asked.append(number)

    signal.signal(signal.SIGINT, stop_after_step)  # Ctrl-C reaches the whole process group
    signal.signal(signal.SIGTERM, stop_after_step)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    log = _stderr(f"worker {index}: ")
    store = NodeStore(config.work)
    try:
        # The worker's share of the cores for every runtime it may use: torch reads it when it is
        # imported, onnxruntime when the session opens (spectac.io.onnx_model.onnx_threads).
        threads = threads_per_worker(config.workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        from spectac.node.worker import Worker

        torch.set_num_threads(threads)
        worker = Worker(config, store, attachments, log)
        worker.prepared()
    except SpectacError as exc:
        ready.put((index, str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - said to the node, which stops with it
        ready.put((index, f"worker {index} could not load {config.method}: {exc!r}"))
        return
    ready.put((index, None))
    log(f"ready ({config.method} loaded, {torch.get_num_threads()} PyTorch thread(s))")
    parent = multiprocessing.parent_process()
    work(store, worker, lambda: bool(asked) or stop.is_set() or (parent is not None and not parent.is_alive()), log)


class WorkerPool:
    """``config.workers`` worker processes: :meth:`start` returns at once, :meth:`stop` waits for
    each to finish its step."""

    def __init__(self, config: ServeConfig, attachments: AttachmentHook | None = None) -> None:
        self.config = config
        self.attachments = attachments
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._ready = self._context.Queue()
        self.processes: list[Any] = []
        self._started: dict[int, float] = {}  # worker index -> when its process was started

    def _process(self, index: int) -> Any:
        process = self._context.Process(target=worker_main, name=f"spectac-worker-{index}", daemon=True,
                                        args=(self.config, index, self._stop, self._ready, self.attachments))
        process.start()
        self._started[index] = time.monotonic()
        return process

    def start(self) -> None:
        self.processes = [self._process(index) for index in range(self.config.workers)]

    def wait_ready(self) -> None:
        """Wait until every worker has loaded the method (what a node checks before it listens).

        Raises:
            SpectacError: a worker that could not load it (its one line: an unknown method,
                weights that do not load), or that died while starting; the workers are then ended.
        """
        waiting = set(range(len(self.processes)))
        while waiting:
            try:
                index, error = self._ready.get(timeout=POLL)
            except queue.Empty:
                dead = [i for i in waiting if not self.processes[i].is_alive()]
                if dead:
                    self.terminate()
                    raise SpectacError(f"serve: worker {dead[0]} exited while starting "
                                       f"(code {self.processes[dead[0]].exitcode})") from None
                continue
            if error is not None:
                self.terminate()
                raise SpectacError(error)
            waiting.discard(index)

    def terminate(self) -> None:
        """End the workers at once (a node that fails to start; a step cut short is resumed by the
        next start, as after any kill)."""
        self._stop.set()
        for process in self.processes:
            process.kill()
            process.join()

    def revive(self, log: Callable[[str], None]) -> None:
        """Start a worker again in place of one that died (killed, out of memory): its step, left
        claimed by no one, is taken up again from where its job file says it stopped."""
        if self._stop.is_set():
            return
        for index, process in enumerate(self.processes):
            if not process.is_alive() and time.monotonic() - self._started.get(index, 0.0) >= REVIVE_AFTER:
                log(f"worker {index} exited (code {process.exitcode}); starting it again")
                self.processes[index] = self._process(index)

    def alive(self) -> int:
        return sum(process.is_alive() for process in self.processes)

    def stop(self) -> None:
        self._stop.set()
        for process in self.processes:
            process.join()
