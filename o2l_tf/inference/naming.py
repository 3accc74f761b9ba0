"""File names: LiTS submission names for predictions, and case ids that pair predictions with references.

- ``test-volume-7.nii`` -> ``test-segmentation-7.nii``; ``volume-7.nii.gz`` -> ``segmentation-7.nii.gz``
  (the extension is kept: LiTS submissions are ``.nii``).
- anything else: ``NAME_seg.nii.gz``, or a user template such as ``{name}.nii.gz`` (nnU-Net style).
- case id: the name without extension and ``_seg`` suffix; LiTS names reduce to ``7`` / ``test-7``.
"""

from __future__ import annotations

import os
import re

from o2l_tf.errors import InputError

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
LITS_NAME = re.compile(r"^(?P<test>test-)?(?P<kind>volume|segmentation)-(?P<number>\d+)$")
SEG_SUFFIX = "_seg"
PROBABILITIES_SUFFIX = "_probabilities"  # written beside a prediction by --probabilities
DEFAULT_TEMPLATE = "{name}" + SEG_SUFFIX + ".nii.gz"


def is_nifti(path: str) -> bool:
    return path.endswith(NIFTI_EXTENSIONS)


def split_extension(path: str) -> tuple[str, str]:
    name = os.path.basename(path)
    for extension in NIFTI_EXTENSIONS:
        if name.endswith(extension):
            return name[: -len(extension)], extension
    return name, ""


def output_name(input_path: str, template: str = "auto") -> str:
    """The prediction's file name for ``input_path`` (``template``: ``auto`` or a ``{name}`` pattern)."""
    stem, extension = split_extension(input_path)
    if template == "auto":
        lits = LITS_NAME.match(stem)
        if lits and lits["kind"] == "volume":
            return f"{lits['test'] or ''}segmentation-{lits['number']}{extension}"
        template = DEFAULT_TEMPLATE
    name = template.format(name=stem)
    if not is_nifti(name) or os.sep in name:
        raise InputError(f"--name {template!r}: must give a file name ending in .nii or .nii.gz")
    return name


def case_id(path: str) -> str:
    """The id that pairs a prediction with its reference (``segmentation-7`` and ``volume-7`` -> ``7``)."""
    stem, _ = split_extension(path)
    lits = LITS_NAME.match(stem)
    if lits:
        return f"{lits['test'] or ''}{lits['number']}"
    return stem[: -len(SEG_SUFFIX)] if stem.endswith(SEG_SUFFIX) else stem


def is_lits_volume(path: str) -> bool:
    lits = LITS_NAME.match(split_extension(path)[0])
    return bool(lits) and lits["kind"] == "volume"


def is_image_name(path: str) -> bool:
    """A NIfTI name that is not a LiTS label volume nor one of o2l's outputs (``_seg``, ``_probabilities``)."""
    if not is_nifti(path):
        return False
    stem = split_extension(path)[0]
    lits = LITS_NAME.match(stem)
    return not (lits and lits["kind"] == "segmentation") and not stem.endswith((SEG_SUFFIX, PROBABILITIES_SUFFIX))


def is_probability_map(path: str) -> bool:
    return split_extension(path)[0].endswith(PROBABILITIES_SUFFIX)
