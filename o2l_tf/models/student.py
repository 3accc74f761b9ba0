"""The student segmentor: U-Net plus a pixel-shuffle localization branch (paper Fig. 5, Sec. III-D)."""

from __future__ import annotations

import keras

from o2l_tf.configs.model import deep_supervision_name
from o2l_tf.layers import Conv2D, PixelShuffle
from o2l_tf.models.unet import ConfiguredModel, as_config, decode, encode, image_input, segmentation_head


@keras.saving.register_keras_serializable(package="o2l")
class StudentSegmentor(ConfiguredModel):
    """Input ``image``; outputs ``segmentation`` (3-class softmax) and ``localization`` (3-class softmax).

    The localization branch brings each chosen decoder stage to full resolution with a sub-pixel convolution
    (conv to C*r*r channels, ``tf.nn.depth_to_space(r)``), concatenates them, fuses with a 3x3 conv and
    classifies into background / liver box / lesion box. With ``config.deep_supervision`` = K (not the paper's)
    the decoder stages at 1/2 ... 1/2**K resolution have segmentation heads too (outputs
    ``deep_supervision_1`` ... ``_K``); ``localization=False`` leaves the branch out (a student without it
    that is deeply supervised). ``inference_model()`` drops the branch and the extra heads: it has exactly the
    backbone's weights and the same segmentation output.
    """

    def __init__(self, config=None, input_shape=(None, None), name="student", localization=True, **kwargs):
        config = as_config(config)
        # Functional graph
        image = image_input(config, input_shape)
        skips, bottleneck = encode(image, config)
        decoded = decode(bottleneck, skips, config)
        outputs = {"segmentation": segmentation_head(decoded[0], config, name="segmentation")}
        if localization:
            branches = [PixelShuffle(config.localization_channels, 2 ** level, name=f"localization_shuffle_{level}")(
                decoded[level]) for level in config.branch_scales]
            aggregated = branches[0] if len(branches) == 1 else keras.layers.Concatenate(
                name="localization_concat")(branches)
            fused = Conv2D(config.localization_channels, 3, padding="same", activation="relu",
                           name="localization_fuse")(aggregated)
            outputs["localization"] = segmentation_head(fused, config, name="localization")
        for level in range(1, config.deep_supervision + 1):
            head = deep_supervision_name(level)
            outputs[head] = segmentation_head(decoded[level], config, name=head)
        super().__init__(inputs={"image": image}, outputs=outputs, name=name, **kwargs)
        # Config
        self._remember(config, input_shape)
        self.localization = bool(localization)

    def get_config(self):
        return {**super().get_config(), "localization": self.localization}

    def inference_model(self) -> keras.Model:
        """Image -> segmentation, sharing this model's layers; the localization branch is not part of it."""
        return keras.Model(inputs=self.input, outputs=self.get_layer("segmentation").output, name="student_inference")
