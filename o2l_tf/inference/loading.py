"""Finding and loading the model ``o2l predict`` runs: a run folder or a ``.keras`` file."""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
from tensorflow.io import gfile

from o2l_tf import machine
from o2l_tf.data.schema import PAPER_HU_WINDOW
from o2l_tf.errors import InputError
from o2l_tf.io_utils import read_json

RUN_MODELS = ("student.keras", "teacher.keras")  # in order of preference inside a run folder
EXPORT_INFO = "export.json"


@dataclass
class InferenceModel:
    network: keras.Model  # image (and boxes, for a teacher) -> 3-class probabilities
    role: str  # "student" or "teacher"
    hu_window: tuple[float, float]  # how the training records clipped and scaled HU
    divisor: int  # input height and width must be multiples of this
    path: str
    precision: str = "float32"  # float32, or bfloat16 (mixed: bf16 convolutions, float32 probabilities)
    min_lesion_mm3: float = 0.0  # the run's post-processing (export.json); 0: the paper's
    spacing: tuple[float, float] | None = None  # in-plane mm the network was trained at (export.json); None: native

    @property
    def needs_boxes(self) -> bool:
        return self.role == "teacher"


def model_file(path: str) -> str:
    """The ``.keras`` file ``path`` names, or the preferred one inside a run folder (local or gs://...)."""
    if gfile.isdir(path):
        for name in RUN_MODELS:
            candidate = os.path.join(path, name)
            if gfile.exists(candidate):
                return candidate
        raise InputError(f"{path}: holds no usable model (no {' or '.join(RUN_MODELS)}; has training finished?)")
    if not gfile.exists(path):
        raise InputError(f"{path}: no such model file or run folder")
    if not path.endswith(".keras"):
        raise InputError(f"{path}: not a usable model (expected a run folder or a .keras file)")
    return path


PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str) -> str:
    """``auto``: bfloat16 on CPU-only machines with native bf16 (make bench: faster, Dice unchanged), else float32."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bfloat16" if machine.bf16_is_the_fast_path() else "float32"


def in_precision(network: keras.Model, precision: str) -> keras.Model:
    """The same network rebuilt under ``mixed_bfloat16``: bf16 compute, float32 weights, float32 softmax.

    Every layer is re-created from its config with the mixed policy (the sub-layers of o2l's blocks take the
    global policy, set meanwhile), except softmax activations, which keep float32 probabilities.
    """
    if precision == "float32":
        return network

    def clone(layer):
        config = layer.get_config()
        if not (isinstance(layer, keras.layers.Activation) and config.get("activation") == "softmax"):
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        rebuilt = keras.models.clone_model(network, clone_function=clone)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    rebuilt.set_weights(network.get_weights())
    return rebuilt


def load_inference_model(path: str, hu_window: tuple[float, float] | None = None,
                         precision: str = "float32") -> InferenceModel:
    """Load a student (branch dropped) or teacher; the HU window comes from the run's export.json.

    ``precision``: float32, bfloat16 (mixed: bf16 convolutions, float32 probabilities) or auto.
    """
    from o2l_tf.models import StudentSegmentor
    from o2l_tf.models.unet import ConfiguredModel

    file = model_file(path)
    try:
        network = keras.models.load_model(file, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a foreign or damaged file
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise InputError(f"{file}: not a loadable o2l model ({reason})") from error
    if isinstance(network, StudentSegmentor):
        network = network.inference_model()
    elif isinstance(network, ConfiguredModel):  # a plain functional view of the same layers, which Keras can clone
        network = keras.Model(inputs=network.input, outputs=network.output, name=network.name)
    inputs = set(network.input) if isinstance(network.input, dict) else set()
    if inputs == {"image"}:
        role = "student"
    elif inputs == {"image", "organ_box", "lesion_box"}:
        role = "teacher"
    else:
        raise InputError(f"{file}: not an o2l student or teacher (inputs {sorted(inputs) or network.input})")
    precision = resolve_precision(precision)
    network = in_precision(network, precision)
    info_path = os.path.join(os.path.dirname(file), EXPORT_INFO)
    info = read_json(info_path) if gfile.exists(info_path) else {}
    if hu_window is None:
        hu_window = tuple(info.get("hu_window", PAPER_HU_WINDOW))
    min_lesion_mm3 = float(info.get("postprocess", {}).get("min_lesion_mm3", 0.0))
    spacing = info.get("spacing_mm")
    pools = sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in network.layers)
    return InferenceModel(network, role, (float(hu_window[0]), float(hu_window[1])), 2 ** pools, file, precision,
                          min_lesion_mm3, None if spacing is None else (float(spacing[0]), float(spacing[1])))
