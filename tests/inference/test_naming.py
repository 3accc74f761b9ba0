"""Output names and case ids."""

from __future__ import annotations

import pytest

from o2l_tf.inference.naming import case_id, output_name


@pytest.mark.parametrize("path, name", [
    ("data/test-volume-7.nii", "test-segmentation-7.nii"),
    ("volume-12.nii.gz", "segmentation-12.nii.gz"),
    ("imagesTs/liver_3.nii.gz", "liver_3_seg.nii.gz"),
    ("scan.nii", "scan_seg.nii.gz"),
    ("test-volume-x.nii", "test-volume-x_seg.nii.gz"),
])
def test_output_names(path, name):
    assert output_name(path) == name


def test_output_name_template_and_bad_template():
    assert output_name("imagesTs/liver_3.nii.gz", "{name}.nii.gz") == "liver_3.nii.gz"
    with pytest.raises(ValueError, match="--name"):
        output_name("liver_3.nii.gz", "{name}.png")


@pytest.mark.parametrize("path, case", [
    ("segmentation-7.nii", "7"), ("volume-7.nii.gz", "7"), ("test-segmentation-7.nii", "test-7"),
    ("liver_3_seg.nii.gz", "liver_3"), ("labelsTr/liver_3.nii.gz", "liver_3"),
])
def test_case_ids_pair_predictions_with_references(path, case):
    assert case_id(path) == case
