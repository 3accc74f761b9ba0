"""``o2l train``: the teacher on strong slices, the student on strong + pseudo-labelled weak slices (Fig. 2).

Run folder (``--model-dir``):
  config.json              the resolved configuration, written before training starts
  checkpoints/last/        weights, optimizer state and epoch (tf.train.Checkpoint), every epoch
  checkpoints/best.*       weights with the best validation lesion Dice
  logs/train, logs/val     TensorBoard event files
  teacher.keras            (teacher) the exported model
  student.keras            (student) the inference model: the localization branch dropped
  student_savedmodel/      (student) SavedModel with a serve(hu) signature
  export.json              which epoch was exported, its validation Dice, and the HU window predict must use
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from o2l_tf.configs.run import RunConfig
from o2l_tf.data import pipeline, records
from o2l_tf.errors import InputError
from o2l_tf.io_utils import read_json, write_json
from o2l_tf.losses import student_losses, teacher_loss
from o2l_tf.metrics.dice import DiceScore
from o2l_tf.models import StudentSegmentor, TeacherAnnotator, UNetBackbone
from o2l_tf.models.export import export_saved_model
from o2l_tf.training import callbacks as cb
from o2l_tf.training import pseudo_labels, strategy as strategies
from o2l_tf.training.volume_validation import VolumeValidation

CONFIG_FILE = "config.json"
OURS = ("config.json", "checkpoints", "logs", "teacher.keras", "student.keras", "student_savedmodel", "export.json",
        "volume_validation.json")


def run_record(config: RunConfig, records_dir: str, teacher_dir: str | None) -> dict:
    return {"run": config.to_dict(), "records": os.path.abspath(records_dir),
            "teacher": os.path.abspath(teacher_dir) if teacher_dir else None}


def prepare_model_dir(model_dir: str, record: dict, overwrite: bool) -> None:
    """Write config.json; resume when it matches, refuse a different run unless ``overwrite``."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        if read_json(path) != record:
            if not overwrite:
                raise InputError(f"{model_dir}: holds a run with a different configuration; pass --overwrite to "
                                 "replace it, or use another --model-dir")
            for name in OURS:
                target = os.path.join(model_dir, name)
                if os.path.isdir(target):
                    shutil.rmtree(target)
                elif os.path.exists(target):
                    os.remove(target)
    elif os.path.isdir(model_dir) and os.listdir(model_dir) and not overwrite:
        raise InputError(f"{model_dir}: is not empty and holds no o2l run; choose another --model-dir")
    os.makedirs(model_dir, exist_ok=True)
    write_json(path, record)


def _lesion_examples(manifest: dict, split: str, config: RunConfig, records_dir: str) -> int:
    count = manifest["splits"][split].get("lesion_examples")
    if count is None:
        if config.data.lesion_slices > 0:
            raise InputError(f"{records_dir}: built by an older o2l without lesion counts, which data.lesion_slices "
                             "needs; rebuild the records")
        return 0
    return int(count)


def _sources(config: RunConfig, records_dir: str, manifest: dict, teacher_dir: str | None, progress: bool,
             log) -> tuple[list[pipeline.TrainingSource], int]:
    """The training streams (strong, and for a student the weak one unless weak_labels=none) and the case count."""
    compression = records.compression(manifest)
    strong = manifest["splits"]["strong"]
    parse, parse_pseudo = (functools.partial(f, hu_window=config.data.hu_window)
                           for f in (records.parse_example, pipeline.parse_pseudo_example))

    def source(split: str, files: list[str], split_parse, target_of) -> pipeline.TrainingSource:
        """A split's stream, weighted by its example count (normalised below)."""
        examples = manifest["splits"][split]["examples"]
        return pipeline.TrainingSource(files, compression, split_parse, target_of, float(examples), split,
                                       _lesion_examples(manifest, split, config, records_dir), examples)

    sources = [source("strong", records.split_files(records_dir, "strong", manifest), parse,
                      lambda e: pipeline.one_hot(e["label"]))]
    cases = len(strong["cases"])
    if config.role == "student" and config.train.weak_labels != "none":
        weak = manifest["splits"]["weak"]
        if not weak["shards"]:
            raise InputError(f"{records_dir}: the weak split is empty; use --weak-labels none")
        # the naive baseline: the box partition itself as the weak mask
        weak_source = source("weak", records.split_files(records_dir, "weak", manifest), parse,
                             lambda e: pipeline.box_partition(e["box_channels"]))
        if config.train.weak_labels == "pseudo":  # the teacher's soft labels, beside the weak shards
            info = pseudo_labels.ensure(records_dir, teacher_dir, progress=progress, log=log)
            weak_source = weak_source._replace(files=[os.path.join(records_dir, name) for name in info["shards"]],
                                               parse=parse_pseudo, target_of=lambda e: e["soft_label"])
        sources.append(weak_source)
        cases += len(weak["cases"])
    total = sum(s.weight for s in sources)
    return [s._replace(weight=s.weight / total) for s in sources], cases


def build_model(config: RunConfig):
    if config.role == "teacher":
        return TeacherAnnotator(config.model)
    if config.train.localization or config.model.deep_supervision:
        return StudentSegmentor(config.model, localization=config.train.localization)
    return UNetBackbone(config.model, name="student")


def compile_model(model, config: RunConfig, jit: bool):
    t = config.train
    if t.optimizer == "adam":  # not the paper's: for schedules of minutes instead of thousands of epochs
        optimizer = keras.optimizers.Adam(learning_rate=t.learning_rate)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=t.learning_rate, momentum=t.momentum)
    metrics = [DiceScore("liver"), DiceScore("lesion")]
    if isinstance(model, StudentSegmentor):
        losses, weights = student_losses(t.alpha, t.localization_weights, t.localization, t.segmentation_weights,
                                        t.dice_weight, config.model.deep_supervision)
        model.compile(optimizer=optimizer, loss=losses, loss_weights=weights,
                      metrics={"segmentation": metrics}, jit_compile=jit)
    else:
        model.compile(optimizer=optimizer, loss=teacher_loss(t.segmentation_weights, t.dice_weight),
                      metrics=metrics, jit_compile=jit)
    return optimizer


def _panel_batches(config: RunConfig, records_dir: str, manifest: dict, sources, multiple: int, count: int = 2):
    """A few fixed, unaugmented examples for the TensorBoard panels: val (or strong) and, for the student, weak."""
    compression = records.compression(manifest)
    split = "val" if manifest["splits"]["val"]["shards"] else "strong"
    strong = next(s for s in sources if s.name == "strong")  # its parse scales with the run's input window
    chosen = {split: (records.split_files(records_dir, split, manifest), strong.parse,
                      lambda e: pipeline.one_hot(e["label"]))}
    weak = [s for s in sources if s.name == "weak"]
    if config.role == "student" and weak:
        chosen["weak"] = (weak[0].files, weak[0].parse, weak[0].target_of)
    batches = {}
    for name, (files, parse, target_of) in chosen.items():
        dataset = tf.data.TFRecordDataset(files, compression_type=compression).map(parse)
        dataset = dataset.filter(lambda e: tf.reduce_sum(e["box_channels"]) > 0).take(count)
        items = [(e["image"].numpy(), target_of(e).numpy(), e["box_channels"].numpy()) for e in dataset]
        if not items:
            continue
        # slices of different cases differ in size once resampled to a spacing: pad all to one multiple-of shape
        height = -(-max(i.shape[0] for i, _, _ in items) // multiple) * multiple
        width = -(-max(i.shape[1] for i, _, _ in items) // multiple) * multiple
        items = [tuple(np.pad(a, ((0, height - a.shape[0]), (0, width - a.shape[1]), (0, 0))) for a in item)
                 for item in items]
        images = np.stack([i for i, _, _ in items])
        boxes = np.stack([b for _, _, b in items])
        inputs = {"image": images}
        if config.role == "teacher":
            inputs.update(organ_box=boxes[..., :1], lesion_box=boxes[..., 1:2])
        batches[name] = (inputs, np.stack([t for _, t, _ in items]), boxes)
    return batches


def train(config: RunConfig, records_dir: str, model_dir: str, teacher_dir: str | None = None,
          overwrite: bool = False, devices: str | None = None, progress: bool = True, log=print,
          callbacks: list | None = None) -> dict:
    """Train (or resume) a teacher or a student; returns a summary with the exported files and final metrics.

    ``callbacks``: more Keras callbacks, run before o2l's own at each epoch's end (so that scores they add to
    the logs reach the progress line, TensorBoard and the best checkpoint), e.g. a ``VolumeValidation`` on
    training cases for a learning curve.

    The run's precision policy is global in Keras; the caller's policy is restored afterwards, so a model built
    later in the same process (o2l demo, the bench) is not silently built in another precision.
    """
    previous = keras.config.dtype_policy()
    try:
        return _train(config, records_dir, model_dir, teacher_dir, overwrite, devices, progress, log,
                      list(callbacks or []))
    finally:
        keras.config.set_dtype_policy(previous)


def training_predictor(model, role: str, hu_window, multiple: int):
    """A ``SlicePredictor`` (the code ``o2l predict`` runs) on a model being trained, without the student's
    localization branch."""
    from o2l_tf.inference.loading import InferenceModel
    from o2l_tf.inference.volume import SlicePredictor

    network = model.inference_model() if isinstance(model, StudentSegmentor) else model
    return SlicePredictor(InferenceModel(network, role, tuple(hu_window), multiple, "(training)"))


def _volume_validation(config: RunConfig, records_dir: str, manifest: dict, write_dir: str, first_epoch: int,
                       hu_window, multiple: int, log):
    every = config.train.volume_validation_every
    if not every or not manifest["splits"]["val"]["shards"]:
        return []
    from o2l_tf.training import volume_validation as vv

    cases = vv.cases_from_records(records_dir, "val", manifest)
    log(f"whole-volume validation every {every} epochs on {len(cases)} val case(s)")
    return [VolumeValidation("val", cases, every, config.train.epochs,
                             lambda model: training_predictor(model, config.role, hu_window, multiple),
                             os.path.join(write_dir, vv.HISTORY_FILE), first_epoch,
                             postprocess=config.role == "student",
                             min_lesion_mm3=config.inference.min_lesion_mm3)]


class _Run(NamedTuple):
    """What every step of a training run shares, settled before anything trains."""
    config: RunConfig
    records_dir: str
    manifest: dict
    record: dict  # config.json
    strategy: tf.distribute.Strategy
    policy: str
    chief: bool
    write_dir: str  # the model dir on the chief, a scratch dir on other workers
    jit: bool
    multiple: int  # input sizes must be multiples of this (2 ** depth)
    hu_window: tuple[float, float]  # the network input's window: data.hu_window, else the records' clipping


def _prepare(config: RunConfig, records_dir: str, model_dir: str, teacher_dir: str | None, overwrite: bool,
             devices: str | None) -> _Run:
    """Check everything the user gave before writing anything; the strategy first, as a cluster needs."""
    config.validate()
    policy = strategies.set_precision(config.train.precision)
    strategy = strategies.make_strategy(devices)  # first: a cluster strategy must exist before other TF work
    manifest = records.load_manifest(records_dir)
    window = input_window(config, records_dir, manifest)
    if config.role == "student" and config.train.weak_labels == "pseudo":
        pseudo_labels.check_available(records_dir, teacher_dir)  # before anything is written
    elif teacher_dir is not None:
        pseudo_labels.teacher_file(teacher_dir)
    record = run_record(config, records_dir, teacher_dir)
    chief = strategies.is_chief()
    write_dir = model_dir if chief else tempfile.mkdtemp(prefix="o2l-worker-")
    if chief:
        prepare_model_dir(model_dir, record, overwrite)
    jit = strategies.use_jit(config.train.jit)
    keras.utils.set_random_seed(config.train.seed)
    return _Run(config, records_dir, manifest, record, strategy, policy, chief, write_dir, jit,
                2 ** config.model.depth, window)


def input_window(config: RunConfig, records_dir: str, manifest: dict) -> tuple[float, float]:
    """``data.hu_window``, which must lie within the window the records were clipped to, or that window."""
    low, high = (float(v) for v in manifest["preprocessing"]["hu_window"])
    if config.data.hu_window is None:
        return low, high
    want = tuple(float(v) for v in config.data.hu_window)
    if want[0] < low or want[1] > high:
        raise InputError(f"{records_dir}: the records hold HU clipped to [{low:g}, {high:g}]; data.hu_window "
                         f"[{want[0]:g}, {want[1]:g}] must lie within it (rebuild with --hu-window)")
    return want


def _build_or_resume(run: _Run, log):
    """The model and optimizer under the strategy, restored from the last checkpoint if there is one.

    Initial weights come from a model built outside the strategy, so one device, several replicas and every
    worker of a cluster start from the very same values.
    """
    initial_weights = build_model(run.config).get_weights()
    with run.strategy.scope():
        model = build_model(run.config)
        model.set_weights(initial_weights)
        optimizer = compile_model(model, run.config, run.jit)
        strategies.allow_multi_worker_fit(model, run.strategy, run.jit)
        optimizer.build(model.trainable_variables)
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_variable)
    last = tf.train.latest_checkpoint(os.path.join(run.write_dir, "checkpoints", "last"))
    if last:
        checkpoint.restore(last).assert_existing_objects_matched()
        log(f"resuming from {last} (epoch {int(epoch_variable.numpy())})")
    return model, checkpoint, epoch_variable


def _callbacks(run: _Run, model, checkpoint, epoch_variable, sources, steps: int, first_epoch: int, log,
               extra_callbacks: list):
    """The learning rate, then the scores (extra, whole-volume), then what reads them: progress, checkpoints,
    the NaN guard and TensorBoard. Returns (callbacks, guard, progress line)."""
    config = run.config
    guard = cb.NanGuard()
    progress_line = cb.ProgressLine(config.train.epochs, steps * config.data.batch_size,
                                    log=log if run.chief else _quiet)
    callbacks = [cb.EpochLearningRate(config.train.learning_rate, config.train.decay_start_epoch,
                                      config.train.decay_rate, config.train.lr_schedule, config.train.epochs)]
    if run.chief:  # scores that reach the logs come before the callbacks that read them
        callbacks += extra_callbacks + _volume_validation(config, run.records_dir, run.manifest, run.write_dir,
                                                          first_epoch, run.hu_window, run.multiple, log)
    by_volume = any(isinstance(c, VolumeValidation) and c.name == "val" for c in callbacks)
    callbacks += [progress_line, cb.Checkpoints(run.write_dir, checkpoint, epoch_variable, guard, run.chief,
                                                by_volume), guard]
    if run.chief:
        panels = _panel_batches(config, run.records_dir, run.manifest, sources, run.multiple)

        def predict(inputs):  # a direct call: no collective, so only the chief runs it, under any strategy
            output = model(inputs, training=False)
            return np.asarray(output["segmentation"] if isinstance(output, dict) else output)

        callbacks.append(cb.TensorBoardLogger(os.path.join(run.write_dir, "logs"), json.dumps(run.record, indent=2),
                                              panels, config.train.images_every, predict, run.hu_window))
    return callbacks, guard, progress_line


def _fit(run: _Run, model, sources, val_data, steps: int, first_epoch: int, localization: bool, callbacks,
         guard) -> dict[str, list[float]]:
    """Every epoch left in one fit call; raises TrainingDiverged if the loss became NaN (last good checkpoint kept)."""
    config = run.config
    if first_epoch >= config.train.epochs:
        return {}
    # One dataset whose epochs are each seeded by (seed, epoch): a resumed run sees the same batches, and no
    # epoch pays for a new fit call (about 1 s each).
    train_data = pipeline.training_dataset(sources, config.data, config.role, localization, steps, first_epoch,
                                           config.train.seed, end_epoch=config.train.epochs,
                                           deep_supervision=config.model.deep_supervision)
    # Every validate_every-th epoch and always the last (Keras counts validation_freq epochs from 1).
    validate_at = [e for e in range(first_epoch + 1, config.train.epochs + 1)
                   if e % config.train.validate_every == 0 or e == config.train.epochs]
    with warnings.catch_warnings():
        # Keras warns when validation exhausts its (finite) dataset, which is exactly how the val split is
        # meant to be read: every val example once per validation.
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        result = model.fit(train_data, epochs=config.train.epochs, initial_epoch=first_epoch,
                           steps_per_epoch=steps, validation_data=val_data, validation_freq=validate_at,
                           callbacks=callbacks, shuffle=False, verbose=0)
    if guard.diverged_at is not None:
        kept = tf.train.latest_checkpoint(os.path.join(run.write_dir, "checkpoints", "last"))
        raise cb.TrainingDiverged(f"loss became NaN or infinite in epoch {guard.diverged_at}; the last good "
                                  f"checkpoint is kept ({kept or 'none yet'})")
    return {key: [float(v) for v in values] for key, values in result.history.items()}


def _train(config: RunConfig, records_dir: str, model_dir: str, teacher_dir: str | None, overwrite: bool,
           devices: str | None, progress: bool, log, extra_callbacks: list) -> dict:
    run = _prepare(config, records_dir, model_dir, teacher_dir, overwrite, devices)
    sources, cases = _sources(config, records_dir, run.manifest, teacher_dir, progress, log)
    steps = math.ceil(cases * config.data.examples_per_case / config.data.batch_size)
    if run.chief:
        log(f"{config.role}: {cases} training cases, {steps} steps per epoch, precision {run.policy}"
            f"{' (auto)' if config.train.precision == 'auto' else ''}, XLA {'on' if run.jit else 'off'}")
    localization = config.role == "student" and config.train.localization
    val_files = records.split_files(records_dir, "val", run.manifest)
    val_data = None if not val_files else pipeline.validation_dataset(
        val_files, records.compression(run.manifest), config.data, config.role, localization, run.multiple,
        config.model.deep_supervision)
    model, checkpoint, epoch_variable = _build_or_resume(run, log)
    first_epoch = int(epoch_variable.numpy())
    callbacks, guard, progress_line = _callbacks(run, model, checkpoint, epoch_variable, sources, steps,
                                                 first_epoch, log, extra_callbacks)
    history = _fit(run, model, sources, val_data, steps, first_epoch, localization, callbacks, guard)
    summary = {"history": history, "steps_per_epoch": steps, "first_epoch": first_epoch,
               "epoch_seconds": progress_line.seconds, "steady_steps_per_second": progress_line.steady_steps_per_second}
    if run.chief:
        summary.update(export(model, config, model_dir, run.hu_window, records.target_spacing(run.manifest)))
    return summary


def _quiet(*_args, **_kwargs):
    return None


def export(model, config: RunConfig, model_dir: str, hu_window, spacing=None) -> dict:
    """Export the final weights (``train.export_weights=last``, default) or the best checkpoint by val lesion Dice.

    The SavedModel's HU input is clipped and scaled with the records' ``hu_window``, as in training; ``spacing``
    (the records' in-plane mm, None for native) goes to export.json, for ``o2l predict`` to resample to.
    """
    best = os.path.join(model_dir, "checkpoints", "best.weights.h5")
    source = {"weights": "last", "epoch": config.train.epochs}
    if config.train.export_weights == "best" and os.path.exists(best):
        model.load_weights(best)
        source = {"weights": "best", **read_json(os.path.join(model_dir, "checkpoints", "best.json"))}
    files = []
    if config.role == "teacher":
        path = os.path.join(model_dir, "teacher.keras")
        model.save(path + ".tmp.keras")
        os.replace(path + ".tmp.keras", path)
        files.append(path)
    else:
        inference = model.inference_model() if isinstance(model, StudentSegmentor) else model
        path = os.path.join(model_dir, "student.keras")
        inference.save(path + ".tmp.keras")
        os.replace(path + ".tmp.keras", path)
        saved = os.path.join(model_dir, "student_savedmodel")
        if os.path.exists(saved):
            shutil.rmtree(saved)
        export_saved_model(inference, saved, hu_window)
        files += [path, saved]
    # predict reads the HU window and spacing here: the .keras file holds the network, not how its inputs were made.
    write_json(os.path.join(model_dir, "export.json"), {"source": source, "files": [os.path.basename(f) for f in files],
                                                        "hu_window": [float(v) for v in hu_window],
                                                        "spacing_mm": None if spacing is None else list(spacing),
                                                        "postprocess": asdict(config.inference)})
    return {"exported": files, "export_source": source}
