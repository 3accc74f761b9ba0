"""o2l train / pseudo-label: full CLI run, TensorBoard, resume, pseudo-label provenance, bad input, overfitting."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from o2l_cli.main import main
from o2l_tf.configs.run import apply_overrides, preset
from o2l_tf.errors import InputError
from o2l_tf.training import pseudo_labels
from o2l_tf.training.run import train
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def teacher_run(small_records, tmp_path_factory):
    """A teacher trained for 2 epochs through the command line."""
    model_dir = str(tmp_path_factory.mktemp("runs") / "teacher")
    with pytest.raises(SystemExit) as done:
        main(["train", "--role", "teacher", "--records", small_records, "--model-dir", model_dir, "--preset", "test",
              "--quiet"])
    assert done.value.code == 0
    return model_dir


@pytest.mark.slow
def test_teacher_pseudo_label_student_through_the_cli(teacher_run, small_records, tmp_path, capsys):
    for name in ("config.json", "teacher.keras", "export.json", "checkpoints/best.weights.h5"):
        assert os.path.exists(os.path.join(teacher_run, name)), name
    assert tf.train.latest_checkpoint(os.path.join(teacher_run, "checkpoints", "last")).endswith("ckpt-2")
    config = json.load(open(os.path.join(teacher_run, "config.json")))
    assert config["run"]["role"] == "teacher" and config["run"]["train"]["epochs"] == 2
    student_dir = str(tmp_path / "student")
    code, out, err = run_cli(["train", "--role", "student", "--records", small_records, "--model-dir", student_dir,
                              "--teacher", teacher_run, "--preset", "test", "--quiet"], capsys)
    assert code == 0, err
    assert "epoch 2/2" in out and "val_segmentation_liver_dice" in out and "ex/s=" in out and "eta=" in out
    info = json.load(open(os.path.join(small_records, pseudo_labels.INFO)))
    assert info["teacher_sha256"] == pseudo_labels.file_sha256(os.path.join(teacher_run, "teacher.keras"))
    inference = keras.models.load_model(os.path.join(student_dir, "student.keras"))
    assert set(inference.input) == {"image"} and not any("localization" in l.name for l in inference.layers)
    served = tf.saved_model.load(os.path.join(student_dir, "student_savedmodel"))
    assert served.serve(np.zeros((1, 48, 48, 3), "float32")).shape == (1, 48, 48, 3)


def test_tensorboard_events_hold_scalars_images_and_config(teacher_run, small_records):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from o2l_tf.data.records import load_manifest

    manifest = load_manifest(small_records)
    side = manifest["cases"][manifest["splits"]["val"]["cases"][0]]["canonical_shape"][0]

    train_events = EventAccumulator(os.path.join(teacher_run, "logs", "train"), size_guidance={"images": 0, "tensors": 0})
    train_events.Reload()
    tags = train_events.Tags()
    scalars = set(tags["tensors"])  # TF2 summaries store scalars as tensors
    for tag in ("loss", "liver_dice", "lesion_dice", "learning_rate", "examples_per_second", "config"):
        assert tag in scalars, (tag, sorted(scalars))
    images = train_events.Tensors("examples/val")
    assert len(images) == 2  # epochs 1 and 2 (images_every = 1)
    width, height = (int(x) for x in images[-1].tensor_proto.string_val[:2])
    assert (width, height) == (4 * side, side)  # CT | label | boxes | prediction
    val_events = EventAccumulator(os.path.join(teacher_run, "logs", "val"))
    val_events.Reload()
    assert {"loss", "liver_dice", "lesion_dice"} <= set(val_events.Tags()["tensors"])
    assert [e.step for e in val_events.Tensors("liver_dice")] == [1, 2]


def test_validation_runs_every_nth_epoch_and_at_the_last(small_records, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = apply_overrides(preset("test", "teacher"), ["train.epochs=5", "train.validate_every=2",
                                                          "train.images_every=0"])
    summary = train(config, small_records, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    val_events = EventAccumulator(str(tmp_path / "run" / "logs" / "val"))
    val_events.Reload()
    assert [e.step for e in val_events.Tensors("loss")] == [2, 4, 5]
    assert len(summary["history"]["loss"]) == 5 and len(summary["history"]["val_loss"]) == 3


def test_panel_image_is_what_a_person_expects():
    from o2l_tf.visualization import training_panel as panel

    image = np.zeros((16, 16, 3), "float32")
    target = np.zeros((16, 16, 3), "float32")
    target[..., 0] = 1
    target[4:12, 4:12] = [0, 1, 0]
    boxes = np.zeros((16, 16, 2), "float32")
    boxes[3:13, 3:13, 0] = 1
    picture = panel(image, target, boxes, target)
    assert picture.shape == (16, 64, 3) and picture.dtype == np.uint8
    assert (picture[:, :16] == 0).all()  # -200 HU is black in the liver window
    assert picture[8, 16 + 8, 1] > picture[8, 16 + 8, 0]  # liver tinted green in the label tile
    assert tuple(picture[15 - 3, 32 + 8]) == (255, 210, 0)  # organ box outline, radiological orientation


def test_resume_after_interruption_equals_uninterrupted_run(small_records, tmp_path, monkeypatch):
    from o2l_tf.training import callbacks

    config = apply_overrides(preset("test", "teacher"), ["train.epochs=3", "train.images_every=0"])
    train(config, small_records, str(tmp_path / "full"), progress=False, log=lambda *_: None)
    original = callbacks.Checkpoints.on_epoch_end

    def interrupted(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt  # as if killed right after the epoch-2 checkpoint

    monkeypatch.setattr(callbacks.Checkpoints, "on_epoch_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, small_records, str(tmp_path / "resumed"), progress=False, log=lambda *_: None)
    assert not os.path.exists(tmp_path / "resumed" / "teacher.keras")
    monkeypatch.undo()
    messages = []
    summary = train(config, small_records, str(tmp_path / "resumed"), progress=False, log=messages.append)
    assert summary["first_epoch"] == 2 and any("resuming" in m for m in messages)
    # One epoch trained: its steady rate spans steps 1..n, inside the epoch's wall time (make bench reads it).
    steps, (steady,), (wall,) = summary["steps_per_epoch"], summary["steady_steps_per_second"], summary["epoch_seconds"]
    assert steps >= 2 and steady >= (steps - 1) / wall
    full = keras.models.load_model(tmp_path / "full" / "teacher.keras")
    resumed = keras.models.load_model(tmp_path / "resumed" / "teacher.keras")
    for a, b in zip(full.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert full.optimizer is not None and resumed.optimizer is not None
    # Both runs export their final weights (train.export_weights=last): epoch 3, with equal optimizer state.
    exported = json.load(open(tmp_path / "resumed" / "export.json"))["source"]
    assert exported == json.load(open(tmp_path / "full" / "export.json"))["source"]
    assert exported == {"weights": "last", "epoch": 3}
    assert int(resumed.optimizer.iterations) == int(full.optimizer.iterations) == 3 * summary["steps_per_epoch"]


def test_divergence_stops_training_and_names_the_epoch(small_records, tmp_path):
    from o2l_tf.training.callbacks import TrainingDiverged

    # A sane rate for epochs 1-2, then x1e32 from epoch 3 on: the loss is no longer finite in epoch 3 or 4.
    config = apply_overrides(preset("test", "teacher"), ["train.epochs=5", "train.images_every=0",
                                                          "train.decay_start_epoch=2", "train.decay_rate=1e32"])
    with pytest.raises(TrainingDiverged, match=r"in epoch [34]; the last good checkpoint is kept") as caught:
        train(config, small_records, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    epoch = int(str(caught.value).split("in epoch ")[1].split(";")[0])
    assert not os.path.exists(tmp_path / "run" / "teacher.keras")
    # The diverged epoch is not checkpointed, nor anything after it.
    kept = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints" / "last"))
    assert kept.endswith(f"-{epoch - 1}")


def test_export_of_the_best_checkpoint_on_request(small_records, tmp_path):
    config = apply_overrides(preset("test", "teacher"), ["train.epochs=3", "train.images_every=0",
                                                         "train.export_weights=best"])
    train(config, small_records, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    exported = json.load(open(tmp_path / "run" / "export.json"))["source"]
    best = json.load(open(tmp_path / "run" / "checkpoints" / "best.json"))
    assert exported == {"weights": "best", **best}
    model = keras.models.load_model(tmp_path / "run" / "teacher.keras")
    reference = keras.models.load_model(tmp_path / "run" / "teacher.keras")
    reference.load_weights(str(tmp_path / "run" / "checkpoints" / "best.weights.h5"))
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pseudo_labels_round_trip_and_staleness(teacher_run, small_records, tmp_path):
    from o2l_tf.data import pipeline, records

    info = pseudo_labels.generate(teacher_run, small_records, progress=False)
    manifest = records.load_manifest(small_records)
    assert info["examples"] == manifest["splits"]["weak"]["examples"]
    teacher = keras.models.load_model(os.path.join(teacher_run, "teacher.keras"))
    files = [os.path.join(small_records, n) for n in info["shards"]]
    for example in tf.data.TFRecordDataset(files, compression_type="GZIP").map(
            pipeline.parse_pseudo_example).take(3):
        boxes = example["box_channels"][None]
        expected = teacher({"image": example["image"][None], "organ_box": boxes[..., :1],
                            "lesion_box": boxes[..., 1:2]}, training=False)[0].numpy()
        assert np.abs(example["soft_label"].numpy() - expected).max() <= 1 / 255 + 1e-6
    assert pseudo_labels.ensure(small_records, teacher_run, progress=False) == info  # current: reused
    other = tmp_path / "other_teacher"
    other.mkdir()
    from o2l_tf.models import TeacherAnnotator

    TeacherAnnotator(teacher.model_config).save(other / "teacher.keras")  # another (untrained) teacher
    messages = []
    fresh = pseudo_labels.ensure(small_records, str(other), progress=False, log=messages.append)
    assert fresh["teacher_sha256"] != info["teacher_sha256"] and "different teacher" in messages[0]


@pytest.mark.parametrize("case", ["no_records", "other_schema", "no_pseudo", "no_teacher_file", "bad_set_key",
                                  "bad_set_type", "different_config"])
def test_bad_input_gives_one_line_and_exit_2(case, small_records, teacher_run, tmp_path, capsys):
    import shutil

    records_dir, extra = small_records, []
    if case == "no_records":
        records_dir = str(tmp_path / "missing")
    elif case == "other_schema":
        records_dir = str(tmp_path / "old")
        shutil.copytree(small_records, records_dir)
        manifest = json.load(open(os.path.join(records_dir, "manifest.json")))
        manifest["schema_version"] = 99
        json.dump(manifest, open(os.path.join(records_dir, "manifest.json"), "w"))
    elif case == "no_pseudo":
        records_dir = str(tmp_path / "copy")
        shutil.copytree(small_records, records_dir)
        for name in os.listdir(records_dir):
            if name.startswith("pseudo"):
                os.remove(os.path.join(records_dir, name))
    role = "student" if case in ("no_pseudo", "no_teacher_file") else "teacher"
    if case == "no_teacher_file":
        extra = ["--teacher", str(tmp_path)]
    if case == "bad_set_key":
        extra = ["--set", "train.epoch=3"]
    if case == "bad_set_type":
        extra = ["--set", "model.base_filters=many"]
    model_dir = str(tmp_path / "run")
    if case == "different_config":
        model_dir = teacher_run
        extra = ["--set", "train.epochs=5"]
    code, _, err = run_cli(["train", "--role", role, "--records", records_dir, "--model-dir", model_dir,
                            "--preset", "test", "--quiet", *extra], capsys)
    expected = {"no_records": "no such folder", "other_schema": "schema version 99", "no_pseudo": "no pseudo-labels",
                "no_teacher_file": "holds no trained teacher", "bad_set_key": "has no setting 'epoch'",
                "bad_set_type": "not a valid int", "different_config": "different configuration"}[case]
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_teacher_overfits_a_handful_of_examples(small_records, tmp_path):
    from o2l_tf.data import pipeline, records

    config = apply_overrides(preset("test", "teacher"), [
        "model.base_filters=8", "data.crop_size=48", "data.scale_range=1,1", "data.flip=false",
        "data.batch_size=4", "data.shuffle_buffer=4", "train.learning_rate=0.05", "train.epochs=200",
        "train.images_every=0", "train.validate_every=1000"])
    manifest = records.load_manifest(small_records)
    handful = tmp_path / "handful"
    handful.mkdir()
    examples = list(tf.data.TFRecordDataset(records.split_files(small_records, "strong", manifest),
                                            compression_type="GZIP").as_numpy_iterator())
    parsed = [records.parse_example(e) for e in examples]
    chosen = [e for e, p in zip(examples, parsed) if int(tf.reduce_sum(tf.cast(p["label"] > 0, tf.int32))) > 100][:4]
    with tf.io.TFRecordWriter(str(handful / "strong-00000-of-00001.tfrecord"), "GZIP") as writer:
        for e in chosen:
            writer.write(e)
    manifest["splits"] = {"strong": {"cases": ["a"], "examples": 4, "shards": ["strong-00000-of-00001.tfrecord"]},
                          "weak": {"cases": [], "examples": 0, "shards": []},
                          "val": {"cases": [], "examples": 0, "shards": []}}
    json.dump(manifest, open(handful / "manifest.json", "w"))
    config.data.examples_per_case = 4  # one case: 4 examples = one batch per epoch
    train(config, str(handful), str(tmp_path / "run"), progress=False, log=lambda *_: None)
    model = keras.models.load_model(tmp_path / "run" / "teacher.keras")
    intersection = total = 0
    for e in chosen:
        p = records.parse_example(e)
        boxes = p["box_channels"][None]
        predicted = np.argmax(model({"image": p["image"][None], "organ_box": boxes[..., :1],
                                     "lesion_box": boxes[..., 1:2]}, training=False)[0], -1) >= 1
        truth = p["label"].numpy() >= 1
        intersection += (predicted & truth).sum()
        total += predicted.sum() + truth.sum()
    assert 2 * intersection / total > 0.9


def test_exported_savedmodel_uses_the_records_hu_window(small_records, tmp_path):
    from o2l_tf.data.records import normalize_hu
    from o2l_tfrecords_builder.build import BuildConfig, build_records

    phantoms = os.path.join(os.path.dirname(small_records), "phantoms")
    records_dir = str(tmp_path / "records")
    build_records(BuildConfig(data=phantoms, split=(50, 34, 16), hu_window=(-100.0, 200.0)), records_dir,
                  progress=False)
    config = apply_overrides(preset("test", "student"), ["train.epochs=1", "train.images_every=0",
                                                          "train.weak_labels=none"])
    train(config, records_dir, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    inference = keras.models.load_model(tmp_path / "run" / "student.keras")
    served = tf.saved_model.load(str(tmp_path / "run" / "student_savedmodel"))
    hu = np.random.default_rng(0).uniform(-400, 400, (1, 48, 48, 3)).astype("float32")
    expected = inference({"image": normalize_hu(hu, (-100.0, 200.0))}, training=False).numpy()
    np.testing.assert_allclose(served.serve(hu).numpy(), expected, atol=1e-6)
    paper_window = inference({"image": normalize_hu(hu)}, training=False).numpy()
    assert np.abs(paper_window - expected).max() > 1e-3  # the window matters, so the test can fail
    # these records were resampled to the strong cases' median in-plane spacing (the default): predict reads it here
    manifest = json.load(open(os.path.join(records_dir, "manifest.json")))
    target = manifest["preprocessing"]["spacing"]["target_mm"]
    assert target is not None and json.load(open(tmp_path / "run" / "export.json"))["spacing_mm"] == target


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16", "auto"])
def test_mixed_precision_training_runs_with_finite_losses(small_records, tmp_path, precision, monkeypatch):
    from o2l_tf import machine

    monkeypatch.setattr(machine, "has_native_bf16", lambda: True)  # auto: this CPU runs bf16 natively
    config = apply_overrides(preset("test", "student"), ["train.epochs=1", "train.images_every=0",
                                                         f"train.precision={precision}", "train.weak_labels=none"])
    lines = []
    try:
        summary = train(config, small_records, str(tmp_path / "run"), progress=False, log=lines.append)
        assert keras.config.dtype_policy().name == "float32"  # the caller's policy is back after training
        model = keras.models.load_model(tmp_path / "run" / "student.keras")
        assert model.layers[-1].compute_dtype == "float32"  # the softmax stays float32
        chosen = "mixed_bfloat16" if precision == "auto" else precision
        assert any(layer.compute_dtype == chosen.split("_")[1] for layer in model.layers)
        assert any(f"precision {chosen}{' (auto)' if precision == 'auto' else ''}," in line for line in lines)
    finally:
        keras.config.set_dtype_policy("float32")
    assert all(np.isfinite(summary["history"]["loss"]))
    if precision == "mixed_float16":  # Keras wraps the optimizer in dynamic loss scaling for float16
        from o2l_tf.training.run import build_model, compile_model

        keras.config.set_dtype_policy(precision)
        try:
            model = build_model(config)
            compile_model(model, config, jit=False)
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        finally:
            keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("localization", ["true", "false"])
def test_deep_supervision_trains_and_exports_the_plain_backbone(small_records, tmp_path, localization):
    config = apply_overrides(preset("test", "student"), [
        "train.epochs=1", "train.images_every=0", "train.weak_labels=none", f"train.localization={localization}",
        "model.deep_supervision=2"])
    summary = train(config, small_records, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    history = summary["history"]
    for head in ("deep_supervision_1", "deep_supervision_2"):  # each coarse head has a finite loss of its own
        assert np.isfinite(history[f"{head}_loss"][0]) and np.isfinite(history[f"val_{head}_loss"][0])
    # The total is the weighted sum of the heads' losses (4/7, 2/7, 1/7; + alpha x localization).
    parts = 4 / 7 * history["segmentation_loss"][0] + 2 / 7 * history["deep_supervision_1_loss"][0] \
        + 1 / 7 * history["deep_supervision_2_loss"][0]
    if localization == "true":
        parts += config.train.alpha * history["localization_loss"][0]
    assert history["loss"][0] == pytest.approx(parts, rel=1e-3)
    exported = keras.models.load_model(tmp_path / "run" / "student.keras")
    assert not isinstance(exported.output, dict) and exported.output.shape[-1] == 3
    assert not any(layer.name.startswith(("deep_supervision", "localization")) for layer in exported.layers)


def test_deep_supervision_is_refused_for_the_teacher(small_records, tmp_path):
    config = apply_overrides(preset("test", "teacher"), ["model.deep_supervision=1"])
    with pytest.raises(InputError, match="model.deep_supervision=1 is a student setting"):
        train(config, small_records, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    assert not os.path.exists(tmp_path / "run")
