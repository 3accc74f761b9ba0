"""Run the arms of ``o2l reproduce``: phantom cohorts, records per split, training, prediction, evaluation.

Layout of ``--out``::

    plan.json                    scale, seed and studies of this folder (a different scale or seed is refused)
    phantoms/  test/             training cohort (seed S) and held-out test cohort (seed S + 1, never trained on)
    test/boxes.csv               the test cases' true boxes (per slice, file voxels), given to the teachers
    records/split-30-60-10/ ...  one records folder per strong:weak split (and the perturbed one)
    arms/<arm>/run/              the training run (TensorBoard logs, checkpoints, exported model)
    arms/<arm>/predictions/      its labels of the test cohort
    arms/<arm>/result.json       written last: an arm with it is finished and never retrained

A killed run restarted with the same command resumes: finished arms are read back, an unfinished training resumes
from its last checkpoint (o2l train's own resume), cohorts and records are only rebuilt when incomplete.
"""

from __future__ import annotations

import os
import time

import numpy as np

from o2l_tf.data import boxes as box_ops
from o2l_tf.data.records_builder import RecordsBuilder
from o2l_tf.errors import InputError
from o2l_tf.io_utils import atomic_write_bytes, read_json, write_json
from o2l_tf.reproduce.plan import SCALES, Arm, Records, Scale, arms, arms_for


def _cohort(path: str, spec, workers: int, progress: bool) -> None:
    from dataclasses import asdict

    from o2l_tf.synth.cohort import write_cohort

    marker = os.path.join(path, "phantoms.json")
    wanted = {**asdict(spec), "slices": list(spec.slices)}
    if os.path.exists(marker) and read_json(marker)["spec"] == wanted:
        return
    write_cohort(path, spec, workers=workers, overwrite=True, progress=progress)


def write_truth_boxes(test_dir: str, path: str) -> None:
    """The circumscribed liver and lesion boxes of every axial slice of every test case, as a user box file.

    Each slice's box is a one-voxel-thick 3D box in file voxel coordinates, so any storage orientation maps back.
    """
    from o2l_tf.metrics.evaluation import label_files
    from o2l_tf.nifti import Reorientation, load_image, read_labels

    lines = ["case_id,class,x0,y0,z0,x1,y1,z1"]
    for case, label_path in label_files(test_dir, "reference").items():
        image = load_image(label_path)
        label = read_labels(image, label_path)
        axial = [code in "SI" for code in Reorientation.of(image).axcodes].index(True)
        planes = [a for a in range(3) if a != axial]
        for k in range(label.shape[axial]):
            organ, lesion = box_ops.slice_boxes(np.take(label, k, axis=axial))
            for cls, found in (("liver", organ), ("lesion", lesion)):
                for a0, b0, a1, b1 in found:
                    low, high = [0, 0, 0], [0, 0, 0]
                    low[planes[0]], low[planes[1]], low[axial] = a0, b0, k
                    high[planes[0]], high[planes[1]], high[axial] = a1, b1, k
                    lines.append(",".join(map(str, [case, cls, *low, *high])))
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def arm_result(out: str, name: str) -> dict | None:
    """A finished arm's ``arms/<arm>/result.json`` (written last), or None while it is unfinished."""
    path = os.path.join(out, "arms", name, "result.json")
    return read_json(path) if os.path.exists(path) else None


def finished_results(out: str) -> dict[str, dict]:
    """Every finished arm of a reproduction folder, by arm name."""
    arms_dir = os.path.join(out, "arms")
    names = sorted(os.listdir(arms_dir)) if os.path.isdir(arms_dir) else []
    return {name: result for name in names if (result := arm_result(out, name)) is not None}


class Reproduction:
    def __init__(self, out: str, scale: str, build_records: RecordsBuilder, seed: int = 0, progress: bool = True,
                 log=print):
        if scale not in SCALES:
            raise InputError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
        self.out, self.scale_name, self.scale, self.seed = out, scale, SCALES[scale], seed
        self.progress, self.log = progress, log
        self.build_records = build_records  # tfrecords_builder's step, given: this library never imports it
        self.started = time.perf_counter()
        self.workers = max(1, min(os.cpu_count() or 1, self.scale.cases))

    # ----------------------------------------------------------------------------------------------- layout
    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    def records_dir(self, records: Records) -> str:
        return self.path("records", records.name)

    def arm_dir(self, name: str, *parts: str) -> str:
        return self.path("arms", name, *parts)

    def stage(self, text: str) -> None:
        self.log(f"[{time.perf_counter() - self.started:6.0f} s] {text}")

    def check_plan(self) -> None:
        """One folder holds one scale and seed; mixing them would mix arms trained differently."""
        record = {"scale": self.scale_name, "seed": self.seed}
        path = self.path("plan.json")
        if os.path.exists(path):
            found = read_json(path)
            if {k: found.get(k) for k in record} != record:
                raise InputError(f"{path}: this folder holds a reproduction at scale {found.get('scale')} seed "
                                 f"{found.get('seed')}; use another --out for scale {self.scale_name} seed {self.seed}")
        os.makedirs(self.out, exist_ok=True)
        if not os.path.exists(path):  # the code the first arms ran with (a resumed run keeps it)
            from o2l_tf.reproduce.report import code_commit

            write_json(path, {**record, "started_at_commit": code_commit()})

    # ----------------------------------------------------------------------------------------------- inputs
    def prepare_cohorts(self) -> None:
        from o2l_tf.synth.cohort import CohortSpec

        s: Scale = self.scale
        self.stage(f"phantoms: {s.cases} training cases (seed {self.seed}), {s.test_cases} held-out test cases "
                   f"(seed {self.seed + 1}), {s.size} px")
        _cohort(self.path("phantoms"), CohortSpec(s.cases, s.size, s.slices, seed=self.seed), self.workers,
                self.progress)
        _cohort(self.path("test"), CohortSpec(s.test_cases, s.size, s.slices, seed=self.seed + 1), self.workers,
                self.progress)
        boxes = self.path("test", "boxes.csv")
        if not os.path.exists(boxes):
            write_truth_boxes(self.path("test"), boxes)

    def build(self, records: Records) -> str:
        out = self.records_dir(records)
        split = (records.strong, records.weak, 100 - records.strong - records.weak)
        # native pixels: the paper's setting, and what the committed results (docs/results/) and every study resumed
        # from them were built with (build-records' default resamples to the median spacing; README, Spacing)
        self.build_records(self.path("phantoms"), out, split, seed=self.scale.split_seed,
                           perturb_boxes=records.perturb, workers=self.workers, progress=self.progress,
                           spacing="native")
        return out

    # ------------------------------------------------------------------------------------------------- arms
    def config(self, arm: Arm):
        from o2l_tf.configs.run import apply_overrides, preset

        config = preset(self.scale.preset, arm.role)
        return apply_overrides(config, [*self.scale.overrides, f"train.seed={self.seed}", *arm.overrides])

    def result(self, name: str) -> dict | None:
        return arm_result(self.out, name)

    def run_arm(self, arm: Arm) -> dict:
        done = self.result(arm.name)
        if done is not None:
            self.stage(f"{arm.name}: finished earlier ({done['seconds']:.0f} s), not retrained")
            return done
        from o2l_tf.inference.predict import PredictOptions, predict_files
        from o2l_tf.metrics.evaluation import evaluate_folders, rows_to_csv

        started = time.perf_counter()
        records_dir = self.build(arm.records)
        predictions = self.arm_dir(arm.name, "predictions")
        os.makedirs(predictions, exist_ok=True)
        detail: dict = {"records": os.path.relpath(records_dir, self.out)}
        if arm.role == "boxes":
            self.stage(f"{arm.name}: the box partition of the test cases' true boxes, scored as a label")
            self._write_box_partitions(predictions)
        else:
            config = self.config(arm)
            teacher_dir = self.teacher_run(arm.teacher) if arm.teacher else None
            self.stage(f"{arm.name}: train {arm.role} on {arm.records.name} ({' '.join(arm.overrides) or 'defaults'})")
            summary = self._train(config, records_dir, self.arm_dir(arm.name, "run"), teacher_dir)
            detail.update(config=config.to_dict(), steps_per_epoch=summary["steps_per_epoch"],
                          final_loss=summary["history"].get("loss", [None])[-1])
            # A teacher is scored as the pseudo-labeller it is: raw labels given the true boxes, no post-processing.
            teacher = arm.role == "teacher"
            predict_files(self.arm_dir(arm.name, "run"), [self.path("test")], predictions,
                          PredictOptions(postprocess=not teacher),
                          box_file=self.path("test", "boxes.csv") if teacher else None,
                          progress=self.progress, log=lambda *_: None)
        rows, summary, _ = evaluate_folders(predictions, self.path("test"), log=self.log)
        atomic_write_bytes(self.arm_dir(arm.name, "evaluation.csv"), rows_to_csv(rows))
        result = {"arm": arm.name, "role": arm.role, "summary": summary, "cases": rows,
                  "seconds": round(time.perf_counter() - started, 1), **detail}
        write_json(self.arm_dir(arm.name, "result.json"), result)
        liver, lesion = summary["liver"], summary["lesion"]
        self.stage(f"{arm.name}: liver Dice {100 * liver['dice_global']:.1f} / {100 * liver['dice_per_case']:.1f} %, "
                   f"lesion {100 * lesion['dice_global']:.1f} / {100 * lesion['dice_per_case']:.1f} % "
                   f"(global / per case), {result['seconds']:.0f} s")
        return result

    def teacher_run(self, name: str) -> str:
        """The run folder of the teacher arm ``name``, which pseudo-labels a student.

        A finished teacher whose run is gone (its ``result.json`` copied back from a committed results folder, to
        resume on another machine) is trained again, seeded as before, without being rescored.
        """
        run_dir = self.arm_dir(name, "run")
        if self.result(name) is not None and not os.path.exists(os.path.join(run_dir, "export.json")):
            teacher = arms()[name]
            self.stage(f"{name}: finished earlier but its run is not here: training it again to pseudo-label")
            self._train(self.config(teacher), self.build(teacher.records), run_dir, None)
        return run_dir

    def _train(self, config, records_dir: str, model_dir: str, teacher_dir: str | None) -> dict:
        from o2l_tf.training.run import train

        return train(config, records_dir, model_dir, teacher_dir=teacher_dir, overwrite=False,
                     progress=self.progress, log=lambda line: self.log("    " + line))

    def _write_box_partitions(self, out_dir: str) -> None:
        from o2l_tf.inference.predict import like, write_nifti
        from o2l_tf.metrics.evaluation import label_files
        from o2l_tf.nifti import Reorientation, load_image, read_labels

        for path in label_files(self.path("test"), "reference").values():
            image = load_image(path)
            reorientation = Reorientation.of(image)
            canonical = reorientation.to_canonical(read_labels(image, path))
            write_nifti(like(image, reorientation.to_file(box_ops.box_partition_volume(canonical))),
                        os.path.join(out_dir, os.path.basename(path)))

    def run(self, studies: list[str]) -> dict[str, dict]:
        self.check_plan()
        self.prepare_cohorts()
        results = {}
        for arm in arms_for(studies):
            results[arm.name] = self.run_arm(arm)
        return results
