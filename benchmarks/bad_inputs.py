"""Bad input to every command: what spectac answers, as a table anyone can regenerate.

Each case runs the real command line (``python -m spectac.cli ...``) in a fresh process on small
files made here (a tiny dataset, its DICOM export, NIfTI volumes with broken geometry, ...). A
case passes when the command ends in exactly one error line on stderr with exit code 2, wrote
nothing where it was told to write, left its input unchanged, printed no traceback and did not
hang. A few cases are allowed to succeed instead (marked "ok to succeed"): then exit 0 is a pass.

The fixtures include a raw projection NM TOMO file (and broken copies of it), a CT series of another
frame of reference, a one-epoch mu model with its exchange archive (and damaged copies), an archive
folder for the batch form of ``correct`` and serve configurations each wrong in one way.
``SPECTAC_MODELS_DIR`` points into the temporary folder, so import-model never touches the user's
models; a serve configuration that started a node would hang, and the timeout judges it.

Usage:
    python benchmarks/bad_inputs.py [--out docs/reliability.md] [--timeout 120] [--only correct]

Writes a Markdown table (one row per case) and prints the summary line; exit code 1 when any case
fails, so the script can gate a release.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import spectac
from spectac import physics
from spectac.acquisition.acquire import acquire_windows
from spectac.acquisition.protocol import Protocol
from spectac.correction.deep import shipped_model_dir
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.nifti import write_nifti
from spectac.io.projections import EnergyWindow, acquisition_from_projections, write_projections_dicom
from spectac.io.run import RunFolder
from spectac.volume import Volume

N = 24
SPACING = 6.8
N_PROJ = 16  # the projection matrix (and reconstruction grid) of the raw projection files
FRAME, STUDY = generate_uid(), generate_uid()


@dataclass
class BadInput:
    command: str
    what: str
    args: list[str]
    writes: list[Path] = field(default_factory=list)  # must not exist afterwards
    may_succeed: bool = False


@dataclass
class Outcome:
    case: BadInput
    code: int | None  # None: killed after the timeout
    seconds: float
    stderr: str
    verdict: str


def _blob(seed: int, n: int = N) -> np.ndarray:
    """A torso-like body with a hot LV-like shell, in counts."""
    rng = np.random.default_rng(seed)
    x = (np.arange(n) - (n - 1) / 2) * SPACING
    gx, gy, gz = np.meshgrid(x, x, x, indexing="ij")
    body = (gx / 70.0) ** 2 + (gy / 55.0) ** 2 < 1
    r = np.sqrt((gx - 15) ** 2 + (gy + 10) ** 2 + (gz - 5) ** 2)
    shell = (r > 18) & (r < 30)
    return (np.where(body, 10.0, 0.0) + np.where(shell, 80.0, 0.0) + rng.normal(0, 0.5, body.shape) * body).astype(
        np.float32
    )


def _dataset(root: Path) -> Path:
    """Four patients (train, train, val, test), rest and stress, NC/AC/mu and the scatter-window
    image the mu model takes (a study's own: there are no projections to make it from)."""
    cases = []
    for p, split in enumerate(("train", "train", "val", "test")):
        for state in ("rest", "stress"):
            case_id = f"P{p}_{state}"
            ac = Volume.centred(_blob(2 * p + (state == "stress")), SPACING)
            mu = ac.with_array(np.where(ac.array > 1, 0.153, 0.0).astype(np.float32))
            write_study(root, case_id, {"nc": ac.with_array(ac.array / 3), "ac": ac, "mu": mu,
                                        "scatter": ac.with_array(ac.array / 10)})
            cases.append(Case(case_id, f"P{p}", state, "F" if p % 2 else "M", bmi=25.0, defect_type="none",
                              defect_severity=0.0, split=split))
    write_manifest(root, {"source": "bad-input benchmark", "protocol": {"n_views": 60, "arc_deg": 180.0}}, cases)
    return root


def _nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _spectac(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "spectac.cli", *args], check=True, capture_output=True,
                   env={**os.environ, "SPECTAC_PROGRESS": "0"})


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    if not path.exists() and not path.is_symlink():
        return "absent"
    paths = [path] if not path.is_dir() else sorted(p for p in path.rglob("*"))
    for p in paths:
        h.update(str(p.relative_to(path.parent)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def _projections(path: Path) -> tuple[Path, np.ndarray]:
    """A raw projection NM TOMO DICOM file (12 views of a cylinder with a hot spot, photopeak and the
    TEW/DEW windows, in a study and frame of reference of its own) and the true mu-map."""
    protocol = Protocol(n_views=12, matrix=N_PROJ, pixel_mm=SPACING)
    c = (N_PROJ - 1) / 2
    xx, yy = np.meshgrid(np.arange(N_PROJ) - c, np.arange(N_PROJ) - c, indexing="ij")
    body = np.repeat(((xx**2 + yy**2) <= 5.5**2)[:, :, None], N_PROJ, axis=2).astype(np.float32)
    truth, mu = 2000.0 * body, 0.153 * body
    truth[10, 5, 8] += 4.0e5
    windows, projector = acquire_windows(truth, mu, protocol, SPACING, np.random.default_rng(3))
    table = {w.name: w for w in protocol.windows}
    order = ["photopeak", "tew_lower", "tew_upper", "dew_lower"]
    acq = acquisition_from_projections([windows[n].numpy() for n in order], protocol, projector.radii_mm,
                                       [EnergyWindow(n, table[n].lower_kev, table[n].upper_kev) for n in order],
                                       "LEHR")
    acq.study_uid = STUDY
    return write_projections_dicom(acq, path, frame_of_reference_uid=FRAME), mu


def _shown(path: Path) -> str:
    """``path`` as the page records it: relative to the repository when inside it, else its name
    (no machine path in a committed page)."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return path.name


def _edited_dicom(source: Path, out: Path, change: Callable[[pydicom.Dataset], None]) -> Path:
    ds = pydicom.dcmread(str(source))
    change(ds)
    ds.save_as(str(out))
    return out


def _ct_series(folder: Path, mu: np.ndarray, frame: str) -> Path:
    """``mu`` (on the projections' centred grid) as an axial CT series in HU, 2x finer, one SPECT
    voxel wider on each side, in frame of reference ``frame``."""
    pixel = SPACING / 2
    hu = np.round(physics.mu_to_hu(np.pad(np.repeat(np.repeat(np.repeat(mu, 2, 0), 2, 1), 2, 2), 2)))
    origin = np.full(3, -(N_PROJ - 1) / 2 * SPACING - SPACING / 4 - 2 * pixel)
    folder.mkdir(parents=True)
    series = generate_uid()
    for k in range(hu.shape[2]):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality, ds.ImageType, ds.KVP = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], 120
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, STUDY, frame
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [f"{v:.3f}" for v in origin + [0, 0, k * pixel]]
        ds.PixelSpacing, ds.SliceThickness = [pixel, pixel], pixel
        stored = np.round(hu[:, :, k].T + 1024.0).astype(np.uint16)
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"ct{k:03d}.dcm", enforce_file_format=True)
    return folder


def _rezip(archive: Path, out: Path, change: dict[str, bytes]) -> Path:
    """A copy of a model archive with members replaced (their sha256 in the manifest left as is)."""
    with zipfile.ZipFile(archive) as z, zipfile.ZipFile(out, "w") as w:
        for name in z.namelist():
            w.writestr(name, change.get(name, z.read(name)))
    return out


def _serve_configs(folder: Path, work: Path, busy_port: int) -> dict[str, tuple[Path, Path]]:
    """serve configurations, each wrong in one way, and the work folder each names (which must not
    appear): WORK0, WORK1, ... beside each other."""
    folder.mkdir()
    base = 'ae_title = "SPECTAC"\nwork = "WORK"\nmethod = "chang"\n'
    texts = {
        "malformed TOML": 'ae_title = "SPECTAC\nport = 11112\n',
        "port 0": base + "port = 0\n",
        "port 70000": base + "port = 70000\n",
        "port as text": base + 'port = "11112"\n',
        "AE title of 17 characters": base.replace('"SPECTAC"', '"SPECTAC_NODE_1234"') + "port = 11112\n",
        "empty AE title": base.replace('"SPECTAC"', '""') + "port = 11112\n",
        "a destination with a bad AE title": base + 'port = 11112\n[[destinations]]\nae_title = "A\\\\B"\n'
                                                    'host = "127.0.0.1"\nport = 4242\n',
        "unknown setting (typo)": base + "port = 11112\ncomplete_afetr = 3\n",
        "no work folder": 'ae_title = "SPECTAC"\nport = 11112\n',
        "unknown method": base.replace('"chang"', '"magic"') + "port = 11112\n",
        "weights missing": base.replace('method = "chang"', 'method = "unet3d"') + "port = 11112\n"
                           f'weights = "{folder / "none.pt"}"\n',
        "device bogus": base + 'port = 11112\ndevice = "tpu"\n',
        "TLS cert without key": base + f'port = 11112\n[tls]\ncert = "{folder / "cert.pem"}"\n',
        "TLS cert missing": base + f'port = 11112\n[tls]\ncert = "{folder / "c.pem"}"\nkey = "{folder / "k.pem"}"\n',
        "port already in use": base + f"port = {busy_port}\n",
        "work is a file": base.replace('"WORK"', f'"{folder / "serve0.toml"}"') + "port = 11112\n",
        "not UTF-8": base + "port = 11112\n# \xff\xfe\n",
    }
    paths = {}
    for k, (what, text) in enumerate(texts.items()):
        paths[what] = (folder / f"serve{k}.toml", work.with_name(f"{work.name}{k}"))
        data = text.replace("WORK", str(paths[what][1])).encode("utf-8")
        paths[what][0].write_bytes(data.replace("\xff\xfe".encode(), b"\xff\xfe") if what == "not UTF-8" else data)
    return paths


def build_cases(tmp: Path) -> tuple[list[BadInput], list[Path]]:
    """The fixtures and the cases; returns (cases, the input paths whose bytes must not change)."""
    data = _dataset(tmp / "data")
    _spectac("export-dicom", "--data", str(data), "--out", str(tmp / "dicom"), "--split", "test")
    dicom = tmp / "dicom"
    nc_dir = next((dicom / "nc").iterdir())
    ac_dir = next((dicom / "ac").iterdir())
    mu_dir = next((dicom / "mu").iterdir())
    nii = tmp / "nii"
    nii.mkdir()
    good_affine = np.diag([-SPACING, -SPACING, SPACING, 1.0])
    nc_file = _nifti(nii / "nc.nii.gz", _blob(0) / 3, good_affine)
    _spectac("correct", str(nc_file), "-o", str(nii / "spectac-ac.nii.gz"), "--method", "chang")
    huge_voxels = _nifti(nii / "voxel-1e6mm.nii.gz", _blob(0), np.diag([-1e6, -1e6, 1e6, 1.0]))
    tiny_voxels = _nifti(nii / "voxel-1e-6mm.nii.gz", _blob(0), np.diag([-1e-6, -1e-6, 1e-6, 1.0]))
    flat = _nifti(nii / "64x64x1.nii.gz", np.ones((64, 64, 1), np.float32), np.diag([-6.8, -6.8, 6.8, 1.0]))
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    oblique_affine = np.array([[-c * SPACING, -s * SPACING, 0, 0], [s * SPACING, -c * SPACING, 0, 0],
                               [0, 0, SPACING, 0], [0, 0, 0, 1.0]])
    oblique = _nifti(nii / "oblique.nii.gz", _blob(0), oblique_affine)
    negative = _nifti(nii / "half-negative.nii.gz", _blob(0) - 40.0, good_affine)
    big = _nifti(nii / "512cube.nii.gz", np.ones((512, 512, 512), np.uint8), good_affine)
    nan = _nifti(nii / "nan.nii.gz", np.full((N, N, N), np.nan, np.float32), good_affine)
    zero = _nifti(nii / "zero.nii.gz", np.zeros((N, N, N), np.float32), good_affine)
    four_d = _nifti(nii / "4d.nii.gz", np.ones((N, N, N, 3), np.float32), good_affine)
    (nii / "text.nii.gz").write_bytes(gzip.compress(b"not an image"))
    (nii / "notes.txt").write_text("hello")
    markup = nii / "[red]nc[/].nii.gz"
    markup.parent.mkdir()  # "[red]nc[" is a folder: "/" cannot stand in a file name
    shutil.copy(nc_file, markup)
    a_file = tmp / "a-file"
    a_file.write_text("x")

    # datasets with a broken cases.csv
    def edited(name: str, edit: Callable[[str], str]) -> Path:
        copy = tmp / name
        shutil.copytree(data, copy)
        (copy / "cases.csv").write_text(edit((copy / "cases.csv").read_text()))
        return copy

    escape = edited("data-escape", lambda t: t.replace("P3_rest,", "../../escaped,", 1))
    absolute = edited("data-absolute", lambda t: t.replace("P3_rest,", f"{tmp / 'abs'},", 1))
    duplicate = edited("data-duplicate", lambda t: t.replace("P3_stress,", "P3_rest,", 1))
    nonumber = edited("data-bmi", lambda t: t.replace(",25,", ",heavy,", 1))
    broken_json = tmp / "data-json"
    shutil.copytree(data, broken_json)
    (broken_json / "dataset.json").write_text("{")
    damaged = tmp / "data-damaged"
    shutil.copytree(data, damaged)
    (damaged / "studies" / "P3_rest" / "nc.nii.gz").write_bytes(b"\x1f\x8b broken")
    few_normals = edited("data-few-normals", lambda t: t.replace(",none,", ",ischemia,", 2))  # one normal patient
    few_run = tmp / "run-few-normals"
    _spectac("predict", "--method", "nc", "--data", str(few_normals), "--out", str(few_run))
    fifo_dir = tmp / "nc-with-fifo"
    shutil.copytree(dicom / "nc", fifo_dir)
    os.mkfifo(fifo_dir / "pipe.dcm")
    out = tmp / "out"
    out.mkdir()

    def o(name: str) -> Path:
        return out / name

    cases: list[BadInput] = []

    def add(command: str, what: str, args: list[str], *writes: Path, may_succeed: bool = False) -> None:
        cases.append(BadInput(command, what, [command, *args], list(writes), may_succeed))

    # simulate
    sim = ["--workers", "1"]
    add("simulate", "--patients 0", ["--patients", "0", "--out", str(o("s1")), *sim], o("s1"))
    add("simulate", "--seed -1", ["--patients", "1", "--seed", "-1", "--out", str(o("s2")), *sim], o("s2"))
    add("simulate", "--views 0", ["--patients", "1", "--views", "0", "--out", str(o("s3")), *sim], o("s3"))
    add("simulate", "--counts nan", ["--patients", "1", "--counts", "nan", "--out", str(o("s4")), *sim], o("s4"))
    add("simulate", "--counts -5", ["--patients", "1", "--counts", "-5", "--out", str(o("s5")), *sim], o("s5"))
    add("simulate", "--arc 90", ["--patients", "1", "--arc", "90", "--out", str(o("s6")), *sim], o("s6"))
    add("simulate", "--split nan/1/1", ["--patients", "1", "--split", "nan/1/1", "--out", str(o("s7")), *sim], o("s7"))
    add("simulate", "--split 1/1", ["--patients", "1", "--split", "1/1", "--out", str(o("s8")), *sim], o("s8"))
    add("simulate", "--split 0/0/0", ["--patients", "1", "--split", "0/0/0", "--out", str(o("s9")), *sim], o("s9"))
    add("simulate", "--bmi 30 (no SD)", ["--patients", "1", "--bmi", "30", "--out", str(o("s10")), *sim], o("s10"))
    add("simulate", "--bmi -30,3", ["--patients", "1", "--bmi", "-30,3", "--out", str(o("s11")), *sim], o("s11"))
    add("simulate", "--workers 0", ["--patients", "1", "--workers", "0", "--out", str(o("s12"))], o("s12"))
    add("simulate", "--iterations 0", ["--patients", "1", "--iterations", "0", "--out", str(o("s13")), *sim], o("s13"))
    add("simulate", "--subsets 0", ["--patients", "1", "--subsets", "0", "--out", str(o("s14")), *sim], o("s14"))
    add("simulate", "--activity without --mu", ["--activity", str(nc_file), "--out", str(o("s15"))], o("s15"))
    add("simulate", "--activity not NIfTI", ["--activity", str(nii / "notes.txt"), "--mu", str(nc_file), "--out",
                                              str(o("s16"))], o("s16"))
    add("simulate", "--out is a file", ["--patients", "1", "--out", str(a_file), *sim])
    add("simulate", "--out under a file", ["--patients", "1", "--out", str(a_file / "sub"), *sim])
    add("simulate", "--out an existing other dataset", ["--patients", "1", "--seed", "5", "--out", str(data), *sim])

    # predict
    add("predict", "unknown method", ["--method", "magic", "--data", str(data), "--out", str(o("p1"))], o("p1"))
    add("predict", "missing dataset", ["--method", "nc", "--data", str(tmp / "nope"), "--out", str(o("p2"))], o("p2"))
    add("predict", "not a dataset (a file)", ["--method", "nc", "--data", str(a_file), "--out", str(o("p3"))], o("p3"))
    add("predict", "--split foo", ["--method", "nc", "--data", str(data), "--split", "foo", "--out", str(o("p4"))],
        o("p4"))
    add("predict", "--mu nan", ["--method", "chang", "--data", str(data), "--mu", "nan", "--out", str(o("p5"))],
        o("p5"))
    add("predict", "--mu -1", ["--method", "chang", "--data", str(data), "--mu", "-1", "--out", str(o("p6"))], o("p6"))
    add("predict", "--iterations -1", ["--method", "chang-iterative", "--data", str(data), "--iterations", "-1",
                                       "--out", str(o("p7"))], o("p7"))
    add("predict", "--set without =", ["--method", "chang", "--data", str(data), "--set", "mu", "--out", str(o("p8"))],
        o("p8"))
    add("predict", "--set unknown option", ["--method", "nc", "--data", str(data), "--set", "x=1", "--out",
                                            str(o("p9"))], o("p9"))
    add("predict", "missing weights", ["--method", "unet3d", "--data", str(data), "--set",
                                       f"checkpoint={tmp / 'none.pt'}", "--out", str(o("p10"))], o("p10"))
    add("predict", "weights that are not a checkpoint", ["--method", "unet3d", "--data", str(data), "--set",
                                                         f"checkpoint={a_file}", "--out", str(o("p11"))], o("p11"))
    add("predict", "case id ../../escaped", ["--method", "nc", "--data", str(escape), "--out", str(o("p12"))],
        o("p12"), tmp / "escaped.nii.gz", out / "escaped.nii.gz")
    add("predict", "absolute case id", ["--method", "nc", "--data", str(absolute), "--out", str(o("p13"))], o("p13"),
        tmp / "abs.nii.gz")
    add("predict", "duplicate case id", ["--method", "nc", "--data", str(duplicate), "--out", str(o("p14"))], o("p14"))
    add("predict", "non-numeric bmi in cases.csv", ["--method", "nc", "--data", str(nonumber), "--out",
                                                    str(o("p15"))], o("p15"))
    add("predict", "dataset.json not JSON", ["--method", "nc", "--data", str(broken_json), "--out", str(o("p16"))],
        o("p16"))
    add("predict", "damaged nc.nii.gz", ["--method", "nc", "--data", str(damaged), "--out", str(o("p17"))],
        RunFolder(o("p17")).prediction_path("nc", "P3_rest"))
    add("predict", "--out is a file", ["--method", "nc", "--data", str(data), "--out", str(a_file)])
    add("predict", "--out under a file", ["--method", "nc", "--data", str(data), "--out", str(a_file / "run")])

    # evaluate
    add("evaluate", "run without predictions", ["--data", str(data), "--run", str(o("e1"))], o("e1"))
    add("evaluate", "missing dataset", ["--data", str(tmp / "nope"), "--run", str(o("e2"))], o("e2"))
    add("evaluate", "--split foo", ["--data", str(data), "--run", str(o("e3")), "--split", "foo"], o("e3"))
    add("evaluate", "--run is a file", ["--data", str(data), "--run", str(a_file)])
    add("evaluate", "few normal patients (shipped limits expected)", ["--data", str(few_normals), "--run",
                                                                     str(few_run)], may_succeed=True)

    # train
    tr = ["--model", "unet3d", "--data", str(data), "--epochs", "1"]
    add("train", "--batch-size 0", [*tr, "--batch-size", "0", "--out", str(o("t1"))], o("t1"))
    add("train", "--batch-size -1", [*tr, "--batch-size", "-1", "--out", str(o("t2"))], o("t2"))
    add("train", "--lr nan", [*tr, "--lr", "nan", "--out", str(o("t3"))], o("t3"))
    add("train", "--lr -1", [*tr, "--lr", "-1", "--out", str(o("t4"))], o("t4"))
    add("train", "--seed -1", [*tr, "--seed", "-1", "--out", str(o("t5"))], o("t5"))
    add("train", "--channels 0,0", [*tr, "--channels", "0,0", "--out", str(o("t6"))], o("t6"))
    add("train", "--channels a,b", [*tr, "--channels", "a,b", "--out", str(o("t7"))], o("t7"))
    add("train", "--epochs 0", ["--model", "unet3d", "--data", str(data), "--epochs", "0", "--out", str(o("t8"))],
        o("t8"))
    add("train", "unknown model", ["--model", "magic", "--data", str(data), "--out", str(o("t9"))], o("t9"))
    add("train", "missing dataset", ["--model", "unet3d", "--data", str(tmp / "nope"), "--out", str(o("t10"))],
        o("t10"))
    add("train", "--prior bogus", [*tr, "--prior", "bogus", "--out", str(o("t11"))], o("t11"))
    add("train", "--lr-schedule bogus", [*tr, "--lr-schedule", "bogus", "--out", str(o("t12"))], o("t12"))
    add("train", "--init missing", [*tr, "--init", str(tmp / "none.pt"), "--out", str(o("t13"))], o("t13"))
    add("train", "--out is a file", [*tr, "--out", str(a_file)])
    add("train", "--out under a file", [*tr, "--out", str(a_file / "model")])

    # correct
    def corr(what: str, src: Path, dst: Path, *extra: str, may_succeed: bool = False, exists: bool = False) -> None:
        """``exists``: the output is there before (the input itself, an earlier result): its bytes
        are checked as an input's, not its absence."""
        writes = [] if exists else [dst]
        add("correct", what, [str(src), "-o", str(dst), "--method", "chang", *extra], *writes, may_succeed=may_succeed)

    corr("missing input", tmp / "nope.nii.gz", o("c1.nii.gz"))
    corr("a text file", nii / "notes.txt", o("c2.nii.gz"))
    corr("gzip that is not NIfTI", nii / "text.nii.gz", o("c3.nii.gz"))
    corr("voxels of 1e6 mm", huge_voxels, o("c4.nii.gz"))
    corr("voxels of 1e-6 mm", tiny_voxels, o("c5.nii.gz"))
    corr("a 64x64x1 image", flat, o("c6.nii.gz"))
    corr("oblique orientation", oblique, o("c7.nii.gz"))
    corr("half-negative volume", negative, o("c8.nii.gz"))
    corr("512^3 NIfTI (2 MB on disk)", big, o("c9.nii.gz"))
    corr("all NaN", nan, o("c10.nii.gz"))
    corr("all zero", zero, o("c11.nii.gz"))
    corr("4D NIfTI", four_d, o("c12.nii.gz"))
    corr("spectac's own output", nii / "spectac-ac.nii.gz", o("c13.nii.gz"))
    corr("vendor CT-AC series (ATTN)", ac_dir, o("c14"))
    corr("mu-map series", mu_dir, o("c15"))
    corr("output equal to input", nc_file, nc_file, exists=True)
    corr("output inside the input series", nc_dir, nc_dir / "out.nii.gz")
    corr("output already there", nc_file, nii / "spectac-ac.nii.gz", exists=True)
    corr("output under a file", nc_file, a_file / "x.nii.gz")
    corr("NIfTI in, DICOM name out", nc_file, o("c16.dcm"))
    corr("path with rich markup [red]nc[/]", markup, o("c17.nii.gz"), may_succeed=True)
    add("correct", "unknown method", [str(nc_file), "-o", str(o("c18.nii.gz")), "--method", "magic"], o("c18.nii.gz"))
    add("correct", "--arc 90", [str(nc_file), "-o", str(o("c19.nii.gz")), "--method", "chang", "--arc", "90"],
        o("c19.nii.gz"))
    add("correct", "--weights missing", [str(nc_file), "-o", str(o("c20.nii.gz")), "--method", "unet3d", "--weights",
                                         str(tmp / "none.pt")], o("c20.nii.gz"))
    add("correct", "--weights on chang", [str(nc_file), "-o", str(o("c21.nii.gz")), "--method", "chang", "--weights",
                                          str(a_file)], o("c21.nii.gz"))

    # import
    add("import", "missing --nc folder", ["--nc", str(tmp / "nope"), "--ac", str(dicom / "ac"), "--out", str(o("i1"))],
        o("i1"))
    add("import", "empty --nc folder", ["--nc", str(out / "empty"), "--ac", str(dicom / "ac"), "--out", str(o("i2"))],
        o("i2"))
    add("import", "--out inside --nc", ["--nc", str(dicom / "nc"), "--ac", str(dicom / "ac"), "--out",
                                        str(dicom / "nc" / "dataset")], dicom / "nc" / "dataset")
    add("import", "--split nan/1/1", ["--nc", str(dicom / "nc"), "--ac", str(dicom / "ac"), "--split", "nan/1/1",
                                      "--out", str(o("i3"))], o("i3"))
    add("import", "a FIFO in the input folder", ["--nc", str(fifo_dir), "--ac", str(dicom / "ac"), "--out",
                                                 str(o("i4"))], may_succeed=True)
    add("import", "--out is an existing dataset", ["--nc", str(dicom / "nc"), "--ac", str(dicom / "ac"), "--out",
                                                   str(data)])
    add("import", "--out under a file", ["--nc", str(dicom / "nc"), "--ac", str(dicom / "ac"), "--out",
                                         str(a_file / "d")])

    # export-dicom, normals, detect-lv, demo
    add("export-dicom", "--mu-as foo", ["--data", str(data), "--out", str(o("x1")), "--mu-as", "foo"], o("x1"))
    add("export-dicom", "missing dataset", ["--data", str(tmp / "nope"), "--out", str(o("x2"))], o("x2"))
    add("export-dicom", "--out under a file", ["--data", str(data), "--out", str(a_file / "x")])
    add("normals", "--out not .npz", ["--data", str(data), "--out", str(o("n1.txt"))], o("n1.txt"))
    add("normals", "missing dataset", ["--data", str(tmp / "nope"), "--out", str(o("n2.npz"))], o("n2.npz"))
    add("normals", "--out under a file", ["--data", str(data), "--out", str(a_file / "n.npz")])
    add("detect-lv", "missing dataset", ["--data", str(tmp / "nope")])
    add("detect-lv", "--split foo", ["--data", str(data), "--split", "foo"])
    add("demo", "--patients 0", ["--patients", "0", "--out", str(o("d1"))], o("d1"))
    add("demo", "--out under a file", ["--out", str(a_file / "demo")])
    (out / "empty").mkdir()
    new_inputs = _newer_commands(tmp, data, nc_file, a_file, add, o)
    return cases, [data, dicom, nii, escape, absolute, damaged, fifo_dir, *new_inputs]


#: Held open while the cases run: the port a serve case finds taken.
_BUSY: list[socket.socket] = []


def _newer_commands(tmp: Path, data: Path, nc_file: Path, a_file: Path, add: Callable[..., None],
                    o: Callable[[str], Path]) -> list[Path]:
    """The fixtures and cases of reconstruct, qc, correct --route indirect, correct --report, batch
    correct, export-model, import-model and serve; returns the inputs whose bytes must not change."""
    # raw projections and their variants
    proj = tmp / "proj"
    proj.mkdir()
    tomo, mu = _projections(proj / "tomo.dcm")
    one_window = proj / "one-window.dcm"
    with pydicom.dcmread(str(tomo)) as ds:  # the photopeak frames only
        views = int(ds.NumberOfFrames) // len(ds.EnergyWindowInformationSequence)
        ds.PixelData = ds.pixel_array[:views].tobytes()
        ds.NumberOfFrames = views
        ds.EnergyWindowInformationSequence = ds.EnergyWindowInformationSequence[:1]
        ds.NumberOfEnergyWindows = 1
        ds.EnergyWindowVector = list(ds.EnergyWindowVector)[:views]
        for name in ("DetectorVector", "RotationVector", "AngularViewVector"):
            setattr(ds, name, list(getattr(ds, name))[:views])
        ds.save_as(str(one_window))
    mu_nifti = write_nifti(Volume.centred(mu.astype(np.float32), SPACING), proj / "mu.nii.gz")
    shutil.copy(mu_nifti, proj / "mu-copy.nii.gz")

    def variant(name: str, change: Callable[[pydicom.Dataset], None]) -> Path:
        return _edited_dicom(tomo, proj / name, change)

    static = variant("static.dcm", lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]))
    whole_body = variant("whole-body.dcm", lambda ds: setattr(ds, "ImageType",
                                                              ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]))
    recon_tomo = variant("recon-tomo.dcm", lambda ds: setattr(ds, "ImageType",
                                                              ["DERIVED", "PRIMARY", "RECON TOMO", "EMISSION"]))
    no_angles = variant("no-angles.dcm", lambda ds: delattr(ds, "RotationInformationSequence"))
    short_vector = variant("short-vector.dcm", lambda ds: setattr(ds, "AngularViewVector",
                                                                  list(ds.AngularViewVector)[:-1]))
    frames = variant("frames.dcm", lambda ds: setattr(ds, "NumberOfFrames", int(ds.NumberOfFrames) - 1))
    unknown_coll = variant("vxgp.dcm", lambda ds: setattr(ds.DetectorInformationSequence[0], "CollimatorGridName",
                                                          "VXGP"))
    fan_beam = variant("fan-beam.dcm", lambda ds: setattr(ds.DetectorInformationSequence[0], "CollimatorType", "FANB"))
    truncated = proj / "truncated.dcm"
    truncated.write_bytes(tomo.read_bytes()[: tomo.stat().st_size // 2])
    other_ct = _ct_series(tmp / "ct-other-frame", mu, generate_uid())
    far = write_nifti(Volume(np.zeros((10, 10, 10), np.float32), (SPACING,) * 3, origin=(0.0, 0.0, 500.0)),
                      proj / "mu-far.nii.gz")
    nan_image = write_nifti(Volume.centred(np.full((N_PROJ,) * 3, np.nan, np.float32), SPACING),
                            proj / "image-nan.nii.gz")
    image = proj / "image.nii.gz"
    _spectac("reconstruct", str(tomo), "-o", str(image), "--mu", str(mu_nifti), "--iterations", "1", "--subsets", "4",
             "--cutoff", "0")
    small_image = proj / "image-8cube.nii.gz"
    write_nifti(Volume.centred(np.ones((8, 8, 8), np.float32), SPACING), small_image)
    existing_dcm = proj / "earlier.dcm"
    existing_dcm.write_bytes(b"an earlier output")
    taken_csv = proj / "taken.csv"
    taken_csv.write_text("earlier\n")
    taken_report = proj / "taken.report.html"  # the study report of -o PROJ/taken.nii.gz
    taken_report.write_text("earlier\n")

    # models: a tiny mu model (one epoch on the benchmark's dataset), its archive and broken copies
    models = tmp / "models"
    os.environ["SPECTAC_MODELS_DIR"] = str(models)
    mu_model = tmp / "mu-model"
    _spectac("train", "--model", "unet3d-mu", "--data", str(data), "--out", str(mu_model), "--epochs", "1",
             "--channels", "4,8")
    archive = tmp / "archives" / "mu.zip"
    archive.parent.mkdir()
    _spectac("export-model", str(mu_model), str(archive), "--name", "site-mu")
    _spectac("import-model", str(archive))  # installed: a second import of the name is refused
    with zipfile.ZipFile(archive) as z:
        config_bytes, manifest_bytes = z.read("config.json"), z.read("manifest.json")
    wrong_hash = _rezip(archive, archive.with_name("wrong-hash.zip"), {"config.json": config_bytes + b" "})
    newer = _rezip(archive, archive.with_name("newer.zip"), {"manifest.json": manifest_bytes.replace(
        b'"format_version": 1', b'"format_version": 99')})
    not_zip = archive.with_name("not-a-zip.zip")
    not_zip.write_bytes(b"PK\x03\x04 not really a zip")
    cut_zip = archive.with_name("truncated.zip")
    cut_zip.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    bad_weights = tmp / "model-bad-weights"
    shutil.copytree(mu_model, bad_weights)
    (bad_weights / "best.pt").write_bytes(b"not a checkpoint")
    direct_model = tmp / "unet3d-ac"  # a copy: the table names no folder of this machine
    shutil.copytree(shipped_model_dir("unet3d"), direct_model)

    # an archive folder for the batch form of correct, one with nothing correctable, a taken report
    batch = tmp / "batch"
    for name in ("a/rest.nii.gz", "b/stress.nii.gz"):
        (batch / name).parent.mkdir(parents=True)
        shutil.copy(nc_file, batch / name)
    nothing = tmp / "nothing-correctable"
    (nothing / "docs").mkdir(parents=True)
    (nothing / "docs" / "notes.txt").write_text("x")
    taken = tmp / "report-taken"
    taken.mkdir()
    (taken / "ac.report.pdf").write_bytes(b"someone else's report")

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    _BUSY.append(busy)
    work = o("serve-work")
    serve_configs = _serve_configs(tmp / "serve", work, busy.getsockname()[1])

    # reconstruct
    r = ["--iterations", "1", "--subsets", "4"]
    add("reconstruct", "missing file", [str(proj / "nope.dcm"), "-o", str(o("r1.nii.gz")), *r], o("r1.nii.gz"))
    add("reconstruct", "a NIfTI image instead of projections", [str(nc_file), "-o", str(o("r2.nii.gz")), *r],
        o("r2.nii.gz"))
    add("reconstruct", "a text file", [str(a_file), "-o", str(o("r3.nii.gz")), *r], o("r3.nii.gz"))
    add("reconstruct", "a folder", [str(proj), "-o", str(o("r4.nii.gz")), *r], o("r4.nii.gz"))
    add("reconstruct", "a planar (STATIC) file", [str(static), "-o", str(o("r5.nii.gz")), *r], o("r5.nii.gz"))
    add("reconstruct", "a whole-body file", [str(whole_body), "-o", str(o("r6.nii.gz")), *r], o("r6.nii.gz"))
    add("reconstruct", "a reconstructed (RECON TOMO) file", [str(recon_tomo), "-o", str(o("r7.nii.gz")), *r],
        o("r7.nii.gz"))
    add("reconstruct", "projections without angles", [str(no_angles), "-o", str(o("r8.nii.gz")), *r], o("r8.nii.gz"))
    add("reconstruct", "AngularViewVector one short", [str(short_vector), "-o", str(o("r9.nii.gz")), *r],
        o("r9.nii.gz"))
    add("reconstruct", "NumberOfFrames not matching the vectors", [str(frames), "-o", str(o("r10.nii.gz")), *r],
        o("r10.nii.gz"))
    add("reconstruct", "unknown collimator (VXGP)", [str(unknown_coll), "-o", str(o("r11.nii.gz")), *r],
        o("r11.nii.gz"))
    add("reconstruct", "fan-beam collimator", [str(fan_beam), "-o", str(o("r12.nii.gz")), *r], o("r12.nii.gz"))
    add("reconstruct", "--collimator bogus", [str(tomo), "-o", str(o("r13.nii.gz")), "--collimator", "BOGUS", *r],
        o("r13.nii.gz"))
    add("reconstruct", "truncated DICOM file", [str(truncated), "-o", str(o("r14.nii.gz")), *r], o("r14.nii.gz"))
    add("reconstruct", "CT of another frame of reference as --mu", [str(tomo), "-o", str(o("r15.dcm")), "--mu",
                                                                   str(other_ct), *r], o("r15.dcm"))
    add("reconstruct", "--mu missing", [str(tomo), "-o", str(o("r16.nii.gz")), "--mu", str(proj / "none.nii.gz"),
                                        *r], o("r16.nii.gz"))
    add("reconstruct", "--mu a text file", [str(tomo), "-o", str(o("r17.nii.gz")), "--mu", str(a_file), *r],
        o("r17.nii.gz"))
    add("reconstruct", "--mu far from the SPECT grid", [str(tomo), "-o", str(o("r18.nii.gz")), "--mu", str(far), *r],
        o("r18.nii.gz"))
    add("reconstruct", "--scatter bogus", [str(tomo), "-o", str(o("r19.nii.gz")), "--scatter", "bogus", *r],
        o("r19.nii.gz"))
    add("reconstruct", "--scatter tew, the file without its windows", [str(one_window), "-o", str(o("r20.nii.gz")),
                                                                      "--scatter", "tew", *r], o("r20.nii.gz"))
    add("reconstruct", "--window 9 (4 windows)", [str(tomo), "-o", str(o("r21.nii.gz")), "--window", "9", *r],
        o("r21.nii.gz"))
    add("reconstruct", "--window 511 (keV)", [str(tomo), "-o", str(o("r22.nii.gz")), "--window", "511", *r],
        o("r22.nii.gz"))
    add("reconstruct", "--iterations 0", [str(tomo), "-o", str(o("r23.nii.gz")), "--iterations", "0"],
        o("r23.nii.gz"))
    add("reconstruct", "--subsets 5 (12 views)", [str(tomo), "-o", str(o("r24.nii.gz")), "--iterations", "1",
                                                  "--subsets", "5"], o("r24.nii.gz"), may_succeed=True)
    add("reconstruct", "--cutoff -1", [str(tomo), "-o", str(o("r25.nii.gz")), "--cutoff", "-1", *r], o("r25.nii.gz"))
    add("reconstruct", "--cutoff nan", [str(tomo), "-o", str(o("r26.nii.gz")), "--cutoff", "nan", *r],
        o("r26.nii.gz"))
    add("reconstruct", "-o an existing .dcm", [str(tomo), "-o", str(existing_dcm), *r])
    add("reconstruct", "-o the projections themselves", [str(tomo), "-o", str(tomo), *r])
    add("reconstruct", "-o the --mu NIfTI", [str(tomo), "-o", str(mu_nifti), "--mu", str(mu_nifti), *r])
    add("reconstruct", "-o under a file", [str(tomo), "-o", str(a_file / "r.nii.gz"), *r])

    # qc
    add("qc", "missing projections", [str(proj / "nope.dcm"), "--image", str(image), "--mu", str(mu_nifti)])
    add("qc", "a planar (STATIC) file", [str(static), "--image", str(image), "--mu", str(mu_nifti)])
    add("qc", "--image missing", [str(tomo), "--image", str(proj / "none.nii.gz"), "--mu", str(mu_nifti)])
    add("qc", "--image not NIfTI", [str(tomo), "--image", str(a_file), "--mu", str(mu_nifti)])
    add("qc", "--image an 8^3 grid (does not cover)", [str(tomo), "--image", str(small_image), "--mu", str(mu_nifti)])
    add("qc", "--image all NaN", [str(tomo), "--image", str(nan_image), "--mu", str(mu_nifti)])
    add("qc", "--mu far from the SPECT grid", [str(tomo), "--image", str(image), "--mu", str(far)])
    add("qc", "CT of another frame of reference as --mu", [str(tomo), "--image", str(image), "--mu", str(other_ct),
                                                          "--csv", str(o("q1.csv"))], o("q1.csv"))
    add("qc", "--scatter bogus", [str(tomo), "--image", str(image), "--mu", str(mu_nifti), "--scatter", "x"])
    add("qc", "--csv already there", [str(tomo), "--image", str(image), "--mu", str(mu_nifti), "--csv",
                                      str(taken_csv)])
    add("qc", "--csv under a file", [str(tomo), "--image", str(image), "--mu", str(mu_nifti), "--csv",
                                     str(a_file / "q.csv")])
    add("qc", "--window 9 (4 windows)", [str(tomo), "--image", str(image), "--mu", str(mu_nifti), "--window", "9"])

    # correct --route indirect
    ind = ["correct", "--route", "indirect"]
    w = ["--weights", str(mu_model)]

    def indirect(what: str, src: Path, dst: Path, *extra: str, writes: tuple[Path, ...] | None = None) -> None:
        cases_writes = (dst,) if writes is None else writes
        add("correct", f"indirect: {what}", [*ind[1:], str(src), "-o", str(dst), *extra], *cases_writes)

    indirect("a NIfTI instead of projections", nc_file, o("i1.nii.gz"), *w)
    indirect("a folder instead of projections", proj, o("i2.nii.gz"), *w)
    indirect("a planar (STATIC) file", static, o("i3.nii.gz"), *w)
    indirect("projections without angles", no_angles, o("i4.nii.gz"), *w)
    indirect("a direct (NC -> AC) model as --weights", tomo, o("i5.nii.gz"), "--weights", str(direct_model))
    indirect("--weights missing", tomo, o("i6.nii.gz"), "--weights", str(tmp / "none.pt"))
    indirect("--weights not a checkpoint", tomo, o("i7.nii.gz"), "--weights", str(bad_weights))
    indirect("--method chang (direct route's)", tomo, o("i8.nii.gz"), *w, "--method", "chang")
    indirect("--report with its report file taken", tomo, proj / "taken.nii.gz", *w, "--report",
             writes=(proj / "taken.nii.gz", proj / "taken.report.pdf"))
    indirect("--strict and --arc (direct route's)", tomo, o("i10.nii.gz"), *w, "--strict", "--arc", "180")
    indirect("--scatter bogus", tomo, o("i11.nii.gz"), *w, "--scatter", "bogus")
    indirect("--iterations 0", tomo, o("i12.nii.gz"), *w, "--iterations", "0")
    indirect("--mu-out not NIfTI", tomo, o("i13.nii.gz"), *w, "--mu-out", str(o("i13-mu.txt")),
             writes=(o("i13.nii.gz"), o("i13-mu.txt")))
    indirect("--mu-out an existing file", tomo, o("i14.nii.gz"), *w, "--mu-out", str(proj / "mu-copy.nii.gz"))
    indirect("-o the projections themselves", tomo, tomo, *w, writes=())
    indirect("no window below the photopeak (the mu model takes the scatter image)", one_window, o("i20.nii.gz"), *w)
    indirect("-o an existing NIfTI", tomo, image, *w, writes=())
    add("correct", "--route sideways", ["--route", "sideways", str(tomo), "-o", str(o("i15.nii.gz"))],
        o("i15.nii.gz"))
    add("correct", "direct: --mu-out (indirect route's)", [str(nc_file), "-o", str(o("i16.nii.gz")), "--method",
                                                           "chang", "--mu-out", str(o("i16-mu.nii.gz"))],
        o("i16.nii.gz"), o("i16-mu.nii.gz"))
    add("correct", "direct: --iterations (indirect route's)", [str(nc_file), "-o", str(o("i17.nii.gz")), "--method",
                                                               "chang", "--iterations", "2"], o("i17.nii.gz"))
    add("correct", "direct: a mu model as --weights", [str(nc_file), "-o", str(o("i18.nii.gz")), "--method",
                                                       "unet3d", *w], o("i18.nii.gz"))
    add("correct", "direct: raw projections as input", [str(tomo), "-o", str(o("i19.nii.gz")), "--method", "chang"],
        o("i19.nii.gz"))

    # correct --report
    def report(what: str, dst: Path, *extra: str, writes: tuple[Path, ...] | None = None) -> None:
        stem = dst.name.replace(".nii.gz", "")
        written = (dst, dst.with_name(f"{stem}.report.html"), dst.with_name(f"{stem}.report.pdf"))
        add("correct", f"report: {what}", [str(nc_file), "-o", str(dst), "--method", "chang", *extra],
            *(written if writes is None else writes))

    report("--sex X", o("rp1.nii.gz"), "--report", "--sex", "X")
    report("--state bad", o("rp2.nii.gz"), "--report", "--state", "bad")
    report("--sex without --report", o("rp3.nii.gz"), "--sex", "F")
    report("--state without --report", o("rp4.nii.gz"), "--state", "rest")
    report("report PDF already there", taken / "ac.nii.gz", "--report",
           writes=(taken / "ac.nii.gz", taken / "ac.report.html"))

    # correct on an archive folder (batch)
    def batched(what: str, src: Path, dst: Path, *extra: str, writes: tuple[Path, ...] | None = None) -> None:
        add("correct", f"batch: {what}", [str(src), "-o", str(dst), "--method", "chang", *extra],
            *((dst,) if writes is None else writes))

    batched("output inside the input", batch, batch / "out")
    batched("nothing correctable (--batch)", nothing, o("b1"), "--batch")
    batched("nothing correctable (empty folder)", tmp / "out" / "empty", o("b2"), "--batch")
    batched("--overwrite with a batch", batch, o("b3"), "--overwrite")
    batched("--batch on a file", nc_file, o("b4.nii.gz"), "--batch")
    batched("output is a file", batch, a_file, writes=())
    batched("output under a file", batch, a_file / "b5", writes=())
    batched("input inside the output", batch, batch.parent, writes=(batch.parent / "summary.csv",))
    batched("--weights on chang", batch, o("b6"), "--weights", str(a_file))

    # export-model
    add("export-model", "missing model folder", [str(tmp / "no-model"), str(o("m1.zip"))], o("m1.zip"))
    add("export-model", "unknown model name", ["magic", str(o("m2.zip"))], o("m2.zip"))
    add("export-model", "a folder that is no model", [str(tmp / "nii"), str(o("m3.zip"))], o("m3.zip"))
    add("export-model", "weights that do not load", [str(bad_weights), str(o("m4.zip"))], o("m4.zip"))
    add("export-model", "out not .zip", [str(mu_model), str(o("m5.tar"))], o("m5.tar"))
    add("export-model", "out already there", [str(mu_model), str(archive)])
    add("export-model", "out under a file", [str(mu_model), str(a_file / "m.zip")])
    add("export-model", "--name with a folder", [str(mu_model), str(o("m6.zip")), "--name", "../evil"], o("m6.zip"))
    add("export-model", "out inside the model folder", [str(mu_model), str(mu_model / "m.zip")], mu_model / "m.zip")

    # import-model
    add("import-model", "missing archive", [str(tmp / "none.zip")], models / "none")
    add("import-model", "not a zip", [str(a_file), "--name", "m-a"], models / "m-a")
    add("import-model", "corrupt zip", [str(not_zip), "--name", "m-b"], models / "m-b")
    add("import-model", "truncated zip", [str(cut_zip), "--name", "m-c"], models / "m-c")
    add("import-model", "a member with a wrong sha256", [str(wrong_hash), "--name", "m-d"], models / "m-d")
    add("import-model", "a newer format version", [str(newer), "--name", "m-e"], models / "m-e")
    add("import-model", "a name already installed", [str(archive)])
    add("import-model", "--name ../evil", [str(archive), "--name", "../evil"], tmp / "evil", models.parent / "evil")
    add("import-model", "a model folder, not an archive", [str(mu_model), "--name", "m-f"], models / "m-f")

    # serve (a config that would start would hang: the timeout judges it)
    add("serve", "missing config file", ["--config", str(tmp / "none.toml")], work)
    add("serve", "config is a folder", ["--config", str(tmp / "serve")], work)
    for what, (path, work_k) in serve_configs.items():
        add("serve", what, ["--config", str(path)], work_k)

    return [proj, other_ct, mu_model, tmp / "archives", models, batch, nothing, taken, tmp / "serve"]




def judge(case: BadInput, code: int | None, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code is None:
        return "FAIL: hangs"
    if "Traceback" in stderr:
        return "FAIL: traceback"
    if case.may_succeed and code == 0:
        return "ok (succeeds)"
    if code != 2:
        return f"FAIL: exit {code}"
    if len(lines) != 1:
        return f"FAIL: {len(lines)} lines"
    written = [p for p in case.writes if p.exists() or p.is_symlink()]
    if written:
        return f"FAIL: wrote {written[0].name}"
    return "ok"


def run_case(case: BadInput, timeout: float) -> Outcome:
    env = {**os.environ, "SPECTAC_PROGRESS": "0", "COLUMNS": "2000"}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "spectac.cli", *case.args], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False)
        code, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stderr = None, (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
    seconds = time.perf_counter() - start
    return Outcome(case, code, seconds, stderr, judge(case, code, stderr))


def _cell(text: str, limit: int = 150) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(outcomes: list[Outcome], tmp: Path) -> str:
    rows = ["| command | bad input | exit | seconds | verdict | message (first line) |", "|---|---|---|---|---|---|"]
    for r in outcomes:
        first = next((line for line in r.stderr.splitlines() if line.strip()), "")
        message = first.replace(str(tmp), "TMP").replace(str(Path(spectac.__file__).parent), "SPECTAC")
        exit_code = "killed" if r.code is None else str(r.code)
        rows.append(f"| {r.case.command} | {_cell(r.case.what, 60)} | {exit_code} | {r.seconds:.1f} | {r.verdict} | "
                    f"{_cell(message)} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default: print only)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    parser.add_argument("--only", default=None, help="run only the cases of these commands (comma-separated)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spectac-bad-") as name:
        tmp = Path(name)
        cases, inputs = build_cases(tmp)
        if args.only:
            cases = [c for c in cases if c.command in args.only.split(",")]
        before = {p: _tree_hash(p) for p in inputs}
        outcomes = []
        for case in cases:
            outcome = run_case(case, args.timeout)
            outcomes.append(outcome)
            print(f"{outcome.verdict:>16}  {case.command} {case.what}", file=sys.stderr, flush=True)
        changed = [p.name for p in inputs if _tree_hash(p) != before[p]]
        failed = sum(not o.verdict.startswith("ok") for o in outcomes)
        summary = (f"{len(outcomes)} bad inputs, {len(outcomes) - failed} handled, {failed} failed; "
                   f"inputs changed: {', '.join(changed) or 'none'}")
        body = table(outcomes, tmp)
    command = "python benchmarks/bad_inputs.py" + (f" --only {args.only}" if args.only else "") + (
        f" --out {_shown(args.out)}" if args.out else "")
    text = (f"# Bad input, command by command\n\nMade by `{command}` (spectac "
            f"{_version()}). A case passes when it ends in one error line with exit "
            f"code 2, writes nothing and changes no input (or, where marked, succeeds).\n\n{summary}\n\n{body}\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(summary)
    return 1 if failed or changed else 0


def _version() -> str:
    from importlib.metadata import version

    try:
        return version("spectac")
    except Exception:  # noqa: BLE001 - a source tree without metadata
        return "source tree"


if __name__ == "__main__":
    sys.exit(main())
