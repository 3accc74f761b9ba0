"""User box annotations (CSV or JSON), as an annotation tool would export them.

One row per box, in voxel coordinates of the *original* image file (inclusive indices; x = first
array axis, y = second, z/slice = third):

- a 2D box on one slice: ``case_id, class, slice, x0, y0, x1, y1``
- a 3D box: ``case_id, class, x0, y0, z0, x1, y1, z1``

``class`` is ``liver`` or ``lesion``. CSV: a header naming these columns (unused ones left empty).
JSON: a list of objects with the same keys (or ``{"boxes": [...]}``).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import dataclass

from o2l_tf.errors import InputError
from o2l_tf.nifti import Reorientation

CLASSES = ("liver", "lesion")


@dataclass(frozen=True)
class UserBox:
    case_id: str
    cls: str
    low: tuple[int, int, int]  # inclusive file voxel indices
    high: tuple[int, int, int]
    row: int  # 1-based position in the file, for messages


def read_box_file(path: str) -> dict[str, list[UserBox]]:
    """All boxes of a file, grouped by case id; malformed rows are InputErrors naming file and row."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        if path.endswith(".json"):
            with open(path) as stream:
                rows = json.load(stream)
            if isinstance(rows, dict):
                rows = rows.get("boxes")
            if not isinstance(rows, list):
                raise InputError(f"{path}: expected a list of boxes or {{\"boxes\": [...]}}")
        else:
            with open(path, newline="") as stream:
                rows = list(csv.DictReader(stream))
    except (ValueError, csv.Error, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot parse box file ({error})") from error
    boxes: dict[str, list[UserBox]] = defaultdict(list)
    for number, row in enumerate(rows, start=1):
        box = _parse_row(path, number, row)
        boxes[box.case_id].append(box)
    if not boxes:
        raise InputError(f"{path}: holds no boxes")
    return dict(boxes)


def _parse_row(path: str, number: int, row) -> UserBox:
    where = f"{path}: row {number}"
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected an object with case_id, class and coordinates")

    def value(key):
        raw = row.get(key)
        return None if raw is None or str(raw).strip() == "" else raw

    def integer(key):
        raw = value(key)
        try:
            number_value = float(raw)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {key} must be an integer, got {raw!r}") from None
        if number_value != int(number_value):
            raise InputError(f"{where}: {key} must be an integer, got {raw!r}")
        return int(number_value)

    case_id = value("case_id")
    if case_id is None:
        raise InputError(f"{where}: missing case_id")
    cls = str(value("class") or "").strip().lower()
    if cls not in CLASSES:
        raise InputError(f"{where}: class must be liver or lesion, got {value('class')!r}")
    if value("slice") is not None:
        z = integer("slice")
        low, high = (integer("x0"), integer("y0"), z), (integer("x1"), integer("y1"), z)
    elif value("z0") is not None:
        low = (integer("x0"), integer("y0"), integer("z0"))
        high = (integer("x1"), integer("y1"), integer("z1"))
    else:
        raise InputError(f"{where}: needs either slice (2D box) or z0/z1 (3D box)")
    for axis, name in enumerate("xyz"):
        if low[axis] > high[axis]:
            raise InputError(f"{where}: {name}0 = {low[axis]} > {name}1 = {high[axis]}")
    return UserBox(str(case_id).strip(), cls, low, high, number)


def check_inside(boxes: list[UserBox], reorientation: Reorientation, path: str, image_path: str) -> None:
    """Every box must lie inside the image it annotates."""
    shape = reorientation.file_shape
    for box in boxes:
        if min(box.low) < 0 or any(h >= n for h, n in zip(box.high, shape)):
            raise InputError(f"{path}: row {box.row}: box {box.low}-{box.high} of case {box.case_id} lies "
                             f"outside {os.path.basename(image_path)} of shape {shape}")


def per_slice_boxes(boxes: list[UserBox], reorientation: Reorientation, path: str, image_path: str):
    """Canonical per-slice boxes: {z: ([liver boxes], [lesion boxes])}, each box (x0, y0, x1, y1).

    The boxes are first checked to lie inside the image (``path``: the box file, for messages).
    """
    check_inside(boxes, reorientation, path, image_path)
    slices: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for box in boxes:
        low, high = reorientation.box_to_canonical(box.low, box.high)
        for z in range(low[2], high[2] + 1):
            target = slices[z][0 if box.cls == "liver" else 1]
            target.append((low[0], low[1], high[0], high[1]))
    return dict(slices)
