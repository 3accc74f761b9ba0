"""docs/results/lesion-study/confidence.py: the per-component confidence filter the lesion study sweeps."""

from __future__ import annotations

import numpy as np

from tests.metrics.lesion_study_tools import load_tool

def _tool():
    return load_tool("confidence")


def test_components_under_the_confidence_become_liver(tmp_path):
    tool = _tool()
    labels = np.ones((20, 20, 6), np.uint8)
    probability = np.zeros(labels.shape, np.float32)
    labels[2:6, 2:6, 1:4] = 2  # component A: mean p(lesion) (0.9 + 0.7) / 2 = 0.8
    probability[2:6, 2:6, 1:4] = 0.9
    probability[2:6, 2:4, 1:4] = 0.7
    labels[12:16, 12:16, 2:5] = 2  # component B: mean 0.6
    probability[12:16, 12:16, 2:5] = 0.6
    kept = tool.filter_components(labels, probability, 0.75)
    assert (kept[2:6, 2:6, 1:4] == 2).all() and (kept[12:16, 12:16, 2:5] == 1).all()
    assert (tool.filter_components(labels, probability, 0.85) == 2).sum() == 0  # A's mean 0.8 is under 0.85
    assert tool.filter_components(labels, probability, 0.0) is labels  # 0: nothing filtered
    assert tool.vessel_mask(str(tmp_path), "0", labels) is None  # not a phantom cohort: no vessel geometry


def test_vessel_mask_lies_on_the_phantoms_vessels(tmp_path):
    """The regenerated vessel geometry lands on the rendered vessels. The case is in the portal-venous phase, whose
    liver vessels ``o2l synth`` paints 25-100 HU above the parenchyma: inside the liver, the voxels within one pixel
    of a vessel have a median HU well above the parenchyma's (the same mask mirrored or shifted by 8 voxels: at
    most 5 HU above it here)."""
    import json

    import nibabel as nib

    from o2l_tf.synth.cohort import CohortSpec, write_cohort

    tool = _tool()
    write_cohort(str(tmp_path), CohortSpec(1, 96, (16, 20), seed=3))
    with open(tmp_path / "phantoms.json") as stream:
        assert json.load(stream)["cases"][0]["phase"] == "portal_venous"
    reference = np.asarray(nib.as_closest_canonical(nib.load(str(tmp_path / "segmentation-0.nii.gz"))).dataobj)
    hu = np.asarray(nib.as_closest_canonical(nib.load(str(tmp_path / "volume-0.nii.gz"))).dataobj).astype(float)
    mask = tool.vessel_mask(str(tmp_path), "0", reference)
    liver = reference == 1
    assert (mask & liver).sum() > 100
    assert np.median(hu[liver & mask]) - np.median(hu[liver & ~mask]) >= 15.0
