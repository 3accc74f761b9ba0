"""Analytic multiply-add count of the models (the FLOP figures of the README and the benchmarks).

FLOPs = 2 x multiply-adds of every convolution (k*k*C_in*C_out per output pixel) and transposed
convolution (k*k*C_in*C_out per *input* pixel); BatchNorm, ReLU, pooling, sigmoid gates and softmax are
element-wise and left out (< 1 % here).
"""

from __future__ import annotations

from o2l_tf.configs.model import ModelConfig


def _conv(pixels: int, kernel: int, c_in: int, c_out: int) -> int:
    return 2 * pixels * kernel * kernel * c_in * c_out


def backbone_flops(config: ModelConfig, height: int, width: int, input_channels: int | None = None) -> int:
    filters = [config.base_filters * 2 ** level for level in range(config.depth + 1)]
    c_in = input_channels or config.image_channels
    total = 0
    for level in range(config.depth + 1):  # encoder blocks and bottleneck
        pixels = (height >> level) * (width >> level)
        total += _conv(pixels, 3, c_in, filters[level]) + _conv(pixels, 3, filters[level], filters[level])
        c_in = filters[level]
    for level in reversed(range(config.depth)):  # up-conv, then the decoder block on [up, skip]
        pixels = (height >> level) * (width >> level)
        total += _conv((height >> (level + 1)) * (width >> (level + 1)), 2, filters[level + 1], filters[level])
        total += _conv(pixels, 3, 2 * filters[level], filters[level]) + _conv(pixels, 3, filters[level], filters[level])
    return total + _conv(height * width, 1, filters[0], config.num_classes)


def teacher_flops(config: ModelConfig, height: int, width: int) -> int:
    total = backbone_flops(config, height, width,
                           config.image_channels + (2 if config.attention == "none" else 0))
    if config.attention == "none" and not config.shortcut:  # decoders without skip channels
        for level in range(config.depth):
            filters = config.base_filters * 2 ** level
            total -= _conv((height >> level) * (width >> level), 3, filters, filters)
    gates = {"o2l": [1, 1], "multichannel": [2], "none": []}[config.attention]
    for level in range(config.depth):
        pixels = (height >> level) * (width >> level)
        total += sum(_conv(pixels, 3, c, config.base_filters * 2 ** level) for c in gates)
    return total


def student_flops(config: ModelConfig, height: int, width: int, with_branch: bool = True) -> int:
    total = backbone_flops(config, height, width)
    if with_branch:
        c = config.localization_channels
        for level in config.branch_scales:
            pixels = (height >> level) * (width >> level)
            total += _conv(pixels, 3, config.base_filters * 2 ** level, c * 4 ** level)
        total += _conv(height * width, 3, c * len(config.branch_scales), c) + _conv(height * width, 1, c,
                                                                                     config.num_classes)
    return total
