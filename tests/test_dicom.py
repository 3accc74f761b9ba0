"""DICOM CT series in: geometry, HU and sorting against the same phantom as NIfTI; every refusal in one line."""

from __future__ import annotations

import os

import numpy as np
import pytest

from o2l_tf import dicom
from o2l_tf.errors import InputError
from o2l_tf.nifti import Reorientation, load_image, read_canonical_hu
from o2l_tf.synth.phantom import generate_phantom
from tests.dicom_series import write_series


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(2, size=40, slices=(7, 7), seed=6, orientation="RAS")


def canonical(image, path):
    reorientation = Reorientation.of(image)
    return read_canonical_hu(image, path, reorientation), reorientation


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "RAI", "PRS", "SLP"])  # SLP: sagittal slices
def test_a_series_reads_as_the_same_volume_as_its_nifti(phantom, tmp_path, orientation):
    image, _ = phantom.to_nifti(orientation)
    write_series(image, str(tmp_path / "series"))
    read = load_image(str(tmp_path / "series"))
    from_dicom, geometry = canonical(read, str(tmp_path / "series"))
    from_nifti, expected = canonical(image, "nifti")
    assert np.array_equal(from_dicom, from_nifti)
    np.testing.assert_allclose(geometry.canonical_affine, expected.canonical_affine, atol=1e-4)
    assert from_dicom.dtype == np.int16 and read.shape == image.shape


def test_files_named_in_any_order_are_sorted_by_position(phantom, tmp_path):
    image, _ = phantom.to_nifti("LPS")
    write_series(image, str(tmp_path / "a"), shuffle_seed=1)
    write_series(image, str(tmp_path / "b"), shuffle_seed=None)
    a, b = (np.asarray(load_image(str(tmp_path / n)).dataobj) for n in "ab")
    assert np.array_equal(a, b)


def test_other_files_in_the_folder_are_ignored_and_the_digest_covers_the_series(phantom, tmp_path):
    image, _ = phantom.to_nifti("LPS")
    write_series(image, str(tmp_path / "s"))
    digest = dicom.series_sha256(str(tmp_path / "s"))
    (tmp_path / "s" / "README.txt").write_text("export notes")
    assert np.array_equal(np.asarray(load_image(str(tmp_path / "s")).dataobj), np.asarray(image.dataobj))
    assert dicom.series_sha256(str(tmp_path / "s")) == digest
    first = sorted(os.listdir(tmp_path / "s"))[0]
    with open(tmp_path / "s" / first, "r+b") as stream:
        stream.seek(-2, os.SEEK_END)
        stream.write(b"\x00\x01")
    assert dicom.series_sha256(str(tmp_path / "s")) != digest


def _refused(folder, message):
    with pytest.raises(InputError, match=message) as error:
        load_image(str(folder))
    assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_bad_series_are_refused_in_one_line(phantom, tmp_path):
    image, _ = phantom.to_nifti("LPS")
    write_series(image, str(tmp_path / "two"))
    write_series(image, str(tmp_path / "two"), series_uid="1.2.3.4.5", prefix="B")
    _refused(tmp_path / "two", "2 DICOM series")
    write_series(image, str(tmp_path / "gap"), skip=(3,))
    _refused(tmp_path / "gap", "uneven slice spacing")
    write_series(image, str(tmp_path / "mr"), modality="MR")
    _refused(tmp_path / "mr", "modality MR, not CT")
    write_series(image, str(tmp_path / "tilt"), tilt_mm=0.5)
    _refused(tmp_path / "tilt", "gantry tilt")
    from pydicom.uid import JPEG2000Lossless

    write_series(image, str(tmp_path / "j2k"), transfer_syntax=JPEG2000Lossless)  # raw bytes labelled JPEG 2000
    _refused(tmp_path / "j2k", "cannot decode the pixels")
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    _refused(tmp_path / "empty", "without DICOM files")


def test_a_single_slice_series_is_still_a_volume(phantom, tmp_path):
    image, _ = phantom.to_nifti("LPS")
    write_series(image.slicer[:, :, 3:4], str(tmp_path / "one"))
    read = load_image(str(tmp_path / "one"))
    assert read.shape == (40, 40, 1)
    assert np.array_equal(np.asarray(read.dataobj)[:, :, 0], np.asarray(image.dataobj)[:, :, 3])
