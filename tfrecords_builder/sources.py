"""Finding the cases of a cohort: LiTS layout, MSD Task03 layout, or a CSV/JSON list of files."""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass

from o2l_tf import fs
from o2l_tf.errors import InputError

LITS_IMAGE = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
LITS_LABEL = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")
MSD_NAME = re.compile(r"^(.+?)\.nii(\.gz)?$")


@dataclass(frozen=True)
class CaseSource:
    case_id: str
    image: str
    label: str | None


def _natural_key(case_id: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", case_id)]


def detect_layout(data_dir: str) -> str:
    """'lits' or 'msd', from what the folder holds."""
    if not os.path.isdir(data_dir):
        raise InputError(f"{data_dir}: no such folder")
    names = os.listdir(data_dir)
    if "imagesTr" in names and os.path.isdir(os.path.join(data_dir, "imagesTr")):
        return "msd"
    if any(LITS_IMAGE.match(name) or LITS_LABEL.match(name) for name in names):
        return "lits"
    what = "is empty" if not names else "holds neither LiTS (volume-N.nii[.gz]) nor MSD (imagesTr/, labelsTr/) cases"
    raise InputError(f"{data_dir}: {what}")


def discover(data_dir: str, layout: str | None = None) -> tuple[str, list[CaseSource]]:
    """The cases of ``data_dir`` in natural order of their ids; ``layout`` forces lits or msd."""
    layout = layout or detect_layout(data_dir)
    if layout == "lits":
        cases = _lits_cases(data_dir)
    elif layout == "msd":
        cases = _msd_cases(data_dir)
    else:
        raise InputError(f"unknown layout {layout!r}; expected lits or msd")
    if not cases:
        raise InputError(f"{data_dir}: no {layout.upper()} cases found")
    return layout, sorted(cases, key=lambda c: _natural_key(c.case_id))


def _index_by_number(data_dir: str, pattern: re.Pattern) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in sorted(os.listdir(data_dir)):
        match = pattern.match(name)
        if match:
            number = str(int(match.group(1)))
            if number in found:
                raise InputError(f"{os.path.join(data_dir, name)}: duplicate case {number} "
                                 f"(also {os.path.basename(found[number])})")
            found[number] = os.path.join(data_dir, name)
    return found


def _lits_cases(data_dir: str) -> list[CaseSource]:
    images = _index_by_number(data_dir, LITS_IMAGE)
    labels = _index_by_number(data_dir, LITS_LABEL)
    for number, path in labels.items():
        if number not in images:
            raise InputError(f"{path}: no volume-{number}.nii[.gz] beside it")
    cases = []
    for number, path in images.items():
        if number not in labels:
            raise InputError(f"{path}: no segmentation-{number}.nii[.gz] beside it")
        cases.append(CaseSource(number, path, labels[number]))
    return cases


def _msd_cases(data_dir: str) -> list[CaseSource]:
    images_dir, labels_dir = os.path.join(data_dir, "imagesTr"), os.path.join(data_dir, "labelsTr")
    dataset_json = os.path.join(data_dir, "dataset.json")
    pairs: list[tuple[str, str]] = []
    if os.path.exists(dataset_json):
        try:
            with open(dataset_json) as stream:
                entries = json.load(stream)["training"]
            pairs = [(os.path.normpath(os.path.join(data_dir, e["image"])),
                      os.path.normpath(os.path.join(data_dir, e["label"]))) for e in entries]
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"{dataset_json}: not a valid MSD dataset.json ({error})") from error
    else:
        for name in sorted(os.listdir(images_dir)):
            if MSD_NAME.match(name) and not name.startswith("."):
                pairs.append((os.path.join(images_dir, name), os.path.join(labels_dir, name)))
    cases, seen = [], {}
    for image, label in pairs:
        name = MSD_NAME.match(os.path.basename(image))
        if name is None:
            raise InputError(f"{image}: not a NIfTI file name")
        case_id = name.group(1)
        if case_id in seen:
            raise InputError(f"{image}: duplicate case id {case_id}")
        seen[case_id] = image
        if not os.path.exists(image):
            raise InputError(f"{image}: listed in dataset.json but missing")
        if not os.path.exists(label):
            raise InputError(f"{image}: no label {label}")
        cases.append(CaseSource(case_id, image, label))
    return cases


def read_case_list(path: str) -> list[CaseSource]:
    """Cases from a CSV (columns case_id, image[, label]) or JSON (a list of such objects).

    Relative paths are taken relative to the list's own folder.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    base = os.path.dirname(os.path.abspath(path))
    try:
        if path.endswith(".json"):
            with open(path) as stream:
                rows = json.load(stream)
            if isinstance(rows, dict):
                rows = rows.get("cases", [])
        else:
            with open(path, newline="") as stream:
                rows = list(csv.DictReader(stream))
    except (ValueError, csv.Error, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot parse case list ({error})") from error
    cases, seen = [], set()
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("case_id") or not row.get("image"):
            raise InputError(f"{path}: entry {number} needs case_id and image")
        case_id = str(row["case_id"]).strip()
        if case_id in seen:
            raise InputError(f"{path}: duplicate case id {case_id}")
        seen.add(case_id)

        def resolve(value):
            value = str(value).strip()
            return value if fs.is_url(value) or os.path.isabs(value) else os.path.join(base, value)

        image = resolve(row["image"])
        label = resolve(row["label"]) if row.get("label") else None
        for file in (image, label):
            if file and not fs.is_url(file) and not os.path.exists(file):
                raise InputError(f"{path}: case {case_id}: {file} does not exist")
        cases.append(CaseSource(case_id, image, label))
    if not cases:
        raise InputError(f"{path}: lists no cases")
    return cases
