"""Volume axes (volume.py): reordering to LPS axes and back."""

from __future__ import annotations

import numpy as np
from dicom_helpers import blob_volume

from spectac.volume import Volume, to_lps_axes


def test_lps_axes_reorder_round_trip():
    volume = blob_volume(origin=(5.0, 6.0, 7.0), direction=np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0.0]]))
    ordered, order = to_lps_axes(volume)
    np.testing.assert_allclose(ordered.direction, np.eye(3), atol=1e-12)
    # the same voxel values at the same places
    for index in ([0, 0, 0], [2, 5, 7], [15, 17, 19]):
        point = volume.point_of(np.array(index))
        mapped = np.rint(ordered.index_of(point)).astype(int)
        assert ordered.array[tuple(mapped)] == volume.array[tuple(index)]
    assert not order.identity
    back = order.undo(ordered.array, volume)
    np.testing.assert_array_equal(back.array, volume.array)



def test_world_coordinates_of_a_box_are_those_of_the_whole_grid_there():
    rotated = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    volume = Volume(np.zeros((7, 9, 5), np.float32), (2.0, 3.0, 4.0), (1.0, -2.0, 3.0), rotated)
    whole = volume.world_coordinates()
    assert whole.shape == (7, 9, 5, 3)
    np.testing.assert_allclose(whole[1, 2, 3], volume.point_of(np.array([1.0, 2.0, 3.0])))
    for box in [(slice(2, 5), slice(0, 9), slice(3, 5)), (slice(0, 1), slice(8, 20), slice(0, 5))]:
        np.testing.assert_array_equal(volume.world_coordinates(box), whole[box])
