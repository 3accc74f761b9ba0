"""Why o2l's students did not find lesions: learning curves on phantoms, one candidate cause per experiment.

    .venv/bin/python docs/results/lesion-study/study.py run --work WORK [--only NAME ...]
    .venv/bin/python docs/results/lesion-study/study.py report --work WORK

``run`` trains every experiment (or those named) in order, a few minutes each on 2 CPU cores, and writes
``results/<name>.json`` beside this script (the runs themselves stay in WORK); a killed run resumes (finished experiments are skipped, an unfinished training
resumes from its checkpoint). ``report`` writes ``results.md`` and the learning-curve plots
into this folder.

Cohorts (never the held-out ones of the reports, seeds 0-3): training phantoms of seed 10, and a development
cohort of seed 11 on which every experiment is scored as whole volumes every few epochs, through the code of
``o2l predict`` and ``o2l evaluate`` (post-processing, LiTS detection at IoU > 0.5). The learning curves also
score three of the training cases the same way. Rows marked with a commit ran that commit's code from a git
worktree (the state this study starts from); everything else runs the working tree's code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, REPO)

TRAIN_SEED, DEV_SEED = 10, 11
TRACKED_TRAIN_CASES = 3
SLICES = (48, 64)
START_COMMIT = "a3b55ae"  # main before this study: the make demo

# The demo's recipe before this study (o2l_tf/demo.py at START_COMMIT), as --set overrides of the demo preset.
OLD_TEACHER = ("train.decay_start_epoch=8", "train.decay_rate=0.7")
OLD_STUDENT = ("train.epochs=90", "train.decay_start_epoch=75", "train.decay_rate=0.8", "train.dice_weight=1",
               "train.segmentation_weights=1,1,8", "train.validate_every=10", "model.localization_channels=4")
# The demo preset as it was at START_COMMIT, pinned, so that later changes to the preset do not move this
# study's rows: every experiment on the current code starts from these values.
OLD_PRESET = ("data.crop_size=128", "data.batch_size=4", "data.val_max_examples=32", "data.foreground_crop=0.6",
              "data.lesion_slices=0", "train.optimizer=adam", "train.learning_rate=0.001", "train.lr_schedule=paper",
              "train.segmentation_weights=1,1,4", "train.dice_weight=0", "train.volume_validation_every=0",
              "model.base_filters=16", "model.norm_momentum=0.9", "model.localization_channels=16",
              "model.depth=4", "data.scale_range=0.8,1.2", "inference.min_lesion_mm3=0")
OLD_PRESET_ROLE = {"teacher": ("data.examples_per_case=24", "train.epochs=15", "train.decay_start_epoch=0"),
                   "student": ("data.examples_per_case=12", "train.epochs=20", "train.decay_start_epoch=16",
                               "train.decay_rate=0.95")}
CURVES = ("train.images_every=0",)  # no TensorBoard images: the curves come from whole volumes


@dataclass(frozen=True)
class Experiment:
    name: str
    group: str
    question: str
    cases: int = 40  # training cohort size (split below)
    size: int = 192
    split: tuple[int, int, int] = (90, 0, 10)
    margin_slices: int = 2  # -1: every slice of the strong and weak cases
    student: tuple[str, ...] = ()  # --set overrides of the demo preset's student
    teacher: tuple[str, ...] | None = None  # overrides of the demo preset's teacher; None: no teacher
    code: str = "current"  # or a commit whose code trains (and renders the phantoms, with phantoms="code")
    phantoms: str = "current"  # "code": rendered by the experiment's code; "current": by the working tree
    every: int = 15  # score the volumes every this many epochs (and at the last)
    dev_cases: int = 8  # development cohort size (its first 8 cases are the same whatever the size)
    preset: str | None = None  # train this o2l preset as it is (plus the overrides), not the pinned old one
    batch_statistics: bool = False  # also score the final student with BatchNorm batch statistics
    hu_window: tuple[float, float] | None = None  # build-records --hu-window; None: its default (the paper's)


# --------------------------------------------------------------------------------------------- experiments
# A recipe candidate, tried first in full supervision (strong cases only, no teacher): CE + Dice without class
# weights, lesion-aware crops, 2,430 steps of 4 crops (the old demo student's 90 epochs of 27 steps), float32.
FULL = ("train.weak_labels=none", "train.localization=false", "train.precision=float32", "train.validate_every=90")
RECIPE = ("train.dice_weight=1", "train.segmentation_weights=1,1,1", "data.foreground_crop=0.5",
          "data.lesion_slices=0.5", "train.lr_schedule=poly")


def _epochs(cases_training: int, examples_per_case: int, steps: int = 2430, batch: int = 4) -> tuple[str, ...]:
    per_epoch = -(-cases_training * examples_per_case // batch)
    return (f"train.epochs={max(1, round(steps / per_epoch))}", f"data.examples_per_case={examples_per_case}")


EXPERIMENTS = [
    # Where we started: the mixed demo of the issue, on 10 phantoms (3 strong, 6 weak, 1 val).
    Experiment("start", "start", "the issue's make demo (old code, old phantoms)", cases=10, split=(30, 60, 10),
               teacher=OLD_TEACHER, student=OLD_STUDENT + ("train.precision=auto",), code=START_COMMIT,
               phantoms="code", every=10),
    Experiment("start-new-noise", "start", "the same, phantoms with voxel-size consistent noise", cases=10,
               split=(30, 60, 10), teacher=OLD_TEACHER, student=OLD_STUDENT + ("train.precision=auto",),
               code=START_COMMIT, every=10),
    Experiment("start-fixed-code", "start", "the same on this code (soft Dice presence, crops by lesion box, "
               "float32 bias gradients in bf16)", cases=10, split=(30, 60, 10), teacher=OLD_TEACHER,
               student=OLD_STUDENT + ("train.precision=auto",), every=10),
    # Full supervision: can the student learn lesions at all, and what does it need?
    Experiment("full-10-old", "full", "full supervision, 10 cases, the old student recipe", cases=10,
               split=(90, 0, 10), student=FULL + OLD_STUDENT[:-1] + ("train.precision=float32",), every=10),
    Experiment("full-40-old", "full", "40 cases, same recipe and steps", student=FULL + OLD_STUDENT[:-1]
               + ("train.precision=float32",) + _epochs(36, 3)[1:], every=10),
    Experiment("full-40-unweighted", "full", "40 cases, CE + Dice without the lesion weight",
               student=FULL + OLD_STUDENT[:-1] + ("train.segmentation_weights=1,1,1", "train.precision=float32")
               + _epochs(36, 3)[1:], every=10),
    Experiment("full-40-recipe", "full", "+ lesion-slice oversampling, poly schedule",
               student=FULL + RECIPE + _epochs(36, 3), batch_statistics=True),
    Experiment("full-40-recipe-ce", "full", "the recipe with cross-entropy only (no Dice term)",
               student=FULL + RECIPE + ("train.dice_weight=0",) + _epochs(36, 3)),
    Experiment("full-40-recipe-2x", "full", "the recipe, twice the steps", student=FULL + RECIPE
               + _epochs(36, 3, steps=4860), every=30),
    Experiment("full-40-recipe-all-slices", "full", "the recipe trained on every slice (as evaluation sees them)",
               margin_slices=-1, student=FULL + RECIPE + _epochs(36, 3)),
    Experiment("full-40-recipe-256", "full", "the recipe on 256-px phantoms (finer pixels for small lesions)",
               size=256, student=FULL + RECIPE + _epochs(36, 3)),
    # Mixed supervision at 30:60:10 with the recipe: what the teacher's soft labels do.
    Experiment("mixed-old-teacher", "mixed", "teacher with lesion weight 4 (old), student with lesion weight 8",
               split=(30, 60, 10), teacher=OLD_TEACHER + ("train.segmentation_weights=1,1,4",),
               student=RECIPE + ("train.segmentation_weights=1,1,8", "train.precision=float32",
                                 "model.localization_channels=4", "train.validate_every=90") + _epochs(36, 3)),
    Experiment("mixed-recipe", "mixed", "teacher and student unweighted CE + Dice",
               split=(30, 60, 10), teacher=OLD_TEACHER + ("train.segmentation_weights=1,1,1", "train.dice_weight=1"),
               student=RECIPE + ("train.precision=float32", "model.localization_channels=4",
                                 "train.validate_every=90") + _epochs(36, 3)),
    Experiment("strong-only-recipe", "mixed", "the 30 % strong cases only", split=(30, 60, 10),
               student=FULL + RECIPE + _epochs(12, 9)),
]
# Second round, after the first showed an under-trained student (3 training cases tracked: lesion recall 0.35 after
# 4,860 steps, still rising): what buys the most learning per CPU second. bf16 (its bias gradients now summed in
# float32) to make the round affordable; its first row checks that bf16 learns what float32 does. A development
# cohort of 16 cases (8 had only 4 lesions of 10-20 mm).
BF16 = ("train.precision=mixed_bfloat16",)
EXPERIMENTS += [
    Experiment("r-bf16", "recipe", "full-40-recipe in bf16", student=FULL + RECIPE + BF16 + _epochs(36, 3),
               dev_cases=16),
    Experiment("r-lr3e-3", "recipe", "learning rate 3e-3 instead of 1e-3", dev_cases=16,
               student=FULL + RECIPE + BF16 + ("train.learning_rate=0.003",) + _epochs(36, 3)),
    Experiment("r-crop96", "recipe", "96-px crops, as many pixels (4,320 steps)", dev_cases=16,
               student=FULL + RECIPE + BF16 + ("data.crop_size=96",) + _epochs(36, 3, steps=4320)),
    Experiment("r-80-cases", "recipe", "80 training phantoms (72 strong)", cases=80, dev_cases=16,
               student=FULL + RECIPE + BF16 + _epochs(72, 2)),
    Experiment("r-4x", "recipe", "four times the steps (9,720)", dev_cases=16, every=60,
               student=FULL + RECIPE + BF16 + _epochs(36, 3, steps=9720)),
    Experiment("r-less-oversampling", "recipe", "a third of the crops at lesions, a quarter of the slices",
               dev_cases=16, student=FULL + RECIPE + BF16 + ("data.foreground_crop=0.33", "data.lesion_slices=0.25")
               + _epochs(36, 3)),
    Experiment("r-dice-half", "recipe", "Dice term weighted 0.5", dev_cases=16,
               student=FULL + RECIPE + BF16 + ("train.dice_weight=0.5",) + _epochs(36, 3)),
]
# Third round: the presets this study led to, as they ship (mixed 30:60:10, the method), on the 16 development
# cases: demo (make demo) and converge (make demo-full, o2l reproduce --scale converge) with its full supervision.
EXPERIMENTS += [
    Experiment("demo-preset", "presets", "o2l train --preset demo (teacher and student), 40 phantoms",
               split=(30, 60, 10), teacher=(), preset="demo", dev_cases=16, every=30),
    Experiment("converge-preset", "presets", "o2l train --preset converge, 80 phantoms", cases=80,
               split=(30, 60, 10), teacher=(), preset="converge", dev_cases=16, every=60),
    Experiment("converge-preset-full", "presets", "the converge student in full supervision (90:0:10)", cases=80,
               preset="converge", dev_cases=16, every=60,
               student=("train.weak_labels=none", "train.localization=false")),
]
# Fourth round: the demo student (1,512 steps of 96-px crops) in full supervision, 16 development cases: what
# makes the shipped budget learn lesions faster. The paper's input window [-200, 250] HU spends most of the
# input's range on fat, lung and bone edges; nnU-Net clips CT to its training foreground's 0.5-99.5 percentiles,
# a window around liver and lesion, where a 10-25 HU lesion is a larger share of what the first layer sees.
DEMO_FULL = ("train.weak_labels=none", "train.localization=false", "train.images_every=0")
EXPERIMENTS += [
    # (trained before the demo preset gained data.hu_window: "none" pins this row to the records' paper window; the
    # narrow rows' records are clipped to [-20, 200], which the preset's window now equals)
    Experiment("w-demo-full", "window", "the demo student in full supervision (90:0:10), paper window",
               preset="demo", dev_cases=16, every=28, student=DEMO_FULL + ("data.hu_window=none",)),
    Experiment("w-demo-full-narrow", "window", "the same with the input window [-20, 200] HU",
               preset="demo", dev_cases=16, every=28, student=DEMO_FULL, hu_window=(-20.0, 200.0)),
    Experiment("w-demo-preset-narrow", "window", "demo-preset (mixed 30:60:10) with the input window [-20, 200] HU",
               split=(30, 60, 10), teacher=(), preset="demo", dev_cases=16, every=28, hu_window=(-20.0, 200.0)),
]
# Fifth round: the demo-budget student under-fits lesions of low contrast even on its own training cases (round 5):
# does nnU-Net's deep supervision (segmentation heads on the 1/2 and 1/4 decoder stages) make the same steps count
# for more?
EXPERIMENTS += [
    Experiment("ds-demo-full-narrow", "deep-supervision", "w-demo-full-narrow with deep supervision (2 coarser heads)",
               preset="demo", dev_cases=16, every=28, student=DEMO_FULL + ("model.deep_supervision=2",),
               hu_window=(-20.0, 200.0)),
    Experiment("ds-demo-preset-narrow", "deep-supervision", "w-demo-preset-narrow with deep supervision (student)",
               split=(30, 60, 10), teacher=(), preset="demo", dev_cases=16, every=28, hu_window=(-20.0, 200.0),
               student=("model.deep_supervision=2",)),
]
# ... and does a network of half the width, trained 2.5 times the steps (about the same CPU time), fit low-contrast
# lesions better than the demo's width?
EXPERIMENTS += [
    Experiment("cap-demo-full-narrow-b8", "capacity", "w-demo-full-narrow at 8 base filters, 2.5x the epochs",
               preset="demo", dev_cases=16, every=70, hu_window=(-20.0, 200.0),
               student=DEMO_FULL + ("model.base_filters=8", "train.epochs=140", "train.volume_validation_every=70",
                                    "train.validate_every=70")),
]
# Seventh round: the converge student is under-trained (its curves still rise, and it finds under half the lesions
# of its own training cases): does three times its steps (29,160) move the development cohort towards the issue's
# targets, or do the scores level off? The 1x twin is converge-preset-full; the val split is scored every 180
# epochs only, as the 1x run's own schedule would have it three times.
EXPERIMENTS += [
    Experiment("long-converge-full-3x", "steps", "converge-preset-full trained three times the steps (29,160)",
               cases=80, preset="converge", dev_cases=16, every=90,
               student=("train.weak_labels=none", "train.localization=false", "train.epochs=540",
                        "train.validate_every=180", "train.volume_validation_every=180")),
]


def _again(base: str, name: str, group: str, question: str, **changes) -> Experiment:
    """An earlier row run again under a new name, with ``changes`` (the rows of rounds 8 and 9)."""
    return replace(next(e for e in EXPERIMENTS if e.name == base), name=name, group=group, question=question,
                   **changes)


# Eighth round: every epoch built its streams afresh and read each shard from its first record, so an epoch
# could only draw from the first (shuffle buffer + draws) examples of a stream, the same ones every epoch: on a
# converge weak split 565 of 1,980 examples were ever reached. The round-4 rows again, with each shard read from
# a seeded offset per epoch (o2l_tf/data/pipeline.py, _files_dataset) ...
EXPERIMENTS += [
    _again("w-demo-full-narrow", "cov-demo-full-narrow", "coverage",
           "w-demo-full-narrow, epochs reaching every example"),
    _again("w-demo-preset-narrow", "cov-demo-preset-narrow", "coverage",
           "w-demo-preset-narrow, epochs reaching every example"),
]
# ... and how far two training seeds of one configuration lie apart (the data order and crops; same phantoms),
# for the fix and for the code before it (commit 144e9aa, run from a worktree).
EXPERIMENTS += [
    _again("w-demo-full-narrow", "cov-demo-full-narrow-seed1", "coverage", "cov-demo-full-narrow, training seed 1",
           student=DEMO_FULL + ("train.seed=1",)),
    _again("w-demo-full-narrow", "w-demo-full-narrow-seed1", "coverage",
           "w-demo-full-narrow (before the fix), training seed 1", student=DEMO_FULL + ("train.seed=1",),
           code="144e9aa"),
]
# With every example reachable, the shuffle buffer only orders an epoch's window, and filling it was most of the
# mixed student's input pipeline (four streams of 512 parsed examples per epoch for 108 drawn: 12 crops per second
# on 2 cores, the speed the demo student trained at). The mixed demo row with buffers of 64, teacher and student.
EXPERIMENTS += [
    _again("w-demo-preset-narrow", "buf64-demo-preset-narrow", "coverage",
           "cov-demo-preset-narrow with shuffle buffers of 64", teacher=("data.shuffle_buffer=64",),
           student=("data.shuffle_buffer=64",)),
]
# Ninth round: what fits make demo into 10 minutes on the slower machine class (about 1.8 times this one, float32)?
# About 300 s here in all: 24 phantoms instead of 40 (pseudo-labels, records and validation shrink with them) and
# a student of about 2,000 crops instead of 6,048, scored once at its end.
EXPERIMENTS += [
    _again("w-demo-preset-narrow", "fast-demo-24", "demo-budget",
           "the demo preset on 24 phantoms, student 32 epochs, scored at its end", cases=24, every=32,
           student=("train.epochs=32", "train.validate_every=32", "train.volume_validation_every=32")),
]
BY_NAME = {e.name: e for e in EXPERIMENTS}


# ------------------------------------------------------------------------------------------------ plumbing
def result_file(name: str) -> str:
    """An experiment's result lives in this folder (committed), its runs in WORK: a lost WORK loses no result."""
    return os.path.join(HERE, "results", f"{name}.json")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _code_path(work: str, code: str) -> str:
    if code == "current":
        return REPO
    path = os.path.join(work, "code", code)
    if not os.path.isdir(path):
        subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", path, code], check=True)
    return path


def _o2l(work: str, code: str, args: list[str]) -> None:
    """Run an o2l command with ``code``'s library, in its own process started in that code's folder (``python -c``
    puts the working folder first on sys.path, before PYTHONPATH)."""
    path = _code_path(work, code)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-c", "import sys, o2l_tf; assert o2l_tf.__file__.startswith(sys.argv[1]), "
               "o2l_tf.__file__; from o2l_cli.main import main; main(sys.argv[2:])", path,
               *args]  # paths in args are absolute: main() makes --work absolute
    subprocess.run(command, check=True, env=env, cwd=path)


def cohort(work: str, kind: str, exp: Experiment) -> str:
    code = exp.code if exp.phantoms == "code" else "current"
    seed, cases = (TRAIN_SEED, exp.cases) if kind == "train" else (DEV_SEED, exp.dev_cases)
    path = os.path.join(work, "cohorts", f"{kind}-s{seed}-n{cases}-{exp.size}px-{code}")
    if not os.path.exists(os.path.join(path, "phantoms.json")):
        _o2l(work, code, ["synth", path, "--cases", str(cases), "--size", str(exp.size), "--slices",
                          f"{SLICES[0]}:{SLICES[1]}", "--seed", str(seed), "--workers", "2", "--overwrite",
                          "--quiet"])
    return path


def records(work: str, exp: Experiment, phantoms: str, teacher_key: str) -> str:
    """A records folder per (cohort, split, margin, code, teacher): pseudo-labels live beside the weak shards."""
    split = ":".join(map(str, exp.split))
    window = None if exp.hu_window is None else "{:g}:{:g}".format(*exp.hu_window)
    tag = "" if window is None else "-w" + window.replace(":", "_")
    name = (f"{os.path.basename(phantoms)}-split{split.replace(':', '-')}-m{exp.margin_slices}{tag}-{exp.code}-"
            f"{teacher_key}")
    path = os.path.join(work, "records", name)
    if not os.path.exists(os.path.join(path, "manifest.json")):
        margin = ["--margin-slices", "1000"] if exp.margin_slices < 0 else ["--margin-slices", str(exp.margin_slices)]
        _o2l(work, exp.code, ["build-records", "--data", phantoms, "--out", path, "--split", split, "--seed", "2",
                              *margin, *([] if window is None else ["--hu-window", window]), "--workers", "2",
                              "--overwrite", "--quiet"])
    return path


def _tracked_train_cases(records_dir: str) -> list[tuple[str, str]]:
    from o2l_tf.data import records as rec

    manifest = rec.load_manifest(records_dir)
    strong = manifest["splits"]["strong"]["cases"][:TRACKED_TRAIN_CASES]
    return [(manifest["cases"][c]["image"], manifest["cases"][c]["label"]) for c in strong]


def _dev_pairs(dev: str) -> list[tuple[str, str]]:
    names = sorted(n for n in os.listdir(dev) if n.startswith("volume-"))
    return [(os.path.join(dev, n), os.path.join(dev, n.replace("volume-", "segmentation-"))) for n in names]


def _config(role: str, overrides: tuple[str, ...], preset_name: str | None = None):
    from o2l_tf.configs.run import apply_overrides, preset

    if preset_name is not None:
        return apply_overrides(preset(preset_name, role), list(overrides))
    return apply_overrides(preset("demo", role), list(OLD_PRESET + OLD_PRESET_ROLE[role] + overrides + CURVES))


def _teacher_key(exp: Experiment) -> str:
    if exp.teacher is None:
        return "noteacher"
    import hashlib

    return "t" + hashlib.sha256(json.dumps([exp.preset, *exp.teacher]).encode()).hexdigest()[:8]


def pseudo_label_quality(records_dir: str) -> dict:
    """How the teacher's soft labels of the weak cases compare with their true masks (read from the phantoms)."""
    import numpy as np
    from o2l_tf.data import pipeline, records as rec, resample
    from o2l_tf.training import pseudo_labels
    from o2l_tf.nifti import Reorientation, load_image, read_labels
    import tensorflow as tf

    manifest = rec.load_manifest(records_dir)
    info = pseudo_labels.current(records_dir)
    truth = {}
    for case in manifest["splits"]["weak"]["cases"]:
        path = manifest["cases"][case]["label"]
        image = load_image(path)
        truth[case] = Reorientation.of(image).to_canonical(read_labels(image, path))
    files = [os.path.join(records_dir, s) for s in info["shards"]]
    data = tf.data.TFRecordDataset(files, compression_type=rec.compression(manifest)).map(
        pipeline.parse_pseudo_example)
    background_p, liver_p, lesion_mass, lesion_area, inter, total = [], [], 0.0, 0, [0, 0], [0, 0]
    for example in data.as_numpy_iterator():
        label = truth[example["case_id"].decode()][:, :, int(example["slice_index"])]
        soft = example["soft_label"]
        label = resample.resample_labels(label, soft.shape[:2], 3)  # to records at a spacing (else unchanged)
        background_p.append(soft[..., 2][label == 0].astype(np.float64))
        liver_p.append(soft[..., 2][label == 1].astype(np.float64))
        lesion_mass += float(soft[..., 2].sum())
        lesion_area += int((label == 2).sum())
        hard = soft.argmax(-1)
        for k, (mine, theirs) in enumerate(((hard >= 1, label >= 1), (hard == 2, label == 2))):
            inter[k] += int((mine & theirs).sum())
            total[k] += int(mine.sum() + theirs.sum())
    background, liver = np.concatenate(background_p), np.concatenate(liver_p)
    return {"liver_dice": 2 * inter[0] / max(total[0], 1), "lesion_dice": 2 * inter[1] / max(total[1], 1),
            "lesion_probability_on_background": float(background.mean()),
            "lesion_probability_on_liver": float(liver.mean()),
            "lesion_mass_over_true_area": lesion_mass / max(lesion_area, 1)}


SMALL_LESION_MM3 = 500.0  # the recipe's inference.min_lesion_mm3, applied to every row as a second score


def _score_exported(run_dir: str, dev: str, out: str, batch_statistics: bool = False,
                    min_lesion_mm3: float = 0.0) -> dict:
    """o2l predict + o2l evaluate of an exported model on the development cohort (float32); ``min_lesion_mm3``
    replaces the run's own post-processing setting, so that every row is scored alike."""
    from o2l_tf.inference.predict import PredictOptions, predict_files
    from o2l_tf.metrics.evaluation import evaluate_folders

    if batch_statistics:
        return _score_with_batch_statistics(run_dir, dev)
    predict_files(run_dir, [dev], out, PredictOptions(precision="float32", min_lesion_mm3=min_lesion_mm3),
                  progress=False, log=lambda *_: None)
    rows, summary, _ = evaluate_folders(out, dev, log=lambda *_: None)
    return {"summary": summary, "cases": rows}


def _score_with_batch_statistics(run_dir: str, dev: str) -> dict:
    """The exported student scored with BatchNorm using each batch's own statistics (training=True)."""
    from o2l_tf.inference.loading import load_inference_model
    from o2l_tf.inference.volume import SlicePredictor
    from o2l_tf.training import volume_validation as vv

    class BatchStatistics(SlicePredictor):
        def _network(self, image, boxes):
            import tensorflow as tf

            return tf.cast(self.model.network({"image": image}, training=True), tf.float32)

    model = load_inference_model(run_dir, precision="float32")
    # Whole slices in batches of 4 of one volume: the statistics of 4 neighbouring slices.
    _, summary = vv.score_cases(BatchStatistics(model), vv.cases_from_nifti(_dev_pairs(dev)))
    return {"summary": summary}


def rescore(work: str, exp: Experiment) -> None:
    """Score a finished experiment's exported student again on its development cohort, raw and with small
    lesions removed (rows scored before both were part of every row)."""
    path = result_file(exp.name)
    with open(path) as stream:
        result = json.load(stream)
    run, dev = os.path.join(work, "runs", exp.name), cohort(work, "dev", exp)
    final = _score_exported(os.path.join(run, "student"), dev, os.path.join(run, "dev-predictions"))
    cleaned = _score_exported(os.path.join(run, "student"), dev, os.path.join(run, "dev-predictions-small-removed"),
                              min_lesion_mm3=SMALL_LESION_MM3)
    result.update(dev=final["summary"], dev_cases=final["cases"], dev_small_removed=cleaned["summary"],
                  dev_small_removed_cases=cleaned["cases"])
    with open(path + ".tmp", "w") as stream:
        json.dump(result, stream, indent=1, default=float)
    os.replace(path + ".tmp", path)
    log(f"{exp.name}: rescored")


def run_experiment(work: str, exp: Experiment) -> dict:
    from o2l_tf.training import volume_validation as vv
    from o2l_tf.training.run import input_window, train, training_predictor

    result_path = result_file(exp.name)
    if os.path.exists(result_path):
        log(f"{exp.name}: done earlier")
        with open(result_path) as stream:
            return json.load(stream)
    started = time.time()
    train_cohort, dev = cohort(work, "train", exp), cohort(work, "dev", exp)
    records_dir = records(work, exp, train_cohort, _teacher_key(exp))
    run = os.path.join(work, "runs", exp.name)
    os.makedirs(run, exist_ok=True)
    teacher_dir = None
    timings = {}
    if exp.teacher is not None:
        teacher_dir = os.path.join(work, "runs", "teachers", _teacher_key(exp) + "-" + os.path.basename(records_dir))
        if not os.path.exists(os.path.join(teacher_dir, "export.json")):
            t0 = time.time()
            if exp.code == "current":
                train(_config("teacher", exp.teacher, exp.preset), records_dir, teacher_dir, overwrite=True,
                      progress=False,
                      log=lambda line: log("  teacher " + line))
            else:
                _o2l(work, exp.code, ["train", "--role", "teacher", "--records", records_dir, "--model-dir",
                                      teacher_dir, "--preset", "demo", *sum((["--set", o] for o in exp.teacher), []),
                                      "--overwrite", "--quiet"])
            timings["teacher_seconds"] = round(time.time() - t0, 1)
    student_dir = os.path.join(run, "student")
    config = _config("student", exp.student, exp.preset)
    t0 = time.time()
    if exp.code == "current":
        from o2l_tf.data import records as rec

        # the network's input window, as the library's own validation takes it (data.hu_window, else the records')
        window = input_window(config, records_dir, rec.load_manifest(records_dir))
        callbacks = []
        for name, pairs in (("dev", _dev_pairs(dev)), ("train", _tracked_train_cases(records_dir))):
            callbacks.append(vv.VolumeValidation(
                name, vv.cases_from_nifti(pairs), exp.every, config.train.epochs,
                lambda model: training_predictor(model, "student", window, 2 ** config.model.depth),
                os.path.join(student_dir, "curves.json"), 0))
        summary = train(config, records_dir, student_dir, teacher_dir=teacher_dir, overwrite=False, progress=False,
                        log=lambda line: log("  student " + line), callbacks=callbacks)
        steps = summary["steps_per_epoch"] * config.train.epochs
    else:
        _o2l(work, exp.code, ["train", "--role", "student", "--records", records_dir, "--model-dir", student_dir,
                              *(["--teacher", teacher_dir] if teacher_dir else []), "--preset", "demo",
                              *sum((["--set", o] for o in exp.student), []), "--quiet"])
        steps = None
    timings["student_seconds"] = round(time.time() - t0, 1)
    final = _score_exported(student_dir, dev, os.path.join(run, "dev-predictions"))
    cleaned = _score_exported(student_dir, dev, os.path.join(run, "dev-predictions-small-removed"),
                              min_lesion_mm3=SMALL_LESION_MM3)
    result = {"experiment": asdict(exp), "records": records_dir, "steps": steps, **timings,
              "dev": final["summary"], "dev_cases": final["cases"], "dev_small_removed": cleaned["summary"],
              "dev_small_removed_cases": cleaned["cases"], "seconds": round(time.time() - started, 1)}
    curves = os.path.join(student_dir, "curves.json")
    if os.path.exists(curves):
        with open(curves) as stream:
            result["curves"] = json.load(stream)
    if exp.batch_statistics:
        result["dev_batch_statistics"] = _score_exported(student_dir, dev, "", batch_statistics=True)["summary"]
    if teacher_dir and exp.code == "current":
        result["pseudo_labels"] = pseudo_label_quality(records_dir)
    os.makedirs(os.path.dirname(result_path), exist_ok=True)
    with open(result_path + ".tmp", "w") as stream:
        json.dump(result, stream, indent=1, default=float)
    os.replace(result_path + ".tmp", result_path)
    d = final["summary"]
    log(f"{exp.name}: dev lesion Dice {100 * d['lesion']['dice_per_case']:.1f} / {100 * d['lesion']['dice_global']:.1f}"
        f" % (per case / global), recall {d['detection']['recall']:.2f}, FP/case "
        f"{d['detection']['false_positives_per_case']:.1f}, liver {100 * d['liver']['dice_per_case']:.1f} %, "
        f"{result['seconds']:.0f} s")
    return result


# -------------------------------------------------------------------------------------------------- report
def _row(name: str, result: dict, key: str = "dev") -> list[str]:
    d = result[key]
    by_size = d["detection"]["by_size"]
    recall = lambda k: "-" if by_size[k]["recall"] is None else f"{by_size[k]['found']}/{by_size[k]['lesions']}"  # noqa: E731
    return [name, result["experiment"]["question"], f"{100 * d['liver']['dice_per_case']:.1f}",
            f"{100 * d['lesion']['dice_per_case']:.1f}", f"{100 * d['lesion']['dice_global']:.1f}",
            recall("< 10 mm"), recall("10-20 mm"), recall("> 20 mm"),
            f"{d['detection']['false_positives_per_case']:.1f}", str(result.get("steps") or "-"),
            f"{result['seconds'] / 60:.1f}"]


def report(work: str) -> None:
    results = {}
    for exp in EXPERIMENTS:
        path = result_file(exp.name)
        if os.path.exists(path):
            with open(path) as stream:
                results[exp.name] = json.load(stream)
    header = ["experiment", "what changes", "liver Dice/case %", "lesion Dice/case %", "lesion Dice global %",
              "found < 10 mm", "found 10-20 mm", "found > 20 mm", "FP/case", "steps", "minutes"]
    lines = ["Raw predictions (the paper's post-processing only):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_row(name, r)) + " |" for name, r in results.items()]
    rescored = [name for name, r in results.items() if "dev_small_removed" in r]
    if rescored:  # rows scored before the rescore command existed have no such scores
        lines += ["", f"The same models with lesion components under {SMALL_LESION_MM3:g} mm3 removed "
                      "(inference.min_lesion_mm3, the recipe's):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_row(name, results[name], "dev_small_removed")) + " |" for name in rescored]
    extra = []
    for name, r in results.items():
        if "pseudo_labels" in r:
            q = r["pseudo_labels"]
            extra.append(f"- `{name}` teacher's soft labels of the weak cases: liver / lesion Dice (argmax) "
                         f"{100 * q['liver_dice']:.1f} / {100 * q['lesion_dice']:.1f} %, mean lesion probability "
                         f"{q['lesion_probability_on_background']:.4f} on true background and "
                         f"{q['lesion_probability_on_liver']:.4f} on true liver, lesion mass "
                         f"{q['lesion_mass_over_true_area']:.2f} x the true lesion area")
        if "dev_batch_statistics" in r:
            b = r["dev_batch_statistics"]
            extra.append(f"- `{name}` with BatchNorm batch statistics at inference: lesion Dice per case "
                         f"{100 * b['lesion']['dice_per_case']:.1f} %, recall {b['detection']['recall']:.2f}, "
                         f"FP/case {b['detection']['false_positives_per_case']:.1f}, liver "
                         f"{100 * b['liver']['dice_per_case']:.1f} %")
    with open(os.path.join(HERE, "results.md"), "w") as stream:
        stream.write("\n".join(lines + [""] + extra) + "\n")
    _plots(results)


def _plots(results: dict) -> None:
    """One figure per group: lesion Dice per case, recall and false positives against the epoch, whole volumes
    of the development cohort (solid) and of three training cases (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for name, r in results.items():
        if "curves" in r:
            groups.setdefault(r["experiment"]["group"], []).append((name, r))
    for group, members in groups.items():
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.8))
        for (name, r), colour in zip(members, plt.cm.tab10.colors):
            for subset, style in (("dev", "-"), ("train", ":")):
                rows = r["curves"].get(subset, [])
                epochs = [row["epoch"] for row in rows]
                label = name if subset == "dev" else None
                axes[0].plot(epochs, [row["lesion_dice"] for row in rows], style, color=colour, label=label)
                axes[1].plot(epochs, [row["lesion_recall"] for row in rows], style, color=colour)
                axes[2].plot(epochs, [row["false_positives"] for row in rows], style, color=colour)
        for axis, title in zip(axes, ("lesion Dice per case", "lesion recall (IoU > 0.5)",
                                      "false-positive components per case")):
            axis.set_title(title)
            axis.set_xlabel("epoch")
            axis.grid(alpha=0.3)
        axes[2].set_yscale("symlog")
        figure.legend(loc="lower center", ncol=min(4, len(members)), fontsize=8, frameon=False)
        figure.suptitle(f"{group}: whole volumes, development cohort (solid) and 3 training cases (dotted); "
                        "raw predictions, no small-lesion removal")
        figure.tight_layout(rect=(0, 0.1, 1, 1))
        figure.savefig(os.path.join(HERE, f"curves-{group}.png"), dpi=90)
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "rescore", "report", "list"])
    parser.add_argument("--work", required=False, default="lesion-study")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    args.work = os.path.abspath(args.work)
    if args.command == "list":
        for exp in EXPERIMENTS:
            print(f"{exp.name:28s} {exp.group:6s} {exp.question}")
        return
    if args.command == "report":
        report(args.work)
        return
    wanted = args.only or [e.name for e in EXPERIMENTS]
    if args.command == "rescore":
        for name in wanted:
            if os.path.exists(result_file(name)):
                rescore(args.work, BY_NAME[name])
        report(args.work)
        return
    for name in wanted:
        run_experiment(args.work, BY_NAME[name])
        report(args.work)


if __name__ == "__main__":
    main()
