"""The PyTorch backbone of make bench is the o2l U-Net: with o2l's weights it computes o2l's output.

Run by make bench (torch is in the bench extra), not by make test: without torch it could only skip.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch_unet  # noqa: E402

from o2l_tf.configs.model import ModelConfig  # noqa: E402
from o2l_tf.models import UNetBackbone  # noqa: E402


def conv_weight(kernel):
    """Keras (kh, kw, a, b) -> PyTorch (b, a, kh, kw): Conv2D (a=in, b=out) and Conv2DTranspose (a=out, b=in)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def copy_block(keras_block, torch_block):
    conv1, norm1, _, conv2, norm2, _ = torch_block
    for conv, norm, keras_conv, keras_norm in ((conv1, norm1, keras_block.conv1, keras_block.norm1),
                                               (conv2, norm2, keras_block.conv2, keras_block.norm2)):
        conv.weight.data = conv_weight(keras_conv.get_weights()[0])
        gamma, beta, mean, variance = (torch.from_numpy(w) for w in keras_norm.get_weights())
        norm.weight.data, norm.bias.data, norm.running_mean.data, norm.running_var.data = gamma, beta, mean, variance


def test_with_the_keras_weights_the_outputs_are_equal():
    rng = np.random.default_rng(0)
    keras_model = UNetBackbone(ModelConfig(base_filters=4), (32, 32))
    # Random moving statistics too, so inference-mode BatchNorm (and its epsilon) is part of the comparison.
    keras_model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path
                             else rng.normal(0, 0.3, w.shape).astype("float32") for w in keras_model.weights])
    model = torch_unet.UNet(base=4).eval()
    for level, encoder in enumerate(model.encoders):
        copy_block(keras_model.get_layer(f"encoder_{level}"), encoder)
        copy_block(keras_model.get_layer(f"decoder_{level}"), model.decoders[level])
        kernel, bias = keras_model.get_layer(f"upconv_{level}").get_weights()
        model.upconvs[level].weight.data = conv_weight(kernel)  # Keras (kh, kw, out, in) -> (in, out, kh, kw)
        model.upconvs[level].bias.data = torch.from_numpy(bias)
    copy_block(keras_model.get_layer("bottleneck"), model.bottleneck)
    kernel, bias = keras_model.get_layer("segmentation_logits").get_weights()
    model.head.weight.data, model.head.bias.data = conv_weight(kernel), torch.from_numpy(bias)

    image = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    expected = keras_model.predict({"image": image}, verbose=0)
    with torch.no_grad():
        logits = model(torch.from_numpy(image).permute(0, 3, 1, 2))
    got = torch.softmax(logits, dim=1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert np.abs(expected - expected.mean(axis=(1, 2), keepdims=True)).max() > 0.01  # outputs vary by far more than atol


def test_a_training_step_lowers_the_loss_on_its_batch():
    torch.manual_seed(0)
    model = torch_unet.UNet(base=4).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    image, target = torch.rand(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(image), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    result = torch_unet.training(bf16=False, runs=1, size=32, batch=2, steps=1)
    assert result["images_per_s"]["runs"] == 1 and result["images_per_s"]["median"] > 0
