"""Choosing the tf.distribute strategy, XLA and the mixed-precision policy."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from o2l_tf.errors import InputError


def make_strategy(devices: str | None = None) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster; else MirroredStrategy over ``devices``
    (e.g. "GPU:0,GPU:1" or "CPU:0,CPU:1"), or over all GPUs when there are several; else the default strategy."""
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            cluster = json.loads(tf_config).get("cluster", {})
        except ValueError as error:
            raise InputError(f"TF_CONFIG is not valid JSON ({error})") from error
        if sum(len(v) for v in cluster.values()) > 1:
            return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        names = [d.strip() for d in devices.split(",") if d.strip()]
        known = {d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()}
        logical = {d.name.split("device:")[-1] for d in tf.config.list_logical_devices()}
        for name in names:
            if name.upper() not in {n.upper() for n in known | logical}:
                raise InputError(f"--devices: no device {name!r} (have {', '.join(sorted(logical))})")
        return tf.distribute.MirroredStrategy([f"/{name}" for name in names]) if len(names) > 1 else \
            tf.distribute.OneDeviceStrategy(f"/{names[0]}")
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def use_jit(setting: str) -> bool:
    """``auto``: XLA on GPUs only; on CPUs it made these U-Nets about 2x slower in our measurements."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return setting == "on"


def set_precision(policy: str) -> None:
    keras.config.set_dtype_policy(policy)


def is_chief() -> bool:
    """True on the worker that writes checkpoints, logs and exports (task 0 of a cluster, or alone)."""
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return True
    task = json.loads(tf_config).get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and int(task.get("index", 0)) == 0
