"""The analytic FLOP count against TensorFlow's profiler, and the SavedModel serving signatures."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.profiler.model_analyzer import profile
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

from o2l_tf.configs.model import ModelConfig
from o2l_tf.models import StudentSegmentor, TeacherAnnotator, UNetBackbone
from o2l_tf.models.export import export_saved_model, normalize_hu
from o2l_tf.models.flops import backbone_flops, student_flops, teacher_flops

CONFIG = ModelConfig(base_filters=8)
SIZE = 64


def profiled_flops(model, specs):
    @tf.function(autograph=False)
    def forward(inputs):
        return model(inputs, training=False)

    graph = forward.get_concrete_function(specs).graph
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return profile(graph, options=options).total_float_ops


IMAGE = {"image": tf.TensorSpec([1, SIZE, SIZE, 3])}
BOXES = {"organ_box": tf.TensorSpec([1, SIZE, SIZE, 1]), "lesion_box": tf.TensorSpec([1, SIZE, SIZE, 1])}


@pytest.mark.parametrize("model, specs, analytic", [
    (lambda: UNetBackbone(CONFIG), IMAGE, lambda: backbone_flops(CONFIG, SIZE, SIZE)),
    (lambda: StudentSegmentor(CONFIG), IMAGE, lambda: student_flops(CONFIG, SIZE, SIZE)),
    (lambda: TeacherAnnotator(CONFIG), {**IMAGE, **BOXES}, lambda: teacher_flops(CONFIG, SIZE, SIZE)),
    (lambda: TeacherAnnotator(ModelConfig(base_filters=8, attention="none", shortcut=False)), {**IMAGE, **BOXES},
     lambda: teacher_flops(ModelConfig(base_filters=8, attention="none", shortcut=False), SIZE, SIZE)),
])
def test_analytic_flops_match_the_profiler_within_two_percent(model, specs, analytic):
    measured, counted = profiled_flops(model(), specs), analytic()
    assert counted <= measured <= 1.02 * counted  # the profiler adds the element-wise ops we leave out


def test_student_serving_signature_takes_hu(tmp_path):
    inference = StudentSegmentor(dict(base_filters=4)).inference_model()
    export_saved_model(inference, str(tmp_path / "student"))
    served = tf.saved_model.load(str(tmp_path / "student"))
    hu = np.random.default_rng(0).uniform(-1000, 1000, (2, 32, 32, 3)).astype("float32")
    expected = inference({"image": np.clip((hu + 200) / 450, 0, 1)}, training=False)
    np.testing.assert_allclose(served.serve(hu).numpy(), expected.numpy(), atol=1e-6)


def test_teacher_serving_signature_takes_hu_and_boxes(tmp_path):
    teacher = TeacherAnnotator(dict(base_filters=4))
    export_saved_model(teacher, str(tmp_path / "teacher"))
    served = tf.saved_model.load(str(tmp_path / "teacher"))
    hu = np.random.default_rng(1).uniform(-300, 300, (1, 32, 32, 3)).astype("float32")
    organ = np.zeros((1, 32, 32, 1), "float32")
    organ[:, 5:20, 5:25] = 1
    lesion = np.zeros_like(organ)
    expected = teacher({"image": normalize_hu(hu), "organ_box": tf.constant(organ), "lesion_box": tf.constant(lesion)},
                       training=False)
    np.testing.assert_allclose(served.serve(hu, organ, lesion).numpy(), expected.numpy(), atol=1e-6)
