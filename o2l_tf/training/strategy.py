"""Choosing the tf.distribute strategy, XLA and the mixed-precision policy."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from o2l_tf import machine
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


def resolve_precision(setting: str) -> str:
    """``auto``: mixed_bfloat16 on CPU-only machines with native bf16 (1.4-1.7x faster in make bench), else float32."""
    if setting != "auto":
        return setting
    return "mixed_bfloat16" if machine.bf16_is_the_fast_path() else "float32"


def set_precision(setting: str) -> str:
    """Make ``setting`` (resolved) Keras' global dtype policy; returns the policy set."""
    policy = resolve_precision(setting)
    keras.config.set_dtype_policy(policy)
    return policy


def is_chief() -> bool:
    """True on the worker that writes checkpoints, logs and exports (task 0 of a cluster, or alone)."""
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return True
    task = json.loads(tf_config).get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and int(task.get("index", 0)) == 0


# The Keras releases allow_multi_worker_fit was tested with (tests/training/test_distributed.py): it replaces
# private members of keras.Model (_maybe_symbolic_build, train_function), which a release may rename.
PATCHED_KERAS = ((3, 6), (3, 15))


def check_patched_keras(version: str) -> None:
    """Refuse multi-worker training on a Keras outside the tested range, instead of failing silently."""
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    low, high = PATCHED_KERAS
    if not low <= major_minor <= high:
        raise InputError(f"multi-worker training (TF_CONFIG) is tested with Keras {low[0]}.{low[1]} to "
                         f"{high[0]}.{high[1]}; this is Keras {version}: install keras>={low[0]}.{low[1]},"
                         f"<{high[0]}.{high[1] + 1}, or check o2l_tf/training/strategy.py against keras-team/keras#20585")


def allow_multi_worker_fit(model: keras.Model, strategy: tf.distribute.Strategy, jit: bool = False) -> None:
    """Let Keras 3's ``Model.fit`` run under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras' own path fails there twice, in bookkeeping rather than in training: (1) before each ``fit`` it builds
    the metrics symbolically from a batch obtained with ``strategy.reduce("MEAN", batch)``, a collective that fails
    on nested (dict) batches -- the build only needs shapes, so the first local replica's values serve; (2) it
    reduces the step's scalar logs with ``axis=0`` -- here they are averaged over replicas with ``axis=None``.
    The step itself is Keras' ``train_step``/``test_step`` run by ``strategy.run``, as in ``fit``. Call after
    ``compile`` (which resets the step functions).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    check_patched_keras(keras.__version__)

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, distributed in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues) else value, next(distributed))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def distributed(step):
        step = tf.function(step, reduce_retracing=True, jit_compile=jit)

        @tf.function(reduce_retracing=True)
        def run(iterator):
            logs = strategy.run(step, args=(next(iterator),))
            return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), logs)

        return run

    model._maybe_symbolic_build = symbolic_build
    model.train_function = distributed(model.train_step)
    model.test_function = distributed(model.test_step)
