"""Small cohorts for the record builder tests."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from o2l_tf.synth.phantom import generate_phantom


def save_case(folder, index, phantom, orientation=None, volume_dtype=None, slope=None):
    """Save a phantom as LiTS volume-N / segmentation-N in ``orientation`` (default: its own)."""
    volume, label = phantom.to_nifti(orientation)
    if volume_dtype is not None:
        hu = np.asarray(volume.dataobj).astype(np.float64)
        if slope is None:  # the values themselves, stored as volume_dtype
            volume = nib.Nifti1Image(hu.astype(volume_dtype), volume.affine)
        else:  # stored = (HU + 1024) / slope, read back through scl_slope / scl_inter
            volume = nib.Nifti1Image(((hu + 1024.0) / slope).astype(volume_dtype), volume.affine)
            volume.header.set_slope_inter(slope, -1024.0)
    os.makedirs(folder, exist_ok=True)
    nib.save(volume, os.path.join(folder, f"volume-{index}.nii.gz"))
    nib.save(label, os.path.join(folder, f"segmentation-{index}.nii.gz"))


@pytest.fixture(scope="session")
def phantoms():
    return [generate_phantom(i, size=48, slices=(14, 20), seed=9) for i in range(5)]


@pytest.fixture(scope="session")
def lits_dir(tmp_path_factory, phantoms):
    folder = tmp_path_factory.mktemp("lits_data")
    for index, phantom in enumerate(phantoms):
        save_case(str(folder), index, phantom)
    return str(folder)
