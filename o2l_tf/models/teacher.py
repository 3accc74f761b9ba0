"""The teacher annotator: U-Net with box attention on every skip connection (paper Fig. 3, Sec. III-C)."""

from __future__ import annotations

import keras

from o2l_tf.layers import BoxAttention
from o2l_tf.models.unet import ConfiguredModel, as_config, decode, encode, image_input, segmentation_head


@keras.saving.register_keras_serializable(package="o2l")
class TeacherAnnotator(ConfiguredModel):
    """Inputs ``image`` (H, W, 3), ``organ_box`` (H, W, 1), ``lesion_box`` (H, W, 1); output 3-class softmax.

    The variant follows ``config.attention`` and ``config.shortcut`` (the rows of Table II, see
    ``o2l_tf.configs.model.TABLE_II``). Without attention the boxes still reach the teacher, as two extra input
    channels: a teacher is conditioned on its boxes by definition (Eq. 3, p(y | x, b)), and this keeps the rows
    comparable: they differ only in how the boxes act on the skip features. Without attention and without
    shortcut, the skip features do not reach the decoder at all.
    """

    def __init__(self, config=None, input_shape=(None, None), name="teacher", **kwargs):
        config = as_config(config)
        # Functional graph
        image = image_input(config, input_shape)
        organ_box = keras.Input((input_shape[0], input_shape[1], 1), name="organ_box")
        lesion_box = keras.Input((input_shape[0], input_shape[1], 1), name="lesion_box")
        x = image
        if config.attention == "none":
            x = keras.layers.Concatenate(name="image_with_boxes")([image, organ_box, lesion_box])
        skips, bottleneck = encode(x, config)

        def skip_gate(level, features):
            if config.attention == "none":
                return features if config.shortcut else None
            attention = BoxAttention(config.attention, config.shortcut, norm_momentum=config.norm_momentum,
                                     name=f"box_attention_{level}")
            return attention([features, organ_box, lesion_box])

        decoded = decode(bottleneck, skips, config, skip_gate)
        probabilities = segmentation_head(decoded[0], config)
        super().__init__(inputs={"image": image, "organ_box": organ_box, "lesion_box": lesion_box},
                         outputs=probabilities, name=name, **kwargs)
        # Config
        self._remember(config, input_shape)
