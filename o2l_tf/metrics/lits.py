"""The official LiTS metrics (the LiTS challenge rules, Bilic et al. 2023), per volume and pooled over a dataset.

- liver = label >= 1, lesion = label == 2; lesions as objects = connected components of label == 2.
- Dice per case = mean of per-volume Dice; a lesion volume empty in both reference and prediction scores 1,
  any predicted lesion on a lesion-free volume scores 0. Dice global = 2 sum|X n Y| / sum(|X| + |Y|).
- VOE = 1 - Jaccard, RVD = (|pred| - |ref|) / |ref|.
- Surfaces = mask minus its erosion with the 18-neighbourhood; distances in mm from the header spacing;
  ASSD = mean of both directed distance sets pooled, RMSD = root mean square of the same, MSSD = maximum.
  When either mask is empty: Dice 0, VOE 1, distances = 9001 (the challenge's sentinel).
- Detection: a reference lesion is found when a predicted component overlaps it with IoU > 0.5; recall is also
  reported per diameter class (< 10, 10-20, > 20 mm; diameter of the sphere of the component's volume).
- Tumour burden = lesion voxels / liver voxels; reported as RMSE and max error over volumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from o2l_tf.data.boxes import bounding_slices

SENTINEL = 9001.0
EIGHTEEN = ndimage.generate_binary_structure(3, 2)
TWENTY_SIX = np.ones((3, 3, 3), bool)


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` that its 18-neighbourhood erosion removes."""
    return mask & ~ndimage.binary_erosion(mask, EIGHTEEN, border_value=0)


def surface_distances(prediction: np.ndarray, reference: np.ndarray, spacing) -> np.ndarray:
    """All directed distances (mm): prediction surface -> reference surface, then reference -> prediction.

    Nearest surface voxels by KD-tree on the surface voxels' coordinates in mm: exact Euclidean distances at a
    cost set by the surfaces, not by the volume a distance transform would have to fill (scattered false
    positives make that box nearly the whole scan).
    """
    box = bounding_slices(prediction | reference, margin=1)
    pred_points = np.argwhere(surface(prediction[box])) * np.asarray(spacing, float)
    ref_points = np.argwhere(surface(reference[box])) * np.asarray(spacing, float)
    to_ref = cKDTree(ref_points).query(pred_points, workers=-1)[0]
    to_pred = cKDTree(pred_points).query(ref_points, workers=-1)[0]
    return np.concatenate([to_ref, to_pred])


@dataclass
class OverlapScores:
    dice: float
    voe: float
    rvd: float
    assd: float
    rmsd: float
    mssd: float
    intersection: int
    predicted: int
    reference: int


def overlap_scores(prediction: np.ndarray, reference: np.ndarray, spacing, empty_is_perfect: bool = False,
                   distances: bool = True) -> OverlapScores:
    """Dice, VOE, RVD and surface distances of two binary masks, with the LiTS empty-mask rules."""
    prediction, reference = np.asarray(prediction, bool), np.asarray(reference, bool)
    intersection = int(np.count_nonzero(prediction & reference))
    predicted, actual = int(prediction.sum()), int(reference.sum())
    if predicted == 0 and actual == 0:
        value = 1.0 if empty_is_perfect else 0.0
        return OverlapScores(value, 1.0 - value, 0.0, 0.0 if empty_is_perfect else SENTINEL,
                             0.0 if empty_is_perfect else SENTINEL, 0.0 if empty_is_perfect else SENTINEL,
                             0, 0, 0)
    union = predicted + actual - intersection
    dice = 2.0 * intersection / (predicted + actual)
    voe = 1.0 - intersection / union
    rvd = (predicted - actual) / actual if actual else SENTINEL
    if predicted == 0 or actual == 0 or not distances:
        assd = rmsd = mssd = SENTINEL if (predicted == 0 or actual == 0) else float("nan")
    else:
        values = surface_distances(prediction, reference, spacing)
        assd, rmsd, mssd = float(values.mean()), float(np.sqrt((values ** 2).mean())), float(values.max())
    return OverlapScores(dice, voe, rvd, assd, rmsd, mssd, intersection, predicted, actual)


SIZE_CLASSES = ("< 10 mm", "10-20 mm", "> 20 mm")  # lesion diameter classes of the LiTS analyses


def equivalent_diameters(voxels: np.ndarray, spacing) -> np.ndarray:
    """Diameters (mm) of the spheres with the components' volumes: the size a phantom's lesion was drawn with."""
    volume_mm3 = np.asarray(voxels, float) * float(np.prod(np.asarray(spacing, float)))
    return np.cbrt(6.0 * volume_mm3 / np.pi)


def size_class(diameter_mm: float) -> str:
    return SIZE_CLASSES[0] if diameter_mm < 10.0 else SIZE_CLASSES[1] if diameter_mm <= 20.0 else SIZE_CLASSES[2]


@dataclass
class LesionMatches:
    """Every reference lesion (26-connected component): its voxel count and whether a predicted one found it."""

    reference_voxels: np.ndarray  # (N,) int
    found: np.ndarray  # (N,) bool: overlapped by a predicted component with IoU > 0.5
    false_positives: int  # predicted components that found no reference lesion

    def counts(self) -> tuple[int, int, int]:
        found = int(self.found.sum())
        return found, self.false_positives, len(self.found) - found


def match_lesions(prediction: np.ndarray, reference: np.ndarray) -> LesionMatches:
    """The LiTS detection rule: a reference component is found by a predicted one with IoU > 0.5."""
    box = bounding_slices(prediction | reference)
    if box is None:
        return LesionMatches(np.zeros(0, int), np.zeros(0, bool), 0)
    ref_labels, ref_count = ndimage.label(reference[box], TWENTY_SIX)  # components lie inside the box
    pred_labels, pred_count = ndimage.label(prediction[box], TWENTY_SIX)
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=ref_count + 1)
    if ref_count == 0 or pred_count == 0:
        return LesionMatches(ref_sizes[1:], np.zeros(ref_count, bool), pred_count)
    # Overlap matrix from the voxels both masks share.
    both = (ref_labels > 0) & (pred_labels > 0)
    pairs = ref_labels[both].astype(np.int64) * (pred_count + 1) + pred_labels[both]
    overlap = np.bincount(pairs, minlength=(ref_count + 1) * (pred_count + 1)).reshape(ref_count + 1, pred_count + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=pred_count + 1)
    iou = overlap / np.maximum(ref_sizes[:, None] + pred_sizes[None, :] - overlap, 1)
    matched = iou[1:, 1:] > 0.5  # IoU > 0.5 makes a match one-to-one
    return LesionMatches(ref_sizes[1:], matched.any(axis=1), int(pred_count - matched.any(axis=0).sum()))


def detection_counts(prediction: np.ndarray, reference: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) of lesion objects (see :func:`match_lesions`)."""
    return match_lesions(prediction, reference).counts()


def tumour_burden(labels: np.ndarray) -> float:
    liver = np.count_nonzero(labels >= 1)
    return float(np.count_nonzero(labels == 2)) / liver if liver else 0.0


def evaluate_volume(prediction: np.ndarray, reference: np.ndarray, spacing, distances: bool = True) -> dict:
    """Every LiTS score of one case (prediction and reference: label volumes on the same grid).

    ``distances=False`` skips the surface distances (NaN where both masks are non-empty): validation during
    training needs Dice and detection, and distances to scattered false positives cost seconds.
    """
    liver = overlap_scores(prediction >= 1, reference >= 1, spacing, distances=distances)
    lesion = overlap_scores(prediction == 2, reference == 2, spacing, empty_is_perfect=True, distances=distances)
    matches = match_lesions(prediction == 2, reference == 2)
    diameters = equivalent_diameters(matches.reference_voxels, spacing)
    return {"liver": liver, "lesion": lesion, "detection": matches.counts(),
            "lesions": [(float(d), bool(f)) for d, f in zip(diameters, matches.found)],
            "burden": (tumour_burden(reference), tumour_burden(prediction))}


def detection_by_size(cases: list[dict]) -> dict:
    """Reference lesions and those found, per diameter class, pooled over cases (``evaluate_volume`` results)."""
    table = {name: {"lesions": 0, "found": 0} for name in SIZE_CLASSES}
    for case in cases:
        for diameter, found in case.get("lesions", []):
            entry = table[size_class(diameter)]
            entry["lesions"] += 1
            entry["found"] += int(found)
    for entry in table.values():
        entry["recall"] = entry["found"] / entry["lesions"] if entry["lesions"] else None
    return table


def summarize(cases: list[dict]) -> dict:
    """Dataset-level scores: Dice per case and global, mean distances, burden RMSE/max, detection P/R."""
    summary = {}
    for organ in ("liver", "lesion"):
        scores = [case[organ] for case in cases]
        intersections = sum(s.intersection for s in scores)
        sizes = sum(s.predicted + s.reference for s in scores)
        summary[organ] = {
            "dice_per_case": float(np.mean([s.dice for s in scores])),
            "dice_global": 2.0 * intersections / sizes if sizes else 1.0,
            "voe": float(np.mean([s.voe for s in scores])),
            "rvd": float(np.mean([s.rvd for s in scores])),
            "assd": float(np.mean([s.assd for s in scores])),
            "rmsd": float(np.mean([s.rmsd for s in scores])),
            "mssd": float(np.mean([s.mssd for s in scores])),
        }
    tp, fp, fn = (sum(case["detection"][k] for case in cases) for k in range(3))
    summary["detection"] = {"tp": tp, "fp": fp, "fn": fn,
                            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
                            "false_positives_per_case": fp / len(cases) if cases else 0.0,
                            "by_size": detection_by_size(cases)}
    errors = np.array([ref - pred for ref, pred in (case["burden"] for case in cases)])
    summary["tumour_burden"] = {"rmse": float(np.sqrt(np.mean(errors ** 2))), "max_error": float(np.abs(errors).max())}
    return summary
