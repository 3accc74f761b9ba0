"""Reading NIfTI: the ISA-L path for .nii.gz, integer fast paths, and the canonical slice-major layout."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from o2l_tf.errors import InputError
from o2l_tf.nifti import Reorientation, load_image, read_canonical_hu, read_labels

# file axes -> canonical: a permutation and flips, as in LiTS (LPS-like with swapped in-plane axes)
AFFINE = np.array([[0, -0.7, 0, 10], [-0.9, 0, 0, -5], [0, 0, -2.0, 3], [0, 0, 0, 1]], float)


def save(path, array, affine=AFFINE, slope=None, inter=None):
    image = nib.Nifti1Image(array, affine)
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    nib.save(image, str(path))
    return str(path)


@pytest.fixture
def stored():
    return np.random.default_rng(0).integers(-1500, 3000, (13, 9, 23)).astype(np.int16)


@pytest.mark.parametrize("name", ["scan.nii.gz", "scan.nii"])
@pytest.mark.parametrize("slice_major", [False, True])
def test_canonical_hu_with_window_equals_numpy(tmp_path, stored, name, slice_major):
    path = save(tmp_path / name, stored)
    image = load_image(path)
    reorientation = Reorientation.of(image)
    canonical = reorientation.to_canonical(np.clip(stored, -200, 250))  # rint(-200.4) = -200, rint(250.4) = 250
    expected = np.moveaxis(canonical, 2, 0) if slice_major else canonical
    got = read_canonical_hu(image, path, reorientation, slab=5, window=(-200.4, 250.4), slice_major=slice_major)
    assert got.dtype == np.int16 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    # an independent reading of the same file by nibabel, oriented by nibabel's own as_closest_canonical
    closest = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)
    np.testing.assert_array_equal(read_canonical_hu(image, path, reorientation), closest)


def test_scaled_float_volume_is_rounded_then_windowed(tmp_path, stored):
    path = save(tmp_path / "scaled.nii.gz", stored, slope=0.5, inter=-1000.0)
    image = load_image(path)
    reorientation = Reorientation.of(image)
    expected = reorientation.to_canonical(np.clip(np.rint(stored * 0.5 - 1000.0), -1100, 0).astype(np.int16))
    got = read_canonical_hu(image, path, reorientation, slab=4, window=(-1100, 0), slice_major=True)
    np.testing.assert_array_equal(got, np.moveaxis(expected, 2, 0))


def test_gzip_volumes_are_read_through_isal_with_the_same_values(tmp_path, stored, monkeypatch):
    path = save(tmp_path / "scan.nii.gz", stored)
    import o2l_tf.nifti as nifti

    opened = []
    original = nifti.igzip.open
    monkeypatch.setattr(nifti.igzip, "open", lambda *a, **k: opened.append(a[0]) or original(*a, **k))
    image = load_image(path)
    values = read_canonical_hu(image, path, Reorientation.of(image))
    assert opened == [path]
    np.testing.assert_array_equal(values, Reorientation.of(image).to_canonical(stored))


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_gzip_data_is_one_clear_error(tmp_path, stored, damage):
    path = save(tmp_path / "scan.nii.gz", stored)
    blob = bytearray(open(path, "rb").read())
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:
        blob[len(blob) // 2: len(blob) // 2 + 64] = b"\xff" * 64  # no valid deflate block decodes from this
    open(path, "wb").write(bytes(blob))
    image = load_image(path)
    with pytest.raises(InputError, match="scan.nii.gz: cannot read voxel data"):
        read_canonical_hu(image, path, Reorientation.of(image))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
@pytest.mark.parametrize("name", ["seg.nii.gz", "seg.nii"])
def test_labels_of_any_stored_type(tmp_path, dtype, name):
    labels = np.random.default_rng(1).integers(0, 3, (8, 6, 5))
    path = save(tmp_path / name, labels.astype(dtype))
    got = read_labels(load_image(path), path)
    assert got.dtype == np.uint8 and not isinstance(got, np.memmap)
    np.testing.assert_array_equal(got, labels)
    got[0, 0, 0] = 7  # ours to change: never a view of the file
    assert np.asarray(nib.load(path).dataobj)[0, 0, 0] == labels[0, 0, 0]


def test_scaled_labels_are_read_through_the_header_scaling(tmp_path):
    labels = np.random.default_rng(2).integers(0, 3, (6, 5, 4))
    path = save(tmp_path / "scaled.nii.gz", (labels * 4 + 10).astype(np.int16), slope=0.25, inter=-2.5)
    np.testing.assert_array_equal(read_labels(load_image(path), path), labels)
    odd = save(tmp_path / "odd.nii.gz", np.full((2, 2, 2), 3, np.int16), slope=0.5, inter=0.0)  # 1.5 everywhere
    with pytest.raises(InputError, match=r"odd.nii.gz: label values \[1.5\]"):
        read_labels(load_image(odd), odd)


@pytest.mark.parametrize("values, dtype, bad", [([0, 1, 3], np.uint8, "[3]"), ([0, -1, 2], np.int16, "[-1]"),
                                               ([0, 1.5, 2], np.float32, "[1.5]")])
def test_labels_outside_the_lits_values_are_refused(tmp_path, values, dtype, bad):
    array = np.resize(np.array(values, dtype), (4, 4, 3))
    path = save(tmp_path / "seg.nii.gz", array)
    with pytest.raises(InputError, match=rf"seg.nii.gz: label values \{bad}"):
        read_labels(load_image(path), path)
