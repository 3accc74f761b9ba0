"""Teacher, student and backbone: variants, parameter counts, inference model, serialization, precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from o2l_tf.configs.model import TABLE_II, ModelConfig
from o2l_tf.losses import student_losses, teacher_loss
from o2l_tf.models import StudentSegmentor, TeacherAnnotator, UNetBackbone

TINY = dict(base_filters=4)

# Pinned parameter counts of the default models (depth 4, base 32, C = 16 localization channels).
DEFAULT_BACKBONE_PARAMS = 7_768_995
DEFAULT_TEACHER_PARAMS = 7_781_475
DEFAULT_STUDENT_PARAMS = 10_475_318


def batch(size=32, seed=0):
    rng = np.random.default_rng(seed)
    organ = np.zeros((2, size, size, 1), "float32")
    organ[:, 4:24, 6:26] = 1
    lesion = np.zeros((2, size, size, 1), "float32")
    lesion[:, 10:14, 12:16] = 1
    return {"image": rng.uniform(size=(2, size, size, 3)).astype("float32"), "organ_box": organ, "lesion_box": lesion}


def test_pinned_parameter_counts():
    backbone, teacher, student = UNetBackbone(), TeacherAnnotator(), StudentSegmentor()
    assert backbone.count_params() == DEFAULT_BACKBONE_PARAMS
    assert teacher.count_params() == DEFAULT_TEACHER_PARAMS
    assert student.count_params() == DEFAULT_STUDENT_PARAMS
    assert student.inference_model().count_params() == DEFAULT_BACKBONE_PARAMS
    # The O2L gates add, per scale, two 3x3 convs from one channel plus two BatchNorms: 2*(9C + 4C) = 26C.
    assert teacher.count_params() - backbone.count_params() == 26 * (32 + 64 + 128 + 256)


@pytest.mark.parametrize("row", list(TABLE_II))
def test_every_table_ii_variant_builds_and_predicts(row):
    config = dict(TINY, **TABLE_II[row])
    model = TeacherAnnotator(config)
    probabilities = model.predict(batch(), verbose=0)
    assert probabilities.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    names = [layer.name for layer in model.layers]
    attention = [name for name in names if name.startswith("box_attention_")]
    concats = [name for name in names if name.startswith("skip_concat_")]
    if config["attention"] == "none":
        assert attention == [] and "image_with_boxes" in names
        assert len(concats) == (4 if config["shortcut"] else 0)
    else:
        assert sorted(attention) == [f"box_attention_{level}" for level in range(4)] and len(concats) == 4
        assert all(model.get_layer(name).mode == config["attention"] for name in attention)
        assert all(model.get_layer(name).shortcut == config["shortcut"] for name in attention)


def test_without_attention_and_shortcut_skip_features_do_not_reach_the_decoder():
    model = TeacherAnnotator(dict(TINY, attention="none", shortcut=False))
    for level, filters in enumerate((4, 8, 16, 32)):
        decoder_conv = model.get_layer(f"decoder_{level}").conv1
        assert decoder_conv.kernel.shape[2] == filters  # only the up-convolution's channels, no skip
    with_skips = TeacherAnnotator(dict(TINY, attention="none", shortcut=True))
    assert with_skips.get_layer("decoder_0").conv1.kernel.shape[2] == 8


def test_teacher_output_depends_on_the_lesion_box():
    model = TeacherAnnotator(TINY)
    inputs = batch()
    moved = dict(inputs, lesion_box=np.roll(inputs["lesion_box"], 8, axis=2))
    assert not np.allclose(model.predict(inputs, verbose=0), model.predict(moved, verbose=0))


def test_student_inference_model_has_backbone_weights_and_identical_outputs():
    student = StudentSegmentor(TINY)
    inference = student.inference_model()
    image = {"image": batch()["image"]}
    outputs = student.predict(image, verbose=0)
    assert set(outputs) == {"segmentation", "localization"}
    np.testing.assert_array_equal(inference.predict(image, verbose=0), outputs["segmentation"])
    assert inference.count_params() == UNetBackbone(TINY).count_params()
    assert not any(layer.name.startswith("localization") for layer in inference.layers)


@pytest.mark.parametrize("model_class", [TeacherAnnotator, StudentSegmentor])
def test_keras_round_trip_reproduces_outputs_exactly(tmp_path, model_class):
    model = model_class(TINY)
    inputs = batch() if model_class is TeacherAnnotator else {"image": batch()["image"]}
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: everything is registered
    assert type(loaded) is model_class and loaded.model_config == model.model_config
    expected, actual = model.predict(inputs, verbose=0), loaded.predict(inputs, verbose=0)
    for key in (expected if isinstance(expected, dict) else [None]):
        np.testing.assert_array_equal(actual if key is None else actual[key], expected if key is None else expected[key])
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    fresh = model_class(TINY)
    fresh.load_weights(weights)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fresh.weights[0]), keras.ops.convert_to_numpy(model.weights[0]))


def test_fully_convolutional_across_input_sizes():
    teacher = TeacherAnnotator(TINY)
    for size in (32, 48, 64):
        inputs = batch(size)
        assert teacher.predict(inputs, verbose=0).shape == (2, size, size, 3)
        # The same weights in a model built for exactly this size give exactly the same probabilities.
        fixed = TeacherAnnotator(TINY, input_shape=(size, size))
        assert fixed.count_params() == teacher.count_params()
        fixed.set_weights(teacher.get_weights())
        np.testing.assert_array_equal(fixed.predict(inputs, verbose=0), teacher.predict(inputs, verbose=0))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_builds_and_returns_float32_probabilities(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        teacher, student = TeacherAnnotator(TINY), StudentSegmentor(TINY)
        probabilities = teacher(batch(), training=False)
        outputs = student({"image": batch()["image"]}, training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert teacher.get_layer("encoder_0").compute_dtype == policy.split("_")[1]
    for tensor in (probabilities, outputs["segmentation"], outputs["localization"]):
        assert tensor.dtype == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor).sum(-1), 1.0, atol=1e-3)


def test_one_training_step_each():
    teacher = TeacherAnnotator(TINY)
    teacher.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss=teacher_loss())
    targets = np.eye(3, dtype="float32")[np.random.default_rng(0).integers(0, 3, (2, 32, 32))]
    assert np.isfinite(teacher.fit(batch(), targets, epochs=1, verbose=0).history["loss"][0])
    student = StudentSegmentor(TINY)
    losses, weights = student_losses(alpha=1.0)
    student.compile(optimizer=keras.optimizers.SGD(3e-4, momentum=0.9), loss=losses, loss_weights=weights)
    history = student.fit({"image": batch()["image"]}, {"segmentation": targets, "localization": targets},
                          epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("config, shape, match", [
    (dict(depth=0), (None, None), "depth"),
    (dict(attention="scn"), (None, None), "attention"),
    (dict(base_filters=0), (None, None), "base_filters"),
    (dict(localization_scales=(4,)), (None, None), "localization_scales"),
    (dict(), (30, 32), "multiple of 2\\*\\*depth = 16"),
    (dict(depth=3), (36, 36), "multiple of 2\\*\\*depth = 8"),
])
def test_invalid_configs_raise_value_error(config, shape, match):
    with pytest.raises(ValueError, match=match):
        TeacherAnnotator(config, input_shape=shape)


def test_model_config_dict_round_trip():
    config = ModelConfig(depth=3, base_filters=8, attention="multichannel", shortcut=False, localization_scales=(2, 0))
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("localization", [True, False])
def test_deep_supervision_heads_are_training_only(tmp_path, localization):
    student = StudentSegmentor(dict(TINY, deep_supervision=2), localization=localization)
    image = {"image": batch()["image"]}
    outputs = student.predict(image, verbose=0)
    expected = {"segmentation", "deep_supervision_1", "deep_supervision_2"} | ({"localization"} if localization else set())
    assert set(outputs) == expected
    assert outputs["deep_supervision_1"].shape == (2, 16, 16, 3) and outputs["deep_supervision_2"].shape == (2, 8, 8, 3)
    np.testing.assert_allclose(outputs["deep_supervision_2"].sum(-1), 1.0, atol=1e-5)
    # The inference model is the plain backbone: same weights, same segmentation, no extra heads.
    inference = student.inference_model()
    assert inference.count_params() == UNetBackbone(TINY).count_params()
    np.testing.assert_array_equal(inference.predict(image, verbose=0), outputs["segmentation"])
    path = tmp_path / "student.keras"
    student.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.localization is localization and loaded.model_config.deep_supervision == 2
    np.testing.assert_array_equal(loaded.predict(image, verbose=0)["deep_supervision_1"], outputs["deep_supervision_1"])


def test_deep_supervision_must_leave_a_coarser_stage():
    with pytest.raises(ValueError, match="deep_supervision must be in \\[0, 3\\]"):
        StudentSegmentor(dict(TINY, deep_supervision=4))
