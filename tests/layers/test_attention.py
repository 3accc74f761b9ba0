"""BoxAttention: Eq. (1)-(2) against NumPy with fixed weights, variants, resizing and serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from o2l_tf.layers import BoxAttention

EPS = 1e-3  # Keras BatchNormalization default epsilon


def conv_same(x, kernel):
    """NumPy 'same' convolution (cross-correlation, as Keras) of (B, H, W, Cin) with (k, k, Cin, Cout)."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((*x.shape[:3], kernel.shape[3]))
    for di in range(k):
        for dj in range(k):
            out += np.einsum("bhwc,cd->bhwd", padded[:, di:di + x.shape[1], dj:dj + x.shape[2]], kernel[di, dj])
    return out


def batch_norm(x, gamma, beta, mean, var):
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def randomize(layer, rng):
    """Give every weight (kernels, gamma, beta, moving statistics) a random, valid value."""
    values = []
    for weight in layer.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            values.append(rng.uniform(0.5, 2.0, shape))
        else:
            values.append(rng.normal(0, 0.5, shape))
    layer.set_weights(values)


def gate_numpy(layer, name, box):
    conv, norm = getattr(layer, f"{name}_conv"), getattr(layer, f"{name}_norm")
    kernel = conv.get_weights()[0]
    gamma, beta, mean, var = norm.get_weights()
    return sigmoid(batch_norm(conv_same(box, kernel), gamma, beta, mean, var))


@pytest.fixture()
def inputs():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    organ = np.zeros((2, 8, 8, 1), "float32")
    organ[:, 1:7, 2:8] = 1
    lesion = np.zeros((2, 8, 8, 1), "float32")
    lesion[:, 3:5, 4:6] = 1
    return features, organ, lesion


@pytest.mark.parametrize("shortcut", [True, False])
def test_o2l_matches_equations_1_and_2(inputs, shortcut):
    features, organ, lesion = inputs
    layer = BoxAttention("o2l", shortcut=shortcut)
    layer([features, organ, lesion])
    randomize(layer, np.random.default_rng(1))
    out = keras.ops.convert_to_numpy(layer([features, organ, lesion], training=False))
    w_og, w_le = gate_numpy(layer, "organ", organ), gate_numpy(layer, "lesion", lesion)
    if shortcut:
        f_og = features + w_og * features  # Eq. (1)
        expected = f_og + w_le * f_og  # Eq. (2)
    else:
        f_og = w_og * features
        expected = w_le * f_og
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_multichannel_gate_uses_both_boxes_at_once(inputs):
    features, organ, lesion = inputs
    layer = BoxAttention("multichannel", shortcut=True)
    layer([features, organ, lesion])
    randomize(layer, np.random.default_rng(2))
    assert layer.gate_names == ("boxes",) and tuple(layer.boxes_conv.kernel.shape) == (3, 3, 2, 4)
    out = keras.ops.convert_to_numpy(layer([features, organ, lesion], training=False))
    weights = gate_numpy(layer, "boxes", np.concatenate([organ, lesion], axis=-1))
    np.testing.assert_allclose(out, features + weights * features, rtol=1e-4, atol=1e-5)


def test_boxes_are_resized_to_the_feature_scale(inputs):
    features, _, _ = inputs
    organ = np.zeros((2, 32, 32, 1), "float32")
    organ[:, 8:24, 4:28] = 1
    lesion = np.zeros((2, 32, 32, 1), "float32")
    lesion[:, 15, 15] = 1  # a one-pixel lesion box must not vanish at 1/4 resolution
    layer = BoxAttention("o2l")
    resized = keras.ops.convert_to_numpy(layer._resize(organ, features))
    assert resized.shape == (2, 8, 8, 1)
    assert resized[:, 3:5, 2:6].min() == pytest.approx(1.0) and resized[:, 0, 0].max() == 0.0
    tiny = keras.ops.convert_to_numpy(layer._resize(lesion, features))
    assert tiny.max() > 0.01 and tiny.min() >= 0.0
    assert layer([features, organ, lesion]).shape == features.shape


def test_config_round_trip_save_load_and_fit(tmp_path, inputs):
    features, organ, lesion = inputs
    f_in = keras.Input((8, 8, 4))
    b_og, b_le = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    layer = BoxAttention("o2l", shortcut=False, kernel_size=5, name="gate")
    model = keras.Model([f_in, b_og, b_le], layer([f_in, b_og, b_le]))
    clone = BoxAttention.from_config(layer.get_config())
    assert (clone.mode, clone.shortcut, clone.kernel_size) == ("o2l", False, 5)
    assert layer.compute_output_shape([(2, 8, 8, 4), (2, 8, 8, 1), (2, 8, 8, 1)]) == (2, 8, 8, 4)
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit([features, organ, lesion], np.zeros_like(features), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path / "gate.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict([features, organ, lesion], verbose=0),
                                  model.predict([features, organ, lesion], verbose=0))


@pytest.mark.parametrize("kwargs", [dict(mode="scn"), dict(mode="o2l", kernel_size=4), dict(kernel_size=0)])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        BoxAttention(**kwargs)


def test_checkpoints_hold_the_gates_moving_statistics(inputs, tmp_path):
    """tf.train.Checkpoint must reach the gates' BatchNorm statistics, or a resumed run silently loses them."""
    import tensorflow as tf

    features, organ, lesion = inputs
    layer = BoxAttention("o2l")
    layer([features, organ, lesion])
    randomize(layer, np.random.default_rng(5))
    saved = [w.copy() for w in layer.get_weights()]
    path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
    fresh = BoxAttention("o2l")
    fresh([features, organ, lesion])
    tf.train.Checkpoint(layer=fresh).restore(path).assert_consumed()
    for a, b in zip(saved, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
