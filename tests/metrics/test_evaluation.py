"""o2l evaluate: pairing by case id, the empty-case rules per case, reports, and bad input."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from o2l_tf.metrics.evaluation import evaluate_folders, pair_cases
from tests.helpers import expect_one_line_error, run_cli

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


def write(folder, name, labels, affine=AFFINE):
    os.makedirs(folder, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(labels, np.uint8), affine), os.path.join(folder, name))


def block(liver=None, lesion=None, shape=(16, 16, 6)):
    labels = np.zeros(shape, np.uint8)
    if liver:
        labels[liver] = 1
    if lesion:
        labels[lesion] = 2
    return labels


LIVER = np.s_[2:12, 2:12, 1:5]


@pytest.fixture()
def folders(tmp_path):
    """Three cases: a lesion found; no lesion in either; a lesion predicted on a lesion-free reference."""
    ref, pred = str(tmp_path / "ref"), str(tmp_path / "pred")
    write(ref, "segmentation-0.nii", block(LIVER, np.s_[4:8, 4:8, 2:4]))
    write(pred, "segmentation-0.nii", block(LIVER, np.s_[4:8, 4:7, 2:4]))
    write(ref, "segmentation-1.nii", block(LIVER))
    write(pred, "segmentation-1.nii", block(np.s_[2:12, 2:11, 1:5]))
    write(ref, "segmentation-2.nii", block(LIVER))
    write(pred, "segmentation-2.nii", block(LIVER, np.s_[5:7, 5:7, 2:3]))
    write(ref, "volume-0.nii", np.zeros((16, 16, 6)))  # images beside the labels are skipped
    return pred, ref


def test_per_case_scores_follow_the_lits_rules(folders):
    rows, summary, unmatched = evaluate_folders(*folders, log=lambda *_: None)
    by_case = {row["case"]: row for row in rows}
    assert sorted(by_case) == ["0", "1", "2"] and unmatched == []
    assert by_case["0"]["lesion_dice"] == pytest.approx(2 * 24 / (32 + 24))
    assert by_case["1"]["lesion_dice"] == 1.0 and by_case["1"]["lesion_assd"] == 0.0  # empty in both: perfect
    assert by_case["2"]["lesion_dice"] == 0.0 and by_case["2"]["lesion_assd"] == 9001.0  # false alarm
    assert by_case["1"]["liver_dice"] == pytest.approx(2 * 360 / 760)
    assert summary["lesion"]["dice_per_case"] == pytest.approx((2 * 24 / 56 + 1 + 0) / 3)
    assert summary["lesion"]["dice_global"] == pytest.approx(2 * 24 / (56 + 4))
    # Detection: case 0's lesion (IoU 24/32) found; case 2's prediction is a false positive.
    assert (summary["detection"]["tp"], summary["detection"]["fp"], summary["detection"]["fn"]) == (1, 1, 0)
    burden = [32 / 400 - 24 / 400, 0.0, 0.0 - 4 / 400]
    assert summary["tumour_burden"]["rmse"] == pytest.approx(np.sqrt(np.mean(np.square(burden))))


def test_cli_prints_table_one_and_writes_csv_and_json(folders, tmp_path, capsys):
    pred, ref = folders
    code, out, err = run_cli(["evaluate", "--pred", pred, "--ref", ref, "--csv", str(tmp_path / "s.csv"),
                              "--json", str(tmp_path / "s.json")], capsys)
    assert code == 0, err
    assert "Liver Dice global %" in out and "Tumor burden RMSE" in out and "recall 1.000" in out
    assert open(tmp_path / "s.csv").read().splitlines()[0].startswith("case,prediction,reference,liver_dice")
    report = json.load(open(tmp_path / "s.json"))
    assert len(report["cases"]) == 3 and report["summary"]["detection"]["precision"] == 0.5


def test_missing_predictions_are_listed_and_scored_empty_only_when_asked(folders, tmp_path, capsys):
    pred, ref = folders
    os.remove(os.path.join(pred, "segmentation-1.nii"))
    expect_one_line_error(capsys, ["evaluate", "--pred", pred, "--ref", ref], "no prediction for 1 reference case",
                          ": 1 ", "--missing-as-empty")
    rows, _, _ = evaluate_folders(pred, ref, missing_as_empty=True, log=lambda *_: None)
    empty = next(row for row in rows if row["case"] == "1")
    assert empty["liver_dice"] == 0.0 and empty["liver_assd"] == 9001.0 and empty["prediction"] == ""


def test_predictions_pair_by_case_id_across_naming_styles(tmp_path):
    write(str(tmp_path / "ref"), "liver_3.nii.gz", block(LIVER))
    write(str(tmp_path / "pred"), "liver_3_seg.nii.gz", block(LIVER))
    write(str(tmp_path / "pred"), "liver_9_seg.nii.gz", block(LIVER))
    pairs, unmatched = pair_cases(str(tmp_path / "pred"), str(tmp_path / "ref"))
    assert [(case, os.path.basename(p)) for case, p, _ in pairs] == [("liver_3", "liver_3_seg.nii.gz")]
    assert unmatched == ["liver_9"]


@pytest.mark.parametrize("problem, fragment", [
    ("shape", "shape (16, 16, 5) differs"), ("affine", "affine differs"), ("labels", "label values [3]"),
    ("four_d", "expected a 3D volume"), ("no_refs", "holds no reference"),
])
def test_bad_input_gives_one_line_and_exit_2(folders, capsys, problem, fragment):
    pred, ref = folders
    if problem == "shape":
        write(pred, "segmentation-1.nii", block(LIVER, shape=(16, 16, 5)))
    elif problem == "affine":
        write(pred, "segmentation-1.nii", block(LIVER), affine=np.diag([0.8, 0.8, 2.5, 1.0]))
    elif problem == "labels":
        write(ref, "segmentation-2.nii", block(LIVER) * 3)
    elif problem == "four_d":
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.uint8), AFFINE), os.path.join(pred, "segmentation-0.nii"))
    else:
        for name in os.listdir(ref):
            os.remove(os.path.join(ref, name))
    expect_one_line_error(capsys, ["evaluate", "--pred", pred, "--ref", ref], fragment)
