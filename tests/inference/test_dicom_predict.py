"""o2l predict and build-records --cases take a DICOM CT series folder; labels equal those of the same NIfTI."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np

from o2l_tf.nifti import Reorientation
from tests.dicom_series import write_series
from tests.helpers import expect_one_line_error, run_cli


def _canonical_labels(path):
    image = nib.load(path)
    return Reorientation.of(image).to_canonical(np.asarray(image.dataobj))


def test_each_series_gets_its_own_output_named_after_its_folder(student_run, phantom, tmp_path, capsys):
    volume, _ = phantom.to_nifti("RAI")
    volume.to_filename(str(tmp_path / "case.nii.gz"))
    write_series(volume, str(tmp_path / "series-7"))
    code, _, err = run_cli(["predict", "--model", student_run, str(tmp_path / "case.nii.gz"),
                            str(tmp_path / "series-7") + os.sep, "-o", str(tmp_path / "out"), "--quiet",
                            "--precision", "float32"], capsys)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["case_seg.nii.gz", "series-7_seg.nii.gz"]
    from_nifti = _canonical_labels(str(tmp_path / "out" / "case_seg.nii.gz"))
    from_dicom = _canonical_labels(str(tmp_path / "out" / "series-7_seg.nii.gz"))
    assert np.array_equal(from_nifti, from_dicom) and from_dicom.any()
    # the DICOM prediction lies on the series' own grid (as o2l reads it), in world coordinates equal to the NIfTI's
    a, b = (nib.load(str(tmp_path / "out" / n)) for n in ("case_seg.nii.gz", "series-7_seg.nii.gz"))
    np.testing.assert_allclose(nib.as_closest_canonical(a).affine, nib.as_closest_canonical(b).affine, atol=1e-4)


def test_a_bad_series_is_one_line_and_nothing_is_written(student_run, phantom, tmp_path, capsys):
    volume, _ = phantom.to_nifti("LPS")
    write_series(volume, str(tmp_path / "mr"), modality="MR")
    expect_one_line_error(capsys, ["predict", "--model", student_run, str(tmp_path / "mr"), "-o",
                                   str(tmp_path / "out")], "modality MR, not CT", str(tmp_path / "mr"))
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


def test_build_records_reads_a_dicom_series_from_a_case_list(phantom, tmp_path, capsys):
    volume, label = phantom.to_nifti("LPS")
    write_series(volume, str(tmp_path / "s0"))
    label.to_filename(str(tmp_path / "s0-label.nii.gz"))
    volume.to_filename(str(tmp_path / "n1.nii.gz"))
    label.to_filename(str(tmp_path / "n1-label.nii.gz"))
    (tmp_path / "cases.csv").write_text("case_id,image,label\nd,s0,s0-label.nii.gz\nn,n1.nii.gz,n1-label.nii.gz\n")
    (tmp_path / "split.json").write_text(json.dumps({"strong": ["d"], "val": ["n"]}))
    code, _, err = run_cli(["build-records", "--cases", str(tmp_path / "cases.csv"), "--split-file",
                            str(tmp_path / "split.json"), "--out", str(tmp_path / "r"), "--spacing", "native",
                            "--quiet"], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    d, n = manifest["cases"]["d"], manifest["cases"]["n"]
    assert d["canonical_shape"] == n["canonical_shape"] and d["image_sha256"] != n["image_sha256"]
    assert d["slices"] == n["slices"] and len(d["image_sha256"]) == 64
