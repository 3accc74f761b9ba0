"""Bounding boxes: from masks, to box channels, and the perturbation of Sec. IV-F.

A box is ``(x0, y0, x1, y1)`` in inclusive pixel indices of a 2D slice (x along the first array axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]
EIGHT_CONNECTED = np.ones((3, 3), bool)


def boxes_from_mask(mask: np.ndarray) -> list[Box]:
    """Circumscribed rectangle of each 8-connected component of a 2D mask, in scan order."""
    components, count = ndimage.label(np.asarray(mask, bool), EIGHT_CONNECTED)
    if count == 0:
        return []
    return [(s[0].start, s[1].start, s[0].stop - 1, s[1].stop - 1) for s in ndimage.find_objects(components)]


def slice_boxes(label: np.ndarray) -> tuple[list[Box], list[Box]]:
    """Organ boxes (components of label >= 1) and lesion boxes (components of label == 2) of a slice.

    Components are labelled inside the rectangle that holds every labelled pixel (a few % of a CT slice).
    """
    window = bounding_slices(label >= 1)
    if window is None:
        return [], []
    crop, x, y = label[window], window[0].start, window[1].start

    def in_slice(mask):
        return [(x0 + x, y0 + y, x1 + x, y1 + y) for x0, y0, x1, y1 in boxes_from_mask(mask)]

    return in_slice(crop >= 1), in_slice(crop == 2)


def bounding_slices(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """The index box of a mask's voxels (any rank), grown by ``margin`` inside the array; None when empty.

    Found from the per-axis projections: a few linear passes, no coordinate list of every voxel.
    """
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if present.size == 0:
            return None
        box.append(slice(max(int(present[0]) - margin, 0), min(int(present[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def rasterize(boxes: list[Box], shape: tuple[int, int]) -> np.ndarray:
    """Binary uint8 mask that is 1 inside any of ``boxes``."""
    mask = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[x0:x1 + 1, y0:y1 + 1] = 1
    return mask


def box_channels(organ_boxes: list[Box], lesion_boxes: list[Box], shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) uint8: organ channel = union of organ and lesion boxes (paper, after Eq. 1), lesion channel."""
    lesion = rasterize(lesion_boxes, shape)
    organ = np.maximum(rasterize(organ_boxes, shape), lesion)
    return np.stack([organ, lesion], axis=-1)


def box_partition(channels: np.ndarray) -> np.ndarray:
    """Sec. III-D's partition of a slice by its boxes (the localization target, and the naive pseudo-label):
    lesion box -> 2, organ box only -> 1, else 0. The NumPy twin of ``pipeline.box_partition`` (tested equal)."""
    return np.where(channels[..., 1] > 0.5, 2, channels[..., 0] > 0.5).astype(np.uint8)


def box_partition_volume(canonical_label: np.ndarray) -> np.ndarray:
    """Each axial slice of a canonical label volume replaced by the partition of its circumscribed boxes."""
    result = np.zeros(canonical_label.shape, np.uint8)
    for z in range(canonical_label.shape[2]):
        organ, lesion = slice_boxes(canonical_label[:, :, z])
        result[:, :, z] = box_partition(box_channels(organ, lesion, canonical_label.shape[:2]))
    return result


@dataclass(frozen=True)
class Perturbation:
    """Sec. IV-F: scale each box by U(scale) about its centre, then move each side by less than
    ``shift`` times the box side (the paper's 'each vertex moved by less than 1/20 of the side')."""

    scale: tuple[float, float]
    shift: float


LIVER_PERTURBATION = Perturbation(scale=(0.95, 1.1), shift=1 / 20)
LESION_PERTURBATION = Perturbation(scale=(0.9, 1.2), shift=1 / 10)


def perturb_box(box: Box, rng: np.random.Generator, rule: Perturbation, shape: tuple[int, int]) -> Box:
    """One perturbed box, rounded to pixels and clipped to the image; never inverted."""
    x0, y0, x1, y1 = box
    sides = np.array([x1 - x0 + 1, y1 - y0 + 1], float)
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    scale = rng.uniform(*rule.scale)
    half = sides * scale / 2
    low = center - half + 0.5 + rng.uniform(-rule.shift, rule.shift, 2) * sides
    high = center + half - 0.5 + rng.uniform(-rule.shift, rule.shift, 2) * sides
    low = np.clip(np.rint(low), 0, np.array(shape) - 1).astype(int)
    high = np.clip(np.rint(high), 0, np.array(shape) - 1).astype(int)
    high = np.maximum(high, low)
    return int(low[0]), int(low[1]), int(high[0]), int(high[1])

