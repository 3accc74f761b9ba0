"""The o2l U-Net backbone in PyTorch, timed in its best CPU configuration, for ``make bench`` section 3.

Same architecture as ``o2l_tf.models.UNetBackbone``: per level two (3x3 conv without bias -> BatchNorm -> ReLU),
2x2 max-pooling, a bottleneck block, 2x2 stride-2 transposed convolutions, skip concatenation, a 1x1 head and a
softmax; so the analytic FLOP count of ``o2l_tf/models/flops.py`` holds for both. Best configuration measured on
this CPU: channels-last tensors, ``torch.autocast(bfloat16)`` for the bf16 rows, ``inference_mode`` for
inference, all cores as intra-op threads (torch's default). Runs in its own process, so PyTorch's and
TensorFlow's thread pools never share the cores; prints one JSON object.

    python benchmarks/torch_unet.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from run import repeat, stats  # benchmarks/run.py: the same timing and summary as every other section


KERAS_BN_EPSILON = 1e-3  # Keras' BatchNormalization default (PyTorch's is 1e-5)


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, eps=KERAS_BN_EPSILON),
                         nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out, eps=KERAS_BN_EPSILON), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, base: int = 32, depth: int = 4, channels: int = 3, classes: int = 3):
        super().__init__()
        filters = [base * 2 ** level for level in range(depth + 1)]
        self.encoders = nn.ModuleList(block(c_in, c_out) for c_in, c_out in zip([channels] + filters[:-2], filters))
        self.bottleneck = block(filters[-2], filters[-1])
        self.upconvs = nn.ModuleList(nn.ConvTranspose2d(filters[level + 1], filters[level], 2, stride=2)
                                     for level in range(depth))
        self.decoders = nn.ModuleList(block(2 * filters[level], filters[level]) for level in range(depth))
        self.head = nn.Conv2d(filters[0], classes, 1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for level in reversed(range(len(skips))):
            x = self.decoders[level](torch.cat([self.upconvs[level](x), skips[level]], dim=1))
        return self.head(x)  # logits; softmax is applied by the loss (training) or after the network (inference)


def training(bf16: bool, runs: int, size: int = 320, batch: int = 2, steps: int = 6) -> dict:
    torch.manual_seed(0)
    model = UNet().to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    image = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 3, (batch, size, size))

    def epoch():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(image)
            loss = nn.functional.cross_entropy(logits.float(), target)  # float32 loss, as o2l's
            loss.backward()
            optimizer.step()

    rates = [steps * batch / s for s in repeat(epoch, runs, warmup=1)]
    return {"precision": "bfloat16" if bf16 else "float32", "size": size, "batch": batch,
            "images_per_s": stats(rates)}


def inference(bf16: bool, runs: int, size: int = 512, batch: int = 4) -> dict:
    torch.manual_seed(0)
    model = UNet().to(memory_format=torch.channels_last).eval()
    image = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)

    def forward():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.softmax(model(image).float(), dim=1)

    rates = [batch / s for s in repeat(forward, runs, warmup=2)]
    return {"precision": "bfloat16" if bf16 else "float32", "size": size, "batch": batch,
            "slices_per_s": stats(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "training": [training(bf16, args.runs) for bf16 in (False, True)],
              "inference": [inference(bf16, args.runs + 2) for bf16 in (False, True)]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
