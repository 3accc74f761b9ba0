"""One synthetic LiTS-like CT case: geometry, lesions, contrast phase, noise and orientation.

The numbers come from the LiTS facts listed in the README's "What a phantom contains" table.
A case is generated in the canonical RAS+ voxel order and only stored in its drawn orientation,
so the same anatomy can be written in several orientations for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from scipy import ndimage

from o2l_tf.synth.geometry import LESION, Anatomy
from o2l_tf.synth.noise import ScanNoise
from o2l_tf.synth.rendering import SliceGrid, render_slice
from o2l_tf.synth.sampling import sample_anatomy
from o2l_tf.synth.tissues import sample_tissues

# Orientations met in LiTS (axis codes of the stored voxel axes), with how often we draw them.
ORIENTATIONS = {"LPS": 0.3, "RAS": 0.2, "LAS": 0.15, "RAI": 0.1, "PRS": 0.1, "LPI": 0.1, "ALS": 0.05}
SLICE_THICKNESSES_MM = (0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
REFERENCE_SIZE = 512


@dataclass
class Phantom:
    """A generated case in canonical RAS+ voxel order (axes: right, anterior, superior)."""

    index: int
    volume: np.ndarray  # int16 HU, (size, size, slices)
    segmentation: np.ndarray  # uint8 {0, 1, 2}
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    orientation: str
    phase: str
    lesions: list[dict] = field(default_factory=list)
    anatomy: Anatomy | None = field(default=None, repr=False)  # the geometry, for checks

    @property
    def affine_ras(self) -> np.ndarray:
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = self.origin
        return affine

    def to_nifti(self, orientation: str | None = None) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
        """Volume and segmentation images stored in ``orientation`` (default: the case's own)."""
        target = nib.orientations.axcodes2ornt(tuple(orientation or self.orientation))
        transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(self.affine_ras), target)
        images = []
        for data in (self.volume, self.segmentation):
            image = nib.Nifti1Image(data, self.affine_ras).as_reoriented(transform)
            image = nib.Nifti1Image(np.ascontiguousarray(image.dataobj), image.affine)
            image.header.set_data_dtype(data.dtype)
            image.header.set_xyzt_units("mm", "sec")
            image.set_qform(image.affine, code=1)
            image.set_sform(image.affine, code=1)
            images.append(image)
        return images[0], images[1]

    def summary(self) -> dict:
        voxel_ml = float(np.prod(self.spacing)) / 1000.0
        liver_voxels = int(np.count_nonzero(self.segmentation))
        lesion_components = int(ndimage.label(self.segmentation == LESION, np.ones((3, 3, 3)))[1])
        return {
            "case": self.index,
            "shape": list(self.volume.shape),
            "spacing_mm": [round(float(x), 4) for x in self.spacing],
            "orientation": self.orientation,
            "phase": self.phase,
            "liver_volume_ml": round(liver_voxels * voxel_ml, 1),
            "lesions_planted": len(self.lesions),
            "lesion_components_in_label": lesion_components,
            "lesion_volume_ml": round(int(np.count_nonzero(self.segmentation == LESION)) * voxel_ml, 2),
            "lesions": self.lesions,
        }


def _choose(rng: np.random.Generator, weighted: dict):
    keys = list(weighted)
    p = np.array([weighted[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def generate_phantom(index: int, size: int = 512, slices: tuple[int, int] = (60, 120), seed: int = 0,
                     orientation: str | None = None) -> Phantom:
    """Generate case ``index`` of the cohort defined by ``seed``; identical arguments give identical arrays."""
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    if not 1 <= slices[0] <= slices[1]:
        raise ValueError(f"slices must be a range 1 <= low <= high, got {slices[0]}:{slices[1]}")
    rng = np.random.default_rng([seed, index])
    body_scale = rng.uniform(0.9, 1.1)
    phase = "portal_venous" if rng.uniform() < 0.7 else "non_contrast"
    tissues = sample_tissues(rng, phase)
    anatomy = sample_anatomy(rng, body_scale, phase)
    orientation = orientation or _choose(rng, ORIENTATIONS)

    # In-plane spacing: the body fills 70-92% of the field (LITS.md: 0.56-1.0 mm at 512 px).
    fill = rng.uniform(0.70, 0.92)
    pixel_512 = float(np.clip(2 * anatomy.abdomen.body_semi[0] / fill / REFERENCE_SIZE, 0.56, 1.0))
    pixel_mm = pixel_512 * REFERENCE_SIZE / size
    # Slice count and thickness: a 17-38 cm scan, in a standard reconstruction thickness.
    n_slices = int(rng.integers(slices[0], slices[1] + 1))
    coverage = rng.uniform(170, 380)
    wanted = coverage / n_slices
    thickness = min(SLICE_THICKNESSES_MM, key=lambda t: abs(t - wanted))
    length = n_slices * thickness
    height = anatomy.abdomen.liver_height
    if length >= height:
        bottom = -height - rng.uniform(0.3, 0.7) * (length - height)
    else:
        bottom = -height + rng.uniform(0.0, 1.0) * (height - length)
    offset_u, offset_v = rng.uniform(-0.04, 0.04, 2) * size * pixel_mm

    axis = (np.arange(size, dtype=np.float32) - (size - 1) / 2) * np.float32(pixel_mm)
    u, v = np.meshgrid(axis - offset_u, axis - offset_v, indexing="ij")
    grid = SliceGrid(anatomy, u, v, pixel_mm)
    heights = bottom + (np.arange(n_slices) + 0.5) * thickness
    noise_rng = np.random.default_rng([seed, index, 1])
    # Noise per voxel of the 512-px reference grid (LITS.md: SD 10-25 HU, smoothed in-plane by 0.5-1 of its
    # pixels), averaged over each rendered pixel: coarser renderings are less noisy, as a downsampled scan is.
    noise = ScanNoise(REFERENCE_SIZE * pixel_512, size, sd_hu=rng.uniform(10, 25), sigma_ref_px=rng.uniform(0.5, 1.0))
    psf_sigma = rng.uniform(0.4, 0.8)

    volume = np.empty((size, size, n_slices), np.int16)
    segmentation = np.empty((size, size, n_slices), np.uint8)
    for k, w in enumerate(heights):
        hu, label = render_slice(anatomy, tissues, grid, float(w))
        hu = ndimage.gaussian_filter(hu, psf_sigma) + noise.slice(noise_rng)
        volume[:, :, k] = np.clip(np.rint(hu), -1024, 3071)
        segmentation[:, :, k] = label
    origin = (float(axis[0] - offset_u), float(axis[0] - offset_v), float(heights[0]))
    return Phantom(index=index, volume=volume, segmentation=segmentation,
                   spacing=(pixel_mm, pixel_mm, float(thickness)), origin=origin,
                   orientation=orientation, phase=phase, lesions=[lesion.record() for lesion in anatomy.lesions],
                   anatomy=anatomy)
