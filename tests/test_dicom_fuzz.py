"""Fuzz the DICOM reader: thousands of damaged NM files, and no exception but SpectacError (a seeded
mutator for 2,500 files, and hypothesis for 600 more with its search and shrinking). Whatever the
reader accepts is written back as a derived series: that too succeeds or says SpectacError.

Seeded random mutations (2,500) of valid files (an NM multi-frame file, and a slice read alone or
in its series folder): byte flips, inserted and deleted bytes, truncations, and at the DICOM level
deleted elements (top level and inside sequences) and elements given wrong values. Every outcome must be a Volume that makes sense
or a SpectacError naming the file; every Volume read must then be written (write_dicom_series, with
pydicom's default validation) or refused with a SpectacError, never another exception.
"""

from __future__ import annotations

import io
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from spectac.io.dicom import new_context, read_dicom_volume, write_dicom_series
from spectac.volume import SpectacError, Volume

N_MUTANTS = 2500

JUNK_VALUES = [0, -1, 1, 2, 65535, 2**31 - 1, "", "abc", "NaN", "-inf", "1e308", "0\\0", "1\\2\\3", "\x00\xff",
               "-5", "3.5", "9" * 20]


def _seed_files(tmp: Path) -> list[bytes]:
    rng = np.random.default_rng(0)
    array = (rng.random((8, 7, 6)) * 100).astype(np.float32)
    volume = Volume(array, (6.8, 6.0, 5.0), origin=(-20.0, 10.0, 50.0))  # 6 frames, or 6 slices
    ctx = new_context("FUZZ", "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12", sex="M")
    write_dicom_series(volume, ctx, tmp / "nm.dcm", "FUZZ NM", uid_seed="f")
    ctx_slices = new_context("FUZZ", "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12",
                             kind="slices")
    write_dicom_series(volume, ctx_slices, tmp / "slices", "FUZZ SC", uid_seed="g")
    # Seed 1 is the first slice of a folder of slices: its mutants are read alone (a 2D image) and
    # in place of the original among the other slices of the series (tmp/slices).
    return [(tmp / "nm.dcm").read_bytes(), min((tmp / "slices").iterdir()).read_bytes()]


def _element_paths(ds: Dataset, prefix: tuple = ()) -> list[tuple]:
    """Paths to every element, nested ones included: (tag,) or (sequence tag, item index, ..., tag)."""
    found = []
    for element in ds:
        found.append((*prefix, element.tag))
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                found.extend(_element_paths(item, (*prefix, element.tag, index)))
    return found


def _byte_mutant(data: bytes, rng: np.random.Generator) -> bytes:
    buffer = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # flip bytes, mostly in the header where they do most harm
        header_end = max(200, len(buffer) - 8 * 7 * 6 * 2)
        for _ in range(rng.integers(1, 9)):
            buffer[rng.integers(128, header_end)] = rng.integers(256)
    elif kind == 1:  # truncate
        del buffer[rng.integers(0, len(buffer)):]
    elif kind == 2:  # insert bytes
        at = rng.integers(132, len(buffer))
        buffer[at:at] = rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8).tobytes()
    else:  # delete bytes
        at = rng.integers(132, len(buffer) - 1)
        del buffer[at:at + rng.integers(1, 16)]
    return bytes(buffer)


def _dicom_mutant(data: bytes, paths: list[tuple], rng: np.random.Generator) -> bytes | None:
    ds = pydicom.dcmread(io.BytesIO(data))  # lazily parsed: cheaper than a deep copy
    for _ in range(rng.integers(1, 4)):
        *parents, tag = paths[rng.integers(len(paths))]
        try:
            parent = ds
            for step in parents:
                parent = parent[step] if isinstance(step, BaseTag) else parent.value[step]
            if rng.random() < 0.4:
                del parent[tag]
            else:
                parent[tag].value = JUNK_VALUES[rng.integers(len(JUNK_VALUES))]
        except Exception:  # noqa: BLE001, S112 - an element already deleted, a value pydicom refuses
            continue
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - a mutant pydicom cannot even write is not a file to test
        return None
    return buffer.getvalue()


def _write_back(volume: Volume, context, out: Path) -> str:
    """Write an accepted volume as a derived series, as `spectac correct` would (pydicom's default
    validation): "written" or "refused" (SpectacError); any other exception fails the test."""
    config = pydicom.config.settings
    lenient, config.writing_validation_mode = config.writing_validation_mode, pydicom.config.WARN
    shutil.rmtree(out, ignore_errors=True)
    out.unlink(missing_ok=True)
    try:
        write_dicom_series(volume, context, out, method="fuzz")
    except SpectacError:
        return "refused"
    finally:
        config.writing_validation_mode = lenient
    return "written"


@pytest.fixture(autouse=True)
def _lenient_writing():
    """Let pydicom write the invalid values the fuzzer makes (the reader must cope with them)."""
    config = pydicom.config.settings
    previous = config.writing_validation_mode
    config.writing_validation_mode = pydicom.config.IGNORE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    config.writing_validation_mode = previous


def test_mutated_files_give_a_volume_or_a_spectac_error(tmp_path):
    seeds = _seed_files(tmp_path)
    paths = [_element_paths(pydicom.dcmread(io.BytesIO(data))) for data in seeds]
    rng = np.random.default_rng(12345)
    in_folder = min((tmp_path / "slices").iterdir())
    outcomes: Counter[str] = Counter()
    for i in range(N_MUTANTS):
        which = int(rng.integers(len(seeds))) if rng.random() < 0.3 else 0  # mostly the NM volume
        data = _byte_mutant(seeds[which], rng) if rng.random() < 0.5 else _dicom_mutant(seeds[which], paths[which], rng)
        if data is None:
            outcomes["unwritable"] += 1
            continue
        folder = which == 1 and rng.random() < 0.5
        target = in_folder if folder else tmp_path / "mutant.dcm"
        target.write_bytes(data)
        try:
            volume, context = read_dicom_volume(target.parent if folder else target)
        except SpectacError as exc:
            message = str(exc)
            named = str(target.parent) if folder else str(target)
            assert named in message and "\n" not in message, (i, message)
            outcomes["error"] += 1
            continue
        # Whatever is accepted must be a usable volume.
        assert context.kind == ("slices" if folder else "nm-multiframe") and volume.array.dtype == np.float32
        assert np.all(np.isfinite(volume.array)) and np.any(volume.array)
        assert np.all(np.isfinite(volume.affine_lps)) and min(volume.spacing) > 0
        outcomes["read"] += 1
        out = tmp_path / ("written" if folder else "written.dcm")
        outcomes[_write_back(volume, context, out)] += 1
    print(dict(outcomes))
    assert outcomes["read"] > 0 and outcomes["error"] > N_MUTANTS // 10
    assert outcomes["written"] > outcomes["read"] // 2
    assert outcomes["unwritable"] < N_MUTANTS // 4


# Hypothesis drives the same question with its own search and shrinking (a failure is reported as
# the smallest damage that breaks the reader): edits of the NM file's bytes.
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_EDITS = st.lists(
    st.tuples(st.sampled_from(["set", "insert", "delete", "truncate"]), st.floats(0.0, 1.0),
              st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=4,
)


def _apply_edits(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    buffer = bytearray(data)
    for kind, where, payload in edits:
        at = 132 + int(where * max(len(buffer) - 133, 0))  # after the preamble and "DICM"
        if kind == "set":
            buffer[at:at + len(payload)] = payload
        elif kind == "insert":
            buffer[at:at] = payload
        elif kind == "delete":
            del buffer[at:at + len(payload)]
        else:
            del buffer[at:]
    return bytes(buffer)


_NM_SEED: dict[str, tuple[bytes, Path]] = {}


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=_EDITS)
def test_hypothesis_byte_edits_give_a_volume_or_a_spectac_error(tmp_path_factory, edits):
    if "nm" not in _NM_SEED:  # one valid NM file for every example
        tmp = tmp_path_factory.mktemp("hyp")
        _NM_SEED["nm"] = (_seed_files(tmp)[0], tmp)
    seed, tmp = _NM_SEED["nm"]
    target = tmp / "mutant.dcm"
    target.write_bytes(_apply_edits(seed, edits))
    try:
        volume, context = read_dicom_volume(target)
    except SpectacError as exc:
        assert str(target) in str(exc) and "\n" not in str(exc)
        return
    assert np.all(np.isfinite(volume.array)) and np.all(np.isfinite(volume.affine_lps)) and min(volume.spacing) > 0
    _write_back(volume, context, tmp / "written.dcm")
