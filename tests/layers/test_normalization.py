"""FusedBatchNorm: Keras BatchNormalization's numbers (outputs, gradients, moving statistics) through one fused op."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from o2l_tf.layers.normalization import FusedBatchNorm


def twin_layers(shape, momentum=0.9):
    """A FusedBatchNorm and a Keras BatchNormalization with the same random gamma, beta and moving statistics."""
    rng = np.random.default_rng(0)
    fused, reference = FusedBatchNorm(momentum=momentum), keras.layers.BatchNormalization(momentum=momentum)
    fused.build(shape), reference.build(shape)
    channels = shape[-1]
    values = [rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
              rng.uniform(0.5, 2, channels)]
    for layer in (fused, reference):
        layer.set_weights([v.astype("float32") for v in values])
    return fused, reference


def test_training_step_matches_numpy_and_keras():
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(2, 6, 5, 4)).astype("float32")
    fused, reference = twin_layers(x.shape)
    gamma, beta, moving_mean, moving_variance = (w.copy() for w in fused.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        inputs = tf.constant(x)
        tape.watch(inputs)
        out_fused, out_reference = fused(inputs, training=True), reference(inputs, training=True)
        loss_fused = tf.reduce_sum(out_fused * tf.range(4, dtype=tf.float32))
        loss_reference = tf.reduce_sum(out_reference * tf.range(4, dtype=tf.float32))
    # NumPy: biased batch moments over N, H, W.
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    expected = (x - mean) / np.sqrt(variance + fused.epsilon) * gamma + beta
    np.testing.assert_allclose(out_fused.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out_fused.numpy(), out_reference.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), 0.9 * moving_mean + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.9 * moving_variance + 0.1 * variance, rtol=1e-5)
    for fused_source, reference_source in ((inputs, inputs), (fused.gamma, reference.gamma)):
        np.testing.assert_allclose(tape.gradient(loss_fused, fused_source).numpy(),
                                   tape.gradient(loss_reference, reference_source).numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_the_fused_kernel_is_what_runs(training):
    """Equal numbers alone would also hold if every call fell back to Keras: the traced graph must hold the kernel."""
    fused, _ = twin_layers((2, 4, 4, 3))
    graph = tf.function(lambda x: fused(x, training=training)).get_concrete_function(
        tf.TensorSpec((2, 4, 4, 3), tf.float32)).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    flat, _ = twin_layers((2, 4, 3))
    rank_three = tf.function(lambda x: flat(x, training=training)).get_concrete_function(
        tf.TensorSpec((2, 4, 3), tf.float32)).graph
    assert "FusedBatchNormV3" not in {op.type for op in rank_three.get_operations()}  # Keras' own code


def test_inference_uses_moving_statistics_and_bfloat16_stays_close():
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype("float32")
    fused, reference = twin_layers(x.shape)
    gamma, beta, moving_mean, moving_variance = fused.get_weights()
    expected = (x - moving_mean) / np.sqrt(moving_variance + fused.epsilon) * gamma + beta
    np.testing.assert_allclose(fused(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused(x, training=False).numpy(), reference(x, training=False).numpy(), atol=1e-5)
    mixed = FusedBatchNorm(dtype="mixed_bfloat16")
    mixed.build(x.shape)
    mixed.set_weights(fused.get_weights())
    out = mixed(tf.cast(x, tf.bfloat16), training=False)
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), expected, rtol=2e-2, atol=2e-2)


def test_fallback_to_keras_for_what_the_kernel_cannot_do():
    x = np.random.default_rng(3).normal(size=(3, 5, 4)).astype("float32")  # rank 3: Keras's own code
    fused, reference = twin_layers(x.shape)
    np.testing.assert_allclose(fused(x, training=True).numpy(), reference(x, training=True).numpy(), atol=1e-5)


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, FusedBatchNorm(name="norm")(inputs))
    model.layers[-1].set_weights([np.full(2, 2.0, "float32"), np.ones(2, "float32"), np.full(2, 0.5, "float32"),
                                  np.full(2, 4.0, "float32")])
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 2)).astype("float32")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("norm"), FusedBatchNorm)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

