"""``o2l evaluate``: pair prediction and reference files by case id, score each case, report as in Table I."""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from o2l_tf.errors import InputError
from o2l_tf.inference import naming
from o2l_tf.metrics.lits import SIZE_CLASSES, evaluate_volume, size_class, summarize
from o2l_tf.nifti import check_3d, check_same_grid, load_image, read_labels


def label_files(folder: str, what: str) -> dict[str, str]:
    """Label volumes of a folder by case id (LiTS ``volume-N`` images and probability maps are skipped)."""
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: {what} folder does not exist")
    files: dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not naming.is_nifti(name) or naming.is_lits_volume(name) or naming.is_probability_map(name) \
                or not os.path.isfile(path):
            continue
        case = naming.case_id(name)
        if case in files:
            raise InputError(f"{path}: case {case} also has {os.path.basename(files[case])} in the {what} folder")
        files[case] = path
    return files


def pair_cases(pred_dir: str, ref_dir: str, missing_as_empty: bool = False):
    """[(case id, prediction path or None, reference path)] and the prediction ids without a reference."""
    references = label_files(ref_dir, "reference")
    if not references:
        raise InputError(f"{ref_dir}: holds no reference label files (.nii or .nii.gz)")
    predictions = label_files(pred_dir, "prediction")
    missing = [case for case in references if case not in predictions]
    if missing and not missing_as_empty:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise InputError(f"{pred_dir}: no prediction for {len(missing)} reference case(s): {shown} "
                         "(pass --missing-as-empty to score them as empty predictions)")
    unmatched = sorted(case for case in predictions if case not in references)
    return [(case, predictions.get(case), path) for case, path in references.items()], unmatched


def evaluate_case(case: str, prediction_path: str | None, reference_path: str) -> dict:
    """Every LiTS score of one case; spacing from the reference header (mm)."""
    reference_image = load_image(reference_path)
    check_3d(reference_image, reference_path)
    reference = read_labels(reference_image, reference_path)
    if prediction_path is None:
        prediction = np.zeros_like(reference)
    else:
        prediction_image = load_image(prediction_path)
        check_3d(prediction_image, prediction_path)
        check_same_grid(prediction_image, prediction_path, reference_image, reference_path, "the reference")
        prediction = read_labels(prediction_image, prediction_path)
    spacing = tuple(float(s) for s in reference_image.header.get_zooms()[:3])
    return {"case": case, "prediction": prediction_path, "reference": reference_path, "spacing": spacing,
            **evaluate_volume(prediction, reference, spacing)}


DISTANCE_FIELDS = ("dice", "voe", "rvd", "assd", "rmsd", "mssd")
SIZE_KEYS = ("under_10mm", "10_to_20mm", "over_20mm")  # CSV column suffixes of the diameter classes


def case_row(result: dict) -> dict:
    """One flat row per case (the CSV columns)."""
    row = {"case": result["case"], "prediction": result["prediction"] or "", "reference": result["reference"]}
    for organ in ("liver", "lesion"):
        scores = result[organ]
        row.update({f"{organ}_{field}": round(float(getattr(scores, field)), 6) for field in DISTANCE_FIELDS})
    tp, fp, fn = result["detection"]
    reference_burden, predicted_burden = result["burden"]
    row.update(lesions=tp + fn, detected=tp, false_positives=fp, burden_reference=round(reference_burden, 6),
               burden_prediction=round(predicted_burden, 6))
    for name, key in zip(SIZE_CLASSES, SIZE_KEYS):
        found = [f for d, f in result.get("lesions", []) if size_class(d) == name]
        row[f"lesions_{key}"], row[f"detected_{key}"] = len(found), sum(found)
    return row



def rows_to_csv(rows: list[dict]) -> bytes:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return stream.getvalue().encode()


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def format_report(rows: list[dict], summary: dict) -> str:
    """Per-case table, then the paper's Table I layout, then distances and detection."""
    per_case = _table(["case", "liver Dice", "lesion Dice", "liver ASSD mm", "lesions", "found", "FP", "burden ref",
                       "burden pred"],
                      [[r["case"], f"{r['liver_dice']:.3f}", f"{r['lesion_dice']:.3f}", f"{r['liver_assd']:.2f}",
                        r["lesions"], r["detected"], r["false_positives"], f"{r['burden_reference']:.4f}",
                        f"{r['burden_prediction']:.4f}"] for r in rows])
    liver, lesion = summary["liver"], summary["lesion"]
    table_one = _table(["", "Liver Dice global %", "Liver Dice per case %", "Lesion Dice global %",
                        "Lesion Dice per case %", "Tumor burden RMSE"],
                       [["o2l", f"{100 * liver['dice_global']:.1f}", f"{100 * liver['dice_per_case']:.1f}",
                         f"{100 * lesion['dice_global']:.1f}", f"{100 * lesion['dice_per_case']:.1f}",
                         f"{summary['tumour_burden']['rmse']:.3f}"]])
    distances = _table(["", "VOE %", "RVD %", "ASSD mm", "MSSD mm", "RMSD mm"],
                       [[organ, f"{100 * s['voe']:.1f}", f"{100 * s['rvd']:+.1f}", f"{s['assd']:.2f}",
                         f"{s['mssd']:.2f}", f"{s['rmsd']:.2f}"] for organ, s in (("liver", liver), ("lesion", lesion))])
    detection = summary["detection"]
    by_size = ", ".join(f"{name} {entry['found']} of {entry['lesions']}" for name, entry in detection["by_size"].items())
    return "\n\n".join([
        per_case, f"Table I layout ({len(rows)} case(s)):\n" + table_one, distances,
        f"lesion detection (IoU > 0.5): precision {detection['precision']:.3f}, recall {detection['recall']:.3f} "
        f"(TP {detection['tp']}, FP {detection['fp']}, FN {detection['fn']}); tumor burden max error "
        f"{summary['tumour_burden']['max_error']:.4f}\nlesions found by diameter: {by_size}; "
        f"{detection['false_positives_per_case']:.2f} false-positive components per case"])


def evaluate_folders(pred_dir: str, ref_dir: str, missing_as_empty: bool = False, log=print):
    """Score every reference case; returns (rows, summary, unmatched prediction ids)."""
    pairs, unmatched = pair_cases(pred_dir, ref_dir, missing_as_empty)
    results = []
    for case, prediction, reference in pairs:
        results.append(evaluate_case(case, prediction, reference))
        if prediction is None:
            log(f"{case}: no prediction, scored as empty")
    return [case_row(r) for r in results], summarize(results), unmatched
