"""The paper's post-processing of a predicted label volume (Sec. IV-B, testing phase).

1. Liver (label >= 1): keep the largest 3D connected component (26-connectivity). Lesions are liver
   voxels, so a lesion outside that component -- an extra-hepatic false positive -- goes with it.
2. Fill holes in the liver and in the lesions, slice by slice in the axial plane: a vessel crossing the
   liver is a hole in every axial slice but not in 3D, where it leaves the organ.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from o2l_tf.data.boxes import bounding_slices

TWENTY_SIX = np.ones((3, 3, 3), bool)
AXIAL_CROSS = np.zeros((3, 3, 3), bool)
AXIAL_CROSS[:, :, 1] = ndimage.generate_binary_structure(2, 1)  # in-plane neighbours only


def fill_axial_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice (axis 2) of a 3D mask in one call."""
    # Empty slices above and below keep the first and last slices off the array border, which
    # binary_fill_holes would otherwise treat as background reaching the outside.
    padded = np.pad(mask, ((0, 0), (0, 0), (1, 1)))
    return ndimage.binary_fill_holes(padded, AXIAL_CROSS)[:, :, 1:-1]


def postprocess(labels: np.ndarray) -> np.ndarray:
    """Largest liver component, holes filled, lesions only inside it (canonical uint8 labels in, out)."""
    labels = np.asarray(labels, np.uint8)
    result = np.zeros_like(labels)
    liver = labels >= 1
    if not liver.any():
        return result
    box = bounding_slices(liver)  # work on the liver's box only: label() returns int32 per voxel
    components, count = ndimage.label(liver[box], TWENTY_SIX)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    kept = components == int(np.argmax(sizes))
    del components
    kept = fill_axial_holes(kept)
    lesion = fill_axial_holes((labels[box] == 2) & kept) & kept
    cropped = result[box]
    cropped[kept] = 1
    cropped[lesion] = 2
    return result
