"""Whole-volume validation during training (o2l_tf/training/volume_validation.py) and the learning-rate schedules."""

from __future__ import annotations

import os

import numpy as np
import pytest

from o2l_tf.configs.run import apply_overrides, preset
from o2l_tf.errors import InputError
from o2l_tf.training import volume_validation as vv
from o2l_tf.training.callbacks import learning_rate_at
from o2l_tf.training.run import train


def test_learning_rate_schedules_by_hand():
    # Paper: constant before (zero-based) epoch decay_start, then x rate per epoch from it on.
    assert [learning_rate_at(e, 1.0, 3, 0.5) for e in range(5)] == [1.0, 1.0, 1.0, 0.5, 0.25]
    assert learning_rate_at(100, 2e-3, 0, 0.5) == 2e-3  # no decay
    # Poly (nnU-Net): base * (1 - e / E) ** 0.9.
    assert learning_rate_at(0, 1e-3, 0, 0.0, "poly", 10) == 1e-3
    assert learning_rate_at(5, 1e-3, 0, 0.0, "poly", 10) == pytest.approx(1e-3 * 0.5 ** 0.9)
    assert learning_rate_at(9, 1e-3, 0, 0.0, "poly", 10) == pytest.approx(1e-3 * 0.1 ** 0.9)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_at(0, 1.0, 0, 0.5, "cosine", 10)
    with pytest.raises(InputError, match="lr_schedule"):
        apply_overrides(preset("test", "student"), ["train.lr_schedule=cosine"]).validate()


def _val_source(records_dir: str) -> tuple[str, str]:
    from o2l_tf.data import records

    manifest = records.load_manifest(records_dir)
    case = manifest["cases"][manifest["splits"]["val"]["cases"][0]]
    return case["image"], case["label"]


def test_val_volumes_from_records_are_the_nifti_volumes(small_records):
    """Every slice of the val case, rebuilt from its examples, equals the file (HU clipped to the records' window)."""
    from o2l_tf.data import records

    window = records.load_manifest(small_records)["preprocessing"]["hu_window"]
    from_records = vv.cases_from_records(small_records, "val")
    from_files = vv.cases_from_nifti([_val_source(small_records)])
    assert len(from_records) == len(from_files) == 1
    a, b = from_records[0], from_files[0]
    np.testing.assert_array_equal(a.hu, np.clip(b.hu, *window).astype(np.int16))
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.spacing == pytest.approx(b.spacing)
    assert a.label.max() >= 1  # the case has liver: the comparison means something


@pytest.mark.slow
def test_volume_validation_scores_what_predict_and_evaluate_score(small_records, tmp_path):
    """The last epoch's whole-volume scores equal o2l predict + o2l evaluate of the exported student on the val
    case's own file, and reach the logs, the history file and the best checkpoint."""
    from o2l_tf.inference.predict import PredictOptions, predict_files
    from o2l_tf.metrics.evaluation import evaluate_folders
    from o2l_tf.io_utils import read_json

    config = apply_overrides(preset("test", "student"), ["train.epochs=3", "train.volume_validation_every=2",
                                                          "train.weak_labels=none", "train.images_every=0",
                                                          "train.export_weights=last"])
    run_dir = str(tmp_path / "run")
    summary = train(config, small_records, run_dir, progress=False, log=lambda *_: None)
    assert len(summary["history"]["val_volume_lesion_dice"]) == 2  # epochs 2 and 3 (the last)
    history = read_json(os.path.join(run_dir, vv.HISTORY_FILE))["val"]
    assert [row["epoch"] for row in history] == [2, 3]

    image, label = _val_source(small_records)
    reference = tmp_path / "reference"
    reference.mkdir()
    os.symlink(os.path.abspath(label), reference / os.path.basename(label))
    predict_files(run_dir, [image], str(tmp_path / "pred"), PredictOptions(precision="float32"), progress=False,
                  log=lambda *_: None)
    # The prediction file is named after the volume; give the reference's name the same case id.
    _, scores, _ = evaluate_folders(str(tmp_path / "pred"), str(reference), log=lambda *_: None)
    last = history[-1]
    assert last["liver_dice"] == pytest.approx(scores["liver"]["dice_per_case"], abs=1e-9)
    assert last["lesion_dice"] == pytest.approx(scores["lesion"]["dice_per_case"], abs=1e-9)
    assert last["detection"]["fp"] == scores["detection"]["fp"]
    assert summary["history"]["val_volume_liver_dice"][-1] == pytest.approx(last["liver_dice"])
    best = read_json(os.path.join(run_dir, "checkpoints", "best.json"))
    scored = {row["epoch"]: (row["lesion_dice"], row["liver_dice"]) for row in history}
    assert (best["val_lesion_dice"], best["val_liver_dice"]) == pytest.approx(max(scored.values()))
