"""In-plane resampling between a scan's pixel spacing and the spacing a model was trained at.

The method is 2.5D, so only the two in-plane axes are resampled; slices stay the scan's own. Grids share the
field of view's edges (``scipy.ndimage.zoom`` with ``grid_mode=True``): a scan of H pixels of s mm becomes
round(H * s / t) pixels of about t mm, and its pixel centres map back exactly. Images use linear interpolation;
label maps and probabilities are interpolated per class (one-hot, as nnU-Net resamples segmentations) and a label
map is the argmax, so a label map taken to a grid that nests with its own (an integer factor finer) and back is
unchanged (tested). Reference labels are never resampled for scoring: ``o2l predict`` brings probabilities back to
the input grid before the argmax.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SPACING_TOLERANCE_MM = 1e-3  # spacings closer than this are equal: such a scan is not resampled at all


def resampled_shape(shape: tuple[int, int], spacing: tuple[float, float],
                    target: tuple[float, float]) -> tuple[int, int]:
    """The in-plane shape of a (H, W) grid of ``spacing`` mm resampled to ``target`` mm (at least 1 pixel)."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def needs_resampling(spacing, target) -> bool:
    """False when there is no target (native) or the in-plane spacings already agree."""
    if target is None:
        return False
    return any(abs(float(s) - float(t)) > SPACING_TOLERANCE_MM for s, t in zip(spacing[:2], target[:2]))


def grid_for(shape: tuple[int, int], spacing, target) -> tuple[int, int] | None:
    """The in-plane shape a (H, W) grid of ``spacing`` mm takes at ``target`` mm, or None when it keeps its own
    (no target, or the spacings agree): the one rule the records and ``o2l predict`` share."""
    if not needs_resampling(spacing, target):
        return None
    return resampled_shape(tuple(shape), tuple(float(s) for s in spacing[:2]), tuple(target))


def _zoom(plane: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    factors = [new / old for new, old in zip(shape, plane.shape[:2])] + [1.0] * (plane.ndim - 2)
    out = ndimage.zoom(plane, factors, order=order, mode="nearest", grid_mode=True)
    if out.shape[:2] != tuple(shape):  # zoom rounds the output shape itself; never off by more than rounding
        raise AssertionError(f"zoom gave {out.shape[:2]}, wanted {shape}")
    return out


def resample_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image [H, W] or [H, W, C] (channels are independent, e.g. three slices) on the (H', W') grid, linear.

    Integer images (int16 HU) come back rounded in their own dtype; float images as float32.
    """
    if image.shape[:2] == tuple(shape):
        return image
    out = _zoom(image.astype(np.float32, copy=False), shape, order=1)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out


def resample_probabilities(probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Class probabilities [H, W, C] on the (H', W') grid: linear per class (convex, so they still sum to 1)."""
    if probabilities.shape[:2] == tuple(shape):
        return probabilities
    return _zoom(probabilities.astype(np.float32, copy=False), shape, order=1)


def resample_labels(labels: np.ndarray, shape: tuple[int, int], classes: int) -> np.ndarray:
    """A label map [H, W] (values 0..classes-1) on the (H', W') grid: one-hot, linear per class, argmax."""
    if labels.shape[:2] == tuple(shape):
        return labels
    one_hot = (labels[..., None] == np.arange(classes, dtype=labels.dtype)).astype(np.float32)
    return resample_probabilities(one_hot, shape).argmax(axis=-1).astype(labels.dtype)


def resample_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A binary mask [H, W] or [H, W, C] (box channels) on the (H', W') grid, nearest pixel centre."""
    if mask.shape[:2] == tuple(shape):
        return mask
    return _zoom(mask, shape, order=0)


def scale_box(box, shape: tuple[int, int], new_shape: tuple[int, int]):
    """A box (x0, y0, x1, y1), inclusive pixel indices on ``shape``, covering the same field on ``new_shape``."""
    x0, y0, x1, y1 = box
    fx, fy = new_shape[0] / shape[0], new_shape[1] / shape[1]
    # pixel i covers [i, i + 1) in grid units; the box's outer edges scale with the grid
    nx0, ny0 = int(np.floor(x0 * fx)), int(np.floor(y0 * fy))
    nx1, ny1 = int(np.ceil((x1 + 1) * fx)) - 1, int(np.ceil((y1 + 1) * fy)) - 1
    return (min(max(nx0, 0), new_shape[0] - 1), min(max(ny0, 0), new_shape[1] - 1),
            min(max(nx1, nx0, 0), new_shape[0] - 1), min(max(ny1, ny0, 0), new_shape[1] - 1))
