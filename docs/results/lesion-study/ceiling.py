"""What an ideal detector limited by detectability would score: the LiTS lesion scores of oracle predictions that
segment some reference lesions perfectly and none of the others (those become liver).

    .venv/bin/python docs/results/lesion-study/ceiling.py REFERENCES [--json OUT]

REFERENCES is a folder as ``o2l evaluate`` takes it (``segmentation-K.nii[.gz]``, with ``volume-K.nii[.gz]``
beside it). The oracles keep, of the reference lesions (``o2l evaluate``'s 26-connected components):

- ``every lesion``: all of them (lesion Dice 100 %: the check that the scoring is the evaluator's);
- ``10 mm or more``: those of 10 mm or more in equivalent diameter (LiTS' size classes);
- ``Rose k >= 5``: those whose Rose index (``contrast.py``) reaches 5, Rose's criterion for a reliable detection
  by an observer, whatever their size;
- ``10 mm or more, Rose k >= 5``: both conditions;
- ``Rose k3 >= 5``: the same criterion over the whole lesion, |contrast| / SD × sqrt(voxels), as an observer
  integrating every slice would see it (the student sees three): a generous bound.

A student can beat an oracle on a case only by finding a lesion the oracle drops; so the oracles' per-case Dice is
what a network at the observer's limit would score, and a target above it asks for lesions under that limit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
sys.path.insert(0, HERE)
import contrast  # noqa: E402
from o2l_tf.metrics import lits  # noqa: E402

ROSE_LIMIT = 5.0
ORACLES = ("every lesion", "10 mm or more", "Rose k >= 5", "10 mm or more, Rose k >= 5", "Rose k3 >= 5")


def lesion_properties(reference: np.ndarray, hu: np.ndarray, zooms) -> tuple[np.ndarray, list[dict]]:
    """The reference lesion components (labelled as ``o2l evaluate`` labels them) and each one's equivalent
    diameter, contrast against the liver within 3 voxels around it and Rose index (``contrast.py``'s rules)."""
    components, count = ndimage.label(reference == 2, lits.TWENTY_SIX)
    voxels = ndimage.sum_labels(np.ones(reference.shape), components, np.arange(1, count + 1))
    diameters = lits.equivalent_diameters(np.asarray(voxels), zooms)
    liver = reference == 1
    rows = []
    for index in range(1, count + 1):
        mask = components == index
        lesion_contrast = contrast.ring_contrast(hu, mask, liver)
        rose = contrast.rose_index(lesion_contrast, hu, mask, liver)
        axial = contrast.largest_axial_pixels(mask)
        rows.append({"diameter_mm": float(diameters[index - 1]), "contrast_hu": lesion_contrast,
                     "rose": rose, "rose_3d": rose * float(np.sqrt(voxels[index - 1] / axial)),
                     "voxels": int(voxels[index - 1])})
    return components, rows


def keeps(oracle: str, lesion: dict) -> bool:
    large = lits.size_class(lesion["diameter_mm"]) != lits.SIZE_CLASSES[0]
    visible = bool(np.isfinite(lesion["rose"]) and lesion["rose"] >= ROSE_LIMIT)
    visible_3d = bool(np.isfinite(lesion["rose_3d"]) and lesion["rose_3d"] >= ROSE_LIMIT)
    return {"every lesion": True, "10 mm or more": large, "Rose k >= 5": visible,
            "10 mm or more, Rose k >= 5": large and visible, "Rose k3 >= 5": visible_3d}[oracle]


def oracle_prediction(reference: np.ndarray, components: np.ndarray, lesions: list[dict], oracle: str) -> np.ndarray:
    """The reference with every lesion the oracle does not keep turned into liver."""
    prediction = reference.copy()
    for index, lesion in enumerate(lesions, start=1):
        if not keeps(oracle, lesion):
            prediction[components == index] = 1
    return prediction


def ceilings(references: str) -> dict:
    cases = contrast.case_ids(references)
    scored = {oracle: [] for oracle in ORACLES}
    per_case = []
    for case in cases:
        reference, zooms = contrast._load(contrast._find(references, "segmentation", case))
        hu, _ = contrast._load(contrast._find(references, "volume", case))
        components, lesions = lesion_properties(reference, hu.astype(np.float64), zooms)
        row = {"case": case, "lesions": len(lesions)}
        for oracle in ORACLES:
            result = lits.evaluate_volume(oracle_prediction(reference, components, lesions, oracle), reference,
                                          zooms, distances=False)
            scored[oracle].append(result)
            row[oracle] = round(float(result["lesion"].dice), 4)
        per_case.append(row)
    summary = {}
    for oracle, results in scored.items():
        s = lits.summarize(results)
        summary[oracle] = {"lesion_dice_per_case": s["lesion"]["dice_per_case"],
                           "lesion_dice_global": s["lesion"]["dice_global"],
                           "found_by_size": {k: v["found"] for k, v in s["detection"]["by_size"].items()},
                           "lesions_by_size": {k: v["lesions"] for k, v in s["detection"]["by_size"].items()}}
    return {"cases": per_case, "oracles": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("references")
    parser.add_argument("--json", help="also write the per-case and summary scores here")
    args = parser.parse_args()
    result = ceilings(args.references)
    for oracle, s in result["oracles"].items():
        found = " / ".join(f"{s['found_by_size'][k]} of {s['lesions_by_size'][k]}" for k in lits.SIZE_CLASSES)
        print(f"{oracle:28s} lesion Dice {100 * s['lesion_dice_per_case']:5.1f} / {100 * s['lesion_dice_global']:5.1f} "
              f"% (per case / global), kept {found} ({', '.join(lits.SIZE_CLASSES)})")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(result, stream, indent=1)


if __name__ == "__main__":
    main()
