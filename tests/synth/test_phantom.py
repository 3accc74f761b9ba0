"""The phantom generator: anatomy, intensities, lesions, geometry and orientation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from o2l_tf.synth import geometry as anat
from o2l_tf.synth.phantom import ORIENTATIONS, generate_phantom
from o2l_tf.synth.sampling import sample_lesion_count, sample_lesion_diameter

SIZE = 64


@pytest.fixture(scope="module")
def phantoms():
    return [generate_phantom(index, size=SIZE, slices=(40, 60), seed=11) for index in range(8)]


def world_coordinates(phantom, mask):
    """RAS world coordinates (u, v, w in mm) of the voxels of ``mask`` in the canonical arrays."""
    ijk = np.argwhere(mask).T
    xyz = phantom.affine_ras[:3, :3] @ ijk + phantom.affine_ras[:3, 3:4]
    return xyz.astype(np.float32)


def test_generation_is_deterministic_and_seed_dependent():
    first = generate_phantom(2, size=SIZE, slices=(20, 30), seed=5)
    again = generate_phantom(2, size=SIZE, slices=(20, 30), seed=5)
    other = generate_phantom(2, size=SIZE, slices=(20, 30), seed=6)
    assert np.array_equal(first.volume, again.volume)
    assert np.array_equal(first.segmentation, again.segmentation)
    assert first.volume.shape != other.volume.shape or not np.array_equal(first.volume, other.volume)


def test_labels_are_background_liver_lesion_and_volumes_int16(phantoms):
    for phantom in phantoms:
        assert phantom.volume.dtype == np.int16 and phantom.segmentation.dtype == np.uint8
        assert set(np.unique(phantom.segmentation)) <= {0, 1, 2}
        assert (phantom.segmentation >= 1).any(), "every case shows some liver"


def test_every_lesion_voxel_lies_inside_the_analytic_liver(phantoms):
    checked = 0
    for phantom in phantoms:
        lesion = phantom.segmentation == anat.LESION
        if not lesion.any():
            continue
        u, v, w = world_coordinates(phantom, lesion)
        # Evaluate the carved liver surface voxel by voxel, independently of the slice renderer.
        # The renderer interpolates the smooth shape noise (< 0.1 mm error), hence the 0.25 mm slack.
        sdf = np.array([float(anat.carved_liver_sdf(phantom.anatomy.abdomen, u[n], v[n], float(w[n]))) for n in range(u.size)])
        assert sdf.max() < 0.25
        checked += u.size
    assert checked > 0


def test_liver_label_matches_the_analytic_liver_surface(phantoms):
    phantom = phantoms[0]
    k = int(np.argmax((phantom.segmentation > 0).sum(axis=(0, 1))))
    mask = np.zeros_like(phantom.segmentation, bool)
    mask[:, :, k] = True
    u, v, w = world_coordinates(phantom, mask)
    sdf = anat.carved_liver_sdf(phantom.anatomy.abdomen, u, v, float(w[0]))
    expected = (sdf < 0).reshape(SIZE, SIZE)
    agreement = np.mean(expected == (phantom.segmentation[:, :, k] > 0))
    assert agreement > 0.99  # the renderer interpolates smooth noise, so a few edge pixels may differ


def _interior(mask, iterations=1):
    return ndimage.binary_erosion(mask, iterations=iterations)


def test_tissue_intensities_follow_the_contrast_phase():
    by_phase = {}
    for index in range(10):
        phantom = generate_phantom(index, size=96, slices=(30, 30), seed=21)
        by_phase.setdefault(phantom.phase, phantom)
    assert set(by_phase) == {"portal_venous", "non_contrast"}
    ranges = {"portal_venous": (96, 124), "non_contrast": (41, 69)}  # LITS.md ranges, +-4 HU for texture
    for phase, phantom in by_phase.items():
        liver_only = _interior(phantom.segmentation == anat.LIVER, 2)
        hu = phantom.volume[liver_only].astype(float)
        low, high = ranges[phase]
        assert low <= np.median(hu) <= high, (phase, np.median(hu))
        # Noise: SD 10-25 HU plus a little parenchymal texture and vessels.
        assert 8 <= hu.std() <= 45


def test_spleen_is_close_to_liver_in_both_phases():
    for index in range(10):
        phantom = generate_phantom(index, size=96, slices=(30, 30), seed=21)
        grid = np.ones(phantom.volume.shape, bool)
        u, v, w = world_coordinates(phantom, grid)
        organ = phantom.anatomy.abdomen.spleen
        spleen = (organ.sdf(u, v, w) < -6).reshape(phantom.volume.shape)
        spleen &= ~(phantom.anatomy.abdomen.spleen_hollow.sdf(u, v, w) < 6).reshape(phantom.volume.shape)
        liver = _interior(phantom.segmentation == anat.LIVER, 2)
        if spleen.sum() < 30 or liver.sum() < 30:
            continue
        gap = abs(np.median(phantom.volume[spleen]) - np.median(phantom.volume[liver]))
        assert gap < 25, (index, phantom.phase, gap)  # intensity alone cannot tell them apart


def test_lesion_count_distribution_matches_lits():
    rng = np.random.default_rng(0)
    counts = np.array([sample_lesion_count(rng) for _ in range(4000)])
    assert 0.05 < np.mean(counts == 0) < 0.2
    assert counts.max() == 12 and counts.min() == 0
    q1, median, q3 = np.percentile(counts, [25, 50, 75])
    assert median == 3 and 1 <= q1 <= 2 and 5 <= q3 <= 9


def test_lesion_sizes_span_small_to_large_with_many_small():
    rng = np.random.default_rng(1)
    diameters = np.array([sample_lesion_diameter(rng) for _ in range(4000)])
    assert diameters.min() >= 3.0 and diameters.max() > 50
    assert np.mean(diameters < 10) > 0.3
    assert np.mean(diameters > 20) > 0.2


def test_lesions_are_mostly_hypodense_and_visible_in_labels(phantoms):
    contrasts = [lesion["contrast_hu"] for p in phantoms for lesion in p.lesions]
    assert len(contrasts) >= 8
    assert np.mean(np.array(contrasts) < 0) > 0.6
    assert all(10 <= abs(c) <= 80 for c in contrasts)
    with_label = sum(p.summary()["lesion_components_in_label"] > 0 for p in phantoms if p.lesions)
    assert with_label >= 0.5 * sum(1 for p in phantoms if p.lesions)


def test_liver_boxes_contain_substantial_non_liver_tissue(phantoms):
    fills = []
    for phantom in phantoms:
        liver = phantom.segmentation > 0
        for k in range(liver.shape[2]):
            components, count = ndimage.label(liver[:, :, k])
            for box in ndimage.find_objects(components):
                area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
                if area >= 100:
                    fills.append(liver[:, :, k][box].sum() / area)
    assert len(fills) > 50
    assert np.mean(fills) < 0.8  # on average a fifth of a liver box or more is other tissue
    assert np.min(fills) < 0.6


def test_liver_size_and_geometry_are_lits_like():
    for index in range(4):
        phantom = generate_phantom(index, size=SIZE, slices=(120, 120), seed=4)
        pixel_at_512 = phantom.spacing[0] * SIZE / 512
        assert 0.56 - 1e-6 <= pixel_at_512 <= 1.0 + 1e-6
        assert 0.7 <= phantom.spacing[2] <= 5.0
        assert 150 * 0.9 <= phantom.anatomy.abdomen.liver_height <= 200 * 1.1
        liver_ml = phantom.summary()["liver_volume_ml"]
        covered = (phantom.segmentation > 0).any(axis=(0, 1)).sum() * phantom.spacing[2]
        if covered >= 0.95 * phantom.anatomy.abdomen.liver_height:
            assert 900 <= liver_ml <= 3200, liver_ml


def test_liver_sits_in_the_right_upper_abdomen(phantoms):
    for phantom in phantoms:
        u, v, w = world_coordinates(phantom, phantom.segmentation > 0)
        assert np.mean(u > 0) > 0.75  # RAS: positive u is the patient's right


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "RAI", "PRS", "ALS"])
def test_stored_orientation_round_trips_to_the_canonical_arrays(orientation):
    phantom = generate_phantom(1, size=40, slices=(12, 12), seed=2, orientation=orientation)
    volume_image, label_image = phantom.to_nifti()
    assert "".join(nib.aff2axcodes(volume_image.affine)) == orientation
    assert np.allclose(volume_image.affine, label_image.affine)
    canonical = nib.as_closest_canonical(volume_image)
    assert np.array_equal(np.asarray(canonical.dataobj), phantom.volume)
    assert np.allclose(canonical.affine, phantom.affine_ras)
    assert np.array_equal(np.asarray(nib.as_closest_canonical(label_image).dataobj), phantom.segmentation)


def test_orientation_weights_include_lits_variety():
    assert {"RAS", "LPS"} <= set(ORIENTATIONS)
    assert any(code[2] == "I" for code in ORIENTATIONS)  # flipped z
    assert any(code[0] in "AP" for code in ORIENTATIONS)  # swapped in-plane axes


def test_bad_generator_arguments_raise_value_error():
    with pytest.raises(ValueError, match="size"):
        generate_phantom(0, size=16)
    with pytest.raises(ValueError, match="slices"):
        generate_phantom(0, size=32, slices=(5, 2))
