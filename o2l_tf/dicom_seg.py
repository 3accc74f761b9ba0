"""o2l's labels as a DICOM Segmentation object (highdicom) referencing the CT series they were predicted from.

Two binary segments with SNOMED CT codes: 1 "Liver" (Organ / Liver, 10200004: every liver voxel, lesions included,
as LiTS scores the liver) and 2 "Liver lesion" (Morphologically Abnormal Structure / Lesion, 52988006, anatomic
region Liver). Frames follow the source series sorted along its slice normal (``dicom.sorted_series``), the order
``o2l predict`` read the volume in, so frame k of a segment is slice k of the labels; empty frames are left out.
"""

from __future__ import annotations

import numpy as np

from o2l_tf import __version__
from o2l_tf.dicom import sorted_series


TYPE_2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _segment_descriptions():
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="o2l", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    automatic = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    return [
        hd.seg.SegmentDescription(segment_number=1, segment_label="Liver", segmented_property_category=codes.SCT.Organ,
                                  segmented_property_type=codes.SCT.Liver, algorithm_type=automatic,
                                  algorithm_identification=algorithm),
        hd.seg.SegmentDescription(segment_number=2, segment_label="Liver lesion",
                                  segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                                  segmented_property_type=codes.SCT.Lesion, algorithm_type=automatic,
                                  algorithm_identification=algorithm, anatomic_regions=[codes.SCT.Liver]),
    ]


def segmentation_bytes(series_folder: str, labels: np.ndarray) -> bytes:
    """The DICOM SEG file of ``labels`` ({0, 1, 2} on the series' voxel axes (column, row, slice), as
    ``dicom.read_series`` gives them)."""
    import io

    import highdicom as hd
    import pydicom

    paths, shape, _ = sorted_series(series_folder)
    if labels.shape != (shape[1], shape[0], len(paths)):
        raise ValueError(f"labels of shape {labels.shape} do not fit the series ({shape[1]}, {shape[0]}, {len(paths)})")
    sources = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    for source in sources:  # type 2 attributes the SEG copies: empty when an export left them out (copies only)
        for keyword in TYPE_2_COPIED:
            if keyword not in source:
                setattr(source, keyword, "")
    frames = np.moveaxis(labels, 2, 0).transpose(0, 2, 1)  # (slice, row, column), as the source frames
    masks = np.stack([frames >= 1, frames == 2], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(), series_instance_uid=hd.UID(), series_number=900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="o2l",
        manufacturer_model_name="o2l liver and lesion segmentation",
        software_versions=__version__, device_serial_number="none", series_description="o2l liver and lesions")
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


def read_labels(seg_path: str, series_folder: str) -> np.ndarray:
    """A SEG written by ``segmentation_bytes`` read back (highdicom) as labels on the series' voxel axes."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    paths, shape, _ = sorted_series(series_folder)
    import pydicom

    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], assert_missing_frames_are_empty=True)
    frames = pixels[..., 0].astype(np.uint8) + (pixels[..., 1] > 0).astype(np.uint8)
    return np.ascontiguousarray(frames.transpose(0, 2, 1).transpose(1, 2, 0))
