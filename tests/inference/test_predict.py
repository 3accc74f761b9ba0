"""o2l predict: outputs on the input grid, equal to an independent slice-by-slice computation."""

from __future__ import annotations

import os

import keras
import nibabel as nib
import numpy as np
import pytest

from o2l_tf.data.records import normalize_hu
from o2l_tf.inference.loading import load_inference_model
from o2l_tf.inference.predict import PredictOptions, predict_files
from o2l_tf.inference.volume import SlicePredictor, predict_volume
from o2l_tf.nifti import Reorientation, read_canonical_hu
from tests.helpers import expect_one_line_error, run_cli

RAW = PredictOptions(postprocess=False, precision="float32")  # compared with float32 computations


def direct_probabilities(network, hu_canonical, window, divisor, organ=None, lesion=None):
    """Slice by slice with NumPy indexing: group (z-1, z, z+1) clamped, scaled, zero-padded, cropped back.

    ``organ`` / ``lesion``: canonical box masks [X, Y, Z] for a teacher.
    """
    height, width, depth = hu_canonical.shape
    padded_h, padded_w = -(-height // divisor) * divisor, -(-width // divisor) * divisor
    out = np.zeros((height, width, depth, 3), np.float32)
    for z in range(depth):
        group = hu_canonical[:, :, [max(z - 1, 0), z, min(z + 1, depth - 1)]].astype(np.float32)
        image = np.zeros((1, padded_h, padded_w, 3), np.float32)
        image[0, :height, :width] = normalize_hu(group, window).numpy()
        inputs = {"image": image}
        if organ is not None:
            for name, mask in (("organ_box", organ), ("lesion_box", lesion)):
                inputs[name] = np.zeros((1, padded_h, padded_w, 1), np.float32)
                inputs[name][0, :height, :width, 0] = mask[:, :, z]
        out[:, :, z] = np.asarray(network(inputs, training=False))[0, :height, :width]
    return out


def test_loader_drops_the_branch_and_reads_window_and_divisor(student_run):
    model = load_inference_model(student_run)
    assert model.role == "student" and model.divisor == 8 and model.hu_window == (-150.0, 250.0)
    assert not any("localization" in layer.name for layer in model.network.layers)
    assert load_inference_model(student_run, hu_window=(-100, 200)).hu_window == (-100.0, 200.0)


@pytest.mark.parametrize("batch_size, tta", [(1, False), (4, False), (3, True)])
def test_volume_prediction_equals_slice_by_slice_computation(student_run, phantom, batch_size, tta):
    model = load_inference_model(student_run)
    hu = np.rint(phantom.volume).astype(np.int16)[:37, :29]  # in-plane sizes that need padding to 8
    expected = direct_probabilities(model.network, hu, model.hu_window, model.divisor)
    if tta:
        mirrored = direct_probabilities(model.network, hu[::-1], model.hu_window, model.divisor)[::-1]
        expected = 0.5 * (expected + mirrored)
    labels, quantised = predict_volume(SlicePredictor(model, tta=tta), hu, batch_size=batch_size, probabilities=True)
    np.testing.assert_allclose(quantised / 255.0, expected, atol=1 / 510 + 1e-6)
    margin = np.sort(expected, axis=-1)[..., -1] - np.sort(expected, axis=-1)[..., -2]
    decided = margin > 1e-4  # ties within float noise may argmax either way
    np.testing.assert_array_equal(labels[decided], expected.argmax(-1)[decided])
    counts = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert (counts > 0.01).sum() >= 2, counts  # the random network's labels vary: the comparison means something


def test_bfloat16_model_is_the_same_network_in_bf16(student_run, phantom):
    exact = load_inference_model(student_run, precision="float32")
    fast = load_inference_model(student_run, precision="bfloat16")
    assert fast.precision == "bfloat16" and fast.role == "student" and fast.divisor == exact.divisor
    convolutions = [layer for layer in fast.network.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(layer.compute_dtype == "bfloat16" for layer in convolutions)
    assert all(layer.variable_dtype == "float32" for layer in convolutions)
    for mine, theirs in zip(fast.network.weights, exact.network.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    hu = np.rint(phantom.volume).astype(np.int16)
    expected = direct_probabilities(exact.network, hu, exact.hu_window, exact.divisor)
    got = SlicePredictor(fast)(np.stack([hu[:, :, [max(z - 1, 0), z, min(z + 1, hu.shape[2] - 1)]]
                                         for z in range(hu.shape[2])]).astype(np.float32))
    got = np.moveaxis(got, 0, 2)
    assert got.dtype == np.float32
    # bf16 keeps 8 bits of mantissa through ~20 layers; through the logits scaled x300 the 99.9th percentile
    # was 0.020 on this phantom before its noise became voxel-size consistent and 0.025 after.
    difference = np.abs(got - expected)
    assert np.quantile(difference, 0.999) < 0.03 and difference.max() < 0.1, (np.quantile(difference, 0.999),
                                                                             difference.max())
    margin = np.sort(expected, -1)[..., -1] - np.sort(expected, -1)[..., -2]
    decided = margin > 2 * difference.max()
    assert decided.mean() > 0.3  # half the voxels here: the comparison means something
    np.testing.assert_array_equal(got.argmax(-1)[decided], expected.argmax(-1)[decided])


@pytest.mark.parametrize("kind", ["exported student", "teacher"])
def test_bfloat16_from_the_files_training_writes(tmp_path, kind):
    """train() exports the student's plain functional inference model and the TeacherAnnotator itself."""
    from o2l_tf.configs.model import ModelConfig
    from o2l_tf.models import StudentSegmentor, TeacherAnnotator

    keras.utils.set_random_seed(5)
    config = ModelConfig(depth=2, base_filters=4)
    if kind == "teacher":
        network, name = TeacherAnnotator(config), "teacher.keras"
    else:
        network, name = StudentSegmentor(config).inference_model(), "student.keras"
    network.save(str(tmp_path / name))
    exact = load_inference_model(str(tmp_path), precision="float32")
    fast = load_inference_model(str(tmp_path), precision="bfloat16")
    assert (exact.precision, fast.precision) == ("float32", "bfloat16") and fast.role == exact.role
    convolutions = [layer for layer in fast.network.layers if isinstance(layer, keras.layers.Conv2D)]
    nested = [layer for layer in fast.network.layers if layer.__class__.__module__.startswith("o2l_tf")]
    assert nested and all(layer.compute_dtype == "bfloat16" for layer in nested + convolutions)
    rng = np.random.default_rng(0)
    inputs = {"image": rng.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)}
    if kind == "teacher":
        inputs.update(organ_box=np.ones((2, 16, 16, 1), np.float32), lesion_box=np.zeros((2, 16, 16, 1), np.float32))
    got, expected = np.asarray(fast.network(inputs)), np.asarray(exact.network(inputs))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=0.03)


def test_same_anatomy_whatever_the_orientation(student_run, saved, tmp_path):
    outputs = {}
    for orientation in ("RAS", "LPS", "PRS", "AIL"):
        path = saved(orientation)
        predict_files(student_run, [path], str(tmp_path / f"out_{orientation}"), PredictOptions(), progress=False,
                      log=lambda *_: None)
        written = nib.load(str(tmp_path / f"out_{orientation}" / "segmentation-1.nii.gz"))
        source = nib.load(path)
        assert written.shape == source.shape and written.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(written.affine, source.affine)
        outputs[orientation] = Reorientation.of(written).to_canonical(np.asarray(written.dataobj))
    assert outputs["RAS"].any()
    for orientation, labels in outputs.items():
        np.testing.assert_array_equal(labels, outputs["RAS"], err_msg=orientation)


def save(path, data, affine=None, slope=None, inter=0.0):
    image = nib.Nifti1Image(data, np.diag([0.8, 0.7, 2.5, 1.0]) if affine is None else affine)
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    image.to_filename(str(path))
    return str(path)


@pytest.mark.parametrize("shape, dtype, slope", [
    ((40, 40, 1), np.int16, None), ((40, 40, 2), np.int16, None), ((37, 53, 5), np.int16, None),
    ((40, 40, 4), np.int32, None), ((40, 40, 4), np.float32, None), ((40, 40, 4), np.float32, 0.5),
    ((40, 40, 4), np.uint16, 0.5),
])
def test_small_odd_and_differently_typed_volumes_predict(student_run, phantom, tmp_path, shape, dtype, slope):
    hu = np.resize(phantom.volume[:, :, 4:4 + shape[2]], shape)
    stored = (hu + 1024) / slope if slope else hu
    path = save(tmp_path / "scan.nii.gz", stored.astype(dtype), slope=slope, inter=-1024.0 if slope else 0.0)
    predict_files(student_run, [path], str(tmp_path / "out"), RAW, progress=False, log=lambda *_: None)
    written = nib.load(str(tmp_path / "out" / "scan_seg.nii.gz"))
    assert written.shape == shape and set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
    np.testing.assert_array_equal(written.affine, nib.load(path).affine)
    # The network saw the scaled HU: predicting from the true HU gives the same labels.
    model = load_inference_model(student_run)
    expected, _ = predict_volume(SlicePredictor(model), np.rint(hu.astype(np.float32)).astype(np.int16))
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected)


def test_canonical_reading_applies_scaling_in_slabs(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 4000, (11, 7, 21)).astype(np.int16)
    affine = np.array([[0, -0.7, 0, 10], [0, 0, 2.0, -5], [-0.9, 0, 0, 3], [0, 0, 0, 1]], float)
    path = save(tmp_path / "scaled.nii.gz", stored, affine, slope=0.5, inter=-1000.0)
    image = nib.load(path)
    reorientation = Reorientation.of(image)
    expected = reorientation.to_canonical(np.rint(stored * 0.5 - 1000.0).astype(np.int16))
    np.testing.assert_array_equal(read_canonical_hu(image, path, reorientation, slab=4), expected)


@pytest.mark.parametrize("sform_code, qform_code", [(1, 0), (0, 1), (2, 1)])
def test_header_geometry_is_copied_exactly(student_run, phantom, tmp_path, sform_code, qform_code):
    affine = np.array([[-0.76, 0.01, 0, 120.5], [0, -0.76, 0, 88.25], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])
    image = nib.Nifti1Image(np.rint(phantom.volume).astype(np.int16), affine)
    image.set_sform(affine if sform_code else None, sform_code)
    image.set_qform(affine if qform_code else None, qform_code)
    path = str(tmp_path / "case.nii")
    image.to_filename(path)
    source = nib.load(path)
    predict_files(student_run, [path], str(tmp_path / "out"), RAW, progress=False, log=lambda *_: None)
    written = nib.load(str(tmp_path / "out" / "case_seg.nii.gz"))
    np.testing.assert_array_equal(written.affine, source.affine)
    for coded in ("get_sform", "get_qform"):
        expected, code = getattr(source.header, coded)(coded=True)
        got, got_code = getattr(written.header, coded)(coded=True)
        assert got_code == code
        if code:
            np.testing.assert_array_equal(got, expected)


def test_probabilities_and_preview_files(student_run, saved, tmp_path):
    path = saved("LPS", "test-volume-3.nii")
    options = PredictOptions(postprocess=False, probabilities=True, preview=True, precision="float32")
    predict_files(student_run, [path], str(tmp_path / "out"), options, progress=False, log=lambda *_: None)
    labels = np.asarray(nib.load(str(tmp_path / "out" / "test-segmentation-3.nii")).dataobj)
    probabilities = nib.load(str(tmp_path / "out" / "test-segmentation-3_probabilities.nii")).get_fdata()
    assert probabilities.shape == labels.shape + (3,)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=3 / 510)
    confident = np.sort(probabilities, -1)[..., -1] - np.sort(probabilities, -1)[..., -2] > 2 / 255
    np.testing.assert_array_equal(probabilities.argmax(-1)[confident], labels[confident])
    with open(tmp_path / "out" / "test-segmentation-3.png", "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"


def test_inputs_by_folder_and_glob_through_the_cli(student_run, saved, tmp_path, capsys):
    first = saved("RAS", "volume-1.nii.gz")
    second = saved("LPS", "volume-2.nii.gz")
    before = {p: open(p, "rb").read() for p in (first, second)}
    code, out, err = run_cli(["predict", "--model", student_run, os.path.dirname(first),
                              os.path.join(os.path.dirname(second), "volume-*.nii.gz"), "-o", str(tmp_path / "preds"),
                              "--quiet"], capsys)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "preds")) == ["segmentation-1.nii.gz", "segmentation-2.nii.gz"]
    assert "done: 2 prediction(s)" in out
    assert all(open(p, "rb").read() == data for p, data in before.items())  # inputs untouched


def test_bad_inputs_give_one_line_and_write_nothing(student_run, saved, tmp_path, capsys):
    path = saved("RAS")
    out = tmp_path / "out"
    four_d = save(tmp_path / "four_d.nii.gz", np.zeros((8, 8, 4, 2), np.int16))
    expect_one_line_error(capsys, ["predict", "--model", student_run, four_d, "-o", str(out)], "four_d.nii.gz", "3D")
    expect_one_line_error(capsys, ["predict", "--model", str(tmp_path), path, "-o", str(out)], "no usable model")
    expect_one_line_error(capsys, ["predict", "--model", path, path, "-o", str(out)], "not a usable model")
    expect_one_line_error(capsys, ["predict", "--model", student_run, path, "-o", os.path.dirname(path), "--name",
                                   "{name}.nii.gz"], "would overwrite an input")
    expect_one_line_error(capsys, ["predict", "--model", student_run, str(tmp_path / "none-*.nii"), "-o", str(out)],
                          "none-*.nii")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(open(path, "rb").read()[:300])
    expect_one_line_error(capsys, ["predict", "--model", student_run, path, str(broken), "-o", str(out)],
                          "broken.nii.gz")
    assert not out.exists() or not [n for n in os.listdir(out) if n.endswith((".nii", ".nii.gz"))]


def test_a_teacher_predicts_with_a_box_file_and_refuses_without(tmp_path, saved, capsys):
    from o2l_tf.configs.model import ModelConfig
    from o2l_tf.models import TeacherAnnotator

    run = tmp_path / "teacher_run"
    run.mkdir()
    keras.utils.set_random_seed(3)
    teacher = TeacherAnnotator(ModelConfig(depth=2, base_filters=4))
    head = teacher.get_layer("segmentation_logits")
    head.set_weights([w * 300.0 for w in head.get_weights()])  # decisive random logits, as for the student
    teacher.save(str(run / "teacher.keras"))
    path = saved("LPS")
    expect_one_line_error(capsys, ["predict", "--model", str(run), path, "-o", str(tmp_path / "out")], "--boxes")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("case_id,class,x0,y0,z0,x1,y1,z1\n1,liver,5,6,0,30,33,8\n1,lesion,10,12,2,14,15,4\n")
    code, _, err = run_cli(["predict", "--model", str(run), path, "-o", str(tmp_path / "out"), "--boxes", str(boxes),
                            "--no-postprocess", "--precision", "float32", "--quiet"], capsys)
    assert code == 0, err
    written = nib.load(str(tmp_path / "out" / "segmentation-1.nii.gz"))
    source = nib.load(path)
    assert written.shape == source.shape
    # Independently: the boxes drawn on the file's grid, then nibabel's own reorientation to RAS+.
    organ, lesion = np.zeros(source.shape, np.float32), np.zeros(source.shape, np.float32)
    organ[5:31, 6:34, 0:9] = 1
    lesion[10:15, 12:16, 2:5] = 1
    organ = np.maximum(organ, lesion)  # the organ channel is the union of both boxes (paper, after Eq. 1)
    to_ras = nib.orientations.io_orientation(source.affine)
    canonical = {name: np.asarray(nib.Nifti1Image(mask, source.affine).as_reoriented(to_ras).dataobj)
                 for name, mask in (("organ", organ), ("lesion", lesion), ("hu", np.asarray(source.dataobj)))}
    network = keras.models.load_model(str(run / "teacher.keras"))
    expected = direct_probabilities(network, np.rint(canonical["hu"]).astype(np.int16), (-200.0, 250.0), 4,
                                    canonical["organ"], canonical["lesion"])
    got = np.asarray(written.as_reoriented(to_ras).dataobj)
    margin = np.diff(np.sort(expected, axis=-1)[..., -2:], axis=-1)[..., 0]
    decided = margin > 1e-4
    assert decided.mean() > 0.9
    np.testing.assert_array_equal(got[decided], expected.argmax(-1)[decided])
    without_boxes = direct_probabilities(network, np.rint(canonical["hu"]).astype(np.int16), (-200.0, 250.0), 4,
                                         0 * canonical["organ"], 0 * canonical["lesion"])
    assert (without_boxes.argmax(-1) != expected.argmax(-1)).any()  # the boxes reached the network


def test_small_lesion_removal_comes_from_the_run_and_the_option_overrides_it(student_run, saved, tmp_path, capsys):
    """export.json's postprocess.min_lesion_mm3 reaches o2l predict; --min-lesion-mm3 0 turns it off."""
    import json
    import shutil

    from scipy import ndimage

    from o2l_tf.inference.postprocess import postprocess

    volume = saved("RAS")
    run = tmp_path / "run"
    shutil.copytree(student_run, run)
    plain = tmp_path / "plain"
    predict_files(str(run), [volume], str(plain), PredictOptions(precision="float32"), progress=False,
                  log=lambda *_: None)
    labels = np.asarray(nib.load(next(str(p) for p in plain.iterdir())).dataobj)
    components, count = ndimage.label(labels == 2, np.ones((3, 3, 3)))
    assert count >= 1  # the random network predicts lesion voxels: the test means something
    voxel_mm3 = float(np.prod(nib.load(volume).header.get_zooms()[:3]))
    sizes = np.sort(np.bincount(components.ravel())[1:]) * voxel_mm3
    threshold = float(sizes[-1]) * 1.01  # every lesion component is smaller: all become liver
    info = json.loads((run / "export.json").read_text())
    (run / "export.json").write_text(json.dumps({**info, "postprocess": {"min_lesion_mm3": threshold}}))
    for option, out in ((None, "from_run"), (0.0, "off")):
        predict_files(str(run), [volume], str(tmp_path / out), PredictOptions(precision="float32",
                                                                             min_lesion_mm3=option),
                      progress=False, log=lambda *_: None)
    from_run = np.asarray(nib.load(next(str(p) for p in (tmp_path / "from_run").iterdir())).dataobj)
    off = np.asarray(nib.load(next(str(p) for p in (tmp_path / "off").iterdir())).dataobj)
    np.testing.assert_array_equal(off, labels)
    spacing = nib.load(volume).header.get_zooms()[:3]
    np.testing.assert_array_equal(from_run, postprocess(labels, spacing=spacing, min_lesion_mm3=threshold))
    assert np.count_nonzero(from_run == 2) == 0
    assert np.count_nonzero(from_run >= 1) == np.count_nonzero(labels >= 1)
    expect_one_line_error(capsys, ["predict", "--model", str(run), volume, "-o", str(tmp_path / "bad"),
                                   "--min-lesion-mm3", "-1"], "min-lesion-mm3")
