"""In-plane resampling: shapes, exactness where grids nest, no-op at the target spacing, boxes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from o2l_tf.data import resample


def _phantom_labels(shape=(40, 36), seed=0):
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    labels = ((x - 20) ** 2 / 180 + (y - 18) ** 2 / 120 < 1).astype(np.uint8)
    labels[((x - 22) ** 2 + (y - 15) ** 2) < 16] = 2
    labels[rng.uniform(size=shape) < 0.03] = 1  # single-pixel specks: the hardest case for a round trip
    return labels


def test_shapes_follow_the_field_of_view():
    assert resample.resampled_shape((512, 512), (0.7, 0.7), (1.4, 1.4)) == (256, 256)
    assert resample.resampled_shape((100, 90), (0.8, 0.8), (1.0, 1.0)) == (80, 72)
    assert resample.resampled_shape((3, 3), (0.5, 0.5), (10.0, 10.0)) == (1, 1)


def test_spacing_equal_to_the_target_means_no_resampling():
    assert not resample.needs_resampling((0.7, 0.7, 5.0), (0.7, 0.7))
    assert not resample.needs_resampling((0.7004, 0.6996, 2.0), (0.7, 0.7))
    assert resample.needs_resampling((0.7, 0.8, 2.0), (0.7, 0.7))
    assert not resample.needs_resampling((0.7, 0.8, 2.0), None)
    hu = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert resample.resample_image(hu, (3, 4)) is hu  # the very array: not even a copy


@pytest.mark.parametrize("factor", [2, 3])
def test_a_label_map_taken_to_a_nested_finer_grid_and_back_is_unchanged(factor):
    labels = _phantom_labels()
    fine_shape = (labels.shape[0] * factor, labels.shape[1] * factor)
    fine = resample.resample_labels(labels, fine_shape, classes=3)
    assert fine.shape == fine_shape
    blocks = np.kron(labels, np.ones((factor, factor), np.uint8))  # each coarse pixel's label on its fine pixels
    if factor == 2:  # per-class linear weights are at least 9/16 for the own pixel's class: all fine pixels agree
        assert np.array_equal(fine, blocks)
    else:  # at factor 3 the corners of a single-pixel speck go to its surroundings; every block's centre agrees
        centre = factor // 2
        assert np.array_equal(fine[centre::factor, centre::factor], labels)
        assert (fine != blocks).mean() < 0.02
    assert np.array_equal(resample.resample_labels(fine, labels.shape, classes=3), labels)
    assert np.array_equal(resample.resample_labels(blocks, labels.shape, classes=3), labels)


def test_linear_image_resampling_matches_scipy_on_pixel_centres():
    """Pixel i of the new grid samples the old grid at (i + 0.5) * H / H' - 0.5 (edges of the field aligned)."""
    rng = np.random.default_rng(1)
    image = rng.normal(0, 50, (30, 24)).astype(np.float32)
    out = resample.resample_image(image, (45, 16))
    i, j = np.meshgrid(np.arange(45), np.arange(16), indexing="ij")
    x = np.clip((i + 0.5) * 30 / 45 - 0.5, 0, 29)
    y = np.clip((j + 0.5) * 24 / 16 - 0.5, 0, 23)
    expected = ndimage.map_coordinates(image, [x, y], order=1)
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_int16_hu_stays_int16_and_three_slice_channels_stay_independent():
    hu = np.stack([np.full((20, 20), v, np.int16) for v in (-200, 40, 250)], axis=-1)
    out = resample.resample_image(hu, (31, 13))
    assert out.dtype == np.int16 and out.shape == (31, 13, 3)
    assert [int(v) for v in out[5, 5]] == [-200, 40, 250]


def test_probabilities_still_sum_to_one_and_a_label_map_is_their_argmax():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(16, 12, 3))
    probabilities = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    out = resample.resample_probabilities(probabilities, (23, 17))
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    assert out.min() >= 0


def test_a_scaled_box_covers_the_same_field():
    assert resample.scale_box((10, 4, 19, 9), (40, 40), (20, 20)) == (5, 2, 9, 4)
    assert resample.scale_box((10, 4, 19, 9), (40, 40), (80, 80)) == (20, 8, 39, 19)
    assert resample.scale_box((0, 0, 39, 39), (40, 40), (27, 27)) == (0, 0, 26, 26)
    # a one-pixel box never vanishes or inverts
    x0, y0, x1, y1 = resample.scale_box((7, 7, 7, 7), (40, 40), (10, 10))
    assert x0 <= x1 and y0 <= y1
    # it covers the rasterised mask of the same box resampled (nearest), so no box pixel is lost
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 4:10] = 1
    small = resample.resample_mask(mask, (27, 27))
    bx0, by0, bx1, by1 = resample.scale_box((10, 4, 19, 9), (40, 40), (27, 27))
    xs, ys = np.nonzero(small)
    assert bx0 <= xs.min() and xs.max() <= bx1 and by0 <= ys.min() and ys.max() <= by1
