"""build-records: each kind of bad input gives one line naming the file, exit 2, and no manifest."""

from __future__ import annotations

import gzip
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from tests.helpers import expect_one_line_error, run_cli
from tests.tfrecords_builder.conftest import save_case


@pytest.fixture()
def cohort(tmp_path, phantoms):
    folder = tmp_path / "data"
    for index in range(3):
        save_case(str(folder), index, phantoms[index])
    return folder


def expect_error(capsys, args, out, *fragments):
    expect_one_line_error(capsys, ["build-records", *args, "--out", str(out), "--quiet", "--workers", "1"], *fragments)
    assert not (out / "manifest.json").exists()


def replace_volume(folder, index, data, affine=None, name="volume"):
    path = folder / f"{name}-{index}.nii.gz"
    reference = nib.load(path)
    nib.save(nib.Nifti1Image(data, reference.affine if affine is None else affine), path)
    return path


def test_missing_segmentation(cohort, tmp_path, capsys):
    os.remove(cohort / "segmentation-1.nii.gz")
    expect_error(capsys, ["--data", str(cohort)], tmp_path / "out", "volume-1.nii.gz", "segmentation-1")


def test_missing_volume(cohort, tmp_path, capsys):
    os.remove(cohort / "volume-2.nii.gz")
    expect_error(capsys, ["--data", str(cohort)], tmp_path / "out", "segmentation-2.nii.gz", "no volume-2")


def test_shape_mismatch(cohort, tmp_path, capsys):
    label = nib.load(cohort / "segmentation-0.nii.gz")
    replace_volume(cohort, 0, np.asarray(label.dataobj)[:, :, :-1], name="segmentation")
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "segmentation-0.nii.gz", "shape")


def test_affine_mismatch(cohort, tmp_path, capsys):
    label = nib.load(cohort / "segmentation-0.nii.gz")
    affine = label.affine.copy()
    affine[0, 3] += 5.0
    replace_volume(cohort, 0, np.asarray(label.dataobj), affine, name="segmentation")
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "segmentation-0.nii.gz", "affine")


def test_label_values_outside_0_1_2(cohort, tmp_path, capsys):
    label = np.asarray(nib.load(cohort / "segmentation-1.nii.gz").dataobj).copy()
    label[0, 0, 0] = 3
    replace_volume(cohort, 1, label, name="segmentation")
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "segmentation-1.nii.gz", "[3]")


def test_nan_voxels(cohort, tmp_path, capsys):
    volume = np.asarray(nib.load(cohort / "volume-2.nii.gz").dataobj).astype(np.float32)
    volume[3, 3, 3] = np.nan
    replace_volume(cohort, 2, volume)
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "volume-2.nii.gz", "NaN")


@pytest.mark.parametrize("shape", [(48, 48), (48, 48, 5, 2)])
def test_two_and_four_dimensional_images(cohort, tmp_path, capsys, shape):
    replace_volume(cohort, 0, np.zeros(shape, np.int16))
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "volume-0.nii.gz", "3D")


def test_truncated_gzip(cohort, tmp_path, capsys):
    path = cohort / "volume-1.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "volume-1.nii.gz")


def test_corrupt_gzip(cohort, tmp_path, capsys):
    path = cohort / "volume-0.nii.gz"
    data = bytearray(path.read_bytes())
    data[200:260] = b"\x00" * 60
    path.write_bytes(bytes(data))
    expect_error(capsys, ["--data", str(cohort), "--split", "100:0:0"], tmp_path / "out", "volume-0.nii.gz")


def test_empty_and_unknown_directories(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    expect_error(capsys, ["--data", str(tmp_path / "empty")], tmp_path / "o1", "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    expect_error(capsys, ["--data", str(tmp_path / "other")], tmp_path / "o2", "neither LiTS")
    expect_error(capsys, ["--data", str(tmp_path / "missing")], tmp_path / "o3", "no such folder")


def test_duplicate_case_ids(cohort, tmp_path, capsys):
    with gzip.open(cohort / "volume-0.nii.gz") as stream:
        (cohort / "volume-0.nii").write_bytes(stream.read())
    expect_error(capsys, ["--data", str(cohort)], tmp_path / "out", "duplicate case 0")


def test_boxes_outside_volume_inverted_and_unknown_cases(cohort, tmp_path, capsys):
    split = tmp_path / "split.json"
    split.write_text('{"strong": ["0"], "weak": ["1"], "val": ["2"]}')
    common = ["--data", str(cohort), "--split-file", str(split)]
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("case_id,class,slice,x0,y0,x1,y1\n1,liver,3,10,10,60,20\n")
    expect_error(capsys, [*common, "--boxes", str(boxes)], tmp_path / "o1", "boxes.csv", "row 1", "outside")
    boxes.write_text("case_id,class,slice,x0,y0,x1,y1\n1,liver,3,30,10,20,20\n")
    expect_error(capsys, [*common, "--boxes", str(boxes)], tmp_path / "o2", "boxes.csv", "x0 = 30 > x1 = 20")
    boxes.write_text("case_id,class,slice,x0,y0,x1,y1\n1,liver,3,1,1,20,20\n77,lesion,3,1,1,2,2\n")
    expect_error(capsys, [*common, "--boxes", str(boxes)], tmp_path / "o3", "boxes.csv", "unknown case(s) 77")
    boxes.write_text("case_id,class,slice,x0,y0,x1,y1\n1,kidney,3,1,1,20,20\n")
    expect_error(capsys, [*common, "--boxes", str(boxes)], tmp_path / "o4", "boxes.csv", "class")


@pytest.mark.parametrize("split, fragment", [("60:50:10", "> 100"), ("10:80:10", "zero"), ("30:60", "STRONG:WEAK:VAL")])
def test_bad_split_percentages(cohort, tmp_path, capsys, split, fragment):
    expect_error(capsys, ["--data", str(cohort), "--split", split], tmp_path / "out", fragment)


def test_existing_output_of_another_configuration(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["build-records", "--data", str(cohort), "--out", str(out), "--split", "34:33:33",
                            "--quiet", "--workers", "1"], capsys)
    assert code == 0, err
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    code, _, err = run_cli(["build-records", "--data", str(cohort), "--out", str(out), "--split", "67:0:33",
                            "--quiet", "--workers", "1"], capsys)
    assert code == 2 and "different configuration" in err and str(out) in err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before  # untouched
    code, _, err = run_cli(["build-records", "--data", str(cohort), "--out", str(out), "--split", "67:0:33",
                            "--quiet", "--workers", "1", "--overwrite"], capsys)
    assert code == 0, err
    assert not any(name.startswith("weak-") for name in os.listdir(out))


def test_foreign_files_in_output_are_refused(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    expect_error(capsys, ["--data", str(cohort), "--split", "34:33:33"], out, "not an o2l build")
    assert (out / "thesis.tex").read_text() == "precious"


def test_inputs_are_never_modified(cohort, tmp_path, capsys):
    before = {name: (cohort / name).read_bytes() for name in os.listdir(cohort)}
    code, _, err = run_cli(["build-records", "--data", str(cohort), "--out", str(tmp_path / "r"), "--quiet",
                            "--split", "34:33:33", "--perturb-boxes"], capsys)
    assert code == 0, err
    assert {name: (cohort / name).read_bytes() for name in os.listdir(cohort)} == before
    shutil.rmtree(tmp_path / "r")
