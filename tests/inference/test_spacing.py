"""o2l predict at the model's spacing: the same anatomy scanned at 0.7 and 1.5 mm gets the same labels.

The network here is a fixed rule with a size in pixels (a 9-pixel mean, a HU range, a 7-pixel erosion), so its
labels depend on the pixel size unless predict resamples to the spacing the model declares; a trained network
behaves the same way, less visibly.
"""

from __future__ import annotations

import json
import os

import keras
import nibabel as nib
import numpy as np
import pytest

from o2l_tf.data import resample
from o2l_tf.inference.predict import PredictOptions, predict_files
from o2l_tf.synth.phantom import generate_phantom

OPTIONS = PredictOptions(postprocess=False, precision="float32")


def rule_network() -> keras.Model:
    """Normalised HU -> 'liver' where the 9x9 mean of the centre slice lies in [0.5, 0.75], eroded by 7 pixels."""
    constant = keras.initializers.Constant
    image = keras.Input((None, None, 3), name="image")
    centre = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=constant([[[[0.0], [1.0], [0.0]]]]))(image)
    mean = keras.layers.AveragePooling2D(9, strides=1, padding="same")(centre)
    above = keras.layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=constant(40.0),
                                bias_initializer=constant(-40.0 * 0.5))(mean)
    below = keras.layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=constant(-40.0),
                                bias_initializer=constant(40.0 * 0.75))(mean)
    inside = keras.layers.Multiply()([above, below])
    negated = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=constant(-1.0))(inside)
    eroded = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=constant(-1.0))(
        keras.layers.MaxPooling2D(7, strides=1, padding="same")(negated))
    # probabilities (1 - e, e, 0): a convex pair, exactly what an argmax and resampling need
    probabilities = keras.layers.Conv2D(3, 1, kernel_initializer=constant([[[[-1.0, 1.0, 0.0]]]]),
                                        bias_initializer=constant([1.0, 0.0, 0.0]))(eroded)
    return keras.Model(inputs={"image": image}, outputs=probabilities, name="rule")


def save_run(folder, spacing):
    os.makedirs(folder, exist_ok=True)
    rule_network().save(os.path.join(folder, "student.keras"))
    with open(os.path.join(folder, "export.json"), "w") as stream:
        json.dump({"hu_window": [-200.0, 250.0], "spacing_mm": spacing}, stream)
    return str(folder)


@pytest.fixture(scope="module")
def two_scans(tmp_path_factory):
    """One anatomy rendered at about 0.7 and 1.5 mm pixels (the same field of view and slices)."""
    folder = tmp_path_factory.mktemp("two_scans")
    index, seed, slices = 3, 21, (3, 3)
    pixel_512 = generate_phantom(index, size=64, slices=slices, seed=seed, orientation="RAS").spacing[0] * 64 / 512
    paths = {}
    for name, pixel in (("fine", 0.7), ("coarse", 1.5)):
        phantom = generate_phantom(index, size=int(round(512 * pixel_512 / pixel)), slices=slices, seed=seed,
                                   orientation="RAS")
        volume, _ = phantom.to_nifti()
        paths[name] = str(folder / name / "volume-3.nii.gz")
        os.makedirs(os.path.dirname(paths[name]))
        volume.to_filename(paths[name])
    return paths


def _predict(run, path, out):
    predict_files(run, [path], str(out), OPTIONS, progress=False, log=lambda *_: None)
    return np.asarray(nib.load(os.path.join(out, os.listdir(out)[0])).dataobj)


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _agreement(fine, coarse):
    """Liver Dice of the coarse scan's labels, resampled onto the fine grid, against the fine scan's."""
    on_fine = np.stack([resample.resample_labels(coarse[:, :, z], fine.shape[:2], 3) for z in range(fine.shape[2])],
                       axis=-1)
    return dice(fine == 1, on_fine == 1)


def test_the_same_anatomy_at_two_pixel_sizes_gets_the_same_labels(two_scans, tmp_path):
    resampled = save_run(tmp_path / "at-1mm", [1.0, 1.0])
    native = save_run(tmp_path / "native", None)
    labels = {(run, name): _predict(run, path, tmp_path / f"{os.path.basename(run)}-{name}")
              for run in (resampled, native) for name, path in two_scans.items()}
    for (run, name), label in labels.items():
        assert label.shape == nib.load(two_scans[name]).shape and 0.02 < (label == 1).mean() < 0.6
    with_resampling = _agreement(labels[resampled, "fine"], labels[resampled, "coarse"])
    without = _agreement(labels[native, "fine"], labels[native, "coarse"])
    assert with_resampling >= 0.95
    assert without < with_resampling - 0.1  # the same rule on native pixels: 0.78 here, resolution-dependent


def test_a_scan_at_the_models_spacing_is_not_resampled(two_scans, tmp_path):
    image = nib.load(two_scans["fine"])
    spacing = [float(s) for s in image.header.get_zooms()[:2]]
    at_its_spacing = _predict(save_run(tmp_path / "same", spacing), two_scans["fine"], tmp_path / "a")
    native = _predict(save_run(tmp_path / "native", None), two_scans["fine"], tmp_path / "b")
    assert np.array_equal(at_its_spacing, native)


def test_outputs_stay_on_the_input_grid_bit_for_bit(two_scans, tmp_path):
    run = save_run(tmp_path / "at-1mm", [1.0, 1.0])
    predict_files(run, [two_scans["coarse"]], str(tmp_path / "out"), OPTIONS, progress=False, log=lambda *_: None)
    source = nib.load(two_scans["coarse"])
    out = nib.load(str(tmp_path / "out" / os.listdir(tmp_path / "out")[0]))
    assert out.shape == source.shape and np.array_equal(out.affine, source.affine)
    assert out.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}
