"""PixelShuffle: sub-pixel convolution followed by depth_to_space, against a NumPy rearrangement."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from o2l_tf.layers import PixelShuffle


def depth_to_space_numpy(x, r):
    batch, height, width, depth = x.shape
    channels = depth // (r * r)
    x = x.reshape(batch, height, width, r, r, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, height * r, width * r, channels)


def test_output_equals_conv_then_depth_to_space():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 5, 3)).astype("float32")
    layer = PixelShuffle(channels=2, factor=4)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (2, 16, 20, 2) == layer.compute_output_shape((2, 4, 5, 3))
    conv = keras.ops.convert_to_numpy(layer.conv(x))
    np.testing.assert_allclose(out, depth_to_space_numpy(conv, 4), rtol=1e-6)
    # One hand-checked position: output pixel (1, 2) of the first block comes from depth index (1*4+2)*2 + c.
    np.testing.assert_allclose(out[0, 1, 2, 1], conv[0, 0, 0, (1 * 4 + 2) * 2 + 1], rtol=1e-6)


def test_factor_one_is_a_plain_convolution_and_config_round_trips(tmp_path):
    layer = PixelShuffle(3, 1, name="shuffle")
    x = np.ones((1, 4, 4, 2), "float32")
    assert layer(x).shape == (1, 4, 4, 3)
    assert PixelShuffle.from_config(layer.get_config()).factor == 1
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, PixelShuffle(2, 2, name="shuffle")(inputs))
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


@pytest.mark.parametrize("channels, factor", [(0, 2), (2, 0)])
def test_invalid_arguments(channels, factor):
    with pytest.raises(ValueError):
        PixelShuffle(channels, factor)
