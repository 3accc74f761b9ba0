"""Writing cohorts: layouts, determinism, previews, and the command line."""

from __future__ import annotations

import filecmp
import json
import os
import struct
import zlib

import nibabel as nib
import numpy as np
import pytest

from o2l_cli.main import main
from o2l_tf.synth.cohort import CohortSpec, write_cohort


def run_cli(args, capsys):
    """Run ``o2l ARGS`` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def read_png_size(path):
    with open(path, "rb") as stream:
        data = stream.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) & 0xFFFFFFFF == struct.unpack(">I", data[29:33])[0]
    return width, height


def test_lits_layout_files_headers_and_marker(lits_cohort):
    out, spec, summaries = lits_cohort
    for index in range(spec.cases):
        volume = nib.load(os.path.join(out, f"volume-{index}.nii.gz"))
        label = nib.load(os.path.join(out, f"segmentation-{index}.nii.gz"))
        assert volume.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        assert volume.shape == label.shape and volume.shape[:2] == (48, 48) and 16 <= volume.shape[2] <= 24
        assert np.allclose(volume.affine, label.affine)
        assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1, 2}
    marker = json.load(open(os.path.join(out, "phantoms.json")))
    assert [case["case"] for case in marker["cases"]] == list(range(spec.cases))
    assert marker["spec"]["seed"] == 3


def test_cohort_has_both_phases_and_several_orientations(tmp_path):
    spec = CohortSpec(cases=12, size=32, slices=(4, 6), seed=0)
    summaries = write_cohort(str(tmp_path), spec, workers=2, progress=False)
    assert {s["phase"] for s in summaries} == {"portal_venous", "non_contrast"}
    codes = {"".join(nib.aff2axcodes(nib.load(tmp_path / s["image"]).affine)) for s in summaries}
    assert len(codes) >= 3


def test_same_arguments_give_byte_identical_files_whatever_the_workers(tmp_path):
    spec = CohortSpec(cases=3, size=40, slices=(6, 10), seed=7)
    write_cohort(str(tmp_path / "a"), spec, workers=1, progress=False)
    write_cohort(str(tmp_path / "b"), spec, workers=3, progress=False)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b"))
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == 7


def test_msd_layout_and_dataset_json(tmp_path):
    spec = CohortSpec(cases=2, size=32, slices=(4, 6), seed=1, layout="msd")
    write_cohort(str(tmp_path), spec, workers=1, progress=False)
    dataset = json.load(open(tmp_path / "dataset.json"))
    assert dataset["labels"] == {"0": "background", "1": "liver", "2": "cancer"}
    assert dataset["modality"] == {"0": "CT"} and dataset["tensorImageSize"] == "3D"
    assert dataset["numTraining"] == len(dataset["training"]) == 2
    for entry in dataset["training"]:
        image, label = tmp_path / entry["image"], tmp_path / entry["label"]
        assert image.exists() and label.exists()
        assert entry["image"].startswith("./imagesTr/liver_") and entry["image"].endswith(".nii.gz")
        assert nib.load(image).shape == nib.load(label).shape


def test_uncompressed_lits_files(tmp_path):
    write_cohort(str(tmp_path), CohortSpec(cases=1, size=32, slices=(4, 4), gzip=False), progress=False)
    assert (tmp_path / "volume-0.nii").exists() and (tmp_path / "segmentation-0.nii").exists()
    with open(tmp_path / "volume-0.nii", "rb") as stream:
        assert struct.unpack("<i", stream.read(4))[0] == 348  # a plain NIfTI-1 header, not gzip


def test_previews_are_valid_pngs(lits_cohort):
    out, spec, summaries = lits_cohort
    width, height = read_png_size(os.path.join(out, "preview.png"))
    assert width > 400 and height > 150
    for summary in summaries:
        width, height = read_png_size(os.path.join(out, summary["preview"]))
        assert width >= 4 * 256  # six axial tiles and a coronal one, four per row, upscaled


def test_cli_writes_cohort(tmp_path, capsys):
    code, out, err = run_cli(["synth", str(tmp_path / "c"), "--cases", "2", "--size", "32", "--slices", "4:6",
                              "--quiet"], capsys)
    assert code == 0, err
    assert "wrote 2 LITS cases" in out
    assert (tmp_path / "c" / "volume-1.nii.gz").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--cases", "-1"], "--cases"),
    (["--cases", "0"], "--cases"),
    (["--cases", "2", "--size", "0"], "--size"),
    (["--cases", "2", "--size", "-64"], "--size"),
    (["--cases", "2", "--layout", "nrrd"], "--layout"),
    (["--cases", "2", "--slices", "9:3"], "--slices"),
    (["--cases", "2", "--slices", "abc"], "--slices"),
    (["--cases", "2", "--workers", "0"], "--workers"),
    (["--cases", "2", "--layout", "msd", "--no-gzip"], "MSD"),
])
def test_invalid_arguments_give_one_line_error_and_write_nothing(tmp_path, capsys, args, fragment):
    target = tmp_path / "never"
    code, out, err = run_cli(["synth", str(target), *args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("o2l synth: error:") and fragment in lines[0]
    assert not target.exists()


def test_refuses_non_empty_folder_without_overwrite(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    code, _, err = run_cli(["synth", str(tmp_path), "--cases", "1", "--size", "32", "--quiet"], capsys)
    assert code == 2 and "not empty" in err and str(tmp_path) in err
    assert os.listdir(tmp_path) == ["keep.txt"]
    code, _, err = run_cli(["synth", str(tmp_path), "--cases", "1", "--size", "32", "--slices", "4:4", "--quiet",
                            "--overwrite"], capsys)
    assert code == 0, err
    assert (tmp_path / "keep.txt").read_text() == "user data"  # never touch what is not ours
