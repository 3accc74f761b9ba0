"""Writing a NIfTI image as a DICOM CT series with pydicom, the way a scanner export looks (for the tests)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np


def _ds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def write_series(image: nib.Nifti1Image, folder: str, modality: str = "CT", series_uid: str | None = None,
                 tilt_mm: float = 0.0, skip: tuple[int, ...] = (), shuffle_seed: int | None = 0,
                 transfer_syntax=None, first_instance: int = 1, prefix: str = "IM") -> list[str]:
    """One file per slice along the image's third axis; the geometry comes from the image's RAS affine.

    ``tilt_mm`` shifts each slice along its rows by that much per slice (a gantry tilt); ``skip`` leaves slices out
    (missing files); files are named in a shuffled order, so readers must sort by position.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    os.makedirs(folder, exist_ok=True)
    hu = np.rint(image.get_fdata()).astype(np.int32)  # header scaling applied
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    row = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    column = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    spacing_columns, spacing_rows = float(np.linalg.norm(lps[:3, 0])), float(np.linalg.norm(lps[:3, 1]))
    series_uid = series_uid or generate_uid()
    study_uid, frame_of_reference = generate_uid(), generate_uid()
    order = np.arange(hu.shape[2])
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(order)
    paths = []
    for number, k in enumerate(order):
        if int(k) in skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality = modality
        ds.PatientID, ds.PatientName = "o2l-phantom", "Phantom^o2l"
        ds.FrameOfReferenceUID, ds.SeriesNumber, ds.StudyDate, ds.StudyTime = frame_of_reference, 3, "20261203", "120000"
        ds.InstanceNumber = first_instance + int(k)
        position = lps[:3, 3] + k * lps[:3, 2] + k * tilt_mm * row
        ds.ImagePositionPatient = [_ds(x) for x in position]
        ds.ImageOrientationPatient = [_ds(x) for x in (*row, *column)]
        ds.PixelSpacing = [_ds(spacing_rows), _ds(spacing_columns)]
        ds.SliceThickness = _ds(float(np.linalg.norm(lps[:3, 2])))
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        pixels = np.ascontiguousarray((hu[:, :, k].T + 1024).astype("<u2")).tobytes()
        if meta.TransferSyntaxUID.is_compressed:  # the raw bytes as one encapsulated frame: labelled, not encoded
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([pixels])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
        else:
            ds.PixelData = pixels
        path = os.path.join(folder, f"{prefix}{number:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
