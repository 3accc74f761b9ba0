"""The PyTorch backbone of make bench is the o2l U-Net: same parameter count, layer by layer (needs torch)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from o2l_tf.configs.model import ModelConfig  # noqa: E402
from o2l_tf.models import UNetBackbone  # noqa: E402


@pytest.mark.parametrize("base", [4, 32])
def test_parameter_shapes_match_the_keras_backbone(base):
    import torch_unet

    keras_model = UNetBackbone(ModelConfig(base_filters=base), (64, 64))
    keras_sizes = sorted(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    torch_sizes = sorted(p.numel() for p in torch_unet.UNet(base=base).parameters())
    assert keras_sizes == torch_sizes


def test_forward_shape_and_training_step_runs():
    import torch_unet

    model = torch_unet.UNet(base=4)
    logits = model(torch.rand(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 3, 32, 32)
    result = torch_unet.training(bf16=False, runs=1, size=32, batch=2, steps=1)
    assert result["images_per_s"]["median"] > 0
