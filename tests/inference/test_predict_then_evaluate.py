"""A tiny trained student predicts held-out phantoms through the CLI; o2l evaluate scores them through the CLI."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.helpers import liver_dice_of_files, run_cli


@pytest.mark.slow
def test_train_predict_evaluate_through_the_cli(small_records, tmp_path, capsys):
    model_dir = str(tmp_path / "student")
    code, _, err = run_cli(["train", "--role", "student", "--records", small_records, "--model-dir", model_dir,
                            "--preset", "test", "--weak-labels", "none", "--quiet"], capsys)
    assert code == 0, err
    assert json.load(open(os.path.join(model_dir, "export.json")))["hu_window"] == [-200.0, 250.0]
    manifest = json.load(open(os.path.join(small_records, "manifest.json")))
    held_out = manifest["splits"]["val"]["cases"]
    phantoms = os.path.join(os.path.dirname(small_records), "phantoms")
    references = tmp_path / "references"
    references.mkdir()
    inputs = []
    for case in held_out:
        inputs.append(os.path.join(phantoms, f"volume-{case}.nii.gz"))
        shutil.copy(os.path.join(phantoms, f"segmentation-{case}.nii.gz"), references)

    code, out, err = run_cli(["predict", "--model", model_dir, *inputs, "-o", str(tmp_path / "preds"), "--quiet",
                              "--preview"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", "--pred", str(tmp_path / "preds"), "--ref", str(references), "--json",
                              str(tmp_path / "scores.json")], capsys)
    assert code == 0, err
    assert "Table I layout" in out
    scores = json.load(open(tmp_path / "scores.json"))
    for row in scores["cases"]:
        assert row["liver_dice"] == pytest.approx(liver_dice_of_files(row["prediction"], row["reference"]), abs=1e-6)
    assert len(scores["cases"]) == len(held_out) >= 1
