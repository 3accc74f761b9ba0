"""Helper for the distribution tests: train a tiny teacher in a fresh process and print its loss history.

Usage: python distributed_run.py RECORDS MODEL_DIR LOGICAL_CPUS [DEVICES]
(TF_CONFIG in the environment turns it into a MultiWorkerMirroredStrategy worker.)
"""

import json
import sys

import tensorflow as tf

records_dir, model_dir, logical = sys.argv[1], sys.argv[2], int(sys.argv[3])
devices = sys.argv[4] if len(sys.argv) > 4 else None
if logical > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical)

from o2l_tf.configs.run import apply_overrides, preset  # noqa: E402
from o2l_tf.training.run import train  # noqa: E402

config = apply_overrides(preset("test", "teacher"), ["train.epochs=3", "train.images_every=0", "data.batch_size=4",
                                                      "data.shuffle_buffer=8"])
summary = train(config, records_dir, model_dir, devices=devices, progress=False, log=lambda *_: None)
print("HISTORY " + json.dumps(summary["history"]["loss"]))
