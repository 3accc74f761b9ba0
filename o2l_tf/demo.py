"""``o2l demo``: the whole pipeline on synthetic phantoms, in minutes on a CPU.

synth (training cohort) -> build-records -> records preview -> teacher -> pseudo-labels + student ->
synth (held-out cohort, another seed) -> predict with previews -> evaluate. Every stage goes through the same
library functions as its own command, so the demo shows exactly what the commands do.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from o2l_tf import visualization as viz
from o2l_tf.configs.run import RunConfig, preset
from o2l_tf.data.records_builder import RecordsBuilder
from o2l_tf.errors import InputError
from o2l_tf.io_utils import atomic_write_bytes


@dataclass(frozen=True)
class DemoScale:
    cases: int  # training cohort: strong + weak + val
    size: int
    slices: tuple[int, int]
    held_out: int
    preset: str  # what the demo trains is exactly this preset: o2l train --preset NAME, no --set
    split: tuple[int, int, int] = (30, 60, 10)
    split_seed: int = 2

    def run_config(self, role: str, precision: str | None = None) -> RunConfig:
        """The preset's teacher or student: what the demo trains (``precision`` replaces ``train.precision``)."""
        config = preset(self.preset, role)
        if precision is not None:
            config.train.precision = precision
        return config


SCALES = {
    # The recipe was chosen on the lesion study's development cohort (seed 11), never on these held-out phantoms
    # (seed 1): docs/results/lesion-study/.
    "demo": DemoScale(cases=40, size=192, slices=(48, 64), held_out=5, preset="demo"),
    # make demo-full: the same recipe trained four times longer, on twice the phantoms.
    "full": DemoScale(cases=80, size=192, slices=(48, 64), held_out=5, preset="converge"),
    "test": DemoScale(cases=6, size=48, slices=(12, 16), held_out=2, preset="test", split=(50, 34, 16)),
}


# A forced training precision is also the prediction's (o2l predict --precision).
PREDICT_PRECISION = {"auto": "auto", "float32": "float32", "mixed_bfloat16": "bfloat16"}


def detection_line(summary: dict) -> str:
    """What the demo sets out to show: held-out lesions of 10 mm and more found, few false positives."""
    by_size = summary["detection"]["by_size"]
    found = sum(by_size[k]["found"] for k in ("10-20 mm", "> 20 mm"))
    total = sum(by_size[k]["lesions"] for k in ("10-20 mm", "> 20 mm"))
    recall = f"{found / total:.2f}" if total else "-"
    return (f"held-out lesions of 10 mm or more found: {found} of {total} (recall {recall}); false-positive lesion "
            f"components per case: {summary['detection']['false_positives_per_case']:.1f}")


def _remove_earlier_run(run_dir: str) -> None:
    """An earlier demo's run would be resumed (same configuration), not retrained: the demo trains afresh."""
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        shutil.rmtree(run_dir)


def run_demo(out: str, build_records: RecordsBuilder, scale: str = "demo", progress: bool = True,
             log=print, precision: str | None = None) -> dict:
    """Run every stage into ``out`` (replacing an earlier demo there); returns the evaluation summary.

    ``build_records``: the NIfTI-to-records step (``tfrecords_builder.build.build_phantom_records``), passed in
    because the builder stands on this library, not the other way round. ``precision``: ``float32`` forces what
    a CPU without native bf16 runs (the preset's ``auto`` picks bf16 only where it is native); None keeps the preset's.
    """
    from o2l_tf.data import inspect
    from o2l_tf.inference.predict import PredictOptions, predict_files
    from o2l_tf.metrics.evaluation import evaluate_folders, format_report, rows_to_csv
    from o2l_tf.synth.cohort import CohortSpec, write_cohort
    from o2l_tf.training.run import train

    plan = SCALES[scale]
    if precision is not None and precision not in PREDICT_PRECISION:
        raise InputError(f"demo precision must be one of {', '.join(PREDICT_PRECISION)}, got {precision!r}")
    workers = max(1, min(os.cpu_count() or 1, plan.cases))
    paths = {name: os.path.join(out, name) for name in ("phantoms", "records", "test", "predictions")}
    teacher_dir, student_dir = os.path.join(out, "runs", "teacher"), os.path.join(out, "runs", "student")
    started = time.perf_counter()

    def stage(text):
        log(f"[{time.perf_counter() - started:5.0f} s] {text}")

    stage(f"synth: {plan.cases} training phantoms ({plan.size} px) -> {paths['phantoms']}")
    write_cohort(paths["phantoms"], CohortSpec(plan.cases, plan.size, plan.slices, seed=0), workers=workers,
                 preview=True, overwrite=True, progress=progress)
    stage(f"build-records: split {':'.join(map(str, plan.split))} -> {paths['records']}")
    build_records(paths["phantoms"], paths["records"], plan.split, seed=plan.split_seed, workers=workers,
                  progress=progress)
    log("\n".join(inspect.summary_lines(paths["records"])))
    viz.write_png(os.path.join(out, "records.png"), inspect.render_records(paths["records"]))
    stage(f"train teacher (preset {plan.preset}) -> {teacher_dir}")
    for run_dir in (teacher_dir, student_dir):
        _remove_earlier_run(run_dir)
    train(plan.run_config("teacher", precision), paths["records"], teacher_dir, overwrite=True, progress=progress, log=log)
    stage(f"pseudo-labels and train student -> {student_dir}")
    train(plan.run_config("student", precision), paths["records"], student_dir, teacher_dir=teacher_dir, overwrite=True,
          progress=progress, log=log)
    stage(f"synth: {plan.held_out} held-out phantoms (another seed) -> {paths['test']}")
    write_cohort(paths["test"], CohortSpec(plan.held_out, plan.size, plan.slices, seed=1), workers=workers,
                 overwrite=True, progress=progress)
    stage(f"predict -> {paths['predictions']}")
    predict_files(student_dir, [paths["test"]], paths["predictions"], PredictOptions(preview=True, precision=PREDICT_PRECISION[precision or "auto"]),
                  progress=progress, log=log)
    stage("evaluate")
    rows, summary, _ = evaluate_folders(paths["predictions"], paths["test"], log=log)
    atomic_write_bytes(os.path.join(out, "evaluation.csv"), rows_to_csv(rows))
    log(format_report(rows, summary))
    log(detection_line(summary))
    stage(f"done. TensorBoard: tensorboard --logdir {os.path.join(out, 'runs')}; previews: "
          f"{os.path.join(paths['phantoms'], 'preview.png')}, {os.path.join(out, 'records.png')}, "
          f"{paths['predictions']}/*.png; scores: {os.path.join(out, 'evaluation.csv')}")
    return summary
