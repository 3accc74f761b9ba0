"""The TFRecord schema: every feature key, defined once for the writer and the reader.

One example = one axial position of a canonical (RAS+) volume:
- ``image``: the slice and its two neighbours, (H, W, 3) int16 HU clipped to the window, little-endian
  raw bytes, channels ordered (below, centre, above); edge slices are replicated. H runs along the
  canonical first axis (patient right), W along the second (anterior).
- ``label``: (H, W) uint8 labels 0/1/2 of the centre slice; only in strong and val examples.
- ``box_channels``: (H, W, 2) uint8 binary masks (organ, lesion) of the centre slice's boxes, as the
  teacher consumes them; the organ channel is the union of liver and lesion boxes (paper, Eq. 1).
- ``organ_boxes`` / ``lesion_boxes``: the same boxes as flat int64 lists ``x0, y0, x1, y1, ...``
  (inclusive canonical pixel indices, x along H, y along W).
"""

from __future__ import annotations

from o2l_tf.data.tfrecord_wire import BYTES, FLOAT, INT64, encode_example

SCHEMA_VERSION = 1

NUM_CLASSES = 3  # background, liver, lesion: the LiTS labels every record, soft label and model output carries
PROBABILITY_LEVELS = 255  # probabilities stored as uint8 round(p * 255) (soft labels, --probabilities): error <= 1/510

# Identity and geometry
SCHEMA_VERSION_KEY = "schema_version"
CASE_ID = "case_id"
SPLIT = "split"
SLICE_INDEX = "slice_index"
NUM_SLICES = "num_slices"
HEIGHT = "height"
WIDTH = "width"
SPACING = "spacing"  # (x, y, z) in mm, canonical axes
HU_WINDOW = "hu_window"  # (low, high) the image was clipped to

# Pixels
IMAGE = "image"
LABEL = "label"
HAS_LABEL = "has_label"
BOX_CHANNELS = "box_channels"

# Boxes
ORGAN_BOXES = "organ_boxes"
LESION_BOXES = "lesion_boxes"
BOXES_SOURCE = "boxes_source"  # "mask" (circumscribed rectangles of the label) or "user" (a box file)
BOXES_PERTURBED = "boxes_perturbed"

# Soft pseudo-labels (written beside weak shards by `o2l pseudo-label`)
SOFT_LABEL = "soft_label"

SPLITS = ("strong", "weak", "val")
PAPER_HU_WINDOW = (-200.0, 250.0)  # Sec. IV-A: HU truncated to [-200, 250]
IMAGE_CHANNELS = 3
BOX_CHANNEL_NAMES = ("organ", "lesion")
MANIFEST = "manifest.json"


def shard_name(split: str, index: int, count: int) -> str:
    """``strong-00000-of-00008.tfrecord``: the Model Garden convention."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def serialize_example(image: bytes, box_channels: bytes, *, case_id: str, split: str, slice_index: int,
                      num_slices: int, height: int, width: int, spacing, hu_window, organ_boxes, lesion_boxes,
                      boxes_source: str, boxes_perturbed: bool, label: bytes | None = None) -> bytes:
    """The ``tf.train.Example`` bytes of one three-slice group (the writer's only way to build one)."""
    feature = {
        SCHEMA_VERSION_KEY: (INT64, [SCHEMA_VERSION]),
        CASE_ID: (BYTES, [case_id.encode()]),
        SPLIT: (BYTES, [split.encode()]),
        SLICE_INDEX: (INT64, [slice_index]),
        NUM_SLICES: (INT64, [num_slices]),
        HEIGHT: (INT64, [height]),
        WIDTH: (INT64, [width]),
        SPACING: (FLOAT, spacing),
        HU_WINDOW: (FLOAT, hu_window),
        IMAGE: (BYTES, [image]),
        HAS_LABEL: (INT64, [label is not None]),
        BOX_CHANNELS: (BYTES, [box_channels]),
        ORGAN_BOXES: (INT64, organ_boxes),
        LESION_BOXES: (INT64, lesion_boxes),
        BOXES_SOURCE: (BYTES, [boxes_source.encode()]),
        BOXES_PERTURBED: (INT64, [boxes_perturbed]),
    }
    if label is not None:
        feature[LABEL] = (BYTES, [label])
    return encode_example(feature)


def parse_spec():
    """The ``tf.io.parse_single_example`` spec; ``label`` defaults to empty bytes in weak examples."""
    import tensorflow as tf

    return {
        SCHEMA_VERSION_KEY: tf.io.FixedLenFeature([], tf.int64),
        CASE_ID: tf.io.FixedLenFeature([], tf.string),
        SPLIT: tf.io.FixedLenFeature([], tf.string),
        SLICE_INDEX: tf.io.FixedLenFeature([], tf.int64),
        NUM_SLICES: tf.io.FixedLenFeature([], tf.int64),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        SPACING: tf.io.FixedLenFeature([3], tf.float32),
        HU_WINDOW: tf.io.FixedLenFeature([2], tf.float32),
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        HAS_LABEL: tf.io.FixedLenFeature([], tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.string, default_value=b""),
        BOX_CHANNELS: tf.io.FixedLenFeature([], tf.string),
        ORGAN_BOXES: tf.io.VarLenFeature(tf.int64),
        LESION_BOXES: tf.io.VarLenFeature(tf.int64),
        BOXES_SOURCE: tf.io.FixedLenFeature([], tf.string),
        BOXES_PERTURBED: tf.io.FixedLenFeature([], tf.int64),
    }
