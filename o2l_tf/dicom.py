"""A folder holding one DICOM CT series, read with pydicom into the NIfTI image o2l reads everywhere else.

Slices are sorted by their position along the slice normal (ImagePositionPatient projected on the cross product of
the ImageOrientationPatient directions), pixel values become HU with each slice's RescaleSlope / RescaleIntercept,
and the affine maps voxel (column, row, slice) to NIfTI's RAS+ world (DICOM's patient frame is LPS+, so x and y
change sign). Everything o2l refuses, it refuses with one line naming the folder: no DICOM file, two series, a
non-CT modality, missing geometry, gantry tilt, uneven slice spacing (missing slices), differing slice sizes or
orientations, pixel data that cannot be decoded.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

from o2l_tf.errors import InputError

SPACING_TOLERANCE = 0.01  # relative: slice gaps that differ by more are uneven (a missing slice doubles one)
TILT_TOLERANCE = 1e-3  # |cos| between the slice step and the normal below 1 - this: the gantry was tilted


def is_dicom_file(path: str) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def series_files(folder: str) -> list[str]:
    """The DICOM files directly inside ``folder`` (sorted by name; other files are ignored)."""
    if not os.path.isdir(folder):
        return []
    return sorted(p for p in (os.path.join(folder, n) for n in os.listdir(folder)) if os.path.isfile(p)
                  and is_dicom_file(p))


def is_series_folder(path: str) -> bool:
    return bool(series_files(path))


def _needs(dataset, keyword: str, folder: str, path: str):
    value = getattr(dataset, keyword, None)
    if value is None or value == "":
        raise InputError(f"{folder}: {os.path.basename(path)} has no {keyword}; o2l needs it to place the slice")
    return value


def sorted_series(folder: str):
    """(paths sorted along the slice normal, in-plane shape (rows, columns), RAS affine) of the series in ``folder``;
    every check of the module docstring but the pixel decoding."""
    import pydicom

    files = series_files(folder)
    if not files:
        raise InputError(f"{folder}: holds no DICOM files")
    headers = []
    for path in files:
        try:
            headers.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except Exception as error:  # noqa: BLE001 - pydicom raises many types for a damaged file
            raise InputError(f"{folder}: {os.path.basename(path)} is not a readable DICOM file "
                             f"({' '.join(str(error).split())[:120]})") from error
    series = sorted({str(getattr(d, "SeriesInstanceUID", "")) for _, d in headers})
    if len(series) > 1:
        raise InputError(f"{folder}: holds {len(series)} DICOM series ({', '.join(s[-12:] for s in series[:3])}...); "
                         "put one series per folder")
    modalities = sorted({str(getattr(d, "Modality", "")) for _, d in headers})
    if modalities != ["CT"]:
        raise InputError(f"{folder}: modality {'/'.join(modalities) or 'missing'}, not CT; o2l segments CT only")
    orientation = np.array([float(x) for x in _needs(headers[0][1], "ImageOrientationPatient", folder,
                                                     headers[0][0])])
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    shape = None
    placed = []
    for path, dataset in headers:
        other = np.array([float(x) for x in _needs(dataset, "ImageOrientationPatient", folder, path)])
        if np.abs(other - orientation).max() > 1e-4:
            raise InputError(f"{folder}: {os.path.basename(path)} has another ImageOrientationPatient than "
                             f"{os.path.basename(headers[0][0])}; o2l reads one stack of parallel slices")
        size = (int(_needs(dataset, "Rows", folder, path)), int(_needs(dataset, "Columns", folder, path)))
        if shape is not None and size != shape:
            raise InputError(f"{folder}: slices of {shape[0]}x{shape[1]} and {size[0]}x{size[1]} pixels in one series")
        shape = size
        position = np.array([float(x) for x in _needs(dataset, "ImagePositionPatient", folder, path)])
        placed.append((float(position @ normal), position, path, dataset))
    placed.sort(key=lambda item: item[0])
    if len({round(p[0], 4) for p in placed}) != len(placed):
        raise InputError(f"{folder}: two slices at the same position; is this one series of one acquisition?")
    positions = np.array([p[1] for p in placed])
    spacing_rows, spacing_columns = (float(x) for x in _needs(placed[0][3], "PixelSpacing", folder, placed[0][2]))
    if len(placed) > 1:
        steps = np.diff(positions, axis=0)
        gaps = np.linalg.norm(steps, axis=1)
        cosines = np.abs(steps @ normal) / gaps
        if cosines.min() < 1 - TILT_TOLERANCE:
            angle = float(np.degrees(np.arccos(np.clip(cosines.min(), -1, 1))))
            raise InputError(f"{folder}: slices are offset along the rows (gantry tilt of about {angle:.1f} degrees);"
                             " resample the series to an untilted grid first")
        if gaps.max() - gaps.min() > SPACING_TOLERANCE * gaps.mean():
            worst = int(np.argmax(np.abs(gaps - np.median(gaps))))
            raise InputError(f"{folder}: uneven slice spacing ({gaps.min():.3g}-{gaps.max():.3g} mm, e.g. after "
                             f"{os.path.basename(placed[worst][2])}): a slice is missing or the series mixes stacks")
        step = steps.mean(axis=0)
    else:
        thickness = float(getattr(placed[0][3], "SliceThickness", 1.0) or 1.0)
        step = normal * thickness
    lps = np.eye(4)
    lps[:3, 0] = row_direction * spacing_columns  # along a row: the column index grows
    lps[:3, 1] = column_direction * spacing_rows  # down a column: the row index grows
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    return [p[2] for p in placed], shape, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM LPS+ -> NIfTI RAS+


def read_series(folder: str) -> nib.Nifti1Image:
    """The series in ``folder`` as a NIfTI image: int16 HU (float32 if a value leaves int16), RAS+ affine, voxel
    axes (column, row, slice) with slices in ``sorted_series`` order."""
    import pydicom

    paths, shape, affine = sorted_series(folder)
    volume = np.empty((shape[1], shape[0], len(paths)), np.float32)  # (column, row, slice)
    for k, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        try:
            pixels = dataset.pixel_array
        except Exception as error:  # noqa: BLE001 - missing decoders raise RuntimeError, NotImplementedError...
            syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown transfer syntax")
            raise InputError(f"{folder}: cannot decode the pixels of {os.path.basename(path)} "
                             f"({getattr(syntax, 'name', syntax)}: {' '.join(str(error).split())[:100]})") from error
        slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
        volume[:, :, k] = pixels.T.astype(np.float32) * slope + intercept
    if np.all(np.abs(volume - np.rint(volume)) < 1e-3) and volume.min() >= -32768 and volume.max() <= 32767:
        volume = np.rint(volume).astype(np.int16)
    image = nib.Nifti1Image(volume, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def series_sha256(folder: str) -> str:
    """One digest of a series: its files' names and bytes in name order."""
    import hashlib

    digest = hashlib.sha256()
    for path in series_files(folder):
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as stream:
            digest.update(stream.read())
    return digest.hexdigest()
