"""DICOM reading (io/dicom/read.py): slice order, vendor variants of the NM geometry and scaling,
legacy files, and real files of other kinds refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import blob_volume, context, quantum, rotation, tree_hash

from spectac.io.dicom import read_dicom_volume, write_dicom_series
from spectac.volume import SpectacError


def test_slices_are_sorted_by_position_not_by_name(tmp_path):
    volume = blob_volume(direction=rotation([0, 0, 1], 90), origin=(1.0, 2.0, 3.0))
    out = tmp_path / "slices"
    write_dicom_series(volume, context(kind="slices"), out, "sort", uid_seed="t")
    files = sorted(out.iterdir())
    for i, f in enumerate(files):  # reverse the names: the reader must use positions
        f.rename(out / f"x{len(files) - i:03d}.dcm")
    back, _ = read_dicom_volume(out)
    np.testing.assert_allclose(back.affine_lps, volume.affine_lps, atol=1e-6)
    assert np.abs(back.array - volume.array).max() <= quantum(out) / 2 + 1e-4


def test_vendor_variants_of_the_nm_geometry_and_scaling(tmp_path):
    """Siemens-style top-level geometry, frames stored head to feet, Real World Value Mapping."""
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.sequence import Sequence as DicomSequence

    volume = blob_volume(origin=(-50.0, -60.0, -70.0), direction=rotation([0, 0, 1], 30))
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "NC", derived=False, uid_seed="v")
    reference, _ = read_dicom_volume(tmp_path / "nm.dcm")

    ds = pydicom.dcmread(tmp_path / "nm.dcm")
    del ds.DetectorInformationSequence[0].ImagePositionPatient
    del ds.DetectorInformationSequence[0].ImageOrientationPatient
    ds.save_as(tmp_path / "top.dcm")
    top, _ = read_dicom_volume(tmp_path / "top.dcm")
    np.testing.assert_allclose(top.affine_lps, reference.affine_lps, atol=1e-6)
    np.testing.assert_array_equal(top.array, reference.array)

    ds = pydicom.dcmread(tmp_path / "nm.dcm")  # the same slices stored from the last to the first
    frames = ds.pixel_array[::-1].copy()
    ds.PixelData = frames.tobytes()
    last = reference.point_of(np.array([0.0, 0.0, volume.shape[2] - 1]))
    ds.DetectorInformationSequence[0].ImagePositionPatient = [f"{v:.6f}" for v in last]
    ds.ImagePositionPatient = ds.DetectorInformationSequence[0].ImagePositionPatient
    ds.SpacingBetweenSlices = f"-{ds.SpacingBetweenSlices}"
    ds.save_as(tmp_path / "reversed.dcm")
    reversed_, _ = read_dicom_volume(tmp_path / "reversed.dcm")
    for index in ([0, 0, 0], [5, 6, 7]):
        mirrored = np.array([index[0], index[1], volume.shape[2] - 1 - index[2]])
        np.testing.assert_allclose(reversed_.point_of(mirrored), reference.point_of(np.array(index)), atol=1e-4)
        assert reversed_.array[tuple(mirrored)] == reference.array[tuple(index)]

    ds = pydicom.dcmread(tmp_path / "nm.dcm")
    mapping = DicomDataset()
    mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept = ds.RescaleSlope, ds.RescaleIntercept
    mapping.RealWorldValueFirstValueMapped, mapping.RealWorldValueLastValueMapped = 0, 65535
    ds.RealWorldValueMappingSequence = DicomSequence([mapping])
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.save_as(tmp_path / "rwvm.dcm")
    rwvm, _ = read_dicom_volume(tmp_path / "rwvm.dcm")
    np.testing.assert_array_equal(rwvm.array, reference.array)


def test_legacy_file_without_preamble_is_read(tmp_path):
    volume = blob_volume()
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "NC", derived=False, uid_seed="l")
    ds = pydicom.dcmread(tmp_path / "nm.dcm")
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(tmp_path / "legacy", ds, implicit_vr=True, little_endian=True)
    assert (tmp_path / "legacy").read_bytes()[128:132] != b"DICM"
    back, _ = read_dicom_volume(tmp_path / "legacy")
    reference, _ = read_dicom_volume(tmp_path / "nm.dcm")
    np.testing.assert_array_equal(back.array, reference.array)
    np.testing.assert_allclose(back.affine_lps, reference.affine_lps)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("CT_small.dcm", "is a CT series, expected NM/PT SPECT"),
        ("MR_small.dcm", "is a MR series, expected NM/PT SPECT"),
        ("rtdose.dcm", "is a RTDOSE series"),
        ("MR_truncated.dcm", "MR_truncated.dcm"),
        ("no_meta.dcm", "not a DICOM file"),  # no preamble and nothing of an image
        ("SC_rgb_small_odd.dcm", "is a 2D image"),
    ],
)
def test_real_files_of_other_kinds_are_refused(name, words):
    """Files from real scanners (pydicom's test data): a clear refusal, never a crash."""
    path = Path(pydicom.data.get_testdata_file(name))
    before = tree_hash(path)
    with pytest.raises(SpectacError) as caught:
        read_dicom_volume(path)
    assert str(path) in str(caught.value)
    assert words in str(caught.value), str(caught.value)
    assert tree_hash(path) == before

