"""Display orientation of the report's slices: the patient's right on the viewer's left, anterior
(transaxial) and head (coronal) at the top."""

from __future__ import annotations

import numpy as np

from spectac.evaluation.slices import coronal, transaxial


def test_slice_orientation() -> None:
    volume = np.zeros((10, 12, 14), np.float32)
    volume[8, 2, 11] = 1.0  # patient's left (x high), anterior (y low), head (z high)
    ax = transaxial(volume, 11)
    row, col = np.unravel_index(np.argmax(ax), ax.shape)
    assert ax.shape == (12, 10) and col > ax.shape[1] / 2 and row < ax.shape[0] / 2
    co = coronal(volume, 2)
    row, col = np.unravel_index(np.argmax(co), co.shape)
    assert co.shape == (14, 10) and col > co.shape[1] / 2 and row < co.shape[0] / 2
