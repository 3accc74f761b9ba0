"""docs/results/lesion-study/ceiling.py: the detectability ceilings the results folders cite."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

from tests.metrics.lesion_study_tools import load_tool

def _tool():
    return load_tool("ceiling")


def _write_case(folder, case: str, hu: np.ndarray, labels: np.ndarray, zooms=(2.0, 2.0, 4.0)) -> None:
    affine = np.diag([*zooms, 1.0])
    nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), os.path.join(folder, f"volume-{case}.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine), os.path.join(folder, f"segmentation-{case}.nii.gz"))


def test_oracles_keep_the_lesions_their_rule_names(tmp_path):
    """Case 0: a large lesion at the liver's HU (A: 6 x 6 x 5 voxels of 2 x 2 x 4 mm, 17.7 mm equivalent diameter,
    invisible) and a small dark one (B: 2 x 2 x 2 voxels, 6.3 mm, -30 HU under 5 HU of noise: Rose k = 30 / 5 x
    sqrt(4) = 12). Case 1: tumour-free."""
    rng = np.random.default_rng(0)
    hu = 100.0 + 5.0 * rng.standard_normal((40, 40, 9))
    labels = np.ones(hu.shape, np.uint8)
    labels[17:23, 17:23, 2:7] = 2
    hu[17:23, 17:23, 2:7] = 100.0
    labels[5:7, 5:7, 3:5] = 2
    hu[5:7, 5:7, 3:5] = 70.0
    _write_case(tmp_path, "0", hu, labels)
    _write_case(tmp_path, "1", 100.0 + 5.0 * rng.standard_normal((40, 40, 9)), np.ones((40, 40, 9), np.uint8))
    result = _tool().ceilings(str(tmp_path))
    case = result["cases"][0]
    # Dice = 2 |kept| / (|kept| + 188 reference lesion voxels), by hand
    assert case["every lesion"] == 1.0
    assert abs(case["10 mm or more"] - 2 * 180 / (180 + 188)) < 1e-3  # keeps A only
    assert abs(case["Rose k >= 5"] - 2 * 8 / (8 + 188)) < 1e-3  # keeps B only
    assert case["10 mm or more, Rose k >= 5"] == 0.0  # keeps neither
    assert result["cases"][1]["Rose k >= 5"] == 1.0  # tumour-free: nothing to keep, nothing predicted
    oracles = result["oracles"]
    assert abs(oracles["Rose k >= 5"]["lesion_dice_per_case"] - (2 * 8 / 196 + 1.0) / 2) < 1e-3
    assert oracles["Rose k >= 5"]["found_by_size"] == {"< 10 mm": 1, "10-20 mm": 0, "> 20 mm": 0}
    assert oracles["10 mm or more"]["found_by_size"] == {"< 10 mm": 0, "10-20 mm": 1, "> 20 mm": 0}
