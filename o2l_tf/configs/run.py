"""Training run configuration: data, optimisation and model settings, named presets, --set overrides.

An *epoch* follows the paper (Sec. IV-B: "in each epoch we randomly crop a subvolume of 6 x 320 x 320 from a CT
scan"): every training case contributes ``examples_per_case`` (6) randomly drawn three-slice examples, so
``steps_per_epoch = ceil(training cases * examples_per_case / batch_size)``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field

from o2l_tf.configs.model import ModelConfig
from o2l_tf.errors import InputError

ROLES = ("teacher", "student")
WEAK_LABELS = ("pseudo", "boxes", "none")
PAPER_LOCALIZATION_WEIGHTS = (1.0, 0.1, 1.0)  # Sec. III-D: liver 0.1, lesion 1; background (paper silent) 1
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
JIT = ("auto", "on", "off")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("paper", "poly")  # learning-rate schedules (o2l_tf.training.callbacks.learning_rate_at)


@dataclass
class DataSettings:
    crop_size: int = 320
    scale_range: tuple[float, float] = (0.8, 1.2)
    flip: bool = True
    foreground_crop: float = 0.0  # share of crops around a random lesion (else liver) box; the paper crops uniformly
    lesion_slices: float = 0.0  # share of examples drawn from slices with a lesion box; 0: as they come (paper)
    batch_size: int = 2  # global batch, split across replicas
    examples_per_case: int = 6
    # Per stream and epoch; every epoch reads each shard from a seeded offset, so the buffer only orders an epoch's
    # window, and filling four buffers of 512 was most of the mixed student's input time (README: Benchmarks).
    shuffle_buffer: int = 64
    val_batch_size: int = 2
    val_max_examples: int = 0  # 0 = the whole val split
    # The network input's HU window (low, high), within the records' clipping; None: the records' own (paper).
    hu_window: tuple[float, float] | None = None


@dataclass
class TrainSettings:
    epochs: int = 1500
    learning_rate: float = 1e-3
    optimizer: str = "sgd"  # the paper's SGD with momentum; "adam" for short schedules
    momentum: float = 0.9
    lr_schedule: str = "paper"  # paper: constant, then x decay_rate per epoch; poly: nnU-Net's (1 - e/E)^0.9
    decay_start_epoch: int = 0  # 0 = no decay; the student decays x decay_rate per epoch after this epoch
    decay_rate: float = 0.95
    alpha: float = 1.0
    localization_weights: tuple[float, float, float] = PAPER_LOCALIZATION_WEIGHTS
    segmentation_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the paper's Eq. (3)/(4): unweighted
    dice_weight: float = 0.0  # soft Dice term added to the segmentation loss (not the paper's; 0 = none)
    localization: bool = True
    weak_labels: str = "pseudo"
    validate_every: int = 1
    # Whole val volumes predicted, post-processed and scored with the LiTS rules every this many epochs (0: never).
    volume_validation_every: int = 0
    # "last" as nnU-Net: on a small val split the best-lesion-Dice epoch is noise (a demo run exported epoch 1 of 15).
    export_weights: str = "last"
    images_every: int = 10
    precision: str = "float32"
    jit: str = "auto"
    seed: int = 0


@dataclass
class InferenceSettings:
    """How ``o2l predict`` post-processes this model's labels (written to the run's export.json)."""

    min_lesion_mm3: float = 0.0  # lesion components smaller than this become liver; 0: the paper's, none


@dataclass
class RunConfig:
    role: str = "teacher"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)

    def validate(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"role must be one of {ROLES}, got {self.role!r}")
        self.model.validate()
        self.model.check_input_size(self.data.crop_size, self.data.crop_size)
        if self.role == "teacher" and self.model.deep_supervision:
            raise InputError(f"model.deep_supervision={self.model.deep_supervision} is a student setting; the "
                             f"teacher has one segmentation head")
        t, d = self.train, self.data
        if t.weak_labels not in WEAK_LABELS:
            raise InputError(f"train.weak_labels must be one of {WEAK_LABELS}, got {t.weak_labels!r}")
        if t.precision not in PRECISIONS:
            raise InputError(f"train.precision must be one of {PRECISIONS}, got {t.precision!r}")
        if t.export_weights not in ("last", "best"):
            raise InputError(f"train.export_weights must be last or best, got {t.export_weights!r}")
        if t.lr_schedule not in SCHEDULES:
            raise InputError(f"train.lr_schedule must be one of {SCHEDULES}, got {t.lr_schedule!r}")
        if t.optimizer not in OPTIMIZERS:
            raise InputError(f"train.optimizer must be one of {OPTIMIZERS}, got {t.optimizer!r}")
        if t.jit not in JIT:
            raise InputError(f"train.jit must be one of {JIT}, got {t.jit!r}")
        if t.volume_validation_every < 0:
            raise InputError(f"train.volume_validation_every must be 0 (off) or positive, got "
                             f"{t.volume_validation_every}")
        for name, value in (("train.epochs", t.epochs), ("data.batch_size", d.batch_size),
                            ("data.examples_per_case", d.examples_per_case), ("data.crop_size", d.crop_size)):
            if value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        if not 0 < d.scale_range[0] <= d.scale_range[1]:
            raise InputError(f"data.scale_range must be 0 < low <= high, got {d.scale_range}")
        for name, value in (("data.foreground_crop", d.foreground_crop), ("data.lesion_slices", d.lesion_slices)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {value}")
        if d.hu_window is not None and not (len(d.hu_window) == 2 and d.hu_window[0] < d.hu_window[1]):
            raise InputError(f"data.hu_window must be LOW,HIGH with LOW < HIGH, got {d.hu_window}")
        if t.dice_weight < 0:
            raise InputError(f"train.dice_weight must be non-negative, got {t.dice_weight}")
        if self.inference.min_lesion_mm3 < 0:
            raise InputError(f"inference.min_lesion_mm3 must be non-negative, got {self.inference.min_lesion_mm3}")
        if t.learning_rate <= 0:
            raise InputError(f"train.learning_rate must be positive, got {t.learning_rate}")

    def to_dict(self) -> dict:
        return {"role": self.role, "model": self.model.to_dict(), "data": _plain(asdict(self.data)),
                "train": _plain(asdict(self.train)), "inference": asdict(self.inference)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        return cls(role=values["role"], model=ModelConfig.from_dict(values["model"]),
                   data=_build(DataSettings, values["data"]), train=_build(TrainSettings, values["train"]),
                   inference=_build(InferenceSettings, values.get("inference", {})))


def _plain(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _build(cls, values: dict):
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # JSON lists: tuples


PRESETS = ("paper", "demo", "converge", "test")
RECIPE_HU_WINDOW = (-20.0, 200.0)  # the CPU recipe's input window (see _recipe)


def preset(name: str, role: str) -> RunConfig:
    """``paper`` (Sec. IV-B), ``demo`` (``make demo``: minutes on 2 CPU cores), ``converge`` (the same recipe
    trained to convergence on phantoms: ``make demo-full``, ``o2l reproduce --scale converge``) or ``test``
    (seconds, for the test suite)."""
    if name == "paper":
        config = RunConfig(role=role)
        if role == "student":
            config.train = TrainSettings(epochs=4000, learning_rate=3e-4, decay_start_epoch=3000)
        return config
    if name in ("demo", "converge"):
        return _recipe(role, converge=name == "converge")
    if name == "test":
        config = RunConfig(role=role, model=ModelConfig(base_filters=4, norm_momentum=0.9),
                           data=DataSettings(crop_size=32, batch_size=2, examples_per_case=2,
                                             val_max_examples=8),
                           train=TrainSettings(epochs=2, learning_rate=1e-2, images_every=1))
        if role == "student":
            config.train = TrainSettings(epochs=2, learning_rate=1e-2, decay_start_epoch=1, images_every=1)
        return config
    raise InputError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")


def _recipe(role: str, converge: bool) -> RunConfig:
    """The CPU recipe of the lesion study (docs/results/lesion-study/): the paper's networks and losses with
    nnU-Net's training habits, each a named setting that the ``paper`` preset leaves off:

    - Adam with a poly schedule (``train.optimizer``, ``train.lr_schedule``), for thousands of steps instead of
      the paper's million;
    - cross-entropy + 0.5 x soft Dice without class weights (``train.dice_weight``: weight 1 doubled the false
      positives of weight 0.5 for the same lesions found; ``segmentation_weights`` stay 1:
      a class weight on soft targets multiplies the teacher's lesion floor, and a weighted teacher's soft labels
      carry a floor to begin with: study rows mixed-old-teacher / mixed-recipe);
    - half the crops around a uniformly chosen lesion (else liver) box, half the examples from slices with a
      lesion box (``data.foreground_crop``, ``data.lesion_slices``);
    - a 4-channel localization branch (``model.localization_channels``; the paper leaves C open);
    - the network input windowed to [-20, 200] HU inside the records' [-200, 250] (``data.hu_window``):
      nnU-Net clips CT to its training foreground's 0.5-99.5 percentiles, a window around liver and lesion;
      the paper's window spends most of the input range on fat, lung and bone edges. With the demo student's
      1,512 steps on the study's development cohort (full supervision) raw lesion Dice went from 23.6 / 54.9
      to 28.2 / 66.2 % (per case / global) and lesions of 10 mm or more found from 9 to 11 of 21 (study rows
      w-demo-full, w-demo-full-narrow);
    - lesion components under 500 mm3 (a 9.8-mm sphere) removed after the paper's post-processing
      (``inference.min_lesion_mm3``; on the study's development cohort it took false positives from 8.6 to 2.6
      per case and lost no lesion the student had found: it finds almost none under 10 mm at 192 px);
    - bf16 where the CPU runs it natively (``train.precision=auto``).

    ``demo``: ``make demo``'s budget: 96-px crops, a student of 56 epochs of 3 crops per case (1,512 steps for
    the demo's 36 training cases), a teacher of 20 epochs of 8 crops per strong case. The study's curves still rise
    at 2,430 steps: the demo is under-trained by design, and still over its 10 minutes with float32 forced (10.3
    here, about 18 on the slower machine class); a third of its training, what would fit, learns no lesion (lesion
    study, round 9). ``converge``: 128-px crops, a student of 180 epochs of 3
    crops per case of a 72-case cohort (9,720 steps: the study's ``r-4x``), a teacher of 50 epochs.
    """
    crop = 128 if converge else 96
    data = dict(crop_size=crop, batch_size=4, val_max_examples=32, foreground_crop=0.5, lesion_slices=0.5,
                hu_window=RECIPE_HU_WINDOW)
    train = dict(optimizer="adam", learning_rate=1e-3, lr_schedule="poly", dice_weight=0.5, images_every=10,
                 precision="auto")
    model = ModelConfig(base_filters=16, norm_momentum=0.9, localization_channels=4)
    inference = InferenceSettings(min_lesion_mm3=500.0)
    if role == "teacher":
        epochs = 50 if converge else 20
        return RunConfig(role=role, model=model, data=DataSettings(examples_per_case=8, **data),
                         train=TrainSettings(epochs=epochs, validate_every=epochs, volume_validation_every=epochs,
                                             **train), inference=inference)
    epochs, every = (180, 60) if converge else (56, 28)
    return RunConfig(role=role, model=model, data=DataSettings(examples_per_case=3, **data),
                     train=TrainSettings(epochs=epochs, validate_every=every, volume_validation_every=every, **train),
                     inference=inference)


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` overrides (``model.base_filters=8``, ``train.epochs=5``), type-checked."""
    for item in overrides:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        section_name, _, name = key.strip().partition(".")
        sections = {"model": config.model, "data": config.data, "train": config.train, "inference": config.inference}
        if section_name not in sections or not name:
            raise InputError(f"--set {item!r}: unknown key {key!r}; keys look like model.base_filters, "
                             f"data.crop_size, train.epochs")
        section = sections[section_name]
        fields = {f.name: f for f in dataclasses.fields(section)}
        if name not in fields:
            raise InputError(f"--set {item!r}: {section_name} has no setting {name!r} "
                             f"(known: {', '.join(sorted(fields))})")
        value = _parse(raw.strip(), typing.get_type_hints(type(section))[name], item)
        if section_name == "model":
            config.model = dataclasses.replace(config.model, **{name: value})
        else:
            setattr(section, name, value)
    return config


def _parse(raw: str, hint, item: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if raw.lower() in ("none", "null"):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if origin is tuple:
            parts = [p for p in raw.strip("()[] ").split(",") if p.strip()]
            element = args[0]
            return tuple(element(p.strip()) for p in parts)
        if hint is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return hint(raw)
    except (ValueError, TypeError):
        name = getattr(hint, "__name__", str(hint))
        raise InputError(f"--set {item!r}: {raw!r} is not a valid {name}") from None
