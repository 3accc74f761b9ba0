"""The paper's losses (Eq. 3-4): pixel-wise cross-entropy against hard, soft or box-partition targets.

Targets are class-probability maps (B, H, W, C): one-hot labels for strong slices (teacher Eq. 3 and the
student's strong term), the teacher's softmax for weak slices (soft pseudo-labels), and the one-hot box
partition for the localization branch. Each pixel's loss is ``-sum_c w_c * t_c * log p_c``; Keras then averages
over pixels and the *global* batch (reduction ``sum_over_batch_size``), which is what makes the loss correct under
``tf.distribute`` strategies. Computed in float32 whatever the mixed-precision policy.

Student, Eq. (4): L_s = L_seg + alpha * L_loc, compiled as two outputs with ``loss_weights`` (1, alpha).
Optional, not the paper's: a soft Dice term added to L_seg (``dice_weight``; nnU-Net's CE + Dice) for short
schedules, where cross-entropy alone learns the rare lesion class slowly.
Optional, not the paper's: deep supervision (nnU-Net's), a loss on each coarser decoder stage's own head against
the target area-averaged to that stage's resolution, weighted 1/2**level and normalised with the full-resolution
term's weight to 1.
Localization class weights: liver 0.1, lesion 1 (paper); background 1 (the paper is silent; 1 keeps the
background term as strong as the lesion term).
"""

from __future__ import annotations

import keras
from keras import ops

from o2l_tf.configs.model import deep_supervision_name
from o2l_tf.configs.run import PAPER_LOCALIZATION_WEIGHTS  # defined once, with the settings

EPSILON = 1e-7


def pixel_cross_entropy(targets, probabilities, class_weights=None):
    """Per-pixel (optionally class-weighted) cross-entropy, shape (B, H, W), in float32."""
    targets = ops.cast(targets, "float32")
    probabilities = ops.clip(ops.cast(probabilities, "float32"), EPSILON, 1.0)
    terms = targets * ops.log(probabilities)
    if class_weights is not None:
        terms = terms * ops.convert_to_tensor(class_weights, dtype="float32")
    return -ops.sum(terms, axis=-1)


def soft_dice_loss(targets, probabilities):
    """Per-example 1 - mean soft Dice of the foreground classes present in the target, shape (B,), float32.

    Dice_c = 2 sum(p_c t_c) / (sum p_c + sum t_c) over one example's pixels (targets may be soft). A class
    counts as present when at least one pixel's target gives it probability >= 0.5; absent classes are left
    out, so crops without a lesion are not pushed towards predicting none (cross-entropy already penalises
    false positives there); an example without any foreground scores 0. Presence is not "target mass >= 1
    pixel": a teacher's soft labels spread a few percent of lesion probability over every pixel, which is many
    pixels' worth of mass in a lesion-free crop, and a Dice term there pulls lesion probability up everywhere.
    Per example, not per batch, so the value does not depend on how a distribution strategy splits the batch.
    """
    targets = ops.cast(targets, "float32")[..., 1:]
    probabilities = ops.cast(probabilities, "float32")[..., 1:]
    overlap = ops.sum(targets * probabilities, axis=(1, 2))
    mass = ops.sum(targets, axis=(1, 2))
    dice = 2.0 * overlap / ops.maximum(mass + ops.sum(probabilities, axis=(1, 2)), EPSILON)
    present = ops.cast(ops.max(targets, axis=(1, 2)) >= 0.5, "float32")
    count = ops.sum(present, axis=-1)
    return ops.where(count > 0, 1.0 - ops.sum(dice * present, axis=-1) / ops.maximum(count, 1.0), 0.0)


@keras.saving.register_keras_serializable(package="o2l")
class SoftCrossEntropy(keras.losses.Loss):
    """Cross-entropy against probability targets (one-hot or soft), optionally class-weighted, optionally plus
    ``dice_weight`` times :func:`soft_dice_loss`."""

    def __init__(self, class_weights=None, name="soft_cross_entropy", reduction="sum_over_batch_size",
                 dice_weight: float = 0.0, target_pool: int = 1, **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if any(w < 0 for w in class_weights):
                raise ValueError(f"class weights must be non-negative, got {class_weights}")
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be non-negative, got {dice_weight}")
        if target_pool < 1:
            raise ValueError(f"target_pool must be a positive integer, got {target_pool}")
        self.class_weights = class_weights
        self.dice_weight = float(dice_weight)
        self.target_pool = int(target_pool)

    def call(self, y_true, y_pred):
        if self.target_pool > 1:  # a coarser head's target: each class's share of the pooled pixels
            y_true = ops.average_pool(ops.cast(y_true, "float32"), self.target_pool, self.target_pool, "valid")
        pixels = pixel_cross_entropy(y_true, y_pred, self.class_weights)
        if not self.dice_weight:
            return pixels
        # Each example's Dice term added to each of its pixels: the mean over pixels and the global batch is
        # then mean cross-entropy + dice_weight * mean per-example Dice loss.
        return pixels + self.dice_weight * soft_dice_loss(y_true, y_pred)[:, None, None]

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights, "dice_weight": self.dice_weight,
                "target_pool": self.target_pool}


def _weights_unless_uniform(class_weights):
    return None if class_weights is None or all(w == 1.0 for w in class_weights) else class_weights


def teacher_loss(class_weights=None, dice_weight: float = 0.0) -> SoftCrossEntropy:
    """Eq. (3): cross-entropy of the teacher against one-hot labels of strong slices.

    ``class_weights`` (background, liver, lesion): the paper's loss is unweighted; short schedules (the demo)
    weight the rare lesion class up so it is learned in minutes rather than thousands of epochs.
    """
    return SoftCrossEntropy(_weights_unless_uniform(class_weights), name="teacher_cross_entropy",
                            dice_weight=dice_weight)


def deep_supervision_weights(levels: int) -> list[float]:
    """nnU-Net's weights of the full-resolution head and ``levels`` coarser ones: 1/2**level, summing to 1."""
    raw = [0.5 ** level for level in range(levels + 1)]
    return [w / sum(raw) for w in raw]


def student_losses(alpha: float = 1.0, localization_weights=PAPER_LOCALIZATION_WEIGHTS, localization: bool = True,
                   segmentation_weights=None, dice_weight: float = 0.0, deep_supervision: int = 0):
    """Eq. (4) as Keras (losses, loss_weights) for the student's outputs (``deep_supervision`` coarser heads)."""
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    scale_weights = deep_supervision_weights(deep_supervision)
    losses = {"segmentation": SoftCrossEntropy(_weights_unless_uniform(segmentation_weights),
                                               name="segmentation_cross_entropy", dice_weight=dice_weight)}
    weights = {"segmentation": scale_weights[0]}
    for level in range(1, deep_supervision + 1):
        head = deep_supervision_name(level)
        losses[head] = SoftCrossEntropy(_weights_unless_uniform(segmentation_weights), name=f"{head}_cross_entropy",
                                        dice_weight=dice_weight, target_pool=2 ** level)
        weights[head] = scale_weights[level]
    if localization:
        losses["localization"] = SoftCrossEntropy(localization_weights, name="localization_cross_entropy")
        weights["localization"] = float(alpha)
    return losses, weights
