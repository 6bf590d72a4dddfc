"""One job of ``spectac serve``: correct a received series and send the result on.

A job goes queued -> running -> done | failed | skipped, and every step is written to its job file
before the next begins (:class:`spectac.io.node_store.NodeStore`), so a restart resumes it: a job
whose output was already written is not corrected again, only sent. The correction is
:func:`spectac.correction.files.correct_path` with the method prepared once per process (the
network is loaded at the first job, not per study). A series spectac wrote, or one already
attenuation-corrected, is never corrected again: the job ends "skipped" with the refusal as reason
and nothing is sent.

With ``report`` on (the default), each corrected series also gets the study report of
``spectac correct --report`` (:mod:`spectac.evaluation.study_report`), sent with the series as a
DICOM Encapsulated PDF instance in the same study (a new series, Modality DOC;
:mod:`spectac.io.dicom.document`), and the report's scores as a Comprehensive SR instance (a new
series, Modality SR; :mod:`spectac.io.dicom.sr`); both are recorded in the job and the audit log.
The report's stress state is the configuration's ``state``: with "auto" (the default) the one the
series names (:func:`spectac.io.dicom.series_state`), else stress, assumed and said so.

Sending is C-STORE to every destination, each retried with back-off (:data:`config.DEFAULT_RETRY_DELAYS`);
a job is done when every destination took the series, failed otherwise. Each finished job adds one
line to the audit log with what a reviewer needs to trace a result to its input and model.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectac.correction.files import correct_path, prepare_method
from spectac.evaluation.study_report import StudyReporter, report_scores
from spectac.io.dicom import (
    DOCUMENT_FILE,
    SR_FILE,
    context_of_header,
    correction_refusal,
    read_dicom_header,
    read_encapsulated_pdf,
    read_scores_sr,
    series_state,
    write_encapsulated_pdf,
    write_scores_sr,
)
from spectac.io.node_store import DONE, FAILED, RUNNING, SKIPPED, NodeStore, read_datasets
from spectac.io.paths import sha256_file
from spectac.io.report_files import read_report_pdf
from spectac.node.config import Destination, ServeConfig
from spectac.node.scu import send_series
from spectac.quant.normals import NormalDatabase
from spectac.volume import SpectacError

#: A hook that adds files to send with the corrected series (besides the study report, sent when
#: ``report`` is on); gets the job and the output folder, returns the extra DICOM files. None: only
#: the corrected series (and its report) is sent.
AttachmentHook = Callable[[dict[str, Any], Path], list[Path]]


def now() -> str:
    """The time now, ISO 8601 in UTC (what the job files and the audit log record)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def spectac_version() -> str:
    try:
        from importlib.metadata import version

        return version("spectac")
    except Exception:  # noqa: BLE001 - a source tree without metadata
        return "unknown"


class Worker:
    """Runs jobs one at a time with one prepared correction method."""

    def __init__(self, config: ServeConfig, store: NodeStore, attachments: AttachmentHook | None = None,
                 log: Callable[[str], None] = lambda message: None) -> None:
        self.config = config
        self.store = store
        self.attachments = attachments
        self.log = log
        self._prepared: tuple[Any, dict[str, Any], Any] | None = None
        self._weights_hash: str | None = None
        self._normals: NormalDatabase | None = None

    def reporter(self, state: str | None, source: str) -> StudyReporter | None:
        """A job's study report builder (the normal limits loaded once per process) for its stress
        state (None: unknown, stress assumed) and where that came from; None when reports are off."""
        if not self.config.report:
            return None
        if self._normals is None:
            self._normals = NormalDatabase.load()
        return StudyReporter(state=state, normals=self._normals, state_source=source)

    def state_of(self, header: Any) -> tuple[str | None, str]:
        """(stress state, where it came from) of a series: the configuration's, or with "auto" the
        series' own (:func:`spectac.io.dicom.series_state`); None when unknown (stress assumed)."""
        if self.config.state != "auto":
            return self.config.state, f'set in the serve configuration (state = "{self.config.state}")'
        state, source = series_state(header)
        if state is None:
            return None, f'{source}: stress assumed (state = "rest" in the serve configuration for rest studies)'
        return state, source

    def prepared(self) -> tuple[Any, dict[str, Any], Any]:
        """The correction method, prepared at the first call (the network is loaded once)."""
        if self._prepared is None:
            options: dict[str, Any] = {}
            if self.config.weights is not None:
                options["weights"] = str(self.config.weights)
            self._prepared = prepare_method(self.config.method, device=self.config.device, **options)
            path = getattr(self._prepared[2], "path", None)
            self._weights_hash = sha256_file(path) if path is not None and Path(path).is_file() else None
        return self._prepared

    def model_facts(self) -> dict[str, Any]:
        state = self.prepared()[2]
        path = getattr(state, "path", None)
        return {"method": self.config.method, "model": getattr(state, "name", self.config.method),
                "weights": str(path) if path is not None else None, "weights_sha256": self._weights_hash,
                "spectac_version": spectac_version()}

    def _finish(self, job: dict[str, Any], status: str, reason: str = "") -> dict[str, Any]:
        job.update(status=status, reason=reason, finished=now())
        self.store.write_job(job)
        facts = job.get("model") or (self.model_facts() if self._prepared is not None else {"method": self.config.method})
        self.store.append_audit({
            "job": job["id"], "result": status, "reason": reason,
            "study_uid": job.get("study_uid"), "series_uid": job.get("series_uid"),
            "output_series_uid": job.get("output_series_uid"),
            "model": facts.get("model"), "method": facts.get("method"),
            "spectac_version": facts.get("spectac_version", spectac_version()),
            "weights_sha256": facts.get("weights_sha256"),
            "received": job.get("received_last"), "corrected": job.get("corrected"), "sent": job.get("sent"),
            "ood_flags": job.get("ood_flags", []), "uncertainty": job.get("uncertainty"),
            "destinations": job.get("destinations", {}),
            "instances": job.get("instances"), "report": job.get("report"), "sr": job.get("sr"),
            "state": job.get("state"), "state_source": job.get("state_source"),
        })
        self.log(f"job {job['id']}: {status}{': ' + reason if reason else ''}")
        return job

    def run(self, job_id: str) -> dict[str, Any]:
        """Run (or resume) one job to its end; returns the finished job."""
        job = self.store.read_job(job_id)
        job.update(status=RUNNING, started=job.get("started") or now())
        self.store.write_job(job)
        folder = self.store.job_folder(job_id)
        source, output = folder / "input", folder / "output"
        try:
            header = read_dicom_header(source)
            job.update(study_uid=str(header.header.get("StudyInstanceUID", "")),
                       series_uid=str(header.header.get("SeriesInstanceUID", "")) or job.get("series_uid"))
            refusal = correction_refusal(header.header)
            if refusal is not None:
                return self._finish(job, SKIPPED, f"{refusal}; not corrected again")
            if not (job.get("corrected") and output.is_dir()):  # a resumed job keeps its recorded output
                self.store.discard_output(job_id)  # written by a run stopped before it recorded it
                job["model"] = self.model_facts()
                state, state_source = self.state_of(header.header)
                job.update(state=state or "stress", state_source=state_source)
                reporter = self.reporter(state, state_source)
                summary = correct_path(source, output, self.config.method, prepared=self.prepared(),
                                       report=reporter)
                if summary.get("report") and reporter is not None and reporter.report is not None:
                    folder = self.store.report_folder(job_id)
                    job["report"] = self._encapsulate(header, summary["report"][1], folder)
                    job["sr"] = self._scores_sr(header, report_scores(reporter.report), folder / SR_FILE)
                job.update(corrected=now(), ood_flags=summary["ood_flags"], uncertainty=summary.get("uncertainty"),
                           output_series_uid=str(read_dicom_header(output).header.get("SeriesInstanceUID", "")))
                self.store.write_job(job)
        except SpectacError as exc:
            return self._finish(job, FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug or a full disk fails this job, not every restart
            return self._finish(job, FAILED, f"internal error: {exc!r}")
        files = self.store.output_files(job_id) + self.store.report_files(job_id)
        if self.attachments is not None:
            files += self.attachments(job, output)
        return self._send(job, files)

    @staticmethod
    def _encapsulate(header: Any, pdf_path: Path, folder: Path) -> dict[str, Any]:
        """The report PDF as an Encapsulated PDF instance in the input's study (a new DOC series);
        what the job and the audit log record of it."""
        pdf = read_report_pdf(pdf_path)
        written = write_encapsulated_pdf(pdf, context_of_header(header), folder)
        stored, ds = read_encapsulated_pdf(written / DOCUMENT_FILE)
        if stored != pdf:
            raise SpectacError(f"{written}: the encapsulated report differs from {pdf_path}")
        return {"series_uid": str(ds.SeriesInstanceUID), "sop_instance_uid": str(ds.SOPInstanceUID),
                "pdf_sha256": hashlib.sha256(pdf).hexdigest()}

    @staticmethod
    def _scores_sr(header: Any, scores: dict[str, Any], path: Path) -> dict[str, Any]:
        """The report's scores as a Comprehensive SR instance beside the PDF (the same study, its
        own SR series); what the job and the audit log record of it."""
        write_scores_sr(scores, context_of_header(header), path)
        stored, ds = read_scores_sr(path)
        if stored["images"] != scores["images"]:
            raise SpectacError(f"{path}: the scores SR does not read back as written")
        return {"series_uid": str(ds.SeriesInstanceUID), "sop_instance_uid": str(ds.SOPInstanceUID)}

    def _send(self, job: dict[str, Any], files: list[Path]) -> dict[str, Any]:
        results: dict[str, Any] = job.setdefault("destinations", {})
        datasets = read_datasets(files)
        for destination in self.config.destinations:
            label = destination.label()
            if results.get(label, {}).get("result") == "sent":  # sent before a restart
                continue
            results[label] = self._send_with_retries(destination, datasets)
            self.store.write_job(job)
        if not self.config.destinations:
            return self._finish(job, DONE, "no destinations configured; the result is in the work folder")
        failed = [label for label, r in results.items() if r["result"] != "sent"]
        job["sent"] = now() if len(failed) < len(results) else None
        if failed:
            return self._finish(job, FAILED, "could not send to " + ", ".join(failed))
        return self._finish(job, DONE)

    def _send_with_retries(self, destination: Destination, datasets: list[Any]) -> dict[str, Any]:
        delays = [0.0, *self.config.retry_delays]
        error = ""
        for attempt, delay in enumerate(delays, start=1):
            time.sleep(delay)
            try:
                send_series(self.config, destination, datasets)
            except (SpectacError, OSError) as exc:
                error = str(exc)
                self.log(f"send to {destination.label()} failed (try {attempt}/{len(delays)}): {error}")
                continue
            return {"result": "sent", "tries": attempt, "time": now()}
        return {"result": "failed", "tries": len(delays), "error": error, "time": now()}
