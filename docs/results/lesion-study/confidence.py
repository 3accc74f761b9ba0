"""Are the student's false positives its least confident lesion components? Post-hoc sweep of a per-component
confidence filter on saved probabilities, scored with ``o2l evaluate``'s rules.

    .venv/bin/o2l predict --model RUN COHORT/volume-*.nii.gz -o PRED --no-postprocess --probabilities
    .venv/bin/python docs/results/lesion-study/confidence.py PRED COHORT --json OUT

The labels are the argmax, the paper's post-processing and the recipe's removal of lesion components under
500 mm3 (``o2l predict``'s own); then every lesion component (26-connected) whose mean lesion probability is under
c becomes liver, for each c. Reported: LiTS lesion Dice per case and global, lesions found by size class, false
positives per case and tumour-free cases left without a lesion voxel. Run it on development cohorts only.

Then each false-positive component (a predicted lesion component touching no reference lesion, after the
recipe's post-processing) is described: volume, mean lesion probability, contrast against the reference liver
within 3 voxels around it, the share of it inside the reference liver and, for ``o2l synth`` phantoms (a
``phantoms.json`` beside the references), the share of it within one pixel of a liver vessel of the phantom's
own geometry (regenerated from the cohort's seed; checked against the stored segmentation).
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
import threshold  # noqa: E402
from o2l_tf.inference.postprocess import postprocess  # noqa: E402
from o2l_tf.synth.phantom import generate_phantom  # noqa: E402
from o2l_tf.metrics import lits  # noqa: E402

MIN_LESION_MM3 = 500.0
CONFIDENCES = (0.0, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def filter_components(labels: np.ndarray, lesion_probability: np.ndarray, confidence: float) -> np.ndarray:
    """``labels`` with every lesion component whose mean lesion probability is under ``confidence`` made liver."""
    if confidence <= 0:
        return labels
    components, count = ndimage.label(labels == 2, lits.TWENTY_SIX)
    if not count:
        return labels
    means = ndimage.mean(lesion_probability, components, np.arange(1, count + 1))
    weak = np.concatenate([[False], np.asarray(means) < confidence])
    result = labels.copy()
    result[weak[components]] = 1
    return result


def recipe_labels(cases) -> dict[str, np.ndarray]:
    """Each case's labels as ``o2l predict`` makes them: argmax, the paper's post-processing, 500 mm3 removal."""
    return {case: postprocess(threshold.decide(probabilities, None), spacing=zooms, min_lesion_mm3=MIN_LESION_MM3)
            for case, (probabilities, _, zooms) in cases.items()}


def score(cases, labels: dict[str, np.ndarray], confidence: float) -> dict:
    results = []
    for case, (probabilities, reference, zooms) in cases.items():
        results.append((lits.evaluate_volume(filter_components(labels[case], probabilities[..., 2], confidence),
                                             reference, zooms, distances=False), reference))
    summary = lits.summarize([r for r, _ in results])
    clean = [r["burden"][1] == 0 for r, reference in results if not (reference == 2).any()]
    return {"confidence": confidence, "lesion_dice_per_case": summary["lesion"]["dice_per_case"],
            "lesion_dice_global": summary["lesion"]["dice_global"],
            "found": {name: [e["found"], e["lesions"]] for name, e in summary["detection"]["by_size"].items()},
            "false_positives_per_case": summary["detection"]["false_positives_per_case"],
            "tumour_free_clean": [sum(clean), len(clean)]}


def vessel_mask(references: str, case: str, reference: np.ndarray) -> np.ndarray | None:
    """Voxels within one pixel of a liver vessel of phantom ``case`` (canonical grid), None if not a phantom."""
    path = os.path.join(references, "phantoms.json")
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        spec = json.load(stream)["spec"]
    phantom = generate_phantom(int(case), spec["size"], tuple(spec["slices"]), spec["seed"])
    if phantom.segmentation.shape != reference.shape or not (phantom.segmentation == reference).all():
        raise SystemExit(f"{references}: case {case} does not regenerate from phantoms.json's spec")
    axes = [phantom.origin[a] + np.arange(n) * phantom.spacing[a] for a, n in enumerate(reference.shape)]
    u, v, w = np.meshgrid(*axes, indexing="ij")
    mask = np.zeros(reference.shape, bool)
    for tube, _ in phantom.anatomy.liver_vessels:
        mask |= tube.sdf(u, v, w) < phantom.spacing[0]
    return mask


def false_positives(cases, labels: dict[str, np.ndarray], references: str) -> list[dict]:
    rows = []
    for case, (probabilities, reference, zooms) in cases.items():
        components, count = ndimage.label(labels[case] == 2, lits.TWENTY_SIX)
        hu, _ = threshold._canonical(os.path.join(references, f"volume-{case}.nii.gz"))
        vessels = None
        for index in range(1, count + 1):
            mask = components == index
            if (mask & (reference == 2)).any():
                continue
            if vessels is None:
                vessels = vessel_mask(references, case, reference)
            lesion_contrast = contrast.ring_contrast(hu, mask, reference == 1)
            rows.append({"case": case, "mm3": round(float(mask.sum() * np.prod(zooms)), 1),
                         "mean_probability": round(float(probabilities[..., 2][mask].mean()), 3),
                         "contrast_hu": round(lesion_contrast, 1) if np.isfinite(lesion_contrast) else None,
                         "in_liver": round(float((reference[mask] >= 1).mean()), 3),
                         "on_vessel": None if vessels is None else round(float(vessels[mask].mean()), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions")
    parser.add_argument("references")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()
    cases = threshold.load_cases(args.predictions, args.references)
    labels = recipe_labels(cases)
    rows = []
    for confidence in CONFIDENCES:
        row = score(cases, labels, confidence)
        rows.append(row)
        f = row["found"]
        print(f"mean p(lesion) >= {confidence:.2f}: lesion Dice {100 * row['lesion_dice_per_case']:5.1f} / "
              f"{100 * row['lesion_dice_global']:5.1f} %, found 10-20 mm {f['10-20 mm'][0]}/{f['10-20 mm'][1]}, "
              f"> 20 mm {f['> 20 mm'][0]}/{f['> 20 mm'][1]}, FP {row['false_positives_per_case']:.2f}/case, "
              f"tumour-free clean {row['tumour_free_clean'][0]} of {row['tumour_free_clean'][1]}", flush=True)
    components = false_positives(cases, labels, args.references)
    for c in components:
        print(f"false positive, case {c['case']:>3}: {c['mm3']:7.0f} mm3, mean p {c['mean_probability']:.2f}, "
              f"contrast {c['contrast_hu']:+6.1f} HU, in liver {c['in_liver']:.2f}, on a vessel {c['on_vessel']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"predictions": args.predictions, "references": args.references, "cases": len(cases),
                       "rows": rows, "false_positives": components}, handle, indent=1, default=int)


if __name__ == "__main__":
    main()
