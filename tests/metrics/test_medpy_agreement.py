"""The LiTS metrics against medpy.metric.binary (an independent implementation) with anisotropic spacing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from o2l_tf.metrics import lits

binary = pytest.importorskip("medpy.metric.binary")
medpy_surface_distances = binary.__dict__["__surface_distances"]  # the per-voxel distances asd/hd are built on
EIGHTEEN = 2  # medpy's connectivity argument: generate_binary_structure(3, 2), the LiTS surface


def random_blobs(rng, shape, fraction):
    noise = ndimage.gaussian_filter(rng.normal(size=shape), (2.0, 2.0, 1.0))
    return noise > np.quantile(noise, 1.0 - fraction)


def mask_pairs():
    rng = np.random.default_rng(7)
    for _ in range(3):
        yield random_blobs(rng, (40, 36, 18), 0.15), random_blobs(rng, (40, 36, 18), 0.12), (0.7, 0.8, 2.5)
    from o2l_tf.synth.phantom import generate_phantom

    phantom = generate_phantom(2, size=64, slices=(20, 20), seed=1, orientation="RAS")
    liver = phantom.segmentation >= 1
    # A plausible prediction: the liver shifted by two voxels and eroded once; lesions dilated once.
    shifted = ndimage.binary_erosion(np.roll(liver, 2, axis=0))
    yield shifted, liver, tuple(phantom.spacing)
    lesion = phantom.segmentation == 2
    if lesion.any():
        yield ndimage.binary_dilation(lesion), lesion, tuple(phantom.spacing)


@pytest.mark.parametrize("prediction, reference, spacing", list(mask_pairs()))
def test_overlap_and_surface_scores_match_medpy(prediction, reference, spacing):
    ours = lits.overlap_scores(prediction, reference, spacing)
    assert ours.dice == pytest.approx(binary.dc(prediction, reference), rel=1e-12)
    assert ours.voe == pytest.approx(1.0 - binary.jc(prediction, reference), rel=1e-12)
    assert ours.rvd == pytest.approx(binary.ravd(prediction, reference), rel=1e-12)
    forward = medpy_surface_distances(prediction, reference, spacing, EIGHTEEN)
    backward = medpy_surface_distances(reference, prediction, spacing, EIGHTEEN)
    np.testing.assert_allclose(np.sort(lits.surface_distances(prediction, reference, spacing)),
                               np.sort(np.concatenate([forward, backward])), rtol=1e-9)
    # ASSD pools both directed sets: the surface-size-weighted mean of medpy's two directed means.
    pooled = (forward.size * binary.asd(prediction, reference, spacing, EIGHTEEN)
              + backward.size * binary.asd(reference, prediction, spacing, EIGHTEEN)) / (forward.size + backward.size)
    assert ours.assd == pytest.approx(pooled, rel=1e-9)
    assert ours.mssd == pytest.approx(binary.hd(prediction, reference, spacing, EIGHTEEN), rel=1e-9)
    assert ours.rmsd == pytest.approx(np.sqrt(np.mean(np.concatenate([forward, backward]) ** 2)), rel=1e-9)
