"""docs/results/lesion-study/contrast.py: the per-lesion analysis the results folders cite (contrast, Rose index)."""

from __future__ import annotations

import numpy as np

from tests.metrics.lesion_study_tools import load_tool

def _tool():
    return load_tool("contrast")


def _phantom(contrast: float, noise_sd: float, vessel: bool = True, seed: int = 0):
    """A 40 x 40 x 9 liver at 100 HU with Gaussian noise, a 6 x 6 x 5 lesion (36 pixels per slice) at 100 + contrast
    without noise, and (``vessel``) one bright voxel row next to it (an outlier the robust SD must ignore)."""
    rng = np.random.default_rng(seed)
    hu = 100.0 + noise_sd * rng.standard_normal((40, 40, 9))
    labels = np.ones(hu.shape, np.uint8)
    labels[17:23, 17:23, 2:7] = 2
    hu[labels == 2] = 100.0 + contrast
    if vessel:
        hu[24, 10:30, 4] = 400.0
    return hu, labels


def test_rose_index_matches_the_hand_computation():
    tool = _tool()
    hu, labels = _phantom(contrast=-20.0, noise_sd=10.0)
    mask, liver = labels == 2, labels == 1
    # by hand: |contrast| / SD x sqrt(largest axial cross-section) = 20 / 10 x sqrt(36) = 12
    with_vessel = tool.rose_index(-20.0, hu, mask, liver)
    assert abs(with_vessel - 12.0) < 0.1 * 12.0
    # the vessel row (14 voxels 300 HU above the liver in the ~1,300-voxel noise ring) would triple a plain SD;
    # the robust SD ignores it
    plain, _ = _phantom(contrast=-20.0, noise_sd=10.0, vessel=False)
    assert abs(with_vessel - tool.rose_index(-20.0, plain, mask, liver)) < 0.05 * 12.0


def test_lesion_rows_contrast_found_and_failure():
    tool = _tool()
    hu, labels = _phantom(contrast=-30.0, noise_sd=5.0, vessel=False)
    zooms = (2.0, 2.0, 4.0)  # the 6 x 6 x 5 lesion: 12 x 12 x 20 mm, equivalent diameter ~16 mm (class 10-20 mm)
    found = tool.lesions_of_case(labels.copy(), labels, hu, zooms)
    assert len(found) == 1 and found[0]["found"] and found[0]["failure"] == "found"
    assert abs(found[0]["contrast_hu"] + 30.0) < 2.0  # lesion minus the liver ring's mean (100 HU)
    missed = labels.copy()
    missed[missed == 2] = 1
    row = tool.lesions_of_case(missed, labels, hu, zooms)[0]
    assert not row["found"] and row["failure"] == "not seen" and row["covered"] == 0.0
    assert abs(row["rose"] - 36.0) < 0.1 * 36.0  # 30 HU / 5 HU x sqrt(36 pixels)
    assert tool.binned([row], "rose", tool.ROSE_BINS) == [
        ("Rose k under 5", 0, 0), ("Rose k 5-10", 0, 0), ("Rose k 10 or more", 0, 1)]
