"""Reading NIfTI volumes safely and moving between a file's voxel grid and the canonical RAS+ grid.

Every o2l array is canonical: axes (right, anterior, superior), obtained from the file by axis
permutations and flips only (``nibabel`` orientation transforms), so the mapping is exact and invertible.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from isal import igzip
from isal.igzip_lib import IsalError
from nibabel import orientations
from nibabel.volumeutils import array_from_file

from o2l_tf import fs
from o2l_tf.errors import InputError

AFFINE_TOLERANCE = 1e-3  # mm / direction cosines: LiTS headers differ only in float noise
# what a truncated or corrupt file raises (IsalError: a corrupt deflate stream read through ISA-L)
READ_ERRORS = (OSError, EOFError, zlib.error, ValueError, IsalError)


def _open_bytes(path: str) -> bytes:
    with fs.open_file(path, "rb") as stream:
        return stream.read()


def load_image(path: str) -> nib.Nifti1Image:
    """Load a NIfTI header and lazy data from a local path or any TensorFlow file system (gs://...), or a local
    folder holding one DICOM CT series (``o2l_tf.dicom``: read whole, as a NIfTI image in memory)."""
    if not fs.is_url(path) and os.path.isdir(path):
        from o2l_tf import dicom

        if dicom.is_series_folder(path):
            return dicom.read_series(path)
        raise InputError(f"{path}: a folder without DICOM files, not an image")
    try:
        if fs.is_url(path):
            data = _open_bytes(path)
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            return nib.Nifti1Image.from_bytes(data)
        return nib.load(path)
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such file") from error
    except (*READ_ERRORS, nib.filebasedimages.ImageFileError) as error:
        raise InputError(f"{path}: not a readable NIfTI file ({_reason(error)})") from error


def _reason(error: Exception) -> str:
    return " ".join(str(error).split())[:160] or type(error).__name__


def check_3d(image: nib.Nifti1Image, path: str) -> None:
    if len(image.shape) != 3:
        raise InputError(f"{path}: expected a 3D volume, got {len(image.shape)}D shape {tuple(image.shape)}")
    if min(image.shape) < 1:
        raise InputError(f"{path}: empty volume of shape {tuple(image.shape)}")


def check_volume(path: str) -> None:
    """The checks every input gets before any work: a readable 3D image; a DICOM series by its headers alone
    (its pixels are decoded once, when the volume is read)."""
    if not fs.is_url(path) and os.path.isdir(path):
        from o2l_tf import dicom

        if dicom.is_series_folder(path):
            dicom.sorted_series(path)
            return
    check_3d(load_image(path), path)


LABELS = (0, 1, 2)


def read_labels(image: nib.Nifti1Image, path: str) -> np.ndarray:
    """A LiTS label volume as uint8 in file order; values outside {0, 1, 2} are an InputError."""
    raw, slope, inter = _unscaled(image, path)  # the file's one read
    if raw.dtype.kind in "iu" and slope == 1.0 and inter == 0.0:
        values = raw  # stored integers: no float copy
    else:  # scaled or float storage, in float32 as nibabel's get_fdata(dtype=float32) computes it
        values = raw.astype(np.float32) * np.float32(slope) + np.float32(inter)
    # Linear passes only; the sort behind np.unique (~1 s for 512x512x200) is only paid to word an error.
    in_range = values.size == 0 or (values.min() >= 0 and values.max() <= max(LABELS))
    if not in_range or (values.dtype.kind == "f" and not np.array_equal(values, np.trunc(values))):
        bad = [float(v) if v != int(v) else int(v) for v in np.unique(values) if v not in LABELS][:5]
        raise InputError(f"{path}: label values {bad} outside {{0, 1, 2}}")
    # a copy of a memory-mapped file (callers may write to it), a cast or nothing otherwise
    return np.array(values, np.uint8) if isinstance(values, np.memmap) else values.astype(np.uint8, copy=False)


def _unscaled(image: nib.Nifti1Image, path: str):
    """The stored voxel values and the header scaling (a memory map for uncompressed files)."""
    proxy = image.dataobj
    if not nib.is_proxy(proxy):
        return np.asarray(proxy), 1.0, 0.0
    try:
        raw = _stored_values(proxy)
    except READ_ERRORS as error:
        raise InputError(f"{path}: cannot read voxel data ({_reason(error)})") from error
    slope, inter = proxy.slope, proxy.inter
    return raw, float(1.0 if slope is None or not np.isfinite(slope) else slope), \
        float(0.0 if inter is None or not np.isfinite(inter) else inter)


def _stored_values(proxy) -> np.ndarray:
    """A proxy's unscaled array; a local gzip file is inflated by ISA-L, twice zlib's speed (README: dependencies)."""
    source = proxy.file_like
    if isinstance(source, str) and not fs.is_url(source):
        with open(source, "rb") as stream:
            gzipped = stream.read(2) == b"\x1f\x8b"
        if gzipped:
            with igzip.open(source, "rb") as stream:
                return array_from_file(proxy.shape, proxy.dtype, stream, proxy.offset, proxy.order, mmap=False)
    return np.asanyarray(proxy.get_unscaled())


def read_canonical_hu(image: nib.Nifti1Image, path: str, reorientation: "Reorientation", slab: int = 16,
                      window: tuple[float, float] | None = None, slice_major: bool = False) -> np.ndarray:
    """The volume on the canonical grid as int16 HU (header scaling applied, rounded, clipped to int16).

    ``window`` clips to (low, high) as well (rounded first; rint is monotone, so the order does not matter).
    ``slice_major`` returns contiguous (D, H, W) instead of (H, W, D), so each axial slice is one block of memory.
    Converted a slab of slices at a time into one output array: the peak memory is the stored data plus the
    int16 result, and no pass over the whole volume is repeated (fresh pages cost ~2 ms per 1 MB here).
    """
    raw, slope, inter = _unscaled(image, path)
    low, high = -32768, 32767
    if window is not None:
        low, high = max(low, int(np.rint(window[0]))), min(high, int(np.rint(window[1])))
    height, width, depth = reorientation.canonical_shape
    if slice_major:
        out = np.empty((depth, height, width), np.int16)
        canonical = np.moveaxis(out, 0, 2)  # an (H, W, D) view of the slice-major array
    else:
        canonical = out = np.empty((height, width, depth), np.int16)
    file_depth = reorientation.file_shape[2]
    target, flip = int(reorientation.ornt[2, 0]), reorientation.ornt[2, 1]
    exact = raw.dtype.kind in "iub" and slope == 1.0 and inter == 0.0  # integers need no float round trip
    for start in range(0, file_depth, slab):
        stop = min(start + slab, file_depth)
        if exact:
            block = np.clip(raw[:, :, start:stop], low, high)
        else:
            block = np.asarray(raw[:, :, start:stop], np.float32) * np.float32(slope) + np.float32(inter)
            if not np.isfinite(block).all():
                raise InputError(f"{path}: holds NaN or infinite voxels")
            block = np.clip(np.rint(block), low, high)
        where = [slice(None)] * 3
        where[target] = slice(start, stop) if flip > 0 else slice(file_depth - stop, file_depth - start)
        canonical[tuple(where)] = orientations.apply_orientation(block, reorientation.ornt)
    return out


def file_sha256(path: str) -> str:
    """The file's digest; of a DICOM series folder, its files' names and bytes."""
    if not fs.is_url(path) and os.path.isdir(path):
        from o2l_tf import dicom

        return dicom.series_sha256(path)
    digest = hashlib.sha256()
    if fs.is_url(path):
        digest.update(_open_bytes(path))
    else:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Reorientation:
    """The exact axis permutation/flip from a file's voxel grid to the canonical RAS+ grid."""

    ornt: np.ndarray  # nibabel orientation: row i = (canonical axis of file axis i, +1 or -1)
    file_shape: tuple[int, int, int]
    file_affine: np.ndarray

    @classmethod
    def of(cls, image: nib.Nifti1Image) -> "Reorientation":
        return cls(orientations.io_orientation(image.affine), tuple(int(n) for n in image.shape[:3]),
                   np.asarray(image.affine, float))

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        shape = [0, 0, 0]
        for axis, (target, _) in enumerate(self.ornt):
            shape[int(target)] = self.file_shape[axis]
        return tuple(shape)

    @property
    def canonical_affine(self) -> np.ndarray:
        return self.file_affine @ orientations.inv_ornt_aff(self.ornt, self.file_shape)

    @property
    def canonical_spacing(self) -> tuple[float, float, float]:
        return tuple(float(x) for x in np.linalg.norm(self.canonical_affine[:3, :3], axis=0))

    @property
    def axcodes(self) -> str:
        return "".join(orientations.aff2axcodes(self.file_affine))

    def to_canonical(self, array: np.ndarray, slice_major: bool = False) -> np.ndarray:
        """A file-grid array on the canonical grid, contiguous; (D, H, W) when ``slice_major``."""
        canonical = orientations.apply_orientation(array, self.ornt)
        return np.ascontiguousarray(np.moveaxis(canonical, 2, 0) if slice_major else canonical)

    def to_file(self, canonical: np.ndarray) -> np.ndarray:
        """Inverse of ``to_canonical``: put a canonical array back on the file's voxel grid."""
        inverse = np.zeros_like(self.ornt)
        for axis, (target, flip) in enumerate(self.ornt):
            inverse[int(target)] = (axis, flip)  # canonical axis `target` came from file axis `axis`
        return np.ascontiguousarray(orientations.apply_orientation(canonical, inverse))

    def voxel_to_canonical(self, ijk) -> tuple[int, int, int]:
        """Map one voxel index of the file to its canonical index."""
        out = [0, 0, 0]
        for axis, (target, flip) in enumerate(self.ornt):
            value = int(ijk[axis])
            out[int(target)] = value if flip > 0 else self.file_shape[axis] - 1 - value
        return tuple(out)

    def box_to_canonical(self, low, high) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Map an inclusive 3D voxel box of the file to the canonical grid (corners re-sorted)."""
        a, b = self.voxel_to_canonical(low), self.voxel_to_canonical(high)
        return tuple(min(p, q) for p, q in zip(a, b)), tuple(max(p, q) for p, q in zip(a, b))


def same_grid(first: nib.Nifti1Image, second: nib.Nifti1Image) -> bool:
    return tuple(first.shape) == tuple(second.shape) and np.allclose(first.affine, second.affine,
                                                                     atol=AFFINE_TOLERANCE)


def check_same_grid(image: nib.Nifti1Image, path: str, reference: nib.Nifti1Image, reference_path: str,
                    what: str = "") -> None:
    """``image`` (a label or prediction) must lie on ``reference``'s voxel grid: same shape, same affine."""
    name = f"{what} {os.path.basename(reference_path)}".strip()
    if tuple(image.shape) != tuple(reference.shape):
        raise InputError(f"{path}: shape {tuple(image.shape)} differs from {name} {tuple(reference.shape)}")
    if not same_grid(image, reference):
        raise InputError(f"{path}: affine differs from {name}")
