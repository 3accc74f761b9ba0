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


def _numpy_dice_loss(targets, probabilities):
    """Per example: 1 - mean Dice over the foreground classes that some pixel's target gives >= 0.5."""
    values = []
    for t, p in zip(targets, probabilities):
        dices = [2 * (t[..., c] * p[..., c]).sum() / (t[..., c].sum() + p[..., c].sum())
                 for c in (1, 2) if t[..., c].max() >= 0.5]
        values.append(1 - np.mean(dices) if dices else 0.0)
    return np.array(values)


def test_dice_term_by_hand_and_against_numpy():
    from o2l_tf.losses import soft_dice_loss

    # One example, 2 pixels: liver target on pixel 0 only, no lesion (left out), p_liver = (0.6, 0.2).
    targets = np.array([[[[0, 1, 0], [1, 0, 0]]]], "float32")
    probabilities = np.array([[[[0.2, 0.6, 0.2], [0.7, 0.2, 0.1]]]], "float32")
    dice = 2 * 0.6 / (1 + 0.8)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_dice_loss(targets, probabilities)), [1 - dice],
                               rtol=1e-6)
    # Background-only example: no Dice term at all.
    background = np.array([[[[1, 0, 0], [1, 0, 0]]]], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_dice_loss(background, probabilities)), [0.0])
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([1, 1, 1], size=(3, 8, 8)).astype("float32")
    targets = rng.dirichlet([2, 1, 0.3], size=(3, 8, 8)).astype("float32")  # soft targets, like pseudo-labels
    targets[1, ..., 2] = 0  # example 1 has no lesion mass
    targets[1] /= targets[1].sum(-1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_dice_loss(targets, probabilities)),
                               _numpy_dice_loss(targets, probabilities), rtol=1e-5)
    # A teacher's lesion floor: 0.04 lesion probability on all 64 pixels (2.6 pixels of mass) but no pixel a
    # lesion: the lesion term is left out, only the liver's counts.
    floor = np.stack([np.full((1, 8, 8), 0.36), np.full((1, 8, 8), 0.6), np.full((1, 8, 8), 0.04)], -1)
    floor = floor.astype("float32")
    liver_only = 1 - 2 * (floor[..., 1] * probabilities[:1, ..., 1]).sum() / (
        floor[..., 1].sum() + probabilities[:1, ..., 1].sum())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_dice_loss(floor, probabilities[:1])), [liver_only],
                               rtol=1e-5)
    # The loss with dice_weight: mean cross-entropy + weight * mean per-example Dice loss.
    loss = SoftCrossEntropy(class_weights=(1, 1, 4), dice_weight=0.5)
    expected = (keras.ops.convert_to_numpy(pixel_cross_entropy(targets, probabilities, (1, 1, 4))).mean()
                + 0.5 * _numpy_dice_loss(targets, probabilities).mean())
    assert float(loss(targets, probabilities)) == pytest.approx(expected, rel=1e-5)
    assert SoftCrossEntropy.from_config(loss.get_config()).dice_weight == 0.5
    with pytest.raises(ValueError):
        SoftCrossEntropy(dice_weight=-1)


def test_dice_weight_setting_reaches_both_losses_and_is_checked():
    from o2l_tf.configs.run import apply_overrides, preset
    from o2l_tf.errors import InputError
    from o2l_tf.losses import teacher_loss

    from o2l_tf.training.run import build_model, compile_model

    assert teacher_loss().dice_weight == 0.0  # the paper: cross-entropy only
    for role in ("teacher", "student"):  # the setting reaches the loss that training compiles
        config = apply_overrides(preset("test", role), ["train.dice_weight=0.5"])
        model = build_model(config)
        compile_model(model, config, jit=False)
        loss = model.loss["segmentation"] if isinstance(model.loss, dict) else model.loss
        assert loss.dice_weight == 0.5, role
    config = apply_overrides(preset("test", "student"), ["train.dice_weight=-0.5"])
    with pytest.raises(InputError, match="dice_weight"):
        config.validate()


def test_deep_supervision_loss_against_area_averaged_targets():
    from o2l_tf.losses import deep_supervision_weights

    assert deep_supervision_weights(0) == [1.0]
    np.testing.assert_allclose(deep_supervision_weights(2), [4 / 7, 2 / 7, 1 / 7])
    losses, weights = student_losses(localization=False, dice_weight=0.5, deep_supervision=2)
    assert set(losses) == {"segmentation", "deep_supervision_1", "deep_supervision_2"}
    assert weights["deep_supervision_2"] == pytest.approx(1 / 7) and losses["deep_supervision_2"].target_pool == 4
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (2, 8, 8))
    targets = np.eye(3, dtype="float32")[labels]
    probabilities = rng.dirichlet(np.ones(3), (2, 4, 4)).astype("float32")
    # NumPy: each 2x2 block's class shares are the coarse pixel's target
    pooled = targets.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    cross_entropy = -(pooled * np.log(probabilities)).sum(-1).mean()
    foreground = pooled[..., 1:], probabilities[..., 1:]
    dice = 2 * (foreground[0] * foreground[1]).sum((1, 2)) / (foreground[0].sum((1, 2)) + foreground[1].sum((1, 2)))
    present = foreground[0].max((1, 2)) >= 0.5
    dice_loss = np.where(present.any(-1), 1 - (dice * present).sum(-1) / np.maximum(present.sum(-1), 1), 0.0)
    expected = cross_entropy + 0.5 * dice_loss.mean()
    assert float(losses["deep_supervision_1"](targets, probabilities)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="target_pool"):
        SoftCrossEntropy(target_pool=0)
