"""Streaming global Dice of liver (label >= 1) or lesion (label == 2), as a Keras metric."""

from __future__ import annotations

import keras
from keras import ops

TARGETS = ("liver", "lesion")


@keras.saving.register_keras_serializable(package="o2l")
class DiceScore(keras.metrics.Metric):
    """Dice pooled over every pixel seen (LiTS "Dice global" on slices); argmax of targets and predictions.

    Pixels whose target is all zero (padding) are ignored. With no target and no predicted pixel, Dice is 1.
    """

    def __init__(self, target: str = "liver", name: str | None = None, **kwargs):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        super().__init__(name=name or f"{target}_dice", **kwargs)
        self.target = target
        self.intersection = self.add_variable(shape=(), initializer="zeros", aggregation="sum", name="intersection")
        self.total = self.add_variable(shape=(), initializer="zeros", aggregation="sum", name="total")

    def _mask(self, classes):
        return classes >= 1 if self.target == "liver" else classes == 2

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "float32")
        valid = ops.sum(y_true, axis=-1) > 0.5
        truth = ops.logical_and(self._mask(ops.argmax(y_true, axis=-1)), valid)
        predicted = ops.logical_and(self._mask(ops.argmax(ops.cast(y_pred, "float32"), axis=-1)), valid)
        truth, predicted = ops.cast(truth, "float32"), ops.cast(predicted, "float32")
        self.intersection.assign_add(ops.sum(truth * predicted))
        self.total.assign_add(ops.sum(truth) + ops.sum(predicted))

    def result(self):
        return ops.where(self.total > 0, 2.0 * self.intersection / ops.maximum(self.total, 1.0), 1.0)

    def reset_state(self):
        self.intersection.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "target": self.target}
