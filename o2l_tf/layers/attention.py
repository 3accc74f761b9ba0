"""Box attention on U-Net skip features: the teacher's hierarchical organ-to-lesion gate (Sec. III-C)."""

from __future__ import annotations

import keras
import tensorflow as tf

from o2l_tf.layers.normalization import FusedBatchNorm

MODES = ("o2l", "multichannel")


@keras.saving.register_keras_serializable(package="o2l")
class BoxAttention(keras.layers.Layer):
    """Re-weights skip features ``f_in`` with gates computed from box masks resized to their scale.

    ``mode="o2l"`` (the paper's hierarchical organ-to-lesion attention):
      # Eq. (1): f_og = f_in + sigmoid(BN(conv_og(b_og))) * f_in
      # Eq. (2): f_out = f_og + sigmoid(BN(conv_le(b_le))) * f_og
    ``mode="multichannel"`` (the SCN-style baseline of Table II): one gate from both boxes,
      f_out = f_in + sigmoid(BN(conv([b_og, b_le]))) * f_in.
    ``shortcut=False`` drops the identity term: f_og = sigmoid(.) * f_in (and likewise for every gate).
    Inputs: ``[features (B, h, w, C), organ_box (B, H, W, 1), lesion_box (B, H, W, 1)]``; the boxes are
    resized bilinearly (with anti-aliasing, so thin lesion boxes survive at coarse scales) to (h, w).
    """

    def __init__(self, mode: str = "o2l", shortcut: bool = True, kernel_size: int = 3, norm_momentum: float = 0.99,
                 **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.mode, self.shortcut, self.kernel_size = mode, bool(shortcut), kernel_size
        self.norm_momentum = norm_momentum
        self.gate_names = ("organ", "lesion") if mode == "o2l" else ("boxes",)

    def build(self, input_shape):
        feature_shape, box_shape = input_shape[0], input_shape[1]
        channels = feature_shape[-1]
        box_channels = 1 if self.mode == "o2l" else 2
        for name in self.gate_names:
            conv = keras.layers.Conv2D(channels, self.kernel_size, padding="same", use_bias=False, name=f"{name}_conv")
            norm = FusedBatchNorm(momentum=self.norm_momentum, synchronized=True, name=f"{name}_norm")
            conv.build((*box_shape[:-1], box_channels))
            norm.build((*box_shape[:-1], channels))
            # Plain attributes, like ConvBlock's: tf.train.Checkpoint follows them, whereas layers kept in a
            # container built here hid the BatchNorm moving statistics from it (a resumed run lost them).
            setattr(self, f"{name}_conv", conv)
            setattr(self, f"{name}_norm", norm)
        super().build(input_shape)

    def _resize(self, box, like):
        size = tf.shape(like)[1:3]
        resized = tf.image.resize(tf.cast(box, tf.float32), size, method="bilinear", antialias=True)
        return tf.cast(resized, like.dtype)

    def _gate(self, name, box, features, training):
        conv, norm = getattr(self, f"{name}_conv"), getattr(self, f"{name}_norm")
        weights = keras.ops.sigmoid(norm(conv(box), training=training))
        return features + weights * features if self.shortcut else weights * features

    def call(self, inputs, training=None):
        features, organ_box, lesion_box = inputs
        organ_box, lesion_box = self._resize(organ_box, features), self._resize(lesion_box, features)
        if self.mode == "o2l":
            organ_weighted = self._gate("organ", organ_box, features, training)  # Eq. (1)
            return self._gate("lesion", lesion_box, organ_weighted, training)  # Eq. (2)
        both = keras.ops.concatenate([organ_box, lesion_box], axis=-1)
        return self._gate("boxes", both, features, training)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "shortcut": self.shortcut, "kernel_size": self.kernel_size,
                "norm_momentum": self.norm_momentum}
