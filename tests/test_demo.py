"""o2l demo at test scale: every stage runs and leaves what the README promises."""

from __future__ import annotations

import csv
import os

import pytest

from tests.helpers import liver_dice_of_files, run_cli


@pytest.mark.slow
def test_demo_runs_every_stage_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run_cli(["demo", "--out", str(out), "--scale", "test", "--quiet"], capsys)
    assert code == 0, err
    for stage in ("synth:", "build-records:", "train teacher", "train student", "held-out", "predict", "evaluate",
                  "done."):
        assert stage in stdout, stage
    assert "Table I layout (2 case(s))" in stdout
    for path in ("phantoms/preview.png", "records.png", "runs/teacher/teacher.keras", "runs/student/student.keras",
                 "predictions/segmentation-0.nii.gz", "predictions/segmentation-1.png"):
        assert os.path.exists(out / path), path
    with open(out / "evaluation.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["case"] for row in rows] == ["0", "1"]
    for row in rows:  # the reported Dice is the Dice of the files the demo wrote
        assert float(row["liver_dice"]) == pytest.approx(liver_dice_of_files(row["prediction"], row["reference"]),
                                                         abs=1e-6)
    assert "resuming" not in stdout
    # A second demo into the same folder replaces the first: it trains again instead of resuming finished runs.
    code, again, err = run_cli(["demo", "--out", str(out), "--scale", "test", "--quiet"], capsys)
    assert code == 0, err
    assert "resuming" not in again and "train student" in again
    with open(out / "evaluation.csv") as stream:
        assert list(csv.DictReader(stream)) == rows  # and, seeded, gets the same result


def test_every_demo_scale_overrides_valid_settings():
    from o2l_tf.demo import SCALES

    for name, plan in SCALES.items():
        for role in ("teacher", "student"):
            config = plan.run_config(role)  # what run_demo trains
            config.validate()  # a typo'd or out-of-range override fails here, not minutes into a demo
            assert config.role == role and config.train.decay_start_epoch < config.train.epochs, (name, role)
    student, teacher = SCALES["demo"].run_config("student"), SCALES["demo"].run_config("teacher")
    # the overrides reached each role
    assert (student.train.epochs, student.train.dice_weight, student.model.localization_channels) == (90, 1.0, 4)
    assert student.train.precision == "auto" and teacher.train.precision == "float32"
    assert student.train.segmentation_weights == (1.0, 1.0, 8.0)
    assert (teacher.train.epochs, teacher.train.decay_rate) == (15, 0.7)


def test_readme_lists_the_demo_overrides():
    """The README's command list is what `make demo` does: each override appears there as --set."""
    from o2l_tf.demo import SCALES

    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    block = readme[readme.index("o2l synth demo/phantoms"):readme.index("o2l synth demo/test")]
    teacher, student = block.split("o2l train --role student")
    plan = SCALES["demo"]
    for text, overrides in ((teacher, plan.teacher_overrides), (student, plan.student_overrides)):
        listed = [word for word in text.replace("\\", " ").split() if "=" in word and "." in word.split("=")[0]]
        assert sorted(listed) == sorted(overrides)
