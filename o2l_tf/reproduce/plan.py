"""What ``o2l reproduce`` trains: the scales, the arms (one trained model each) and the four studies.

An arm is one model trained on one records folder, then scored on the held-out test phantoms. Arms shared by
studies are trained once (the O2L teacher of Table II is also the pseudo-labeller of Table I; the 30:60 method
student is a Table I row, a Fig. 10 point and the unperturbed side of Sec. IV-F).
"""

from __future__ import annotations

from dataclasses import dataclass

from o2l_tf.configs.model import TABLE_II
from o2l_tf.errors import InputError

STUDIES = ("table2", "table1", "ratios", "perturbation")
RATIOS = ((10, 80), (30, 60), (50, 40), (70, 20), (90, 0))  # strong:weak %, 10 % validation (Fig. 10)


@dataclass(frozen=True)
class Scale:
    cases: int  # training cohort (strong + weak + val), seed ``seed``
    size: int
    slices: tuple[int, int]
    test_cases: int  # held-out cohort, seed ``seed + 1``: never seen in training
    preset: str
    split_seed: int = 2  # with the seed-0 cohort of 10 cases: both contrast phases among the 3 strong cases
    overrides: tuple[str, ...] = ()


SCALES = {
    # Minutes on 2 CPU cores: the test suite's phantoms and preset (2 epochs): checks the machinery, not the method.
    "small": Scale(cases=10, size=48, slices=(12, 16), test_cases=2, preset="test"),
    # About two hours on 2 CPU cores: the demo's phantoms and preset.
    "medium": Scale(cases=40, size=192, slices=(48, 64), test_cases=10, preset="demo"),
    # The recipe trained to convergence (preset converge: four times the demo student's steps), 80 training
    # phantoms, 20 held-out ones: several CPU hours per seed (docs/results/converge/).
    "converge": Scale(cases=80, size=192, slices=(48, 64), test_cases=20, preset="converge"),
    # The paper's sizes (131 training cases, full 512 x 512 slices, 1500/4000 epochs, SGD): for GPUs, days.
    "paper": Scale(cases=131, size=512, slices=(74, 300), test_cases=70, preset="paper"),
}


@dataclass(frozen=True)
class Records:
    strong: int
    weak: int
    perturb: bool = False

    @property
    def name(self) -> str:
        return f"split-{self.strong}-{self.weak}-{100 - self.strong - self.weak}" + ("-perturbed" if self.perturb else "")


@dataclass(frozen=True)
class Arm:
    name: str
    role: str  # teacher, student, or boxes (the box partition itself, nothing trained)
    records: Records
    overrides: tuple[str, ...] = ()
    teacher: str | None = None  # the arm whose teacher pseudo-labels this student's weak cases


BASE = Records(30, 60)
O2L_TEACHER = "teacher-o2l-shortcut"
METHOD = "student-30-60"
FULL = "student-full-90-0"


def _teacher_name(attention: str, shortcut: bool) -> str:
    return f"teacher-{attention}-{'shortcut' if shortcut else 'no-shortcut'}"


def _method(name: str, records: Records, teacher: str) -> Arm:
    return Arm(name, "student", records, ("train.weak_labels=pseudo", "train.localization=true"), teacher)


def arms() -> dict[str, Arm]:
    found = {"box-partition": Arm("box-partition", "boxes", BASE)}
    for variant in TABLE_II.values():
        name = _teacher_name(variant["attention"], variant["shortcut"])
        found[name] = Arm(name, "teacher", BASE, (f"model.attention={variant['attention']}",
                                                  f"model.shortcut={variant['shortcut']}"))
    found["student-strong-only"] = Arm("student-strong-only", "student", BASE,
                                       ("train.weak_labels=none", "train.localization=false"))
    found["student-box-masks"] = Arm("student-box-masks", "student", BASE,
                                     ("train.weak_labels=boxes", "train.localization=false"))
    found["student-pseudo-no-localization"] = Arm("student-pseudo-no-localization", "student", BASE,
                                                  ("train.weak_labels=pseudo", "train.localization=false"), O2L_TEACHER)
    found[METHOD] = _method(METHOD, BASE, O2L_TEACHER)
    found[FULL] = Arm(FULL, "student", Records(90, 0), ("train.weak_labels=none", "train.localization=false"))
    for strong, weak in RATIOS:
        if (strong, weak) in ((30, 60), (90, 0)):
            continue
        teacher = Arm(f"teacher-{strong}-{weak}", "teacher", Records(strong, weak))
        found[teacher.name] = teacher
        found[f"student-{strong}-{weak}"] = _method(f"student-{strong}-{weak}", Records(strong, weak), teacher.name)
    found["student-30-60-perturbed"] = _method("student-30-60-perturbed", Records(30, 60, perturb=True), O2L_TEACHER)
    return found


@dataclass(frozen=True)
class Row:
    label: str
    arm: str
    paper: tuple[float, ...] | None = None  # the paper's LiTS numbers for this row, where it reports them


TABLE_II_PAPER = {  # Table II: liver Dice global, per case; lesion Dice global, per case (%)
    "w/o attention & w/o shortcut": (86.0, 85.3, 61.5, 42.9),
    "multi-channel input": (92.2, 92.6, 88.1, 83.9),
    "w/o attention & w/ shortcut": (93.9, 93.3, 87.8, 85.2),
    "w/ attention & w/o shortcut": (94.0, 93.4, 88.8, 84.1),
    "w/ attention & w/ shortcut": (95.4, 95.2, 88.9, 85.5),
}


def study_rows(study: str) -> list[Row]:
    """The rows of a study's table, in the paper's order, each naming the arm that produces it."""
    if study == "table2":
        return [Row("box partition itself (no teacher)", "box-partition")] + [
            Row(label, _teacher_name(v["attention"], v["shortcut"]), TABLE_II_PAPER[label])
            for label, v in TABLE_II.items()]
    if study == "table1":  # Sec. IV-E.2 and Table I: Dice global, per case (liver, lesion), burden RMSE
        return [Row("strong only (30 %)", "student-strong-only", (85.8, 88.0, 61.8, 43.9, None)),
                Row("box partition as weak masks", "student-box-masks"),
                Row("mixed, pseudo-labels, w/o localization", "student-pseudo-no-localization",
                    (92.6, 93.2, 74.6, 58.2, None)),
                Row("o2l: mixed + localization branch", METHOD, (92.8, 93.1, 76.5, 60.0, 0.023)),
                Row("full supervision (90:0)", FULL, (93.9, 94.4, 79.2, 63.7, 0.020))]
    if study == "ratios":
        return [Row(f"{strong}:{weak}", FULL if weak == 0 else f"student-{strong}-{weak}") for strong, weak in RATIOS]
    if study == "perturbation":  # Sec. IV-F
        return [Row("unperturbed boxes", METHOD, (92.8, 93.1, 76.5, 60.0)),
                Row("perturbed weak boxes (Sec. IV-F)", "student-30-60-perturbed", (92.5, 92.2, 76.5, 59.6))]
    raise InputError(f"unknown study {study!r}; expected one of {', '.join(STUDIES)} or all")


def arms_for(studies: list[str]) -> list[Arm]:
    """Every arm the studies need, teachers before the students they pseudo-label for."""
    table = arms()
    wanted: list[str] = []
    for study in studies:
        for row in study_rows(study):
            arm = table[row.arm]
            for name in ([arm.teacher] if arm.teacher else []) + [arm.name]:
                if name not in wanted:
                    wanted.append(name)
    return sorted((table[name] for name in wanted), key=lambda a: {"boxes": 0, "teacher": 1, "student": 2}[a.role])
