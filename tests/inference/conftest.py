"""A small random-weight student saved as a run folder, and phantoms to predict."""

from __future__ import annotations

import json
import os

import keras
import pytest

from o2l_tf.synth.phantom import generate_phantom


@pytest.fixture(scope="session")
def student_run(tmp_path_factory):
    """Run folder with a depth-3 (divisor 8), base-4 student and an export.json naming its HU window."""
    from o2l_tf.configs.model import ModelConfig
    from o2l_tf.models import StudentSegmentor

    folder = tmp_path_factory.mktemp("student_run")
    keras.utils.set_random_seed(7)  # the same random network whatever ran before
    model = StudentSegmentor(ModelConfig(depth=3, base_filters=4))
    head = model.get_layer("segmentation_logits")
    head.set_weights([w * 300.0 for w in head.get_weights()])  # decisive random logits: few near-ties to argmax
    model.save(str(folder / "student.keras"))  # the whole student: predict must drop the branch itself
    with open(folder / "export.json", "w") as stream:
        json.dump({"hu_window": [-150.0, 250.0]}, stream)
    return str(folder)


@pytest.fixture(scope="session")
def phantom():
    return generate_phantom(1, size=40, slices=(9, 9), seed=4, orientation="RAS")


@pytest.fixture()
def saved(tmp_path, phantom):
    """Save the phantom in an orientation; returns the volume path."""

    def save(orientation="RAS", name="volume-1.nii.gz"):
        volume, label = phantom.to_nifti(orientation)
        folder = tmp_path / orientation
        os.makedirs(folder, exist_ok=True)
        volume.to_filename(str(folder / name))
        label.to_filename(str(folder / name.replace("volume", "segmentation")))
        return str(folder / name)

    return save
