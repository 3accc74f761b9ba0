"""The paper's post-processing of a predicted label volume (Sec. IV-B, testing phase).

1. Liver (label >= 1): keep the largest 3D connected component (26-connectivity). Lesions are liver
   voxels, so a lesion outside that component -- an extra-hepatic false positive -- goes with it.
2. Fill holes in the liver and in the lesions, slice by slice in the axial plane: a vessel crossing the
   liver is a hole in every axial slice but not in 3D, where it leaves the organ.
3. Not the paper's, off unless asked (``min_lesion_mm3``): lesion components (26-connected) smaller than a
   volume become liver, nnU-Net's component post-processing. The value comes with the trained model
   (``export.json``), chosen on development cases, never on the cases it is reported on.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from o2l_tf.data.boxes import bounding_slices

TWENTY_SIX = np.ones((3, 3, 3), bool)


def fill_axial_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice (axis 2) of a 3D boolean mask, in place, one slice at a time.

    A hole is background that cannot reach the slice's border through in-plane 4-neighbours; slice by slice,
    the temporaries are one slice, not copies of the volume.
    """
    for z in range(mask.shape[2]):
        if mask[:, :, z].any():
            mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    return mask


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components as uint16 (half of label()'s default int32), int32 only past 65,535 of them."""
    try:
        return ndimage.label(mask, TWENTY_SIX, output=np.uint16)
    except RuntimeError:  # scipy: "insufficient bit-depth in requested output type"
        return ndimage.label(mask, TWENTY_SIX)


def remove_small_lesions(labels: np.ndarray, spacing, min_lesion_mm3: float) -> np.ndarray:
    """Lesion components (26-connected) of fewer than ``min_lesion_mm3`` become liver, in place."""
    if min_lesion_mm3 <= 0:
        return labels
    box = bounding_slices(labels == 2)
    if box is None:
        return labels
    components, count = _components(labels[box] == 2)
    voxel_mm3 = float(np.prod(np.asarray(spacing, float)))
    sizes = np.bincount(components.ravel(), minlength=count + 1) * voxel_mm3
    small = sizes < min_lesion_mm3
    small[0] = False
    cropped = labels[box]
    cropped[small[components]] = 1
    return labels


def postprocess(labels: np.ndarray, in_place: bool = False, spacing=None, min_lesion_mm3: float = 0.0) -> np.ndarray:
    """Largest liver component, holes filled, lesions only inside it (canonical uint8 labels in, out); with
    ``min_lesion_mm3`` > 0 (and the voxel ``spacing`` in mm), lesion components smaller than that become liver.

    ``in_place`` overwrites ``labels`` (o2l predict: no second label volume). Everything else works on the
    liver's bounding box, so a whole-volume temporary is never more than one byte per voxel of that box
    times a few.
    """
    labels = np.asarray(labels, np.uint8)
    result = labels if in_place else labels.copy()
    box = bounding_slices(labels)  # label >= 1: the liver's box
    if box is None:
        return result
    components, count = _components(labels[box] >= 1)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    kept = components == int(np.argmax(sizes))
    del components
    kept = fill_axial_holes(kept)
    lesion = labels[box] == 2
    lesion &= kept
    lesion = fill_axial_holes(lesion)
    lesion &= kept
    result.fill(0)
    cropped = result[box]
    cropped[kept] = 1
    cropped[lesion] = 2
    if min_lesion_mm3 > 0:
        if spacing is None:
            raise ValueError("min_lesion_mm3 needs the voxel spacing")
        remove_small_lesions(result, spacing, min_lesion_mm3)
    return result
