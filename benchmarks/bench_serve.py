"""Latency of ``spectac serve`` in front of a real PACS, and nothing lost across a kill.

Starts Orthanc (Debian package ``orthanc``) and ``spectac serve`` (a subprocess, the real command)
on free local ports, sends a burst of N small simulated NC studies (one NM multi-frame series each,
written by spectac's DICOM writer) and measures, per study, the time from the end of its last
C-STORE to its AC series appearing in Orthanc (REST API, polled every 0.1 s). Half-way through the
burst the node is killed (SIGKILL: no clean shutdown) and started again on the same work folder;
every study must still come back corrected, once.

The latency includes the quiet period after which a series counts as complete (``--complete-after``,
printed), the correction (one model load per worker process: the first studies after each start
pay it) and the C-STORE to Orthanc. The report (PDF and scores SR) follows each AC series as a later
step; its latency (last C-STORE to the report sent, from the audit log) is printed too.

    python benchmarks/bench_serve.py --studies 20 [--data DATASET] [--no-report] [--workers N]

With ``--data`` the burst is the NC images of a simulated dataset's test split (64^3, with an LV, so
each study's report and scores SR are made as for a patient); without it, small blobs (no LV).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
from pynetdicom import AE

from spectac.io.dataset import Dataset
from spectac.io.dicom import new_context, write_dicom_series
from spectac.volume import Volume


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data, timeout=5) as r:
        return json.loads(r.read())


def wait(check, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def nc_study(folder: Path, k: int, data: Dataset | None = None) -> tuple[str, pydicom.Dataset]:
    """Study k: a blob on a small 32 x 32 x 24 grid, or with ``data`` the NC image of the dataset's
    k-th test study (cycled; a 64^3 clinical-size study with an LV, so that the report is made
    in full), as one NM multi-frame series named after its state."""
    study = f"1.2.826.0.1.3680043.8.498.99{k}"
    if data is None:
        rng = np.random.default_rng(k)
        grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (32, 32, 24)], indexing="ij"))
        counts = (400 * np.exp(-4 * (grid**2).sum(0)) + rng.random((32, 32, 24)) * 20).astype(np.float32)
        volume, sex, state = Volume.centred(counts, (6.8, 6.8, 6.8)), "F", "stress"
    else:
        cases = data.split("test") or data.cases
        case = cases[k % len(cases)]
        volume, sex, state = data.load(case.case_id, "nc"), case.sex, case.state
    context = new_context(f"BENCH{k}", study, f"{study}.1", sex=sex)
    path = write_dicom_series(volume, context, folder / f"nc{k}.dcm", f"{state.upper()} IRNC",
                              derived=False, attenuation_corrected=False, uid_seed=f"bench{k}")
    return study, pydicom.dcmread(path)


def send(ds: pydicom.Dataset, port: int, timeout: float = 60.0) -> float:
    """C-STORE one instance to the node, retrying while it is down; the time it was stored."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ae = AE(ae_title="BENCHSCU")
        ae.add_requested_context(ds.SOPClassUID)
        assoc = ae.associate("127.0.0.1", port, ae_title="SPECTAC")
        if assoc.is_established:
            status = assoc.send_c_store(ds)
            assoc.release()
            if getattr(status, "Status", None) == 0x0000:
                return time.monotonic()
        time.sleep(0.2)
    raise SystemExit("the node did not take an instance")


def start_node(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "spectac.cli", "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("a"), start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--complete-after", type=float, default=2.0)
    parser.add_argument("--no-kill", action="store_true", help="skip the kill and restart half-way")
    parser.add_argument("--no-report", action="store_true", help="serve with report = false (the AC series only)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder, the logs and Orthanc's files "
                        "(printed) instead of removing them")
    parser.add_argument("--workers", type=int, help="the node's workers setting (default: its own default)")
    parser.add_argument("--data", type=Path, help="send the NC images of this simulated dataset's test split "
                        "(64^3 studies with an LV) instead of small blobs")
    args = parser.parse_args()
    orthanc = shutil.which("Orthanc")
    if orthanc is None:
        raise SystemExit("Orthanc is not installed (Debian: apt-get install orthanc)")
    root = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    dicom_port, http_port, node_port = free_port(), free_port(), free_port()
    (root / "orthanc.json").write_text(json.dumps({
        "Name": "bench", "DicomAet": "ORTHANC", "DicomPort": dicom_port, "HttpPort": http_port,
        "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"), "Plugins": [],
        "DicomModalities": {"spectac": ["SPECTAC", "127.0.0.1", node_port]},
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False}))
    (root / "serve.toml").write_text(
        f'ae_title = "SPECTAC"\nport = {node_port}\nwork = "work"\ncomplete_after = {args.complete_after}\n'
        f'report = {"false" if args.no_report else "true"}\n'
        + (f"workers = {args.workers}\n" if args.workers else "") +
        f'[[destinations]]\nae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {dicom_port}\n')
    pacs = subprocess.Popen([orthanc, str(root / "orthanc.json")], stdout=subprocess.DEVNULL,
                            stderr=(root / "orthanc.log").open("w"))
    node = start_node(root / "serve.toml", root / "serve.log")
    try:
        wait(lambda: http(http_port, "/system"), 30, "Orthanc")
        data = Dataset.open(args.data) if args.data else None
        studies = [nc_study(root, k, data) for k in range(args.studies)]
        sent: dict[str, float] = {}
        sent_wall: dict[str, datetime] = {}
        for k, (study, ds) in enumerate(studies):
            if k == args.studies // 2 and not args.no_kill:
                os.killpg(node.pid, signal.SIGKILL)  # mid-burst, whatever the node is doing
                node.wait()
                node = start_node(root / "serve.toml", root / "serve.log")
                print(f"killed and restarted the node after {k} studies", flush=True)
            sent[study] = send(ds, node_port)
            sent_wall[study] = datetime.now(UTC)
        back: dict[str, float] = {}

        def all_back():
            for study in sent.keys() - back.keys():
                found = http(http_port, "/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study},
                                                        "Expand": True})
                if any(s["MainDicomTags"].get("SeriesDescription", "").startswith("spectac AC") for s in found):
                    back[study] = time.monotonic()
            return len(back) == len(sent)

        wait(all_back, 60 + 10 * args.studies, "every AC series")
        latencies = sorted(back[s] - sent[s] for s in sent)

        def jobs_finished():  # a job is marked done just after Orthanc has the series
            jobs = [json.loads(p.read_text()) for p in sorted((root / "work" / "jobs").glob("*.json"))]
            return jobs if all(j["status"] in ("done", "failed", "skipped") for j in jobs) else None

        jobs = wait(jobs_finished, 60 + 10 * args.studies, "the jobs to be finished (their reports sent)")
        series = http(http_port, "/series")  # after the jobs: a report follows its AC series by a moment
        statuses = {j["status"] for j in jobs}
        audit = [json.loads(line) for line in (root / "work" / "audit.jsonl").read_text().splitlines()]

        def seconds(entry, a, b):
            return (datetime.fromisoformat(entry[b]) - datetime.fromisoformat(entry[a])).total_seconds()

        corrections = [e for e in audit if e["result"] == "done" and e.get("step", "correction") == "correction"]
        correcting = [seconds(e, "received", "corrected") for e in corrections]
        sending = [seconds(e, "corrected", "sent") for e in corrections]
        reports = {e["study_uid"]: e for e in audit if e.get("step") == "report" and e["result"] == "done"}
        reporting = sorted((datetime.fromisoformat(reports[s]["sent"]) - sent_wall[s]).total_seconds()
                           for s in sent if s in reports and reports[s].get("sent"))
        working = [seconds(j, "started", "corrected") for j in jobs if j["status"] == "done"]
        span = max(back.values()) - min(sent.values())
        print(f"studies {args.studies}, complete_after {args.complete_after} s, workers {args.workers or 'default'}, "
              f"kill+restart {'no' if args.no_kill else 'yes'}")
        print(f"latency last C-STORE -> AC in Orthanc: median {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s, min {min(latencies):.2f} s")
        print(f"from the audit log: last instance received -> corrected median {statistics.median(correcting):.2f} s "
              f"(queueing and model loads included), corrected -> sent median {statistics.median(sending):.2f} s")
        if reporting:
            print(f"latency last C-STORE -> report sent (audit log): median {statistics.median(reporting):.2f} s, "
                  f"max {max(reporting):.2f} s ({len(reporting)} reports)")
        print(f"correction alone (job started -> corrected) median {statistics.median(working):.2f} s; "
              f"throughput {60 * len(back) / span:.1f} studies/min (first C-STORE to last AC in Orthanc {span:.1f} s)")
        modalities = sorted(http(http_port, f"/series/{s}")["MainDicomTags"].get("Modality", "?") for s in series)
        for study in sent:  # every study's returned series: the AC series, and with reports the PDF and the SR
            found = http(http_port, "/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study},
                                                    "Expand": True})
            returned = sorted(s["MainDicomTags"].get("Modality", "?") for s in found)
            if returned != (["NM"] if args.no_report else ["DOC", "NM", "SR"]):
                job = next((j for j in jobs if j.get("study_uid") == study), {})
                print(f"study {study}: series {returned}; job {job.get('id')} {job.get('status')} "
                      f"report {job.get('report') is not None} sr {job.get('sr') is not None}; "
                      f"{ {k: v for k, v in job.items() if k in ('started', 'corrected', 'sent', 'reason')} }")
        kinds = {m: modalities.count(m) for m in dict.fromkeys(modalities)}
        print(f"Orthanc series returned: {len(series)} {kinds} (NM: the AC series; DOC: the report PDF; SR: the "
              f"scores); jobs {len(jobs)}, statuses {sorted(statuses)}; "
              f"audit lines {len(audit)}; lost: {args.studies - len(back)}")
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(30)
        pacs.terminate()
        pacs.wait(30)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
