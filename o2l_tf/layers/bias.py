"""Convolutions whose bias gradient is summed in float32 under low-precision policies.

Under ``mixed_bfloat16`` on CPU, TensorFlow rewrites a convolution's bias add into ``BiasAdd``, whose gradient
kernel (``BiasAddGrad``) accumulates in bfloat16: summing 2 x 128 x 128 small per-pixel gradients stalls at
128, where bfloat16's step (1.0) exceeds each term. Measured on the demo student (batch 2, 128-px crops): the
segmentation logits' bias gradient 0.014 against 0.72 in float32, the localization logits' 0.012 against 0.76,
while kernels and BatchNorm parameters agreed within 1 %. The logits' biases are the class priors, so bf16
training learned them some 50x too slowly. These layers add the bias through a custom gradient that sums in
float32; in float32 they are Keras' own layers, unchanged.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@tf.custom_gradient
def add_bias_float32_gradient(outputs, bias):
    """``outputs + bias`` (bias broadcast over the last axis), the bias gradient reduced in float32."""
    def gradient(upstream):
        axes = list(range(len(upstream.shape) - 1))
        return upstream, tf.cast(tf.reduce_sum(tf.cast(upstream, tf.float32), axis=axes), bias.dtype)

    return tf.nn.bias_add(outputs, bias), gradient


def _finish(layer, outputs):
    if layer.use_bias:
        outputs = add_bias_float32_gradient(outputs, ops.cast(layer.bias, outputs.dtype))
    return layer.activation(outputs) if layer.activation is not None else outputs


def _low_precision(layer) -> bool:
    return layer.use_bias and layer.compute_dtype != "float32" and layer.data_format == "channels_last"


@keras.saving.register_keras_serializable(package="o2l")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a float32 bias gradient under low-precision policies (module docstring)."""

    def call(self, inputs):
        if not _low_precision(self):
            return super().call(inputs)
        return _finish(self, self.convolution_op(inputs, self.kernel))


@keras.saving.register_keras_serializable(package="o2l")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` with a float32 bias gradient under low-precision policies."""

    def call(self, inputs):
        if not _low_precision(self):
            return super().call(inputs)
        outputs = ops.conv_transpose(inputs, self.kernel, strides=list(self.strides), padding=self.padding,
                                     output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
        return _finish(self, outputs)
