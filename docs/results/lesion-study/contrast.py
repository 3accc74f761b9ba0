"""Which lesions a student finds, by size and contrast: every reference lesion of 10 mm or more, its contrast
against the liver around it, how much of it the prediction covers and its best IoU with a predicted component.

    .venv/bin/python docs/results/lesion-study/contrast.py PREDICTIONS REFERENCES [--json OUT]

PREDICTIONS and REFERENCES are folders as ``o2l evaluate`` takes them (``segmentation-K.nii[.gz]`` in both,
``volume-K.nii[.gz]`` beside the references). Lesions are 3D components (26-connected) of label 2, as in
``o2l evaluate``; found means IoU > 0.5 with one predicted component (LiTS). Contrast is the lesion's mean HU minus
the mean HU of the liver voxels within 3 voxels around it (partial volume and nearby vessels included: what the
network sees, not the value ``o2l synth`` drew).
"""

from __future__ import annotations

import argparse
import json
import os
import re

import nibabel as nib
import numpy as np
from scipy import ndimage

MIN_DIAMETER_MM = 10.0
CONTRAST_BINS = ((-1e9, -25.0, "hypodense, 25 HU or more"), (-25.0, -15.0, "hypodense, 15-25 HU"),
                 (-15.0, 0.0, "hypodense, under 15 HU"), (0.0, 1e9, "iso- or hyperdense"))


def _load(path: str) -> tuple[np.ndarray, tuple[float, ...]]:
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj), tuple(float(z) for z in image.header.get_zooms()[:3])


def _find(folder: str, stem: str, case: str) -> str:
    for suffix in (".nii.gz", ".nii"):
        path = os.path.join(folder, f"{stem}-{case}{suffix}")
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{folder}: no {stem}-{case}.nii[.gz]")


def lesions_of_case(prediction: np.ndarray, reference: np.ndarray, hu: np.ndarray, zooms) -> list[dict]:
    structure = np.ones((3, 3, 3))
    reference_components, count = ndimage.label(reference == 2, structure=structure)
    predicted_components, _ = ndimage.label(prediction == 2, structure=structure)
    liver = reference == 1
    rows = []
    for index in range(1, count + 1):
        mask = reference_components == index
        diameter = float((6.0 * mask.sum() * np.prod(zooms) / np.pi) ** (1.0 / 3.0))
        if diameter < MIN_DIAMETER_MM:
            continue
        hits = [j for j in np.unique(predicted_components[mask]) if j > 0]
        best = max(((mask & (predicted_components == j)).sum() / (mask | (predicted_components == j)).sum()
                    for j in hits), default=0.0)
        ring = ndimage.binary_dilation(mask, structure=structure, iterations=3) & ~mask & liver
        contrast = float(hu[mask].mean() - hu[ring].mean()) if ring.any() else float("nan")
        rows.append({"diameter_mm": round(diameter, 1), "contrast_hu": round(contrast, 1),
                     "covered": round(float((mask & (prediction == 2)).sum() / mask.sum()), 3),
                     "best_iou": round(float(best), 3), "found": bool(best > 0.5)})
    return rows


def analyse(predictions: str, references: str) -> list[dict]:
    cases = sorted((m.group(1) for n in os.listdir(references)
                    if (m := re.fullmatch(r"segmentation-(\w+)\.nii(\.gz)?", n))), key=lambda c: (len(c), c))
    rows = []
    for case in cases:
        reference, zooms = _load(_find(references, "segmentation", case))
        prediction, _ = _load(_find(predictions, "segmentation", case))
        hu, _ = _load(_find(references, "volume", case))
        rows += [{"case": case, **row} for row in lesions_of_case(prediction, reference, hu.astype(np.float64), zooms)]
    return rows


def binned(rows: list[dict]) -> list[tuple[str, int, int]]:
    """(contrast class, lesions found, lesions) of the rows."""
    return [(name, sum(r["found"] for r in rows if low <= r["contrast_hu"] < high),
             sum(1 for r in rows if low <= r["contrast_hu"] < high)) for low, high, name in CONTRAST_BINS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions")
    parser.add_argument("references")
    parser.add_argument("--json", help="also write the rows and classes here")
    args = parser.parse_args()
    rows = analyse(args.predictions, args.references)
    for r in rows:
        print(f"case {r['case']:>3}: {r['diameter_mm']:5.1f} mm, contrast {r['contrast_hu']:+6.1f} HU, covered "
              f"{r['covered']:.2f}, best IoU {r['best_iou']:.2f}{'  found' if r['found'] else ''}")
    classes = binned(rows)
    for name, found, total in classes:
        print(f"{name}: {found} of {total} found")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"lesions": rows, "by_contrast": [{"contrast": n, "found": f, "lesions": t}
                                                        for n, f, t in classes]}, stream, indent=1)


if __name__ == "__main__":
    main()
