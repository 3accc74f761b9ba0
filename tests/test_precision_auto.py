"""``auto`` precision, for predict and for training: one decision (machine.bf16_is_the_fast_path), two names."""

from __future__ import annotations

import pytest
import tensorflow as tf

from o2l_tf import machine
from o2l_tf.inference import loading
from o2l_tf.training import strategy


@pytest.mark.parametrize("resolve, bf16, explicit", [(loading.resolve_precision, "bfloat16", "float32"),
                                                     (strategy.resolve_precision, "mixed_bfloat16", "mixed_float16")])
def test_precision_auto_follows_the_cpu(monkeypatch, resolve, bf16, explicit):
    monkeypatch.setattr(machine, "has_native_bf16", lambda: True)
    assert resolve("auto") == bf16
    assert resolve(explicit) == explicit  # a named precision is kept whatever the machine
    monkeypatch.setattr(machine, "has_native_bf16", lambda: False)
    assert resolve("auto") == "float32"
    # A GPU machine stays float32 even with a bf16 CPU: which reduced precision is fast there depends on the card.
    monkeypatch.setattr(machine, "has_native_bf16", lambda: True)
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else real(kind))
    assert resolve("auto") == "float32"
