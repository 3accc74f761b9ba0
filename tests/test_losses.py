"""Eq. (3)-(4) losses against hand computations, including soft targets and class weights."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from o2l_tf.losses import PAPER_LOCALIZATION_WEIGHTS, SoftCrossEntropy, pixel_cross_entropy, student_losses


def test_hard_soft_and_weighted_pixels_by_hand():
    probabilities = np.array([[[[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]]], "float32")  # (1, 1, 2, 3)
    hard = np.array([[[[1, 0, 0], [0, 0, 1]]]], "float32")
    soft = np.array([[[[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]]]], "float32")
    per_pixel = keras.ops.convert_to_numpy(pixel_cross_entropy(hard, probabilities))
    np.testing.assert_allclose(per_pixel, [[[-math.log(0.7), -math.log(0.6)]]], rtol=1e-6)
    per_pixel = keras.ops.convert_to_numpy(pixel_cross_entropy(soft, probabilities))
    expected = [-(0.5 * math.log(0.7) + 0.5 * math.log(0.2)), -(0.25 * math.log(0.3) + 0.75 * math.log(0.6))]
    np.testing.assert_allclose(per_pixel, [[expected]], rtol=1e-6)
    liver = np.array([[[[0, 1, 0], [0, 0, 1]]]], "float32")
    weighted = keras.ops.convert_to_numpy(pixel_cross_entropy(liver, probabilities, PAPER_LOCALIZATION_WEIGHTS))
    np.testing.assert_allclose(weighted, [[[-0.1 * math.log(0.2), -math.log(0.6)]]], rtol=1e-6)


def test_loss_averages_over_pixels_and_batch():
    probabilities = np.full((2, 2, 2, 3), 1 / 3, "float32")
    probabilities[1, 0, 0] = [0.8, 0.1, 0.1]
    targets = np.zeros((2, 2, 2, 3), "float32")
    targets[..., 0] = 1
    value = float(SoftCrossEntropy()(targets, probabilities))
    assert value == pytest.approx((7 * math.log(3) - math.log(0.8)) / 8, rel=1e-6)


def test_zero_probability_is_clipped_not_infinite():
    value = float(SoftCrossEntropy()(np.array([[[[0, 1, 0]]]], "float32"), np.array([[[[1, 0, 0]]]], "float32")))
    assert np.isfinite(value) and value == pytest.approx(-math.log(1e-7), rel=1e-4)


def test_student_losses_follow_equation_4():
    losses, weights = student_losses(alpha=0.5)
    assert weights == {"segmentation": 1.0, "localization": 0.5}
    assert losses["localization"].class_weights == [1.0, 0.1, 1.0]
    losses, weights = student_losses(localization=False)
    assert set(losses) == {"segmentation"}
    with pytest.raises(ValueError):
        student_losses(alpha=-1)
    with pytest.raises(ValueError):
        SoftCrossEntropy(class_weights=[1, -0.1, 1])
    assert SoftCrossEntropy.from_config(losses["segmentation"].get_config()).class_weights is None



def test_segmentation_class_weights_are_opt_in():
    from o2l_tf.losses import teacher_loss

    assert teacher_loss().class_weights is None and teacher_loss((1, 1, 1)).class_weights is None  # the paper
    weighted = teacher_loss((1, 1, 4))
    probabilities = np.array([[[[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]]], "float32")
    targets = np.array([[[[0, 0, 1], [1, 0, 0]]]], "float32")
    assert float(weighted(targets, probabilities)) == pytest.approx((-4 * math.log(0.5) - math.log(0.6)) / 2, rel=1e-6)
    losses, _ = student_losses(segmentation_weights=(1, 1, 4))
    assert losses["segmentation"].class_weights == [1.0, 1.0, 4.0]
