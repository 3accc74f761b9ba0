"""Reading o2l TFRecords: the manifest, its schema version, and decoded examples."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from o2l_tf.data import schema
from o2l_tf.data.manifest import load_manifest  # noqa: F401  (re-exported: readers use records.load_manifest)


def split_files(records_dir: str, split: str, manifest: dict | None = None) -> list[str]:
    manifest = manifest or load_manifest(records_dir)
    return [os.path.join(records_dir, name) for name in manifest["splits"][split]["shards"]]


def compression(manifest: dict) -> str:
    value = manifest["preprocessing"]["compression"]
    return "" if value == "none" else value


def target_spacing(manifest: dict):
    """The records' in-plane spacing (x, y) in mm, or None when they keep every scan's own (``--spacing native``
    and builds from before the option)."""
    target = manifest.get("preprocessing", {}).get("spacing", {}).get("target_mm")
    return None if target is None else (float(target[0]), float(target[1]))


def normalize_hu(hu, hu_window=schema.PAPER_HU_WINDOW):
    """The network's input scaling: HU clipped to the window, then mapped to [0, 1]."""
    low, high = hu_window[0], hu_window[1]
    return (tf.clip_by_value(tf.cast(hu, tf.float32), low, high) - low) / (high - low)


def quantise_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Class probabilities stored as uint8: round(p * 255), error <= 1/510."""
    return np.rint(np.clip(probabilities, 0.0, 1.0) * schema.PROBABILITY_LEVELS).astype(np.uint8)


def _boxes(sparse) -> tf.Tensor:
    return tf.reshape(tf.sparse.to_dense(sparse), [-1, 4])


def parse_example(serialized, hu_window=None) -> dict:
    """Decode one example: ``image`` float32 (H, W, 3) in [0, 1], ``hu`` int16, ``label`` uint8 (H, W)
    (zeros when ``has_label`` is 0), ``box_channels`` float32 (H, W, 2), boxes as (N, 4) int64.

    ``image`` is ``hu`` scaled with ``hu_window`` (low, high), by default the window the records were clipped to.
    """
    features = tf.io.parse_single_example(serialized, schema.parse_spec())
    version = features[schema.SCHEMA_VERSION_KEY]
    tf.debugging.assert_equal(version, tf.constant(schema.SCHEMA_VERSION, tf.int64),
                              message=f"example of another schema version; this o2l reads {schema.SCHEMA_VERSION}")
    height = tf.cast(features[schema.HEIGHT], tf.int32)
    width = tf.cast(features[schema.WIDTH], tf.int32)
    hu = tf.reshape(tf.io.decode_raw(features[schema.IMAGE], tf.int16, little_endian=True),
                    [height, width, schema.IMAGE_CHANNELS])
    image = normalize_hu(hu, features[schema.HU_WINDOW] if hu_window is None else hu_window)
    has_label = features[schema.HAS_LABEL]
    label = tf.cond(
        has_label > 0,
        lambda: tf.reshape(tf.io.decode_raw(features[schema.LABEL], tf.uint8), [height, width]),
        lambda: tf.zeros([height, width], tf.uint8),
    )
    channels = tf.reshape(tf.io.decode_raw(features[schema.BOX_CHANNELS], tf.uint8), [height, width, 2])
    return {
        "image": image,
        "hu": hu,
        "label": label,
        "has_label": has_label,
        "box_channels": tf.cast(channels, tf.float32),
        "organ_boxes": _boxes(features[schema.ORGAN_BOXES]),
        "lesion_boxes": _boxes(features[schema.LESION_BOXES]),
        "case_id": features[schema.CASE_ID],
        "split": features[schema.SPLIT],
        "slice_index": features[schema.SLICE_INDEX],
        "num_slices": features[schema.NUM_SLICES],
        "spacing": features[schema.SPACING],
        "boxes_source": features[schema.BOXES_SOURCE],
        "boxes_perturbed": features[schema.BOXES_PERTURBED],
    }


def read_split(records_dir: str, split: str, manifest: dict | None = None) -> tf.data.Dataset:
    """All examples of ``split`` in stored order, decoded (for inspection, evaluation and tests)."""
    manifest = manifest or load_manifest(records_dir)
    files = split_files(records_dir, split, manifest)
    dataset = tf.data.TFRecordDataset(files, compression_type=compression(manifest)) if files else \
        tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
    return dataset.map(parse_example)
