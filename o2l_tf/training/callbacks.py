"""Callbacks of the fit loop: learning-rate schedule, checkpoints, NaN guard, progress line, TensorBoard."""

from __future__ import annotations

import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from o2l_tf import visualization as viz
from o2l_tf.configs.run import SCHEDULES
from o2l_tf.data.schema import PAPER_HU_WINDOW
from o2l_tf.io_utils import read_json, write_json


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


POLY_EXPONENT = 0.9  # nnU-Net's


def learning_rate_at(epoch: int, base: float, decay_start: int, rate: float, schedule: str = "paper",
                     epochs: int = 0) -> float:
    """The learning rate of (zero-based) ``epoch``.

    ``paper`` (Sec. IV-B): constant, then x ``rate`` per epoch from ``decay_start`` (0 = never).
    ``poly`` (nnU-Net, not the paper's): ``base * (1 - epoch / epochs) ** 0.9``, from ``base`` down to almost 0.
    """
    if schedule == "poly":
        if epochs < 1:
            raise ValueError(f"the poly schedule needs the number of epochs, got {epochs}")
        return base * (1.0 - epoch / epochs) ** POLY_EXPONENT
    if schedule != "paper":
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if decay_start <= 0 or epoch < decay_start:
        return base
    return base * rate ** (epoch - decay_start + 1)


class EpochLearningRate(keras.callbacks.Callback):
    def __init__(self, base: float, decay_start: int, rate: float, schedule: str = "paper", epochs: int = 0):
        super().__init__()
        self.base, self.decay_start, self.rate, self.schedule, self.epochs = base, decay_start, rate, schedule, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(learning_rate_at(epoch, self.base, self.decay_start, self.rate,
                                                                   self.schedule, self.epochs))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def _finite(logs) -> bool:
    return all(math.isfinite(float(v)) for k, v in (logs or {}).items() if "loss" in k)


class NanGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss; the epoch's checkpoint is then not written."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.diverged_at = None  # the (one-based) epoch whose loss was not finite

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not _finite(logs):
            self.diverged_at = self.epoch + 1
            self.model.stop_training = True


class Checkpoints(keras.callbacks.Callback):
    """``checkpoints/last`` (weights, optimizer state, epoch) every epoch; ``best.weights.h5`` by val lesion Dice
    (of whole volumes when ``by_volume``, else of the val slices).

    tf.train.CheckpointManager writes atomically, so a kill -9 at any moment leaves the previous checkpoint whole.
    """

    def __init__(self, model_dir: str, checkpoint: tf.train.Checkpoint, epoch_variable: tf.Variable, guard: NanGuard,
                 chief: bool = True, by_volume: bool = False):
        super().__init__()
        self.by_volume = by_volume  # best by the whole-volume validation's scores (train.volume_validation_every)
        self.folder = os.path.join(model_dir, "checkpoints")
        self.manager = tf.train.CheckpointManager(checkpoint, os.path.join(self.folder, "last"), max_to_keep=1)
        self.epoch_variable, self.guard, self.chief = epoch_variable, guard, chief
        self.best_path = os.path.join(self.folder, "best.json")
        self.best = (-1.0, -1.0)
        if os.path.exists(self.best_path):
            saved = read_json(self.best_path)
            self.best = (saved["val_lesion_dice"], saved["val_liver_dice"])

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged_at is not None or not _finite(logs):
            return
        self.epoch_variable.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)  # every worker takes part in a distributed save
        def val(name):
            logs_ = logs or {}
            if self.by_volume:  # whole-volume LiTS Dice per case; epochs not scored so are not candidates
                return float(logs_["val_volume_" + name]) if "val_volume_" + name in logs_ else None
            return next((float(v) for k, v in logs_.items() if k.startswith("val_") and k.endswith(name)), None)

        # Best by validation lesion Dice; ties (e.g. no lesion found yet) are broken by liver Dice.
        score = (val("lesion_dice"), val("liver_dice"))
        if self.chief and None not in score and score > self.best:
            self.best = score
            temporary = os.path.join(self.folder, "best.tmp.weights.h5")
            self.model.save_weights(temporary)
            os.replace(temporary, os.path.join(self.folder, "best.weights.h5"))
            write_json(self.best_path, {"epoch": epoch + 1, "val_lesion_dice": score[0], "val_liver_dice": score[1]})


class ProgressLine(keras.callbacks.Callback):
    """One line per epoch: losses, Dice, examples per second and ETA."""

    def __init__(self, epochs: int, examples_per_epoch: int, log=print):
        super().__init__()
        self.epochs, self.examples, self.log = epochs, examples_per_epoch, log
        self.started = self.epoch_started = None
        self.first_epoch = None
        self.seconds: list[float] = []  # wall time of each epoch run, for the summary (and make bench)
        # Steps per second of each epoch from its first finished step to its last: the steady state, without
        # the epoch's start-up (shuffle-buffer fill; the first epoch also fit's set-up) or its end (validation,
        # checkpoint).
        self.steady_steps_per_second: list[float] = []
        self.step_times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()
        self.step_times = []
        if self.first_epoch is None:
            self.first_epoch, self.started = epoch, self.epoch_started

    def on_train_batch_end(self, batch, logs=None):
        self.step_times.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = time.perf_counter() - self.epoch_started
        self.seconds.append(seconds)
        if len(self.step_times) > 1:
            span = self.step_times[-1] - self.step_times[0]
            self.steady_steps_per_second.append((len(self.step_times) - 1) / span)
        logs["examples_per_second"] = self.examples / max(seconds, 1e-9)
        done = epoch + 1 - self.first_epoch
        eta = (time.perf_counter() - self.started) / done * (self.epochs - epoch - 1)
        shown = " ".join(f"{k}={float(v):.4g}" for k, v in sorted(logs.items())
                         if k.endswith(("loss", "dice")) and not k.startswith("lr"))
        self.log(f"epoch {epoch + 1}/{self.epochs} {shown} ex/s={logs['examples_per_second']:.1f} "
                 f"eta={_duration(eta)}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class TensorBoardLogger(keras.callbacks.Callback):
    """Scalars every epoch (train/ and val/ runs), image panels every ``images_every`` epochs, the config as text."""

    def __init__(self, log_dir: str, config_json: str, panel_batches: dict, images_every: int, predict_fn,
                 hu_window=PAPER_HU_WINDOW):
        super().__init__()
        self.train_writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.val_writer = tf.summary.create_file_writer(os.path.join(log_dir, "val"))
        self.config_json, self.panels, self.every, self.predict_fn = config_json, panel_batches, images_every, predict_fn
        self.hu_window = hu_window

    def on_train_begin(self, logs=None):
        if self.config_json is not None:  # once per callback, however often fit is called
            with self.train_writer.as_default():
                tf.summary.text("config", f"```\n{self.config_json}\n```", step=0)
            self.config_json = None

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        for key, value in (logs or {}).items():
            writer, name = (self.val_writer, key[4:]) if key.startswith("val_") else (self.train_writer, key)
            with writer.as_default():
                tf.summary.scalar(name, float(value), step=step)
        if self.every and (step % self.every == 0 or step == 1):
            with self.train_writer.as_default():
                for name, (inputs, targets, boxes) in self.panels.items():
                    predictions = self.predict_fn(inputs)
                    images = np.stack([viz.training_panel(inputs["image"][k], targets[k], boxes[k], predictions[k], self.hu_window)
                                       for k in range(len(targets))])
                    tf.summary.image(f"examples/{name}", images, step=step, max_outputs=len(images))
        self.train_writer.flush()
        self.val_writer.flush()
