"""The U-Net shared by teacher and student: encoder and decoder builders, and the plain backbone model."""

from __future__ import annotations

from typing import Callable

import keras

from o2l_tf.configs.model import ModelConfig
from o2l_tf.layers import Conv2D, Conv2DTranspose, ConvBlock


def encoder_filters(config: ModelConfig) -> list[int]:
    """Filters of each encoder level and the bottleneck: base * 2**level."""
    return [config.base_filters * 2 ** level for level in range(config.depth + 1)]


def encode(x, config: ModelConfig):
    """Encoder: returns the skip features (full resolution first) and the bottleneck."""
    filters = encoder_filters(config)
    skips = []
    for level in range(config.depth):
        x = ConvBlock(filters[level], config.norm_momentum, name=f"encoder_{level}")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{level}")(x)
    return skips, ConvBlock(filters[config.depth], config.norm_momentum, name="bottleneck")(x)


def decode(bottleneck, skips, config: ModelConfig, skip_gate: Callable | None = None):
    """Decoder: up-convolution, (gated) skip concatenation, conv block, from the deepest scale up.

    ``skip_gate(level, features)`` returns the features to concatenate, or None to drop the skip.
    Returns the decoder outputs indexed by level (0 = full resolution).
    """
    filters = encoder_filters(config)
    x, outputs = bottleneck, {}
    for level in reversed(range(config.depth)):
        x = Conv2DTranspose(filters[level], 2, strides=2, name=f"upconv_{level}")(x)
        skip = skips[level] if skip_gate is None else skip_gate(level, skips[level])
        if skip is not None:
            x = keras.layers.Concatenate(name=f"skip_concat_{level}")([x, skip])
        x = ConvBlock(filters[level], config.norm_momentum, name=f"decoder_{level}")(x)
        outputs[level] = x
    return outputs


def segmentation_head(features, config: ModelConfig, name: str = "segmentation"):
    """1x1 convolution to class logits and a float32 softmax (safe under mixed precision)."""
    logits = Conv2D(config.num_classes, 1, name=f"{name}_logits")(features)
    return keras.layers.Activation("softmax", dtype="float32", name=name)(logits)


def image_input(config: ModelConfig, input_shape):
    height, width = input_shape[0], input_shape[1]
    config.check_input_size(height, width)
    return keras.Input((height, width, config.image_channels), name="image")


def as_config(config) -> ModelConfig:
    if config is None:
        config = ModelConfig()
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    config.validate()
    return config


class ConfiguredModel(keras.Model):
    """Functional model built from (ModelConfig, input_shape): the constructor arguments are its config."""

    def _remember(self, config: ModelConfig, input_shape) -> None:
        self.model_config, self.spatial_shape = config, tuple(input_shape)

    def get_config(self):
        return {"config": self.model_config.to_dict(), "input_shape": list(self.spatial_shape), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="o2l")
class UNetBackbone(ConfiguredModel):
    """The plain U-Net (image in, 3-class softmax out); the student's inference graph has exactly its weights."""

    def __init__(self, config=None, input_shape=(None, None), name="unet", **kwargs):
        config = as_config(config)
        # Functional graph
        image = image_input(config, input_shape)
        skips, bottleneck = encode(image, config)
        decoded = decode(bottleneck, skips, config)
        probabilities = segmentation_head(decoded[0], config)
        super().__init__(inputs={"image": image}, outputs=probabilities, name=name, **kwargs)
        # Config
        self._remember(config, input_shape)
