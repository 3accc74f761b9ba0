"""Building blocks: conv blocks, the organ-to-lesion box attention, the pixel-shuffle head."""

from o2l_tf.layers.attention import BoxAttention
from o2l_tf.layers.bias import Conv2D, Conv2DTranspose
from o2l_tf.layers.blocks import ConvBlock
from o2l_tf.layers.normalization import FusedBatchNorm
from o2l_tf.layers.pixel_shuffle import PixelShuffle

__all__ = ["BoxAttention", "Conv2D", "Conv2DTranspose", "ConvBlock", "FusedBatchNorm", "PixelShuffle"]
