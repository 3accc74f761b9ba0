"""Sub-pixel up-sampling for the student's localization branch (paper Sec. III-D, ref. [29])."""

from __future__ import annotations

import keras
import tensorflow as tf

from o2l_tf.layers.bias import Conv2D


@keras.saving.register_keras_serializable(package="o2l")
class PixelShuffle(keras.layers.Layer):
    """conv 3x3 to ``channels * factor**2`` then ``tf.nn.depth_to_space(factor)``: (h, w) -> (h*r, w*r, channels)."""

    def __init__(self, channels: int, factor: int, **kwargs):
        super().__init__(**kwargs)
        if channels < 1 or factor < 1:
            raise ValueError(f"channels and factor must be >= 1, got channels={channels}, factor={factor}")
        self.channels, self.factor = channels, factor
        self.conv = Conv2D(channels * factor * factor, 3, padding="same", name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        x = self.conv(inputs)
        return tf.nn.depth_to_space(x, self.factor) if self.factor > 1 else x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        scale = lambda n: None if n is None else n * self.factor  # noqa: E731
        return (batch, scale(height), scale(width), self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "factor": self.factor}
