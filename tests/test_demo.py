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


def test_every_demo_scale_trains_its_preset_exactly():
    """`o2l train --preset demo` with no --set trains what make demo trains (and likewise for demo-full)."""
    from o2l_tf.configs.run import preset
    from o2l_tf.demo import SCALES

    assert (SCALES["demo"].preset, SCALES["full"].preset) == ("demo", "converge")
    for name, plan in SCALES.items():
        for role in ("teacher", "student"):
            config = plan.run_config(role)  # what run_demo trains
            config.validate()
            assert config.to_dict() == preset(plan.preset, role).to_dict(), (name, role)
    paper = preset("paper", "student")  # every departure of the recipe is off in the paper's preset
    assert (paper.train.optimizer, paper.train.lr_schedule, paper.train.dice_weight) == ("sgd", "paper", 0.0)
    assert (paper.data.foreground_crop, paper.data.lesion_slices, paper.inference.min_lesion_mm3) == (0.0, 0.0, 0.0)
    assert paper.data.hu_window is None and preset("demo", "teacher").data.hu_window == (-20.0, 200.0)
    assert paper.train.segmentation_weights == (1.0, 1.0, 1.0) and paper.train.precision == "float32"


def test_demo_precision_replaces_only_the_presets_precision():
    """make demo DEMO_FLAGS='--precision float32' trains the demo preset with float32 forced, nothing else changed."""
    from o2l_tf.configs.run import preset
    from o2l_tf.demo import SCALES, run_demo
    from o2l_tf.errors import InputError

    assert preset("demo", "student").train.precision == "auto"
    for role in ("teacher", "student"):
        forced = SCALES["demo"].run_config(role, "float32").to_dict()
        expected = preset("demo", role).to_dict()
        expected["train"]["precision"] = "float32"
        assert forced == expected
    with pytest.raises(InputError, match="precision"):
        run_demo("unused", build_records=None, precision="float16")


def test_readme_demo_commands_use_the_preset_without_overrides():
    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    block = readme[readme.index("o2l synth demo/phantoms"):readme.index("o2l synth demo/test")]
    assert block.count("--preset demo") == 2 and "--set" not in block
