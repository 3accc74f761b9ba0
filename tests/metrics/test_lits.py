"""LiTS metrics against hand-made cases and brute-force computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from o2l_tf.metrics import lits


def brute_surface_distances(prediction, reference, spacing):
    """Pairwise distances between surface voxels (no distance transform), both directions."""
    erode = lambda m: ndimage.binary_erosion(m, ndimage.generate_binary_structure(3, 2), border_value=0)  # noqa: E731
    a = np.argwhere(prediction & ~erode(prediction)) * spacing
    b = np.argwhere(reference & ~erode(reference)) * spacing
    pairwise = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])


def test_surface_distances_match_brute_force_with_anisotropic_spacing():
    rng = np.random.default_rng(0)
    spacing = np.array([0.8, 0.8, 2.5])
    for _ in range(5):
        prediction = ndimage.binary_dilation(rng.uniform(size=(20, 22, 12)) > 0.985, iterations=2)
        reference = ndimage.binary_dilation(rng.uniform(size=(20, 22, 12)) > 0.985, iterations=2)
        fast = np.sort(lits.surface_distances(prediction, reference, spacing))
        slow = np.sort(brute_surface_distances(prediction, reference, spacing))
        np.testing.assert_allclose(fast, slow, rtol=1e-9)


def test_hand_made_cube_scores():
    reference = np.zeros((10, 10, 10), bool)
    reference[2:6, 2:6, 2:6] = True  # 64 voxels
    prediction = np.zeros_like(reference)
    prediction[3:7, 2:6, 2:6] = True  # shifted by one voxel along x: overlap 48
    scores = lits.overlap_scores(prediction, reference, (1.0, 1.0, 1.0))
    assert scores.dice == pytest.approx(2 * 48 / 128)
    assert scores.voe == pytest.approx(1 - 48 / 80)
    assert scores.rvd == 0.0
    assert scores.mssd == pytest.approx(1.0)


def test_empty_mask_rules():
    empty = np.zeros((6, 6, 6), bool)
    lesion = empty.copy()
    lesion[2:4, 2:4, 2:4] = True
    both_empty_lesion = lits.overlap_scores(empty, empty, (1, 1, 1), empty_is_perfect=True)
    assert both_empty_lesion.dice == 1.0 and both_empty_lesion.assd == 0.0
    false_alarm = lits.overlap_scores(lesion, empty, (1, 1, 1), empty_is_perfect=True)
    assert false_alarm.dice == 0.0 and false_alarm.assd == lits.SENTINEL
    missed = lits.overlap_scores(empty, lesion, (1, 1, 1))
    assert missed.dice == 0.0 and missed.voe == 1.0 and missed.mssd == lits.SENTINEL
    both_empty_liver = lits.overlap_scores(empty, empty, (1, 1, 1))
    assert both_empty_liver.dice == 0.0 and both_empty_liver.voe == 1.0


def test_detection_counts_with_iou_threshold():
    reference = np.zeros((20, 20, 5), bool)
    reference[1:5, 1:5, 1:3] = True  # lesion A: 32 voxels
    reference[10:14, 10:14, 1:3] = True  # lesion B
    prediction = np.zeros_like(reference)
    prediction[1:5, 1:4, 1:3] = True  # IoU 24/32 = 0.75 with A: found
    prediction[10:14, 10:11, 1:3] = True  # IoU 8/32 = 0.25 with B: not found, and a false positive
    prediction[17:19, 17:19, 1:3] = True  # a false positive far away
    assert lits.detection_counts(prediction, reference) == (1, 2, 1)


def test_detection_by_diameter_class():
    """Three reference lesions of hand-computed equivalent diameters on 2 x 2 x 2 mm voxels."""
    spacing = (2.0, 2.0, 2.0)
    reference = np.zeros((40, 40, 12), bool)
    reference[2:4, 2:4, 2:4] = True  # 8 voxels = 64 mm3: d = (6 * 64 / pi)^(1/3) = 4.96 mm
    reference[10:16, 10:16, 2:7] = True  # 180 voxels = 1440 mm3: d = 14.0 mm
    reference[20:34, 20:34, 1:11] = True  # 1960 voxels = 15680 mm3: d = 31.1 mm
    prediction = np.zeros_like(reference)
    prediction[10:16, 10:16, 2:6] = True  # IoU 144 / 180 = 0.8: the medium lesion is found
    prediction[20:34, 20:34, 1:4] = True  # IoU 0.3: the large one is not
    matches = lits.match_lesions(prediction, reference)
    np.testing.assert_allclose(lits.equivalent_diameters(matches.reference_voxels, spacing),
                               [np.cbrt(6 * v * 8 / np.pi) for v in (8, 180, 1960)])
    assert list(matches.found) == [False, True, False] and matches.false_positives == 1
    table = lits.detection_by_size([lits.evaluate_volume(prediction.astype(np.uint8) * 2,
                                                         reference.astype(np.uint8) * 2, spacing)])
    assert table == {"< 10 mm": {"lesions": 1, "found": 0, "recall": 0.0},
                     "10-20 mm": {"lesions": 1, "found": 1, "recall": 1.0},
                     "> 20 mm": {"lesions": 1, "found": 0, "recall": 0.0}}
    assert lits.size_class(10.0) == "10-20 mm" and lits.size_class(20.0) == "10-20 mm"
    assert lits.size_class(9.99) == "< 10 mm" and lits.size_class(20.01) == "> 20 mm"


def test_summary_dice_global_per_case_and_burden():
    def case(pred_liver, ref_liver, pred_lesion, ref_lesion):
        shape = (10, 10, 10)
        pred, ref = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
        pred.flat[:pred_liver] = 1
        ref.flat[:ref_liver] = 1
        pred.flat[:pred_lesion] = 2
        ref.flat[:ref_lesion] = 2
        return lits.evaluate_volume(pred, ref, (1, 1, 1))

    cases = [case(100, 100, 10, 20), case(50, 100, 0, 0)]
    summary = lits.summarize(cases)
    assert summary["liver"]["dice_per_case"] == pytest.approx((1.0 + 100 / 150) / 2)
    assert summary["liver"]["dice_global"] == pytest.approx(2 * 150 / 350)
    assert summary["lesion"]["dice_per_case"] == pytest.approx((2 * 10 / 30 + 1.0) / 2)  # empty case scores 1
    assert summary["lesion"]["dice_global"] == pytest.approx(2 * 10 / 30)
    errors = np.array([0.2 - 0.1, 0.0])
    assert summary["tumour_burden"]["rmse"] == pytest.approx(np.sqrt(np.mean(errors ** 2)))
    assert summary["tumour_burden"]["max_error"] == pytest.approx(0.1)
