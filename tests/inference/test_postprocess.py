"""Post-processing on hand-made label volumes."""

from __future__ import annotations

import numpy as np
import pytest

from o2l_tf.inference.postprocess import fill_axial_holes, postprocess


def liver_block():
    labels = np.zeros((30, 30, 12), np.uint8)
    labels[5:20, 5:20, 2:10] = 1
    return labels


def test_detached_liver_island_is_removed():
    labels = liver_block()
    labels[24:27, 24:27, 4:6] = 1  # a separate island (e.g. the spleen mistaken for liver)
    result = postprocess(labels)
    assert result[24:27, 24:27, 4:6].max() == 0
    np.testing.assert_array_equal(result[5:20, 5:20, 2:10], 1)
    assert np.count_nonzero(result) == 15 * 15 * 8


def test_holes_are_filled_including_a_vessel_crossing_the_liver():
    labels = liver_block()
    labels[10:12, 10:12, 4:6] = 0  # an enclosed hole: a 3D cavity
    labels[14:16, 14:16, :] = 0  # a vessel running through the liver: open in 3D, a hole in every axial slice
    result = postprocess(labels)
    np.testing.assert_array_equal(result[5:20, 5:20, 2:10], 1)
    assert result[14:16, 14:16, :2].max() == 0 and result[14:16, 14:16, 10:].max() == 0  # outside stays background


def test_lesion_hole_is_filled_and_extrahepatic_lesion_removed():
    labels = liver_block()
    labels[8:13, 8:13, 3:7] = 2
    labels[10, 10, 3:7] = 1  # a liver voxel enclosed by lesion in each slice: becomes lesion
    labels[24:28, 24:28, 3:6] = 2  # a lesion outside the liver
    result = postprocess(labels)
    np.testing.assert_array_equal(result[8:13, 8:13, 3:7], 2)
    assert result[24:28, 24:28].max() == 0
    assert np.count_nonzero(result == 2) == 5 * 5 * 4


def test_first_and_last_slices_are_filled_too_and_empty_stays_empty():
    mask = np.zeros((9, 9, 3), bool)
    mask[2:7, 2:7, :] = True
    mask[4, 4, :] = False
    np.testing.assert_array_equal(fill_axial_holes(mask)[2:7, 2:7, :], True)
    assert postprocess(np.zeros((8, 8, 4), np.uint8)).max() == 0


def test_postprocessing_keeps_the_largest_component_by_26_connectivity():
    labels = liver_block()
    labels[20, 20, 5] = 1  # touches the block's corner voxel (19, 19, 5) diagonally: same component
    labels[21, 21, 5] = 1
    result = postprocess(labels)
    assert result[20, 20, 5] == 1 and result[21, 21, 5] == 1


def test_in_place_gives_the_same_labels_and_more_components_than_uint16_holds():
    labels = np.zeros((104, 104, 30), np.uint8)
    labels[::2, ::2, ::2] = 1  # isolated voxels (26-connectivity: 2 apart never touch)
    labels[::4, ::4, ::4] = 2  # some of them lesion
    labels[60:, 60:, 18:] = 0
    labels[70:100, 70:100, 22:29] = 1  # and one block: the largest component
    labels[80:85, 80:85, 24:27] = 2
    expected = np.zeros_like(labels)
    expected[70:100, 70:100, 22:29] = 1
    expected[80:85, 80:85, 24:27] = 2
    copy = labels.copy()
    np.testing.assert_array_equal(postprocess(labels), expected)
    np.testing.assert_array_equal(labels, copy)  # not in place: the input is untouched
    many = np.zeros((140, 140, 30), np.uint8)
    many[::2, ::2, ::2] = 1  # 70 * 70 * 15 = 73,500 components: past uint16, label() falls back to int32
    many[96:134, 96:134, 6:24] = 0  # a margin, so no dot touches the block
    many[100:130, 100:130, 10:20] = 1
    result = postprocess(many, in_place=True)
    assert result is many
    assert np.count_nonzero(result) == 30 * 30 * 10 and result[100:130, 100:130, 10:20].min() == 1


def test_small_lesion_components_become_liver_by_volume_in_mm3():
    from o2l_tf.inference.postprocess import remove_small_lesions

    labels = np.zeros((20, 20, 6), np.uint8)
    labels[2:18, 2:18, :] = 1
    labels[3:5, 3:5, 1:3] = 2  # 8 voxels of 2 x 2 x 3 mm = 96 mm3
    labels[10:14, 10:14, 1:4] = 2  # 48 voxels = 576 mm3
    labels[6, 15, 4] = 2  # 1 voxel = 12 mm3
    kept = postprocess(labels, spacing=(2.0, 2.0, 3.0), min_lesion_mm3=100.0)
    assert np.count_nonzero(kept == 2) == 48 and np.all(kept[10:14, 10:14, 1:4] == 2)
    assert np.count_nonzero(kept >= 1) == np.count_nonzero(labels >= 1)  # removed lesions stay liver
    # 96 mm3 is kept at a threshold of 96 (strictly smaller components go) and the default removes nothing.
    assert np.count_nonzero(remove_small_lesions(labels.copy(), (2.0, 2.0, 3.0), 96.0) == 2) == 56
    np.testing.assert_array_equal(postprocess(labels), postprocess(labels, spacing=(2.0, 2.0, 3.0)))
    with pytest.raises(ValueError, match="spacing"):
        postprocess(labels, min_lesion_mm3=10.0)
