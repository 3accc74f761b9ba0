"""Validation on whole volumes during training, scored as ``o2l predict`` + ``o2l evaluate`` score them.

Slice-level Dice on a few val slices says little about lesions: whether a lesion is *found* (LiTS: IoU > 0.5
with a predicted 3D component) and how many false-positive components a case gets are properties of whole
volumes, after the paper's post-processing. Every ``every`` epochs (and at the last) each case is predicted
slice by slice through the same code as ``o2l predict`` (``SlicePredictor``, ``predict_volume``,
``postprocess``; a teacher gets the case's boxes and no post-processing, as a pseudo-labeller) and scored with
the LiTS rules of ``o2l evaluate`` (surface distances left out). The val split keeps every slice of its cases,
so the volumes come from the records alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np

from o2l_tf.errors import InputError
from o2l_tf.io_utils import read_json, write_json
from o2l_tf.metrics import lits

HISTORY_FILE = "volume_validation.json"


@dataclass
class ValidationCase:
    """One case on the canonical grid: int16 HU, uint8 labels, the per-slice box channels (for a teacher)."""

    case_id: str
    hu: np.ndarray  # (X, Y, Z) int16
    label: np.ndarray  # (X, Y, Z) uint8
    boxes: np.ndarray  # (X, Y, Z, 2) uint8: organ box, lesion box
    spacing: tuple[float, float, float]


def cases_from_records(records_dir: str, split: str = "val", manifest: dict | None = None) -> list[ValidationCase]:
    """The split's cases rebuilt from their examples (each example's centre slice, label and box channels)."""
    from o2l_tf.data import records

    manifest = manifest or records.load_manifest(records_dir)
    entries = manifest["cases"]
    wanted = manifest["splits"][split]["cases"]
    cases, seen = {}, {}
    for case_id in wanted:
        x, y, z = entries[case_id]["canonical_shape"]
        cases[case_id] = ValidationCase(case_id, np.zeros((x, y, z), np.int16), np.zeros((x, y, z), np.uint8),
                                        np.zeros((x, y, z, 2), np.uint8),
                                        tuple(float(s) for s in entries[case_id]["spacing_mm"]))
        seen[case_id] = np.zeros(z, bool)
    for example in records.read_split(records_dir, split, manifest).as_numpy_iterator():
        case = cases[example["case_id"].decode()]
        k = int(example["slice_index"])
        case.hu[:, :, k] = example["hu"][..., 1]
        case.label[:, :, k] = example["label"]
        case.boxes[:, :, k] = example["box_channels"].astype(np.uint8)
        seen[case.case_id][k] = True
    for case_id, found in seen.items():
        if not found.all():
            raise InputError(f"{records_dir}: {split} case {case_id} lacks slices {np.flatnonzero(~found)[:5].tolist()}"
                             " (whole-volume validation needs every slice)")
    return [cases[c] for c in wanted]


def cases_from_nifti(pairs: list[tuple[str, str]]) -> list[ValidationCase]:
    """Cases from (image, label) NIfTI files, as ``o2l predict`` reads them; boxes from the label's slices."""
    from o2l_tf.data import boxes as box_ops
    from o2l_tf.nifti import Reorientation, load_image, read_canonical_hu, read_labels

    cases = []
    for image_path, label_path in pairs:
        image = load_image(image_path)
        reorientation = Reorientation.of(image)
        hu = read_canonical_hu(image, image_path, reorientation)
        label = reorientation.to_canonical(read_labels(load_image(label_path), label_path))
        boxes = np.stack([box_ops.box_channels(*box_ops.slice_boxes(label[:, :, k]), label.shape[:2])
                          for k in range(label.shape[2])], axis=2)
        cases.append(ValidationCase(os.path.basename(image_path), hu, np.ascontiguousarray(label), boxes,
                                    reorientation.canonical_spacing))
    return cases


def score_cases(predictor, cases: list[ValidationCase], batch_size: int = 4, postprocess: bool = True,
                min_lesion_mm3: float = 0.0):
    """(per-case LiTS results, dataset summary) of ``predictor`` (a ``SlicePredictor``) on ``cases``."""
    from o2l_tf.inference.postprocess import postprocess as paper_postprocess
    from o2l_tf.inference.volume import predict_volume

    results = []
    for case in cases:
        boxes = (lambda z, c=case: c.boxes[:, :, z]) if predictor.model.needs_boxes else None
        labels, _ = predict_volume(predictor, case.hu, batch_size, boxes)
        if postprocess:
            labels = paper_postprocess(labels, in_place=True, spacing=case.spacing, min_lesion_mm3=min_lesion_mm3)
        results.append({"case": case.case_id, **lits.evaluate_volume(labels, case.label, case.spacing,
                                                                     distances=False)})
    return results, lits.summarize(results)


def headline(summary: dict) -> dict[str, float]:
    """The scores a learning curve follows: Dice per case and global, detection recall (all and by diameter),
    false-positive components per case."""
    detection = summary["detection"]
    values = {"liver_dice": summary["liver"]["dice_per_case"], "liver_global_dice": summary["liver"]["dice_global"],
              "lesion_dice": summary["lesion"]["dice_per_case"], "lesion_global_dice": summary["lesion"]["dice_global"],
              "lesion_recall": detection["recall"], "false_positives": detection["false_positives_per_case"]}
    for name, key in zip(lits.SIZE_CLASSES, ("small", "medium", "large")):
        recall = detection["by_size"][name]["recall"]
        values[f"recall_{key}"] = float("nan") if recall is None else recall
    return values


class VolumeValidation(keras.callbacks.Callback):
    """Scores whole volumes every ``every`` epochs and at ``last_epoch``; adds ``<prefix>volume_<score>`` to the
    epoch's logs (TensorBoard, the progress line and the best checkpoint see them) and appends the epoch's
    scores, per case too, to ``history_path`` (JSON, rewritten atomically; a resumed run keeps earlier epochs).

    ``make_predictor(model)`` -> a ``SlicePredictor`` on the training model; built once, at the first use.
    """

    def __init__(self, name: str, cases: list[ValidationCase], every: int, last_epoch: int, make_predictor,
                 history_path: str | None, first_epoch: int = 0, postprocess: bool = True,
                 min_lesion_mm3: float = 0.0):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.name, self.cases, self.every, self.last_epoch = name, cases, every, last_epoch
        self.make_predictor, self.history_path, self.postprocess = make_predictor, history_path, postprocess
        self.min_lesion_mm3 = min_lesion_mm3
        self.prefix = "val_volume_" if name == "val" else f"{name}_volume_"
        self.predictor = None
        self.history: list[dict] = []
        if history_path and os.path.exists(history_path):
            earlier = read_json(history_path).get(name, [])
            self.history = [row for row in earlier if row["epoch"] <= first_epoch]

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        if step % self.every and step != self.last_epoch:
            return
        if self.predictor is None:
            self.predictor = self.make_predictor(self.model)
        results, summary = score_cases(self.predictor, self.cases, postprocess=self.postprocess,
                                       min_lesion_mm3=self.min_lesion_mm3)
        scores = headline(summary)
        if logs is not None:
            logs.update({self.prefix + key: value for key, value in scores.items()})
        plain = {key: None if value != value else value for key, value in scores.items()}  # NaN is not JSON
        self.history.append({"epoch": step, **plain, "detection": summary["detection"], "cases": [
            {"case": r["case"], "liver_dice": r["liver"].dice, "lesion_dice": r["lesion"].dice,
             "found": r["detection"][0], "false_positives": r["detection"][1], "lesions": r["lesions"]}
            for r in results]})
        if self.history_path:
            saved = read_json(self.history_path) if os.path.exists(self.history_path) else {}
            saved[self.name] = self.history
            write_json(self.history_path, saved)
