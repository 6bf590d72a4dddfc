"""Helpers shared by the DICOM tests (test_dicom_read, test_dicom_write, test_dicom_export,
test_importer, test_correct, test_ood): volumes, contexts, tiny datasets, hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom

from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.dicom import new_context
from spectac.volume import Volume


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def blob_volume(shape=(16, 18, 20), spacing=(6.8, 6.8, 6.8), seed=0, noise=20.0, **geometry) -> Volume:
    """A positive counts-like volume with structure (a smooth blob plus noise)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    blob = 400 * np.exp(-4 * (grid**2).sum(0)) + rng.random(shape) * noise
    if geometry:
        return Volume(blob.astype(np.float32), spacing, **geometry)
    return Volume.centred(blob.astype(np.float32), spacing)


def context(**kw):
    return new_context("PAT1", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", sex="F", **kw)


def tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def quantum(path: Path) -> float:
    files = [path] if path.is_file() else sorted(path.rglob("*.dcm"))
    return max(float(pydicom.dcmread(f, stop_before_pixels=True).RescaleSlope) for f in files)


def tiny_dataset(root: Path, patients: int = 3, shape=(16, 16, 20)) -> Path:
    rng = np.random.default_rng(1)
    cases = []
    for p in range(patients):
        for state in ("rest", "stress"):
            case_id = f"p{p:02d}_{state}"
            ac = blob_volume(shape=shape, seed=p * 2 + (state == "stress"))
            mu = np.zeros(shape, np.float32)
            mu[2:-2, 2:-2, :] = 0.153
            mu[6:9, 6:9, :] = 0.25  # a bone-like rod
            mu[10:13, 3:6, :] = 0.04  # lung-like
            nc = ac.with_array(ac.array / (2 + rng.random()))
            write_study(root, case_id, {"nc": nc, "ac": ac, "mu": ac.with_array(mu)})
            cases.append(Case(case_id, f"P{p:02d}", state, "F" if p % 2 else "M", bmi=22.0 + p, split="test"))
    write_manifest(root, {"source": "test"}, cases)
    return root

