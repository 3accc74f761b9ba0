"""SavedModel export of inference models for serving: HU in, class probabilities out."""

from __future__ import annotations

import keras
import tensorflow as tf

from o2l_tf.data.records import normalize_hu
from o2l_tf.data.schema import PAPER_HU_WINDOW


def export_saved_model(model: keras.Model, path: str, hu_window=PAPER_HU_WINDOW) -> None:
    """Write ``model`` as a SavedModel with a ``serve`` signature taking three-slice HU images.

    Student (inference model): ``serve(hu: float32 [B, H, W, 3]) -> probabilities [B, H, W, 3]``.
    Teacher: ``serve(hu, organ_box [B, H, W, 1], lesion_box [B, H, W, 1]) -> probabilities``.
    H and W must be multiples of 2**depth (16 by default).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    hu_spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="hu")
    if set(model.input) == {"image"}:
        def serve(hu):
            return model({"image": normalize_hu(hu, hu_window)}, training=False)

        archive.add_endpoint("serve", serve, input_signature=[hu_spec])
    else:
        box_spec = tf.TensorSpec([None, None, None, 1], tf.float32)

        def serve(hu, organ_box, lesion_box):
            return model({"image": normalize_hu(hu, hu_window), "organ_box": organ_box, "lesion_box": lesion_box},
                         training=False)

        archive.add_endpoint("serve", serve, input_signature=[hu_spec, box_spec, box_spec])
    archive.write_out(path, verbose=False)
