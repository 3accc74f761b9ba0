"""Conv2D / Conv2DTranspose with a float32 bias gradient under mixed_bfloat16 (o2l_tf/layers/bias.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from o2l_tf.layers import Conv2D, Conv2DTranspose


def _bias_gradient(layer_class, policy, inputs, upstream, **kwargs):
    layer = layer_class(3, kwargs.pop("kernel_size", 1), dtype=policy, **kwargs)
    layer.build(inputs.shape)
    layer.set_weights([np.full(w.shape, 0.01, "float32") for w in layer.get_weights()])
    with tf.GradientTape() as tape:
        outputs = layer(inputs)
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
    return outputs, tape.gradient(loss, layer.bias)


@pytest.mark.parametrize("layer_class,strides", [(Conv2D, 1), (Conv2DTranspose, 2)])
def test_bias_gradient_in_bf16_is_the_float32_sum(layer_class, strides):
    """The bias gradient is the sum of the upstream gradient over batch and pixels (NumPy), in bf16 too."""
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(2, 64 // strides, 64 // strides, 4)).astype("float32"))
    upstream = rng.normal(0.01, 0.1, size=(2, 64, 64, 3)).astype("float32")  # 8192 terms per channel
    expected = upstream.sum(axis=(0, 1, 2))
    kwargs = {"strides": strides, "kernel_size": 2} if strides > 1 else {}
    _, gradient32 = _bias_gradient(layer_class, "float32", inputs, upstream, **dict(kwargs))
    _, gradient16 = _bias_gradient(layer_class, "mixed_bfloat16", inputs, upstream, **dict(kwargs))
    np.testing.assert_allclose(gradient32.numpy(), expected, rtol=1e-4)
    # bf16 rounds the upstream values (2^-8 relative), not their sum: within 1 %. Keras' own layer's BiasAdd
    # gradient stalled near 128 per channel here.
    np.testing.assert_allclose(gradient16.numpy(), expected, rtol=1e-2)


def test_keras_conv_bias_gradient_in_bf16_is_the_bug_we_avoid():
    """Documents the TensorFlow behaviour the layers work around; if this starts failing, the workaround can go."""
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(2, 64, 64, 4)).astype("float32"))
    upstream = rng.normal(0.05, 0.1, size=(2, 64, 64, 3)).astype("float32")
    _, gradient = _bias_gradient(keras.layers.Conv2D, "mixed_bfloat16", inputs, upstream)
    assert np.abs(gradient.numpy() - upstream.sum(axis=(0, 1, 2))).max() > 50


@pytest.mark.parametrize("layer_class,strides", [(Conv2D, 1), (Conv2DTranspose, 2)])
def test_float32_is_keras_own_layer_and_bf16_forward_agrees(layer_class, strides, tmp_path):
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(2, 16, 16, 4)).astype("float32")
    keras_class = keras.layers.Conv2D if layer_class is Conv2D else keras.layers.Conv2DTranspose
    ours, theirs = layer_class(5, 3, strides=strides, padding="same"), keras_class(5, 3, strides=strides,
                                                                                    padding="same")
    ours.build(inputs.shape), theirs.build(inputs.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights), theirs.set_weights(weights)
    np.testing.assert_array_equal(ours(inputs).numpy(), theirs(inputs).numpy())
    low = layer_class.from_config({**ours.get_config(), "dtype": "mixed_bfloat16"})
    low.build(inputs.shape)
    low.set_weights(weights)
    np.testing.assert_allclose(tf.cast(low(inputs), tf.float32).numpy(), ours(inputs).numpy(), atol=0.1, rtol=0.02)
    # Config round trip and .keras save/load through the registered class.
    model = keras.Sequential([keras.Input((16, 16, 4)), ours])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is layer_class
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
