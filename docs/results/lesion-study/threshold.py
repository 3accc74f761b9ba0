"""Is the student's lesion decision the limit? Post-hoc sweep of the lesion threshold and the minimum lesion size
on saved probabilities, scored with ``o2l evaluate``'s rules.

    .venv/bin/o2l predict --model RUN COHORT/volume-*.nii.gz -o PRED --no-postprocess --probabilities [--tta flip]
    .venv/bin/python docs/results/lesion-study/threshold.py PRED COHORT --json OUT

For each threshold t a voxel the argmax calls liver or lesion becomes lesion when its lesion probability is at
least t (``argmax``: the argmax alone, what ``o2l predict`` does); then the paper's post-processing and the removal
of lesion components under each minimum volume (``o2l_tf.inference.postprocess``), then LiTS Dice and detection
(``o2l_tf.metrics.lits``). Run it on development cohorts only: a threshold read off held-out cases is tuned on them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
from o2l_tf.inference.postprocess import postprocess  # noqa: E402
from o2l_tf.metrics import lits  # noqa: E402

THRESHOLDS = (None, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1)
MIN_LESION_MM3 = (250.0, 500.0, 1000.0)


def _canonical(path: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """Array and voxel size in the canonical (RAS) orientation: axis 2 is axial, as post-processing expects."""
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj), tuple(float(z) for z in image.header.get_zooms()[:3])


def decide(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    """Labels from [X, Y, Z, 3] probabilities: the argmax, and lesion wherever the foreground's p(lesion) >= t."""
    labels = probabilities.argmax(axis=-1).astype(np.uint8)
    if threshold is not None:
        labels[(labels >= 1) & (probabilities[..., 2] >= threshold)] = 2
    return labels


def load_cases(predictions: str, references: str) -> dict[str, tuple[np.ndarray, np.ndarray, tuple]]:
    cases = {}
    for name in sorted(os.listdir(predictions)):
        match = re.fullmatch(r"segmentation-(\w+)_probabilities\.nii(\.gz)?", name)
        if not match:
            continue
        case = match.group(1)
        probabilities, _ = _canonical(os.path.join(predictions, name))  # uint8 with the NIfTI slope 1/255 applied
        reference, zooms = _canonical(os.path.join(references, f"segmentation-{case}.nii.gz"))
        cases[case] = (probabilities.astype(np.float32), reference.astype(np.uint8), zooms)
    if not cases:
        raise SystemExit(f"{predictions}: no segmentation-K_probabilities.nii[.gz] (o2l predict --probabilities)")
    return cases


def score(cases, threshold: float | None, min_lesion_mm3: float) -> dict:
    results = [lits.evaluate_volume(postprocess(decide(p, threshold), spacing=z, min_lesion_mm3=min_lesion_mm3),
                                    reference, z, distances=False) for p, reference, z in cases.values()]
    summary = lits.summarize(results)
    by_size = summary["detection"]["by_size"]
    return {"threshold": threshold, "min_lesion_mm3": min_lesion_mm3,
            "lesion_dice_per_case": summary["lesion"]["dice_per_case"],
            "lesion_dice_global": summary["lesion"]["dice_global"],
            "liver_dice_per_case": summary["liver"]["dice_per_case"],
            "found": {name: [entry["found"], entry["lesions"]] for name, entry in by_size.items()},
            "false_positives_per_case": summary["detection"]["false_positives_per_case"]}


def line(row: dict) -> str:
    found = row["found"]
    large = [found["10-20 mm"][k] + found["> 20 mm"][k] for k in (0, 1)]
    threshold = "argmax" if row["threshold"] is None else f"{row['threshold']:.2f}"
    return (f"min {row['min_lesion_mm3']:6g} mm3, t {threshold:>6}: lesion Dice {100 * row['lesion_dice_per_case']:5.1f}"
            f" / {100 * row['lesion_dice_global']:5.1f} %, >= 10 mm found {large[0]} of {large[1]} "
            f"(10-20 mm {found['10-20 mm'][0]}/{found['10-20 mm'][1]}, > 20 mm {found['> 20 mm'][0]}/"
            f"{found['> 20 mm'][1]}), FP {row['false_positives_per_case']:.1f}/case")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions")
    parser.add_argument("references")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()
    cases = load_cases(args.predictions, args.references)
    rows = []
    for smallest in MIN_LESION_MM3:
        for threshold in THRESHOLDS:
            rows.append(score(cases, threshold, smallest))
            print(line(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"predictions": args.predictions, "references": args.references, "cases": len(cases),
                       "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
