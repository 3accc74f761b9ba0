"""The U-Net's double convolution: (conv 3x3 -> BatchNorm -> ReLU) x 2."""

from __future__ import annotations

import keras

from o2l_tf.layers.normalization import FusedBatchNorm


@keras.saving.register_keras_serializable(package="o2l")
class ConvBlock(keras.layers.Layer):
    """Two conv-BN-ReLU units with ``filters`` channels; the convolutions carry no bias (BN has one)."""

    def __init__(self, filters: int, norm_momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"filters must be at least 1, got {filters}")
        self.filters, self.norm_momentum = filters, norm_momentum
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1")
        self.norm1 = FusedBatchNorm(momentum=norm_momentum, synchronized=True, name="norm1")
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv2")
        self.norm2 = FusedBatchNorm(momentum=norm_momentum, synchronized=True, name="norm2")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.norm1.build(self.conv1.compute_output_shape(input_shape))
        middle = (*input_shape[:-1], self.filters)
        self.conv2.build(middle)
        self.norm2.build(middle)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = keras.ops.relu(self.norm1(self.conv1(inputs), training=training))
        return keras.ops.relu(self.norm2(self.conv2(x), training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "norm_momentum": self.norm_momentum}
