"""``spectac serve``: a DICOM node that corrects the NC series sent to it and sends the result on.

Two threads of the node's process and its worker processes share one work folder
(:class:`spectac.io.node_store.NodeStore`):

- the C-STORE SCP (pynetdicom's association server) writes each received instance, atomically,
  into ``incoming/<series>/`` and notes the time;
- the collector turns a series into a job once no instance of it arrived for
  ``complete_after`` seconds (DICOM has no "end of series" message; a quiet period is what
  routers such as Orthanc's ``StableAge`` and mercure use too), moving its folder into the job
  and putting its correction in the queue;
- ``workers`` processes (:mod:`spectac.node.pool`) run the steps (:class:`spectac.node.worker.Worker`):
  every waiting correction (which sends the AC series) before any report.

The job files are the truth, so on start the unfinished jobs are resumed, and series left in
``incoming/`` by a stopped server become jobs after a fresh quiet period.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from spectac.errors import SpectacError
from spectac.io.node_store import CORRECT, QUEUED, NodeStore, now, safe_name
from spectac.node.config import ServeConfig
from spectac.node.pool import WorkerPool

if TYPE_CHECKING:
    from spectac.node.worker import AttachmentHook

#: C-STORE status: stored, and "out of resources" for an instance that could not be written.
SUCCESS, CANNOT_STORE = 0x0000, 0xA700


class Server:
    """A running node; :meth:`start` returns at once, :meth:`stop` shuts it down cleanly."""

    def __init__(self, config: ServeConfig, attachments: AttachmentHook | None = None,
                 log: Callable[[str], None] = lambda message: None) -> None:
        self.config = config
        self.log = log
        self.store = NodeStore(config.work)
        self.pool = WorkerPool(config, attachments)
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # series folder -> monotonic time of its newest instance
        self._first: dict[str, str] = {}  # series folder -> wall time of its first instance
        self._last_wall: dict[str, str] = {}  # series folder -> wall time of its newest instance
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None

    # ---- receiving -------------------------------------------------------------------------

    def _on_store(self, event: Any) -> int:
        try:
            ds = event.dataset
            series = safe_name(ds.SeriesInstanceUID)
            encoded = event.encoded_dataset()
            with self._lock:
                self.store.store_instance(series, ds.SOPInstanceUID, encoded)
                self._last[series] = time.monotonic()
                self._first.setdefault(series, now())
                self._last_wall[series] = now()
        except Exception as exc:  # noqa: BLE001 - any failure is the peer's "not stored", never a crash
            self.log(f"could not store an instance: {exc}")
            return CANNOT_STORE
        return SUCCESS

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The listening port's TLS context, or None without ``[tls]``.

        Raises:
            SpectacError: a certificate, key or CA file that is missing or does not load.
        """
        tls = self.config.tls
        if tls.cert is None or tls.key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(tls.cert), str(tls.key))
        except (OSError, ssl.SSLError) as exc:
            raise SpectacError(f"serve config: [tls] cert {tls.cert} and key {tls.key} do not load "
                               f"({exc.strerror or exc})") from None
        if tls.ca is not None:
            try:
                context.load_verify_locations(str(tls.ca))
            except (OSError, ssl.SSLError) as exc:
                raise SpectacError(f"serve config: [tls] ca {tls.ca} does not load ({exc.strerror or exc})") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    # ---- completing series -------------------------------------------------------------------

    def _collect(self) -> None:
        while not self._stop.wait(0.2):
            self.collect_once()
            self.pool.revive(self.log)

    def collect_once(self) -> list[str]:
        """Turn every series quiet for ``complete_after`` seconds into a queued job; their ids."""
        made = []
        with self._lock:
            quiet = [s for s, t in self._last.items() if time.monotonic() - t >= self.config.complete_after]
            for series in quiet:
                made.append(self._make_job(series))
                del self._last[series]
                self._first.pop(series, None)
                self._last_wall.pop(series, None)
        return made

    def _make_job(self, series: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        job_id = f"{stamp}-{series[-40:]}"
        self.store.take_series(series, job_id)
        return self._write_new_job(job_id, series)

    def _write_new_job(self, job_id: str, series: str) -> str:
        files = list((self.store.job_folder(job_id) / "input").glob("*.dcm"))
        job = {"id": job_id, "status": QUEUED, "series_uid": series, "instances": len(files),
               "received_first": self._first.get(series), "received_last": self._last_wall.get(series) or now(),
               "queued": now()}
        self.store.write_job(job)
        self.store.mark(job_id, CORRECT)
        self.log(f"job {job_id}: queued ({len(files)} instances)")
        return job_id

    # ---- the workers ---------------------------------------------------------------------------

    def resume_worker(self) -> None:
        """Start the worker processes (a server configured with ``worker_paused`` only queues jobs)."""
        if not self.pool.processes:
            self.pool.start()

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers, which load the model (unless paused: a bad model fails here), resume
        unfinished jobs, pick up series left in incoming/, and listen.

        What can fail is checked before the work folder is made (the model, the TLS files, the
        port), so a node that does not start leaves nothing behind. The workers load the model
        while this process checks the rest (this process never loads PyTorch: it starts in a
        second, and receives undisturbed).

        Raises:
            SpectacError: a method or weights that do not load, TLS files that do not, a port that
                cannot be listened on, a work folder that cannot be made.
        """
        self.store.check_can_create()  # before the workers start: a bad work folder is one line
        if not self.config.worker_paused:
            self.pool.start()
        try:
            self._start(self._ssl_context())
        except BaseException:
            self.pool.terminate()  # killed: a step one of them took is resumed by the next start
            raise
        self._threads = [threading.Thread(target=self._collect, name="spectac-collect", daemon=True)]
        for thread in self._threads:
            thread.start()
        self.log(f"{self.config.ae_title} listening on {self.config.bind}:{self.config.port}, work folder {self.config.work}")

    def _start(self, ssl_context: ssl.SSLContext | None) -> None:
        _check_can_listen(self.config.bind, self.config.port)
        if not self.config.worker_paused:
            self.pool.wait_ready()
        self.store.create()
        for job_id in self.store.orphan_inputs():  # taken from incoming/ just before a stop
            self._write_new_job(job_id, job_id.partition("-")[2])
        for job in self.store.unfinished_jobs():
            self.log(f"job {job['id']}: resumed ({job['status']})")
        self.store.rebuild_queue()
        with self._lock:
            for series, mtime in self.store.incoming_series().items():
                self._last[series] = time.monotonic()  # a fresh quiet period: the peer may still be sending
                self._last_wall[series] = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="milliseconds")
        ae = AE(ae_title=self.config.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        if self.config.allowed_calling:
            ae.require_calling_aet = list(self.config.allowed_calling)
        try:
            self._server = ae.start_server((self.config.bind, self.config.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._on_store)], ssl_context=ssl_context)
        except OSError as exc:  # taken since the check
            raise SpectacError(_listen_error(self.config.bind, self.config.port, exc)) from None

    def stop(self) -> None:
        """Stop listening and let each worker finish its current step; queued steps stay queued."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join()
        self.pool.stop()

    def serve_forever(self) -> None:
        """Start and run until interrupted (Ctrl-C, SIGTERM turned into KeyboardInterrupt)."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            self.log("stopping")
        finally:
            self.stop()


def _listen_error(bind: str, port: int, exc: OSError) -> str:
    return f"serve config: cannot listen on {bind}:{port} ({exc.strerror or exc})"


def _check_can_listen(bind: str, port: int) -> None:
    """Refuse a port another program listens on (or an address this machine does not have) before
    anything is written; the probe socket is closed at once (as pynetdicom's server, it reuses the
    address, so a port in TIME_WAIT still counts as free).

    Raises:
        SpectacError: "serve config: cannot listen on HOST:PORT (Address already in use)".
    """
    try:
        with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((bind, port))
    except OSError as exc:
        raise SpectacError(_listen_error(bind, port, exc)) from None


def quiet_pynetdicom() -> None:
    """pynetdicom logs every association at INFO; a node's own log says what matters."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
