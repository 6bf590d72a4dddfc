"""One job of ``spectac serve``: correct a received series, send the AC series on, then its report.

A job has two steps, run by :meth:`Worker.correct` and :meth:`Worker.report` (a worker process
takes them from the queue, :mod:`spectac.node.pool`). It goes queued -> running -> reporting ->
done, or ends failed or skipped, and every state is written to its job file before the next
begins (:class:`spectac.io.node_store.NodeStore`), so a restart resumes it: a job whose output
was already written is not corrected again, only sent; a destination that took a series is not
sent it again; a job whose AC series went out (``reporting``) only gets its report. The correction
is :func:`spectac.correction.files.correct_path` with the method prepared once per process (the
network is loaded once, not per study). A series spectac wrote, or one already
attenuation-corrected, is never corrected again: the job ends "skipped" with the refusal as reason
and nothing is sent.

With ``report`` on (the default), each corrected series also gets the study report of
``spectac correct --report`` (:mod:`spectac.evaluation.study_report`), made after the AC series
went out (what the reader waits for first) from the input and the AC series as sent, and sent as
a DICOM Encapsulated PDF instance in the same study (a new series, Modality DOC;
:mod:`spectac.io.dicom.document`) with the report's scores as a Comprehensive SR instance (a new
series, Modality SR; :mod:`spectac.io.dicom.sr`); both are recorded in the job and the audit log.
Only the PDF page is drawn (the HTML page of ``spectac correct --report`` is not sent, so not made).
The report's stress state is the configuration's ``state``: with "auto" (the default) the one the
series names (:func:`spectac.io.dicom.series_state`), else stress, assumed and said so.

Sending is C-STORE to every destination, each retried with back-off (:data:`config.DEFAULT_RETRY_DELAYS`);
a step is done when every destination took its files, failed otherwise. Each finished step adds one
line to the audit log (``step``: "correction" or "report") with what a reviewer needs to trace a
result to its input and model.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spectac.correction.files import correct_path, prepare_method, report_facts
from spectac.evaluation.study_report import StudyReporter, report_scores
from spectac.io.dicom import (
    DOCUMENT_FILE,
    SR_FILE,
    context_of_header,
    correction_refusal,
    read_dicom_header,
    read_dicom_volume,
    read_encapsulated_pdf,
    read_scores_sr,
    series_state,
    write_encapsulated_pdf,
    write_scores_sr,
)
from spectac.io.node_store import (
    CORRECT,
    DONE,
    FAILED,
    QUEUED,
    REPORTING,
    RUNNING,
    SKIPPED,
    NodeStore,
    now,
    read_datasets,
)
from spectac.io.paths import sha256_file
from spectac.node.config import Destination, ServeConfig
from spectac.node.scu import send_series
from spectac.quant.normals import NormalDatabase
from spectac.volume import SpectacError

#: A hook that adds files to send with the corrected series (besides the study report, sent when
#: ``report`` is on); gets the job and the output folder, returns the extra DICOM files. None: only
#: the corrected series (and its report) is sent.
AttachmentHook = Callable[[dict[str, Any], Path], list[Path]]


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

    def normals(self) -> NormalDatabase:
        """The shipped normal limits, loaded once per process."""
        if self._normals is None:
            self._normals = NormalDatabase.load()
        return self._normals

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

    def _audit(self, job: dict[str, Any], step: str, result: str, reason: str, **fields: Any) -> None:
        facts = job.get("model") or (self.model_facts() if self._prepared is not None else {"method": self.config.method})
        self.store.append_audit({
            "job": job["id"], "step": step, "result": result, "reason": reason,
            "study_uid": job.get("study_uid"), "series_uid": job.get("series_uid"),
            "output_series_uid": job.get("output_series_uid"),
            "model": facts.get("model"), "method": facts.get("method"),
            "spectac_version": facts.get("spectac_version", spectac_version()),
            "weights_sha256": facts.get("weights_sha256"),
            "state": job.get("state"), "state_source": job.get("state_source"), **fields,
        })
        self.log(f"job {job['id']}: {step} {result}{': ' + reason if reason else ''}")

    def _finish_correction(self, job: dict[str, Any], status: str, reason: str = "") -> dict[str, Any]:
        """End the correction step: the job's state (reporting when the report follows), then its
        audit line (step "correction")."""
        job.update(status=status, reason=reason)
        if status != REPORTING:
            job["finished"] = now()
        self.store.write_job(job)
        self._audit(job, "correction", DONE if status == REPORTING else status, reason,
                    received=job.get("received_last"), corrected=job.get("corrected"), sent=job.get("sent"),
                    ood_flags=job.get("ood_flags", []), uncertainty=job.get("uncertainty"),
                    destinations=job.get("destinations", {}), instances=job.get("instances"),
                    report_follows=status == REPORTING)
        return job

    def _finish_report(self, job: dict[str, Any], status: str, reason: str = "") -> dict[str, Any]:
        """End the report step and so the job; its audit line (step "report")."""
        job.update(status=status, reason=reason, finished=now())
        self.store.write_job(job)
        self._audit(job, "report", status, reason, report=job.get("report"), sr=job.get("sr"),
                    reported=job.get("reported"), sent=job.get("report_sent"),
                    destinations=job.get("report_destinations", {}))
        return job

    def run(self, job_id: str) -> dict[str, Any]:
        """Run (or resume) one job to its end, both steps; returns the finished job."""
        job = self.correct(job_id)
        return self.report(job_id) if job["status"] == REPORTING else job

    def run_step(self, job_id: str, step: str) -> dict[str, Any]:
        """Run (or resume) one step of a job (:data:`spectac.io.node_store.STEPS`)."""
        return self.correct(job_id) if step == CORRECT else self.report(job_id)

    def correct(self, job_id: str) -> dict[str, Any]:
        """The first step: correct the series and send the AC series (with what the attachment
        hook adds). The job is then ``reporting`` when the report follows, else finished. A job past
        this step is returned as it is."""
        job = self.store.read_job(job_id)
        if job.get("status") not in (QUEUED, RUNNING):
            return job
        job.update(status=RUNNING, started=job.get("started") or now(), worker=os.getpid())
        self.store.write_job(job)
        folder = self.store.job_folder(job_id)
        source, output = folder / "input", folder / "output"
        try:
            header = read_dicom_header(source)
            job.update(study_uid=str(header.header.get("StudyInstanceUID", "")),
                       series_uid=str(header.header.get("SeriesInstanceUID", "")) or job.get("series_uid"))
            refusal = correction_refusal(header.header)
            if refusal is not None:
                return self._finish_correction(job, SKIPPED, f"{refusal}; not corrected again")
            if not (job.get("corrected") and output.is_dir()):  # a resumed job keeps its recorded output
                self.store.discard_output(job_id)  # written by a run stopped before it recorded it
                job["model"] = self.model_facts()
                state, state_source = self.state_of(header.header)
                job.update(state=state or "stress", state_source=state_source)
                summary = correct_path(source, output, self.config.method, prepared=self.prepared())
                job.update(corrected=now(), ood_flags=summary["ood_flags"], uncertainty=summary.get("uncertainty"),
                           output_series_uid=str(read_dicom_header(output).header.get("SeriesInstanceUID", "")))
                self.store.write_job(job)
        except SpectacError as exc:
            return self._finish_correction(job, FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug or a full disk fails this job, not every restart
            return self._finish_correction(job, FAILED, f"internal error: {exc!r}")
        files = self.store.output_files(job_id)
        if self.attachments is not None:
            files += self.attachments(job, output)
        failed = self._send(job, files, "destinations")
        next_status = REPORTING if self.config.report else DONE
        if not self.config.destinations:
            return self._finish_correction(job, next_status, "no destinations configured; the result is in the work folder")
        job["sent"] = now() if len(failed) < len(self.config.destinations) else None
        if failed:
            return self._finish_correction(job, FAILED, "could not send to " + ", ".join(failed))
        return self._finish_correction(job, next_status)

    def report(self, job_id: str) -> dict[str, Any]:
        """The second step, once the AC series went out: make the study report from the input and
        the AC series as sent (the PDF page only: nothing is sent of the HTML page), write it as
        an Encapsulated PDF and its scores as an SR, and send both. A report already recorded (a
        resumed job) is sent as it is, to the destinations that did not take it. A job not
        ``reporting`` is returned as it is."""
        job = self.store.read_job(job_id)
        if job.get("status") != REPORTING:
            return job
        if not self.config.report:  # turned off in the configuration since the AC series went out
            return self._finish_report(job, DONE, "report = false in the serve configuration: no report")
        job["report_worker"] = os.getpid()
        folder = self.store.job_folder(job_id)
        source, output = folder / "input", folder / "output"
        try:
            if not (job.get("report") and job.get("sr") and len(self.store.report_files(job_id)) == 2):
                self.store.discard_report(job_id)  # written by a run stopped before it recorded it
                header = read_dicom_header(source)
                nc, context = read_dicom_volume(source)
                corrected, _ = read_dicom_volume(output)
                facts = report_facts(source, self.config.method, self.prepared()[2], job.get("ood_flags", []),
                                     None, context)
                reporter = StudyReporter(state=job.get("state"), normals=self.normals(),
                                         state_source=job.get("state_source") or "")
                pdf = reporter.pdf(nc, corrected, {**facts, "uncertainty": job.get("uncertainty")})
                self.store.write_report_pdf(job_id, pdf)
                report_folder = self.store.report_folder(job_id)
                job["report"] = self._encapsulate(header, pdf, report_folder)
                job["sr"] = self._scores_sr(header, report_scores(reporter.report), report_folder / SR_FILE)
                job["reported"] = now()
                self.store.write_job(job)
        except SpectacError as exc:
            return self._finish_report(job, FAILED, f"the AC series was sent; no report: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug fails this report, not every restart
            return self._finish_report(job, FAILED, f"the AC series was sent; no report: internal error: {exc!r}")
        failed = self._send(job, self.store.report_files(job_id), "report_destinations")
        if self.config.destinations:
            job["report_sent"] = now() if len(failed) < len(self.config.destinations) else None
        if failed:
            return self._finish_report(job, FAILED, "the AC series was sent; could not send the report to "
                                       + ", ".join(failed))
        return self._finish_report(job, DONE)

    @staticmethod
    def _encapsulate(header: Any, pdf: bytes, folder: Path) -> dict[str, Any]:
        """The report PDF as an Encapsulated PDF instance in the input's study (a new DOC series);
        what the job and the audit log record of it."""
        written = write_encapsulated_pdf(pdf, context_of_header(header), folder)
        stored, ds = read_encapsulated_pdf(written / DOCUMENT_FILE)
        if stored != pdf:
            raise SpectacError(f"{written}: the encapsulated report differs from the PDF made")
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

    def _send(self, job: dict[str, Any], files: list[Path], key: str) -> list[str]:
        """Send ``files`` to every destination that has not taken them (``job[key]`` records each
        destination's result, written after each); the labels of those that failed."""
        results: dict[str, Any] = job.setdefault(key, {})
        datasets = read_datasets(files)
        for destination in self.config.destinations:
            label = destination.label()
            if results.get(label, {}).get("result") == "sent":  # sent before a restart
                continue
            results[label] = self._send_with_retries(destination, datasets)
            self.store.write_job(job)
        return [label for label, r in results.items() if r["result"] != "sent"]

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
