"""data.hu_window: a training-time input window inside the records' clipping, used alike by the training
pipeline, the teacher's pseudo-labels, the exported model and o2l predict."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from o2l_tf.configs.run import RunConfig, apply_overrides, preset
from o2l_tf.data import pipeline, records
from o2l_tf.errors import InputError
from o2l_tf.training import pseudo_labels
from o2l_tf.training.run import train

WINDOW = (-20.0, 200.0)


def numpy_scaled(hu, window):
    low, high = window
    return (np.clip(hu.astype(np.float64), low, high) - low) / (high - low)


def test_the_setting_parses_validates_and_round_trips():
    config = apply_overrides(preset("test", "student"), ["data.hu_window=-20,200"])
    assert config.data.hu_window == WINDOW
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again.data.hu_window == WINDOW and again.to_dict() == config.to_dict()
    assert RunConfig.from_dict(json.loads(preset("paper", "student").to_json())).data.hu_window is None
    with pytest.raises(InputError, match="data.hu_window"):
        apply_overrides(preset("test", "student"), ["data.hu_window=200,-20"]).validate()


def test_parse_example_scales_with_the_given_window(small_records):
    example = next(iter(records.read_split(small_records, "strong")))
    hu = example["hu"].numpy()
    assert hu.min() < WINDOW[0] and hu.max() > WINDOW[1]  # both ends clip, so the test can fail
    np.testing.assert_allclose(example["image"].numpy(), numpy_scaled(hu, (-200.0, 250.0)), atol=1e-6)
    files = records.split_files(small_records, "strong")
    serialized = next(iter(tf.data.TFRecordDataset(files[:1], compression_type="GZIP")))
    narrow = records.parse_example(serialized, WINDOW)["image"].numpy()
    np.testing.assert_allclose(narrow, numpy_scaled(records.parse_example(serialized)["hu"].numpy(), WINDOW),
                               atol=1e-6)


def test_teacher_pseudo_labels_and_export_follow_the_window(small_records, tmp_path):
    from o2l_tf.data.records import normalize_hu

    teacher_dir = str(tmp_path / "teacher")
    config = apply_overrides(preset("test", "teacher"), ["train.epochs=1", "train.images_every=0",
                                                         "data.hu_window=-20,200"])
    train(config, small_records, teacher_dir, progress=False, log=lambda *_: None)
    assert json.load(open(os.path.join(teacher_dir, "export.json")))["hu_window"] == list(WINDOW)
    # the pseudo-labels are the teacher on its own input window, not on the records' wider one
    info = pseudo_labels.generate(teacher_dir, small_records, progress=False)
    teacher = keras.models.load_model(os.path.join(teacher_dir, "teacher.keras"))
    files = [os.path.join(small_records, n) for n in info["shards"]]
    differs = 0.0
    for example in tf.data.TFRecordDataset(files, compression_type="GZIP").map(pipeline.parse_pseudo_example).take(3):
        boxes = example["box_channels"][None]

        def run(image):
            return teacher({"image": image[None], "organ_box": boxes[..., :1], "lesion_box": boxes[..., 1:2]},
                           training=False)[0].numpy()

        expected = run(tf.constant(numpy_scaled(example["hu"].numpy(), WINDOW), tf.float32))
        assert np.abs(example["soft_label"].numpy() - expected).max() <= 1 / 255 + 1e-6
        differs = max(differs, float(np.abs(run(example["image"]) - expected).max()))
    assert differs > 2 / 255  # the records' window would have given other labels
    # the student trained at the window serves raw HU through it
    student_dir = str(tmp_path / "student")
    config = apply_overrides(preset("test", "student"), ["train.epochs=1", "train.images_every=0",
                                                         "train.weak_labels=none", "data.hu_window=-20,200"])
    train(config, small_records, student_dir, progress=False, log=lambda *_: None)
    served = tf.saved_model.load(os.path.join(student_dir, "student_savedmodel"))
    inference = keras.models.load_model(os.path.join(student_dir, "student.keras"))
    hu = np.random.default_rng(1).uniform(-300, 300, (1, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(served.serve(hu).numpy(),
                               inference({"image": normalize_hu(hu, WINDOW)}, training=False).numpy(), atol=1e-6)


def test_a_window_beyond_the_records_clipping_is_refused_before_anything_is_written(small_records, tmp_path):
    config = apply_overrides(preset("test", "student"), ["train.weak_labels=none", "data.hu_window=-300,200"])
    with pytest.raises(InputError, match=r"clipped to \[-200, 250\].*data.hu_window \[-300, 200\]"):
        train(config, small_records, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    assert not os.path.exists(tmp_path / "run")
