"""``spectac serve`` against a real PACS: Orthanc (Debian package ``orthanc``) on free local ports.

An NC series sent to spectac (pynetdicom SCU) comes back to Orthanc as an AC series of the same
study, with the study report as an Encapsulated PDF instance (Modality DOC) and its scores as a
Comprehensive SR instance (Modality SR) of that study; spectac's own output sent to it is skipped and not returned; a job queued by a server that is
then stopped is resumed by the next one; a calling AE title not in the list is refused. The job
files and the audit log are checked against what Orthanc holds and the weights file's own hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_helpers import blob_volume
from pynetdicom import AE
from quant_shapes import draw_shell, shell_geometry
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.files import correct_path
from spectac.errors import SpectacError
from spectac.io.dicom import new_context, read_dicom_volume, scores_of_dataset, write_dicom_series
from spectac.io.node_store import NodeStore
from spectac.node.config import Destination, config_from_dict
from spectac.node.pool import WorkerPool
from spectac.node.scu import send_series
from spectac.node.server import Server, quiet_pynetdicom
from spectac.quant.normals import NormalDatabase
from spectac.quant.study import quantify
from spectac.volume import Volume

ORTHANC = shutil.which("Orthanc")
needs_orthanc = pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed (Debian: apt-get install orthanc); "
                                "spectac serve is tested against a real PACS only")
NC = {"derived": False, "attenuation_corrected": False}
TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[1]


def routing_lua() -> str:
    """The Orthanc routing rule docs/serve.md gives sites (its Lua block), so the doc is what runs."""
    doc = (ROOT / "docs" / "serve.md").read_text()
    return doc.split("```lua\n", 1)[1].split("```", 1)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Orthanc:
    def __init__(self, root: Path, serve_port: int) -> None:
        self.dicom_port, self.http_port = free_port(), free_port()
        (root / "route.lua").write_text(routing_lua())
        config = {
            "Name": "spectac-test", "DicomAet": "ORTHANC", "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
            "DicomModalities": {"spectac": ["SPECTAC", "127.0.0.1", serve_port]},
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
            "LuaScripts": [str(root / "route.lua")],
        }
        (root / "orthanc.json").write_text(json.dumps(config))
        self.process = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=subprocess.DEVNULL,
                                        stderr=(root / "orthanc.log").open("w"))
        wait_for("Orthanc to start", self._up, 30)

    def _up(self) -> bool:
        try:
            self.get("/system")
        except OSError:
            return False
        return True

    def get(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", data, timeout=5) as r:
            return json.loads(r.read())

    def series_of(self, study_uid: str) -> list[dict[str, str]]:
        found = self.get("/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study_uid}, "Expand": True})
        return [s["MainDicomTags"] for s in found]

    def instances_of(self, study_uid: str, modality: str) -> list[pydicom.Dataset]:
        """The stored DICOM files of a study's series of one modality, as Orthanc returns them."""
        found = self.get("/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study_uid}, "Expand": True})
        datasets = []
        for series in found:
            if series["MainDicomTags"].get("Modality") == modality:
                for instance in series["Instances"]:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/instances/{instance}/file",
                                                timeout=5) as r:
                        datasets.append(pydicom.dcmread(io.BytesIO(r.read())))
        return datasets

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[tuple[Orthanc, int]]:
    serve_port = free_port()
    pacs = Orthanc(tmp_path_factory.mktemp("orthanc"), serve_port)
    yield pacs, serve_port
    pacs.stop()


def serve_config(work: Path, port: int, pacs: Orthanc, **extra: Any):
    return config_from_dict({
        "ae_title": "SPECTAC", "port": port, "work": str(work), "allowed_calling": ["TESTSCU", "ORTHANC"],
        "destinations": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs.dicom_port}],
        "complete_after": 1.0, "retry_delays": [0.5, 1.0], "workers": 1, **extra})


def heart_volume(seed: int) -> Volume:
    """A small NC-like study with an LV the quantification finds (a shell in a torso, in counts), with
    a perfusion defect so that its scores are not zero."""
    volume = draw_shell(shell_geometry((1, -1, -1), (15, -10, 0)), shape=(40, 40, 40), torso=True, seed=seed,
                        defect=(30, 120, 0.3, 0.9, 0.4))
    return volume.with_array(volume.array * 300.0)


def nc_series(folder: Path, n: int, kind: str = "nm-multiframe", description: str = "STRESS IRNC",
              heart: bool = False) -> tuple[str, list[Path]]:
    """A small simulated NC study written by spectac's own writer: its study UID and files (a blob,
    or with ``heart`` an LV the report scores)."""
    study = f"1.2.826.0.1.3680043.8.498.70{n}"
    context = new_context(f"SERVE{n}", study, f"{study}.1", sex="F", kind=kind)
    volume = heart_volume(n) if heart else blob_volume(shape=(32, 32, 24), seed=n)
    out = write_dicom_series(volume, context, folder / f"nc{n}", description, uid_seed=f"serve{n}", **NC)
    return study, sorted(out.rglob("*.dcm"))


def send(files: list[Path], port: int, calling: str = "TESTSCU") -> bool:
    """C-STORE files to spectac; False if the association is refused."""
    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title=calling)
    for uid in {str(ds.SOPClassUID) for ds in datasets}:
        ae.add_requested_context(uid)
    assoc = ae.associate("127.0.0.1", port, ae_title="SPECTAC")
    if not assoc.is_established:
        return False
    try:
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    return True


def finished_job(store: NodeStore, series_uid: str) -> dict[str, Any] | None:
    for job in store.all_jobs():
        if job.get("series_uid") == series_uid and job["status"] in ("done", "failed", "skipped"):
            return job
    return None


@pytest.fixture(scope="module")
def node(orthanc, tmp_path_factory) -> Iterator[tuple[Server, Orthanc, int]]:
    pacs, port = orthanc
    quiet_pynetdicom()
    server = Server(serve_config(tmp_path_factory.mktemp("serve"), port, pacs))
    server.start()
    yield server, pacs, port
    server.stop()


@needs_orthanc
def test_an_nc_series_comes_back_to_the_pacs_corrected_with_an_audit_line(node, tmp_path):
    server, pacs, port = node
    study, files = nc_series(tmp_path, 1, kind="slices", heart=True)
    assert len(files) > 1
    assert send(files, port)
    series_uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    job = wait_for("the job to finish", lambda: finished_job(server.store, series_uid))
    assert job["status"] == "done", job
    assert job["instances"] == len(files)
    corrected = wait_for("the AC series in Orthanc", lambda: [s for s in pacs.series_of(study)
                                                              if s.get("SeriesInstanceUID") == job["output_series_uid"]])
    assert corrected[0]["SeriesDescription"].startswith("spectac AC")
    assert all(s["SeriesInstanceUID"] != series_uid for s in pacs.series_of(study))  # the NC series is not echoed
    entry, reported = [e for e in server.store.audit() if e["job"] == job["id"]]
    assert (entry["step"], reported["step"], entry["report_follows"]) == ("correction", "report", True)
    weights = Path(job["model"]["weights"])
    assert entry["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (entry["study_uid"], entry["series_uid"], entry["result"]) == (study, series_uid, "done")
    assert entry["model"] == "unet-gan3d-chang" and entry["spectac_version"]
    assert entry["received"] <= entry["corrected"] <= entry["sent"]
    assert entry["ood_flags"] == job["ood_flags"]
    assert entry["uncertainty"] == job["uncertainty"] and entry["uncertainty"]["partner"] == "unet-gan3d"
    assert entry["destinations"][f"ORTHANC@127.0.0.1:{pacs.dicom_port}"]["result"] == "sent"
    # the study report came with it: an Encapsulated PDF in the same study, as the job recorded it
    (report,) = wait_for("the report in Orthanc", lambda: pacs.instances_of(study, "DOC"))
    assert report.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert report.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert report.StudyInstanceUID == study and report.PatientID == "SERVE1"
    assert report.SeriesInstanceUID not in (series_uid, job["output_series_uid"])
    pdf = bytes(report.EncapsulatedDocument)[: int(report.EncapsulatedDocumentLength)]
    assert pdf.startswith(b"%PDF")
    assert reported["report"] == job["report"] and reported["result"] == "done"
    assert (reported["report"]["sop_instance_uid"], reported["report"]["series_uid"]) == (report.SOPInstanceUID,
                                                                                          report.SeriesInstanceUID)
    assert reported["report"]["pdf_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert entry["sent"] <= reported["reported"] <= reported["sent"]  # the AC series went out first
    # and its scores as a Comprehensive SR in the same study, with the TPD the report shows
    (sr,) = wait_for("the scores SR in Orthanc", lambda: pacs.instances_of(study, "SR"))
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and sr.StudyInstanceUID == study
    assert sr.SeriesInstanceUID not in (series_uid, job["output_series_uid"], report.SeriesInstanceUID)
    assert reported["sr"] == job["sr"] == {"series_uid": sr.SeriesInstanceUID, "sop_instance_uid": sr.SOPInstanceUID}
    scores = scores_of_dataset(sr)
    assert_scores_are_the_images(scores, server.store, job, "stress")
    assert scores["state"] == entry["state"] == "stress" and "SeriesDescription 'STRESS IRNC'" in entry["state_source"]


@needs_orthanc
def test_spectacs_own_output_sent_back_is_skipped_and_not_returned(node, tmp_path):
    server, pacs, port = node
    _, files = nc_series(tmp_path, 2)
    own = correct_path(files[0], tmp_path / "ac.dcm", "chang", uid_seed="own")["output"]
    ds = pydicom.dcmread(own)
    assert send([own], port)
    job = wait_for("the job to finish", lambda: finished_job(server.store, str(ds.SeriesInstanceUID)))
    assert job["status"] == "skipped" and "spectac wrote" in job["reason"], job
    assert pacs.series_of(str(ds.StudyInstanceUID)) == []
    assert [e["result"] for e in server.store.audit() if e["job"] == job["id"]] == ["skipped"]


@needs_orthanc
def test_the_documented_orthanc_rule_routes_nc_to_spectac_and_the_ac_series_comes_back_once(node, tmp_path):
    """PACS-first: the NC series is stored in Orthanc, whose Lua rule (docs/serve.md) forwards it to
    spectac; the AC series that comes back is not forwarded again (no loop)."""
    server, pacs, _ = node
    study, files = nc_series(tmp_path, 5)
    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(str(datasets[0].SOPClassUID))
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title="ORTHANC")
    assert assoc.is_established
    assert all(assoc.send_c_store(ds).Status == 0x0000 for ds in datasets)
    assoc.release()
    series_uid = str(datasets[0].SeriesInstanceUID)
    job = wait_for("the routed job to finish", lambda: finished_job(server.store, series_uid))
    assert job["status"] == "done", job
    wait_for("the AC series, the report and the SR in Orthanc", lambda: len(pacs.series_of(study)) == 4)
    time.sleep(2 * server.config.complete_after + 1)  # time enough for a loop to show
    assert sorted(s["SeriesInstanceUID"] for s in pacs.series_of(study)) == sorted(
        [series_uid, job["output_series_uid"], job["report"]["series_uid"], job["sr"]["series_uid"]])
    assert [j["status"] for j in server.store.all_jobs() if j.get("study_uid") == study] == ["done"]


@needs_orthanc
def test_a_calling_ae_title_not_listed_is_refused(node, tmp_path):
    _, _, port = node
    _, files = nc_series(tmp_path, 3)
    assert not send(files, port, calling="STRANGER")


@needs_orthanc
def test_a_job_queued_when_the_server_stops_is_resumed_by_the_next(orthanc, tmp_path):
    pacs, _ = orthanc
    port = free_port()  # Orthanc's spectac modality is not used here: spectac only sends
    study, files = nc_series(tmp_path, 4)
    series_uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    first = Server(serve_config(tmp_path / "work", port, pacs, worker_paused=True))
    first.start()
    try:
        assert send(files, port)
        wait_for("the job to be queued", lambda: first.store.all_jobs())
    finally:
        first.stop()
    (job,) = NodeStore(tmp_path / "work").all_jobs()
    assert job["status"] == "queued" and pacs.series_of(study) == []
    # as if a run had been killed after writing its output but before recording it: redone, not sent
    leftover = NodeStore(tmp_path / "work").job_folder(job["id"]) / "output"
    leftover.mkdir()
    (leftover / "stale.dcm").write_bytes(b"not the corrected series")
    stale_report = leftover.parent / "report"
    stale_report.mkdir()
    (stale_report / "stale.dcm").write_bytes(b"not the report")
    second = Server(serve_config(tmp_path / "work", port, pacs))
    second.start()
    try:
        done = wait_for("the resumed job to finish", lambda: finished_job(second.store, series_uid))
    finally:
        second.stop()
    assert done["id"] == job["id"] and done["status"] == "done", done
    assert sorted(s["SeriesInstanceUID"] for s in pacs.series_of(study)) == sorted(
        [done["output_series_uid"], done["report"]["series_uid"], done["sr"]["series_uid"]])
    assert not (leftover / "stale.dcm").exists() and not (stale_report / "stale.dcm").exists()


def test_a_bad_configuration_fails_at_start_in_one_line(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text('ae_title = "SPECTAC"\nport = 11112\nwork = "work"\ndestination = []\n')
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and "unknown setting(s) destination" in result.output, result.output
    config.write_text('ae_title = "SPECTAC"\nport = 70000\nwork = "work"\n')
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and "port" in result.output, result.output
    relative = config_from_dict({"ae_title": "A", "port": 104, "work": "w", "weights": "m/best.pt"}, tmp_path)
    assert (relative.work, relative.weights, relative.bind) == (tmp_path / "w", tmp_path / "m" / "best.pt", "127.0.0.1")
    assert relative.report is True  # the study report is sent unless turned off
    assert config_from_dict({"ae_title": "A", "port": 104, "work": "w", "report": False}).report is False
    with pytest.raises(SpectacError, match="report is true or false"):
        config_from_dict({"ae_title": "A", "port": 104, "work": "w", "report": "yes"})


def test_a_node_that_cannot_start_says_why_in_one_line_and_makes_no_work_folder(tmp_path, monkeypatch):
    """Whatever stops the start (the method, the weights, the TLS files, a taken port, a work
    folder that is a file, a config that is a folder or not UTF-8) is found before the work folder
    is made: one line, exit 2, nothing left behind."""
    work = tmp_path / "work"
    base = f'ae_title = "SPECTAC"\nwork = "{work}"\nworkers = 1\n'
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        texts = {
            "unknown method": base + 'port = 11112\nmethod = "magic"\n',
            "no such weights": base + f'port = 11112\nmethod = "unet3d"\nweights = "{tmp_path / "none.pt"}"\n',
            "do not load": base + f'port = 11112\nmethod = "chang"\n[tls]\ncert = "{tmp_path / "c.pem"}"\n'
                           f'key = "{tmp_path / "k.pem"}"\n',
            f"cannot listen on 127.0.0.1:{taken}": base + f'port = {taken}\nmethod = "chang"\n',
        }
        for expected, text in texts.items():
            config = tmp_path / "serve.toml"
            config.write_text(text)
            result = CliRunner().invoke(app, ["serve", "--config", str(config)])
            lines = result.output.strip().splitlines()
            assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (expected, result.output)
            assert "cannot write" not in lines[0] and not work.exists(), expected
    config.write_text(f'ae_title = "SPECTAC"\nwork = "{config}"\nport = 11112\nmethod = "chang"\nworkers = 1\n')
    started: list[bool] = []
    with monkeypatch.context() as patch:  # a work folder that cannot be made is refused before any worker starts
        patch.setattr(WorkerPool, "start", lambda self: started.append(True))
        result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and "Not a directory" in result.output and config.is_file(), result.output
    assert not started
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path)])
    assert result.exit_code == 2 and "a folder, not a TOML file" in result.output, result.output
    config.write_bytes(base.encode() + b"port = 11112\n# \xff\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and "not UTF-8" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serve.toml"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_with_tls_configured_the_node_takes_tls_associations_only(tmp_path):
    """The [tls] section: a caller that trusts the node's certificate stores over TLS, and so does the
    node's own sender to a destination with ``tls = true``; plain TCP is refused."""
    import ssl

    cert, key = tmp_path / "node.crt", tmp_path / "node.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    config = config_from_dict({"ae_title": "SPECTAC", "port": port, "work": str(tmp_path / "work"),
                               "worker_paused": True, "complete_after": 0.5, "tls": {"cert": str(cert), "key": str(key)}})
    server = Server(config)
    server.start()
    try:
        _, files = nc_series(tmp_path, 6)
        ds = pydicom.dcmread(files[0])
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(str(ds.SOPClassUID))
        assert not ae.associate("127.0.0.1", port, ae_title="SPECTAC").is_established  # plain TCP
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        assoc = ae.associate("127.0.0.1", port, ae_title="SPECTAC", tls_args=(context, "localhost"))
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        # spectac's own sending side, to a destination with tls = true checked against [tls] ca
        sender = config_from_dict({"ae_title": "TESTSCU", "port": 104, "work": str(tmp_path / "sender"),
                                   "tls": {"ca": str(cert)}})
        second = pydicom.dcmread(nc_series(tmp_path, 7)[1][0])
        send_series(sender, Destination("SPECTAC", "localhost", port, tls=True), [second])
        with pytest.raises(SpectacError, match="refused or unreachable"):  # the same without TLS
            send_series(sender, Destination("SPECTAC", "localhost", port), [second])
        jobs = wait_for("two jobs to be queued", lambda: len(server.store.all_jobs()) == 2 and server.store.all_jobs())
        assert {j["series_uid"] for j in jobs} == {str(ds.SeriesInstanceUID), str(second.SeriesInstanceUID)}
        assert {j["status"] for j in jobs} == {"queued"}
    finally:
        server.stop()


def test_a_stop_between_taking_a_series_and_writing_its_job_loses_nothing(tmp_path):
    """A series moved out of incoming/ without its job file (a kill between the two), and one
    still in incoming/, are both queued by the next start."""
    _, files = nc_series(tmp_path, 8)
    ds = pydicom.dcmread(files[0])
    store = NodeStore(tmp_path / "work")
    store.store_instance(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), files[0].read_bytes())
    store.take_series(str(ds.SeriesInstanceUID), f"20260101T000000000000-{ds.SeriesInstanceUID}")
    _, more = nc_series(tmp_path, 9)
    other = pydicom.dcmread(more[0])
    store.store_instance(str(other.SeriesInstanceUID), str(other.SOPInstanceUID), more[0].read_bytes())
    server = Server(config_from_dict({"ae_title": "SPECTAC", "port": free_port(), "work": str(tmp_path / "work"),
                                      "worker_paused": True, "complete_after": 0.3}))
    server.start()
    try:
        jobs = wait_for("both jobs", lambda: len(server.store.all_jobs()) == 2 and server.store.all_jobs())
    finally:
        server.stop()
    assert [j["status"] for j in jobs] == ["queued", "queued"]
    assert jobs[0]["id"].startswith("20260101T") and jobs[0]["instances"] == 1
    assert {pydicom.dcmread(next((store.job_folder(j["id"]) / "input").glob("*.dcm"))).SeriesInstanceUID
            for j in jobs} == {ds.SeriesInstanceUID, other.SeriesInstanceUID}
    assert list(store.incoming.iterdir()) == []


def assert_scores_are_the_images(scores: dict[str, Any], store: NodeStore, job: dict[str, Any], state: str) -> None:
    """The report's scores (of its SR) are those of the quantification API run here on the job's
    input (NC, nc limits) and its AC series as sent (ac limits), for a female patient."""
    normals = NormalDatabase.load()
    folder = store.job_folder(job["id"])
    for label, family, series in (("NC", "nc", "input"), ("AC", "ac", "output")):
        image = scores["images"][label]
        assert image["tpd"] is not None and not image["missing"], image  # the heart's LV is found
        assert image["limits"].startswith(f"{family}/F/{state}")
        quant = quantify(read_dicom_volume(folder / series)[0], normals.limits(family, "F", state))
        assert (image["tpd"], image["summed_score"]) == (float(quant.scores.tpd), int(quant.scores.summed_score))


def run_one_job(tmp_path, files, settings: dict):
    """Without a PACS: the series' instances stored and queued as one job in a fresh work folder,
    run to its end by a worker with ``settings`` (no destinations); (store, finished job)."""
    from spectac.node.worker import Worker

    ds = pydicom.dcmread(files[0])
    store = NodeStore(tmp_path / "work")
    for f in files:
        store.store_instance(str(ds.SeriesInstanceUID), str(pydicom.dcmread(f).SOPInstanceUID), f.read_bytes())
    job_id = f"20260101T000000000000-{ds.SeriesInstanceUID}"
    store.take_series(str(ds.SeriesInstanceUID), job_id)
    store.write_job({"id": job_id, "status": "queued", "series_uid": str(ds.SeriesInstanceUID), "instances": len(files)})
    config = config_from_dict({"ae_title": "SPECTAC", "port": free_port(), "work": str(tmp_path / "work"), **settings})
    return store, Worker(config, store).run(job_id)


@pytest.mark.parametrize(("report", "description", "state"), [(True, "REST IRNC", "rest"), (True, "IRNC", None),
                                                              (False, "STRESS IRNC", "stress")])
def test_a_job_writes_the_report_as_an_encapsulated_pdf_and_a_scores_sr_of_the_study_unless_turned_off(
        tmp_path, report, description, state):
    """Without a PACS: one job run by the worker (Chang, no destinations) leaves the report PDF and
    its DICOM instance in the job folder, the DICOM holding the PDF's bytes in the input's study, and
    the scores SR holding the values of the report's HTML page; the stress state is the series' (or
    stress, assumed and said so, when its description names none)."""
    from spectac.io.dicom import read_encapsulated_pdf, read_scores_sr

    study, files = nc_series(tmp_path, 10, description=description, heart=True)
    ds = pydicom.dcmread(files[0])
    store, job = run_one_job(tmp_path, files, {"method": "chang", "report": report})
    job_id = job["id"]
    assert job["status"] == "done", job
    entry, *reported = store.audit()
    assert entry["step"] == "correction" and entry["report_follows"] == report
    assert [e["step"] for e in reported] == (["report"] if report else [])
    assert entry["state"] == job["state"] == (state or "stress")
    assert entry["state_source"] == job["state_source"]
    assert ("stress assumed" in job["state_source"]) == (state is None)
    assert (f"SeriesDescription {description!r}" in job["state_source"]) == (state is not None)
    if not report:
        assert store.report_files(job_id) == [] and "report" not in job and "sr" not in job
        return
    (entry,) = reported
    dicom, sr = store.report_files(job_id)
    pdf, header = read_encapsulated_pdf(dicom)
    assert pdf == (store.job_folder(job_id) / "output.report.pdf").read_bytes() and pdf.startswith(b"%PDF")
    assert (header.StudyInstanceUID, header.PatientID, header.Modality) == (study, ds.PatientID, "DOC")
    assert entry["report"] == job["report"] == {"series_uid": header.SeriesInstanceUID,
                                                "sop_instance_uid": header.SOPInstanceUID,
                                                "pdf_sha256": hashlib.sha256(pdf).hexdigest()}
    scores, sr_header = read_scores_sr(sr)
    assert (sr_header.StudyInstanceUID, sr_header.PatientID, sr_header.Modality) == (study, ds.PatientID, "SR")
    assert sr_header.SeriesInstanceUID not in (header.SeriesInstanceUID, ds.SeriesInstanceUID)
    assert entry["sr"] == job["sr"] == {"series_uid": sr_header.SeriesInstanceUID,
                                        "sop_instance_uid": sr_header.SOPInstanceUID}
    # the SR holds the scores of the input and of the AC series as sent, and the state the job names
    assert (scores["state"], scores["state_source"]) == (job["state"], job["state_source"])
    assert scores["summed_score_name"] == ("SRS" if state == "rest" else "SSS")
    assert_scores_are_the_images(scores, store, job, state or "stress")
    assert not (store.job_folder(job_id) / "output.report.html").exists()  # serve draws only the PDF page
    assert scores["weights_sha256"] == (job["model"]["weights_sha256"] or "")
    assert scores["not_for_diagnostic_use"] == "Not for diagnostic use"


def test_a_network_job_records_its_disagreement_with_the_partner_in_the_audit_log(tmp_path):
    """Without a PACS: one job of the default network records the partner's disagreement (the value,
    the threshold and the flag when above it) in the job and its audit line."""

    _, files = nc_series(tmp_path, 10)
    store, job = run_one_job(tmp_path, files, {"method": "unet-gan3d-chang", "report": False})
    assert job["status"] == "done", job
    (entry,) = store.audit()  # no report: the correction's line only
    spread = entry["uncertainty"]
    assert spread == job["uncertainty"] and spread["partner"] == "unet-gan3d" and spread["disagreement"] > 0
    flagged = spread["disagreement"] > spread["threshold"]
    assert (spread["flag"] in entry["ood_flags"]) if flagged else spread["flag"] is None


def queue_jobs(tmp_path, count: int, heart: bool = False) -> tuple[NodeStore, list[str]]:
    """``count`` small NC series stored and queued as jobs (their correction in the queue) in a
    fresh work folder, as the collector does; (store, job ids oldest first)."""
    store = NodeStore(tmp_path / "work")
    store.create()
    ids = []
    for n in range(count):
        _, files = nc_series(tmp_path, 20 + n, heart=heart)
        ds = pydicom.dcmread(files[0])
        for f in files:
            store.store_instance(str(ds.SeriesInstanceUID), str(pydicom.dcmread(f).SOPInstanceUID), f.read_bytes())
        job_id = f"2026010{n}T000000000000-{ds.SeriesInstanceUID}"
        store.take_series(str(ds.SeriesInstanceUID), job_id)
        store.write_job({"id": job_id, "status": "queued", "series_uid": str(ds.SeriesInstanceUID),
                         "instances": len(files)})
        store.mark(job_id, "correct")
        ids.append(job_id)
    return store, ids


def test_a_step_is_claimed_by_one_worker_only_and_freed_when_its_holder_dies(tmp_path):
    """The queue's claims: corrections are offered before reports, a claimed step is not given to
    a second claimant (threads racing over many steps each get disjoint ones), a finished step
    leaves the queue, and a step held by a process that is killed is free again."""
    store = NodeStore(tmp_path / "work")
    store.create()
    store.mark("b", "correct")
    store.mark("a", "report")
    store.mark("c", "correct")
    assert store.waiting() == [("b", "correct"), ("c", "correct"), ("a", "report")]
    first = store.claim_next()
    assert (first.job_id, first.step) == ("b", "correct")
    second = store.claim_next()
    assert store.claim("b", "correct") is None and second.job_id == "c"
    second.release()
    first.finish()
    assert store.claim("b", "correct") is None and ("b", "correct") not in store.waiting()
    # a holder that dies (SIGKILL) frees its step
    marker = store.queue / "a.report"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(marker)!r}, os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert store.claim("a", "report") is None
    holder.kill()
    holder.wait()
    claim = store.claim("a", "report")
    assert claim is not None
    claim.release()  # released, not finished: still in the queue
    assert ("a", "report") in store.waiting()
    # many steps, two threads claiming and finishing as fast as they can: each step once
    for n in range(200):
        store.mark(f"job{n:03d}", "correct")
    taken: dict[str, list[str]] = {"x": [], "y": []}

    def drain(name: str) -> None:
        while (claim := store.claim_next()) is not None:
            if claim.step == "correct":
                taken[name].append(claim.job_id)
                claim.finish()
            else:
                claim.release()
                if all(step != "correct" for _, step in store.waiting()):
                    return

    threads = [threading.Thread(target=drain, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(taken["x"]) & set(taken["y"])
    assert sorted(taken["x"] + taken["y"]) == sorted({f"job{n:03d}" for n in range(200)} | {"c"})


def test_two_worker_processes_run_every_job_once(tmp_path):
    """Two worker processes (spawned, as the node starts them) on a queue of jobs: every job is
    corrected once (one correction audit line each), none twice, and the processes stop when
    told."""

    store, ids = queue_jobs(tmp_path, 6)
    config = config_from_dict({"ae_title": "SPECTAC", "port": free_port(), "work": str(tmp_path / "work"),
                               "method": "chang", "report": False, "workers": 2})
    pool = WorkerPool(config)
    pool.start()
    try:
        wait_for("every job", lambda: all(j["status"] == "done" for j in store.all_jobs()))
    finally:
        pool.stop()
    assert pool.alive() == 0
    lines = store.audit()
    assert sorted(e["job"] for e in lines) == sorted(ids) and {e["step"] for e in lines} == {"correction"}
    assert store.waiting() == []


def test_one_worker_sends_every_waiting_correction_before_any_report(tmp_path):
    """With jobs waiting, the AC series of all of them go out before the first report is made:
    the audit log has every correction line before the report lines, and a report's step reads
    the AC series the correction wrote."""
    from spectac.node.pool import work
    from spectac.node.worker import Worker

    store, ids = queue_jobs(tmp_path, 2, heart=True)
    config = config_from_dict({"ae_title": "SPECTAC", "port": free_port(), "work": str(tmp_path / "work"),
                               "method": "chang"})
    work(store, Worker(config, store), lambda: all(j["status"] == "done" for j in store.all_jobs()), print)
    assert [(e["step"], e["job"]) for e in store.audit()] == [
        ("correction", ids[0]), ("correction", ids[1]), ("report", ids[0]), ("report", ids[1])]
    assert all(e["result"] == "done" for e in store.audit()) and store.waiting() == []


@needs_orthanc
def test_a_node_stopped_after_the_ac_series_went_out_only_makes_and_sends_the_report(orthanc, tmp_path):
    """Resuming a job whose AC series was sent (``reporting``): the next start makes and sends the
    report, and neither corrects again nor sends the AC series again; a job whose report was made
    but not sent gets that same report (the same UIDs) sent."""
    from spectac.node.worker import Worker

    pacs, _ = orthanc
    store, ids = queue_jobs(tmp_path, 2, heart=True)
    config = serve_config(tmp_path / "work", free_port(), pacs, method="chang")
    worker = Worker(config, store)
    before = {job_id: worker.correct(job_id) for job_id in ids}  # the AC series sent; then the node "dies"
    assert [job["status"] for job in before.values()] == ["reporting", "reporting"]

    def stopped_while_sending(job: dict[str, Any], files: list[Path], key: str) -> list[str]:
        raise SystemExit("killed")

    worker._send = stopped_while_sending  # the second job's report made, the node killed before sending it
    with pytest.raises(SystemExit):
        worker.report(ids[1])
    made = store.read_job(ids[1])
    assert made["status"] == "reporting" and made["report"] and not made.get("report_destinations")
    second = Server(config)
    second.start()
    try:
        jobs = wait_for("the reports", lambda: [store.read_job(i) for i in ids]
                        if all(store.read_job(i)["status"] == "done" for i in ids) else None)
    finally:
        second.stop()
    assert jobs[1]["report"] == made["report"] and jobs[1]["sr"] == made["sr"]  # not made again
    for job in jobs:
        old = before[job["id"]]
        assert (job["corrected"], job["output_series_uid"], job["destinations"]) == (
            old["corrected"], old["output_series_uid"], old["destinations"])  # not corrected or sent again
        study = job["study_uid"]
        assert sorted(s["SeriesInstanceUID"] for s in pacs.series_of(study)) == sorted(
            [job["output_series_uid"], job["report"]["series_uid"], job["sr"]["series_uid"]])
        assert [(e["step"], e["result"]) for e in store.audit() if e["job"] == job["id"]] == [
            ("correction", "done"), ("report", "done")]
