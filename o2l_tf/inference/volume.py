"""Predicting a whole canonical volume: every three-slice group, batched, padded to the network's multiple.

When the network was trained at another in-plane spacing, each batch of groups is resampled to the network's grid
and its probabilities brought back to the volume's own grid before the argmax (``o2l_tf.data.resample``).
Memory: the network sees ``batch_size`` slices at a time and only the argmax labels (uint8) -- and, when
asked, uint8-quantised probabilities -- are kept per voxel, so the peak grows with the volume, not with
slices x activations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from o2l_tf.data import resample
from o2l_tf.data.pipeline import pad_to_multiple
from o2l_tf.data.records import normalize_hu, quantise_probabilities
from o2l_tf.inference.loading import InferenceModel


class SlicePredictor:
    """Three-slice HU groups [B, H, W, 3] (+ box channels [B, H, W, 2]) -> probabilities [B, H, W, 3]."""

    def __init__(self, model: InferenceModel, tta: bool = False):
        self.model = model
        self.tta = tta
        self._forward = tf.function(self._probabilities, reduce_retracing=True)

    def _network(self, image, boxes):
        inputs = {"image": image}
        if boxes is not None:
            inputs.update(organ_box=boxes[..., :1], lesion_box=boxes[..., 1:2])
        output = self.model.network(inputs, training=False)
        return tf.cast(output["segmentation"] if isinstance(output, dict) else output, tf.float32)

    def _padded_pass(self, hu, boxes):
        height, width = tf.shape(hu)[1], tf.shape(hu)[2]
        divisor = self.model.divisor
        # Padding is 0 after scaling, i.e. the window's low end, as in validation during training.
        image = pad_to_multiple(normalize_hu(hu, self.model.hu_window), divisor)
        boxes = None if boxes is None else pad_to_multiple(boxes, divisor)
        return self._network(image, boxes)[:, :height, :width]

    def _probabilities(self, hu, boxes=None):
        probabilities = self._padded_pass(hu, boxes)
        if self.tta:  # the left-right mirrored slices, their prediction mirrored back, averaged
            mirrored = self._padded_pass(tf.reverse(hu, [1]), None if boxes is None else tf.reverse(boxes, [1]))
            probabilities = 0.5 * (probabilities + tf.reverse(mirrored, [1]))
        return probabilities

    def __call__(self, hu: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """``boxes`` for a teacher only; a student's network never sees any."""
        if self.model.needs_boxes != (boxes is not None):
            raise ValueError(f"a {self.model.role} takes {'box channels' if self.model.needs_boxes else 'no boxes'}")
        if boxes is None:
            return self._forward(tf.constant(hu)).numpy()
        return self._forward(tf.constant(hu), tf.constant(boxes, tf.float32)).numpy()


def three_slice_groups(depth: int, slices: np.ndarray) -> np.ndarray:
    """Indices (z-1, z, z+1) for each z, edge slices replicated as in the records."""
    return np.clip(np.stack([slices - 1, slices, slices + 1], axis=-1), 0, depth - 1)


def predict_volume(predictor: SlicePredictor, hu: np.ndarray, batch_size: int = 4,
                   box_channels: Callable[[int], np.ndarray] | None = None, probabilities: bool = False,
                   on_batch: Callable[[int], None] | None = None, grid: tuple[int, int] | None = None):
    """Labels (uint8, canonical grid) and optionally probabilities (uint8, p * 255 rounded) of a volume.

    ``hu``: canonical int16 HU [X, Y, Z]; slices are axial (axis 2), as in the records.
    ``box_channels(z)`` -> [X, Y, 2] boxes of slice z, for a teacher.
    ``grid``: the network's in-plane shape (``resample.grid_for``) when it differs from the volume's; the outputs are
    always on the volume's own grid.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    depth = hu.shape[2]
    labels = np.empty(hu.shape, np.uint8)
    quantised = np.empty(hu.shape + (3,), np.uint8) if probabilities else None
    for start in range(0, depth, batch_size):
        slices = np.arange(start, min(start + batch_size, depth))
        groups = np.moveaxis(hu[:, :, three_slice_groups(depth, slices)], 2, 0)  # [B, X, Y, 3]
        boxes = np.stack([box_channels(int(z)) for z in slices]) if box_channels else None
        if grid is None:
            output = predictor(groups, boxes)
        else:
            groups = np.stack([resample.resample_image(group, grid) for group in groups])
            boxes = None if boxes is None else np.stack([resample.resample_mask(b, grid) for b in boxes])
            output = np.stack([resample.resample_probabilities(p, hu.shape[:2]) for p in predictor(groups, boxes)])
        labels[:, :, slices] = np.moveaxis(output.argmax(axis=-1).astype(np.uint8), 0, 2)
        if quantised is not None:
            quantised[:, :, slices] = np.moveaxis(quantise_probabilities(output), 0, 2)
        if on_batch:
            on_batch(len(slices))
    return labels, quantised
