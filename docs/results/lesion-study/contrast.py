"""Which lesions a student finds, by size and contrast: every reference lesion of 10 mm or more, its contrast
against the liver around it, how much of it the prediction covers and its best IoU with a predicted component.

    .venv/bin/python docs/results/lesion-study/contrast.py PREDICTIONS REFERENCES [--json OUT]

PREDICTIONS and REFERENCES are folders as ``o2l evaluate`` takes them (``segmentation-K.nii[.gz]`` in both,
``volume-K.nii[.gz]`` beside the references). Lesions, their diameters and whether they are found come from
``o2l evaluate``'s own rule (``o2l_tf.metrics.lits.match_lesions``: 26-connected components, IoU > 0.5 with one
predicted component). Contrast is the lesion's mean HU minus
the mean HU of the liver voxels within 3 voxels around it (partial volume and nearby vessels included: what the
network sees, not the value ``o2l synth`` drew). A missed lesion is classed by why (``failure``): not seen, merged
with another reference lesion into one predicted component, under- or over-segmented. ``rose`` is the Rose
detectability index of the lesion's largest axial cross-section, |contrast| / SD × sqrt(pixels), with SD the HU
standard deviation of the liver 2-4 voxels around the lesion (robust: 1.4826 × the median absolute deviation, so
that vessels do not count as noise; partial volume left out); Rose's
criterion for a reliable detection by an observer is k >= 5.
"""

from __future__ import annotations

import argparse
import json
import os
import re

import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
from o2l_tf.metrics import lits  # noqa: E402

FAILURES = ("found", "not seen", "merged", "under-segmented", "over-segmented")
CONTRAST_BINS = ((-1e9, -25.0, "hypodense, 25 HU or more"), (-25.0, -15.0, "hypodense, 15-25 HU"),
                 (-15.0, 0.0, "hypodense, under 15 HU"), (0.0, 1e9, "iso- or hyperdense"))
ROSE_BINS = ((0.0, 5.0, "Rose k under 5"), (5.0, 10.0, "Rose k 5-10"), (10.0, 1e9, "Rose k 10 or more"))


def _load(path: str) -> tuple[np.ndarray, tuple[float, ...]]:
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj), tuple(float(z) for z in image.header.get_zooms()[:3])


def _find(folder: str, stem: str, case: str) -> str:
    for suffix in (".nii.gz", ".nii"):
        path = os.path.join(folder, f"{stem}-{case}{suffix}")
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{folder}: no {stem}-{case}.nii[.gz]")


def case_ids(references: str) -> list[str]:
    """The case ids K of ``segmentation-K.nii[.gz]`` in ``references``, in numeric order."""
    return sorted((m.group(1) for n in os.listdir(references)
                   if (m := re.fullmatch(r"segmentation-(\w+)\.nii(\.gz)?", n))), key=lambda c: (len(c), c))


def ring_contrast(hu: np.ndarray, mask: np.ndarray, liver: np.ndarray) -> float:
    """Mean HU of ``mask`` minus that of the ``liver`` voxels within 3 voxels around it (NaN without any)."""
    ring = ndimage.binary_dilation(mask, lits.TWENTY_SIX, iterations=3) & ~mask & liver
    return float(hu[mask].mean() - hu[ring].mean()) if ring.any() else float("nan")


def largest_axial_pixels(mask: np.ndarray) -> int:
    """Pixels of the mask's largest axial cross-section (canonical RAS: the last axis is axial)."""
    return int(mask.reshape(-1, mask.shape[-1]).sum(axis=0).max())


def failure(found: bool, covered: float, merged: int) -> str:
    """Why a lesion was missed: not seen (under 10 % of it predicted lesion), merged (its best predicted component
    also overlaps another reference lesion), under-segmented (under half of it covered) or over-segmented."""
    if found:
        return "found"
    if covered < 0.1:
        return "not seen"
    if merged:
        return "merged"
    return "under-segmented" if covered < 0.5 else "over-segmented"


def lesions_of_case(prediction: np.ndarray, reference: np.ndarray, hu: np.ndarray, zooms) -> list[dict]:
    """The reference lesions of 10 mm or more, in ``o2l evaluate``'s order (its components, labelled the same)."""
    matches = lits.match_lesions(prediction == 2, reference == 2)
    diameters = lits.equivalent_diameters(matches.reference_voxels, zooms)
    reference_components, _ = ndimage.label(reference == 2, lits.TWENTY_SIX)
    predicted_components, _ = ndimage.label(prediction == 2, lits.TWENTY_SIX)
    liver = reference == 1
    rows = []
    for index, (diameter, found) in enumerate(zip(diameters, matches.found), start=1):
        if lits.size_class(diameter) == lits.SIZE_CLASSES[0]:
            continue
        mask = reference_components == index
        hits = [j for j in np.unique(predicted_components[mask]) if j > 0]
        ious = {j: (mask & (predicted_components == j)).sum() / (mask | (predicted_components == j)).sum() for j in hits}
        best = max(ious, key=ious.get, default=0)
        covered = float((mask & (prediction == 2)).sum() / mask.sum())
        # other reference lesions the best-matching predicted component also overlaps (any size)
        merged = 0 if not best else len(set(np.unique(reference_components[predicted_components == best])) - {0, index})
        contrast = ring_contrast(hu, mask, liver)
        rose = rose_index(contrast, hu, mask, liver)
        rows.append({"diameter_mm": round(float(diameter), 1), "contrast_hu": round(contrast, 1),
                     "covered": round(covered, 3), "best_iou": round(float(ious.get(best, 0.0)), 3),
                     "merged_with": merged, "failure": failure(bool(found), covered, merged), "found": bool(found),
                     "rose": round(rose, 1)})
    return rows


def rose_index(contrast: float, hu: np.ndarray, mask: np.ndarray, liver: np.ndarray) -> float:
    """|contrast| / SD × sqrt(pixels of the largest axial cross-section); robust SD of the liver 2-4 voxels away."""
    near = ndimage.binary_dilation(mask, lits.TWENTY_SIX, iterations=1)
    ring = ndimage.binary_dilation(mask, lits.TWENTY_SIX, iterations=4) & ~near & liver
    if ring.sum() < 2 or not np.isfinite(contrast):
        return float("nan")
    pixels = largest_axial_pixels(mask)
    values = hu[ring]
    sd = 1.4826 * float(np.median(np.abs(values - np.median(values))))  # robust SD: vessels in the ring are outliers
    return abs(contrast) / max(sd, 1e-6) * float(np.sqrt(pixels))


def analyse(predictions: str, references: str) -> list[dict]:
    rows = []
    for case in case_ids(references):
        reference, zooms = _load(_find(references, "segmentation", case))
        prediction, _ = _load(_find(predictions, "segmentation", case))
        hu, _ = _load(_find(references, "volume", case))
        rows += [{"case": case, **row} for row in lesions_of_case(prediction, reference, hu.astype(np.float64), zooms)]
    return rows


def binned(rows: list[dict], key: str = "contrast_hu", bins=CONTRAST_BINS) -> list[tuple[str, int, int]]:
    """(class, lesions found, lesions) of the rows, by contrast or (``key="rose"``, ``ROSE_BINS``) by Rose index."""
    return [(name, sum(r["found"] for r in rows if low <= r[key] < high),
             sum(1 for r in rows if low <= r[key] < high)) for low, high, name in bins]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions")
    parser.add_argument("references")
    parser.add_argument("--json", help="also write the rows and classes here")
    args = parser.parse_args()
    rows = analyse(args.predictions, args.references)
    for r in rows:
        print(f"case {r['case']:>3}: {r['diameter_mm']:5.1f} mm, contrast {r['contrast_hu']:+6.1f} HU, covered "
              f"{r['covered']:.2f}, best IoU {r['best_iou']:.2f}, Rose k {r['rose']:5.1f}: {r['failure']}")
    classes, roses = binned(rows), binned(rows, "rose", ROSE_BINS)
    for name, found, total in classes + roses:
        print(f"{name}: {found} of {total} found")
    reasons = {reason: sum(r["failure"] == reason for r in rows) for reason in FAILURES}
    print(", ".join(f"{reason} {count}" for reason, count in reasons.items()))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"lesions": rows, "by_contrast": [{"contrast": n, "found": f, "lesions": t}
                                                        for n, f, t in classes], "by_failure": reasons,
                       "by_rose": [{"rose": n, "found": f, "lesions": t} for n, f, t in roses]}, stream, indent=1)


if __name__ == "__main__":
    main()
