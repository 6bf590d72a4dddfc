"""The files of ``spectac serve`` (:mod:`spectac.node`): received instances, the job queue, the audit log.

The work folder holds::

    incoming/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   instances as they arrive, one folder per series
    jobs/<job id>.json                                  one job per completed series (the queue)
    jobs/<job id>/input/                                the series' instances, moved out of incoming/
    jobs/<job id>/output/                               the corrected series, as sent
    jobs/<job id>/output.report.pdf                     the study report's PDF page
    jobs/<job id>/report/DOC000001.dcm                  the report as an Encapsulated PDF, as sent
    jobs/<job id>/report/SR000001.dcm                   the report's scores as a Comprehensive SR, as sent
    queue/<job id>.correct, queue/<job id>.report       a step waiting or running (empty files; the claims)
    audit.jsonl                                         one JSON line per finished step of a job

Every file appears whole or not at all (:mod:`spectac.io.atomic`): an instance or a job file is
written beside its name and renamed, so a server killed at any moment leaves either the old state or
the new one, and a restart resumes from the files alone (:func:`unfinished_jobs`). The audit log
is appended one line per write (opened for append, flushed and synced), so a line is never split.

The job files are the truth; ``queue/`` is an index of the steps to run, so that workers find them
without reading every job file, and the place they claim them. A worker claims a step by taking
an exclusive ``flock`` on its marker file (:meth:`NodeStore.claim`): the kernel gives it to one
open file only, in one process or across several, and releases it when the holder exits, however
it exits, so a killed worker's step is free again for the next start. A finished step's marker is
removed by its holder, under the lock. On start the index is rebuilt from the job files
(:meth:`NodeStore.rebuild_queue`), which mends a node killed between a job file and its marker.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from spectac.io.atomic import write_bytes_atomic, write_text_atomic
from spectac.io.paths import ensure_writable_parent
from spectac.volume import SpectacError

#: A UID as a file name: digits and dots only (anything else a peer sends is replaced).
_UNSAFE = re.compile(r"[^0-9A-Za-z.\-]")
#: Job states; the first two are unfinished and resumed on start.
#: Job states. queued, running and reporting are unfinished and resumed on start: reporting is a job
#: whose AC series went out and whose report is still to be made and sent.
QUEUED, RUNNING, REPORTING = "queued", "running", "reporting"
DONE, FAILED, SKIPPED = "done", "failed", "skipped"
#: The steps of a job, in the order a worker takes them: every waiting correction before any report.
CORRECT, REPORT = "correct", "report"
STEPS = (CORRECT, REPORT)


def now() -> str:
    """The time now, ISO 8601 in UTC (what the job files and the audit log record)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def safe_name(uid: str) -> str:
    """A UID fit to be a file name (a peer's UID is never trusted as a path)."""
    name = _UNSAFE.sub("_", str(uid).strip())[:128]
    return name if name.strip(".") else "unknown"


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict.

    Raises:
        SpectacError: a missing or malformed file, in one line.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpectacError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpectacError(f"{path}: a folder, not a TOML file") from None
    except OSError as exc:
        raise SpectacError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise SpectacError(f"{path}: not valid TOML (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpectacError(f"{path}: not valid TOML ({exc})") from None


class NodeStore:
    """The work folder of one DICOM node (see the module docstring for its layout); made by
    :meth:`create`, so that a node that fails to start leaves no folder behind."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.jobs = self.root / "jobs"
        self.queue = self.root / "queue"
        self.audit_path = self.root / "audit.jsonl"

    def check_can_create(self) -> None:
        """Refuse, before anything starts, a work folder that cannot be made or written (a file in
        its place, no permission); nothing is made.

        Raises:
            SpectacError: as :meth:`create` would.
        """
        ensure_writable_parent(self.root, folder=True)

    def create(self) -> None:
        """Make the work folder and its incoming/ and jobs/ (an existing one is kept as it is).

        Raises:
            SpectacError: the work folder cannot be made or written (a file in its place, no
                permission).
        """
        ensure_writable_parent(self.root, folder=True)
        for folder in (self.incoming, self.jobs, self.queue):
            folder.mkdir(parents=True, exist_ok=True)

    # ---- received instances ----------------------------------------------------------------

    def store_instance(self, series_uid: str, sop_uid: str, encoded: bytes) -> Path:
        """Write one received instance (a DICOM file's bytes) into its series' incoming folder."""
        path = self.incoming / safe_name(series_uid) / f"{safe_name(sop_uid)}.dcm"
        return write_bytes_atomic(path, encoded, suffix=".dcm")

    def incoming_series(self) -> dict[str, float]:
        """Series folders waiting in incoming/ and the time of their newest instance (mtime)."""
        found: dict[str, float] = {}
        for folder in sorted(self.incoming.iterdir()):
            files = [p for p in folder.glob("*.dcm") if not p.name.startswith(".")] if folder.is_dir() else []
            if files:
                found[folder.name] = max(p.stat().st_mtime for p in files)
        return found

    def take_series(self, series_name: str, job_id: str) -> Path:
        """Move a complete series from incoming/ to its job's input folder (one rename)."""
        target = self.job_folder(job_id) / "input"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.incoming / series_name, target)
        return target

    # ---- the job queue -----------------------------------------------------------------------

    def job_folder(self, job_id: str) -> Path:
        return self.jobs / safe_name(job_id)

    def write_job(self, job: dict[str, Any]) -> None:
        """Create or update a job file, atomically."""
        write_text_atomic(self.jobs / f"{safe_name(job['id'])}.json", json.dumps(job, indent=1, sort_keys=True))

    def read_job(self, job_id: str) -> dict[str, Any]:
        return json.loads((self.jobs / f"{safe_name(job_id)}.json").read_text())

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first (job ids start with their creation time)."""
        jobs = []
        for path in sorted(self.jobs.glob("*.json")):
            if not path.name.startswith("."):
                jobs.append(json.loads(path.read_text()))
        return jobs

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        """Jobs queued or interrupted while running, oldest first: what a restart resumes."""
        return [job for job in self.all_jobs() if job.get("status") in (QUEUED, RUNNING, REPORTING)]

    def orphan_inputs(self) -> list[str]:
        """Job folders with an input but no job file: a series taken from incoming/ by a node
        stopped before it wrote the job (the server writes the job for them on start)."""
        return [folder.name for folder in sorted(self.jobs.iterdir())
                if folder.is_dir() and (folder / "input").is_dir() and not (self.jobs / f"{folder.name}.json").exists()]

    def discard_output(self, job_id: str) -> None:
        """Remove a job's output and report written by a run that stopped before recording them
        (they are redone)."""
        folder = self.job_folder(job_id)
        shutil.rmtree(folder / "output", ignore_errors=True)
        shutil.rmtree(folder / "report", ignore_errors=True)
        self.discard_report(job_id)

    def discard_report(self, job_id: str) -> None:
        """Remove a job's report written by a run that stopped before recording it (it is redone)."""
        folder = self.job_folder(job_id)
        shutil.rmtree(folder / "report", ignore_errors=True)
        for name in ("output.report.html", "output.report.pdf"):
            (folder / name).unlink(missing_ok=True)

    def write_report_pdf(self, job_id: str, pdf: bytes) -> Path:
        """Keep the report's PDF page in the job folder (what the Encapsulated PDF holds)."""
        return write_bytes_atomic(self.job_folder(job_id) / "output.report.pdf", pdf, suffix=".pdf")

    def report_folder(self, job_id: str) -> Path:
        """Where a job's report goes as DICOM (an Encapsulated PDF and a scores SR instance)."""
        return self.job_folder(job_id) / "report"

    def report_files(self, job_id: str) -> list[Path]:
        """The report's DICOM files of a job (none when no report was written)."""
        folder = self.report_folder(job_id)
        return sorted(p for p in folder.glob("*.dcm") if p.is_file()) if folder.is_dir() else []

    def output_files(self, job_id: str) -> list[Path]:
        """The corrected series' files of a job, in name order."""
        folder = self.job_folder(job_id) / "output"
        return sorted(p for p in folder.rglob("*.dcm") if p.is_file()) if folder.is_dir() else []

    # ---- the steps to run and their claims ---------------------------------------------------

    def _marker(self, job_id: str, step: str) -> Path:
        return self.queue / f"{safe_name(job_id)}.{step}"

    def mark(self, job_id: str, step: str) -> None:
        """Put a job's step in the queue (an empty marker file; nothing if it is there)."""
        os.close(os.open(self._marker(job_id, step), os.O_WRONLY | os.O_CREAT, 0o644))

    def waiting(self) -> list[tuple[str, str]]:
        """(job id, step) of every step in the queue, claimed or not: every correction before any
        report, each oldest first (job ids start with their creation time)."""
        found = []
        if not self.queue.is_dir():  # a node still starting (workers are started before the folder is made)
            return []
        for path in self.queue.iterdir():
            job_id, _, step = path.name.rpartition(".")
            if step in STEPS and job_id:
                found.append((STEPS.index(step), job_id, step))
        return [(job_id, step) for _, job_id, step in sorted(found)]

    def claim(self, job_id: str, step: str) -> StepClaim | None:
        """Claim a step for this caller: an exclusive lock on its marker, or None when another
        worker holds it or it is finished (its marker gone, or replaced since it was opened)."""
        path = self._marker(job_id, step)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            current = os.stat(path).st_ino == os.fstat(fd).st_ino  # not removed by the holder we waited for
        except (BlockingIOError, FileNotFoundError):
            current = False
        if not current:
            os.close(fd)
            return None
        return StepClaim(job_id, step, path, fd)

    def claim_next(self) -> StepClaim | None:
        """The first step of :meth:`waiting` that no other worker holds, claimed; None: none."""
        for job_id, step in self.waiting():
            claim = self.claim(job_id, step)
            if claim is not None:
                return claim
        return None

    def rebuild_queue(self) -> None:
        """Make queue/ what the job files say (on start, before any worker runs): a correct marker
        for each queued or running job, a report marker for each reporting one, no other."""
        wanted = {(job["id"], CORRECT if job["status"] in (QUEUED, RUNNING) else REPORT)
                  for job in self.unfinished_jobs()}
        for path in self.queue.iterdir():
            job_id, _, step = path.name.rpartition(".")
            if (job_id, step) not in wanted:
                path.unlink(missing_ok=True)
        for job_id, step in wanted:
            self.mark(job_id, step)

    # ---- the audit log -------------------------------------------------------------------------

    def append_audit(self, entry: dict[str, Any]) -> None:
        """Append one JSON line to audit.jsonl (one write, flushed and synced)."""
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.audit_path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def audit(self) -> list[dict[str, Any]]:
        """Every audit entry, in the order written."""
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]


class StepClaim:
    """A claimed step (:meth:`NodeStore.claim`): :meth:`finish` takes it out of the queue,
    :meth:`release` leaves it there (for the next start); either frees the lock."""

    def __init__(self, job_id: str, step: str, path: Path, fd: int) -> None:
        self.job_id, self.step, self.path, self._fd = job_id, step, path, fd

    def finish(self) -> None:
        """The step is over (done, failed or not needed): remove its marker, then unlock."""
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_datasets(paths: list[Path]) -> list[Dataset]:
    """The DICOM files of a series as datasets, to send them."""
    return [pydicom.dcmread(p) for p in paths]
