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
    from o2l_tf.data import records  # the DICOM case's examples are the NIfTI case's, voxel for voxel

    def by_slice(split):
        return {int(e["slice_index"]): e for e in records.read_split(str(tmp_path / "r"), split).as_numpy_iterator()}

    strong, val = by_slice("strong"), by_slice("val")
    assert set(strong) == set(val) and strong
    for z in strong:
        assert np.array_equal(strong[z]["hu"], val[z]["hu"]) and np.array_equal(strong[z]["label"], val[z]["label"])


def test_dicom_seg_output_reads_back_to_the_nifti_labels(student_run, phantom, tmp_path, capsys):
    """--output-format dicom-seg: two segments with SNOMED codes, referencing the series, the same masks per frame."""
    import pydicom

    from o2l_tf import dicom, dicom_seg

    volume, _ = phantom.to_nifti("LPS")
    write_series(volume, str(tmp_path / "ct"))
    common = ["--model", student_run, str(tmp_path / "ct"), "--quiet", "--precision", "float32"]
    code, _, err = run_cli(["predict", *common, "-o", str(tmp_path / "nii")], capsys)
    assert code == 0, err
    code, _, err = run_cli(["predict", *common, "-o", str(tmp_path / "seg"), "--output-format", "dicom-seg"], capsys)
    assert code == 0, err
    assert os.listdir(tmp_path / "seg") == ["ct_seg.dcm"]
    labels = np.asarray(nib.load(str(tmp_path / "nii" / "ct_seg.nii.gz")).dataobj)
    assert (labels == 1).any()
    seg_path = str(tmp_path / "seg" / "ct_seg.dcm")
    assert np.array_equal(dicom_seg.read_labels(seg_path, str(tmp_path / "ct")), labels)
    seg = pydicom.dcmread(seg_path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    codes = [(s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue) for s in seg.SegmentSequence]
    assert codes == [("Liver", "10200004"), ("Liver lesion", "52988006")]
    sources = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
               for p in dicom.series_files(str(tmp_path / "ct"))}
    referenced = {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == sources


def test_dicom_seg_round_trip_keeps_lesions_inside_the_liver_segment(phantom, tmp_path):
    from o2l_tf import dicom, dicom_seg

    volume, _ = phantom.to_nifti("PRS")
    write_series(volume, str(tmp_path / "ct"))
    shape = dicom.read_series(str(tmp_path / "ct")).shape
    labels = np.zeros(shape, np.uint8)
    labels[5:30, 8:25, 1:6] = 1
    labels[10:14, 12:16, 2:4] = 2
    (tmp_path / "seg.dcm").write_bytes(dicom_seg.segmentation_bytes(str(tmp_path / "ct"), labels))
    assert np.array_equal(dicom_seg.read_labels(str(tmp_path / "seg.dcm"), str(tmp_path / "ct")), labels)


def test_dicom_seg_for_a_nifti_input_is_refused(student_run, phantom, tmp_path, capsys):
    volume, _ = phantom.to_nifti("LPS")
    volume.to_filename(str(tmp_path / "case.nii.gz"))
    expect_one_line_error(capsys, ["predict", "--model", student_run, str(tmp_path / "case.nii.gz"), "-o",
                                   str(tmp_path / "out"), "--output-format", "dicom-seg"],
                          "needs DICOM series inputs", "case.nii.gz")
