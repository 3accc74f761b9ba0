"""``o2l build-records``: NIfTI cases to sharded TFRecords of three-slice examples with box channels.

Two phases, both resumable:
1. per case (in parallel worker processes, one case each): read, validate, reorient to RAS+, clip HU,
   derive or read boxes, select slices, serialize each example as a framed TFRecord and deflate it on its
   own (``tfrecord_wire``) into ``.work/cases/<case>.chunks``;
2. per split: spread every example to a shard by a seeded hash of (split, case, slice), order each shard
   by that hash (so shards mix cases), copy the chunks into one gzip stream and rename into place.
Neither phase imports TensorFlow (3 s per process); the records are read with ``tf.data`` as usual.
``manifest.json`` is written last; a folder without it is not a finished build. Every file is written
under a temporary name and renamed, so a killed run restarted with the same command ends with the same
bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from o2l_tf import __version__
from o2l_tf import fs
from o2l_tf.data import boxes as box_ops
from o2l_tf.data import box_files, resample, schema, tfrecord_wire
from o2l_tf.data.tfrecord_wire import Chunk
from o2l_tf.errors import InputError
from o2l_tf.io_utils import read_json, write_json
from o2l_tf.nifti import (Reorientation, check_3d, check_same_grid, file_sha256, load_image, read_canonical_hu,
                          read_labels)
from . import sources

WORK = ".work"
MB = 1 << 20


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines the records' bytes (the output folder and worker count do not)."""

    data: str | None = None
    cases_file: str | None = None
    layout: str | None = None
    split: tuple[int, int, int] = (30, 60, 10)
    split_file: str | None = None
    seed: int = 0
    boxes: str | None = None
    perturb_boxes: bool = False
    margin_slices: int = 2
    # in-plane spacing of the records: "auto" (median of the strong cases, nnU-Net's rule), "native" (no
    # resampling: the paper's and the `paper` preset's), or (x_mm, y_mm)
    spacing: str | tuple[float, float] = "auto"
    hu_window: tuple[float, float] = schema.PAPER_HU_WINDOW
    shards: int | None = None
    shard_mb: int = 150
    compression: str = "GZIP"
    # ISA-L level (0-3) 1: 4.8x faster than zlib level 1 for 4 % larger shards (README: dependencies)
    compression_level: int = 1

    def validate(self) -> None:
        if (self.data is None) == (self.cases_file is None):
            raise InputError("give exactly one of --data DIR or --cases FILE")
        if self.split_file is None:
            if len(self.split) != 3 or min(self.split) < 0:
                raise InputError(f"--split must be three non-negative percentages STRONG:WEAK:VAL, got {self.split}")
            if sum(self.split) > 100:
                raise InputError(f"--split percentages add up to {sum(self.split)} > 100")
            if self.split[0] == 0:
                raise InputError("--split gives the strong split 0 %: the teacher needs fully labelled cases")
        if self.margin_slices < 0:
            raise InputError(f"--margin-slices must be >= 0, got {self.margin_slices}")
        low, high = self.hu_window
        if not low < high:
            raise InputError(f"--hu-window must be LOW:HIGH with LOW < HIGH, got {low}:{high}")
        if isinstance(self.spacing, str):
            if self.spacing not in SPACING_MODES:
                raise InputError(f"--spacing must be auto, native or X,Y in mm, got {self.spacing!r}")
        elif len(self.spacing) != 2 or not all(0.05 <= float(s) <= 20 for s in self.spacing):
            raise InputError(f"--spacing X,Y must be two in-plane spacings of 0.05-20 mm, got {self.spacing}")
        if self.shards is not None and self.shards < 1:
            raise InputError(f"--shards must be >= 1, got {self.shards}")
        if self.compression not in ("GZIP", ""):
            raise InputError(f"compression must be GZIP or none, got {self.compression!r}")
        if not 0 <= self.compression_level <= 3:
            raise InputError(f"compression level must be 0-3 (ISA-L's levels), got {self.compression_level}")

    def identity(self) -> dict:
        record = asdict(self)
        record["split"] = list(self.split)
        record["hu_window"] = [float(x) for x in self.hu_window]
        record["spacing"] = self.spacing if isinstance(self.spacing, str) else [float(x) for x in self.spacing]
        return record


SPACING_MODES = ("auto", "native")


def parse_spacing(text: str):
    """``auto`` | ``native`` | ``X,Y`` (mm) as BuildConfig.spacing; raises InputError on anything else."""
    text = text.strip().lower()
    if text in SPACING_MODES:
        return text
    try:
        values = tuple(float(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 2:
        raise InputError(f"--spacing must be auto, native or X,Y in mm (e.g. 0.8,0.8), got {text!r}")
    return values


def target_spacing(config: BuildConfig, cases: list[sources.CaseSource], split_of: dict[str, str]):
    """The records' in-plane spacing (x, y) in mm, or None for native: ``auto`` is the per-axis median of the strong
    cases' canonical in-plane spacings (read from their headers)."""
    if config.spacing == "native":
        return None
    if not isinstance(config.spacing, str):
        return tuple(float(x) for x in config.spacing)
    spacings = []
    for source in cases:
        if split_of.get(source.case_id) == "strong":
            image = load_image(source.image)
            check_3d(image, source.image)
            spacings.append(Reorientation.of(image).canonical_spacing[:2])
    return tuple(round(float(x), 4) for x in np.median(np.array(spacings), axis=0))


# ----------------------------------------------------------------------------------------------- splits
def assign_splits(case_ids: list[str], config: BuildConfig) -> dict[str, str]:
    """case id -> 'strong' | 'weak' | 'val' (unassigned cases are left out)."""
    if config.split_file:
        return _read_split_file(config.split_file, case_ids)
    order = list(case_ids)
    np.random.default_rng(config.seed).shuffle(order)
    total = len(order)
    # Largest-remainder rounding so the counts add up to round(total * sum / 100).
    exact = [total * p / 100 for p in config.split]
    counts = [int(math.floor(x)) for x in exact]
    wanted = min(total, int(round(total * sum(config.split) / 100)))
    for index in sorted(range(3), key=lambda i: exact[i] - counts[i], reverse=True)[: wanted - sum(counts)]:
        counts[index] += 1
    for name, percent, count in zip(schema.SPLITS, config.split, counts):
        if percent > 0 and count == 0:
            raise InputError(f"--split {':'.join(map(str, config.split))} leaves the {name} split with zero of "
                             f"{total} cases")
    assignment, start = {}, 0
    for name, count in zip(schema.SPLITS, counts):
        for case_id in order[start:start + count]:
            assignment[case_id] = name
        start += count
    return assignment


def _read_split_file(path: str, case_ids: list[str]) -> dict[str, str]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        with open(path) as stream:
            if path.endswith(".json"):
                named = json.load(stream)
                rows = [(str(case), split) for split, cases in named.items() for case in cases]
            else:
                import csv

                rows = [(r["case_id"].strip(), r["split"].strip()) for r in csv.DictReader(stream)]
    except (ValueError, KeyError, AttributeError, TypeError) as error:
        raise InputError(f"{path}: cannot parse split file ({error})") from error
    known, assignment = set(case_ids), {}
    for case_id, split in rows:
        if split not in schema.SPLITS:
            raise InputError(f"{path}: unknown split {split!r} for case {case_id}; expected strong, weak or val")
        if case_id not in known:
            raise InputError(f"{path}: case {case_id} is not in the cohort")
        if case_id in assignment:
            raise InputError(f"{path}: case {case_id} is listed twice")
        assignment[case_id] = split
    if "strong" not in assignment.values():
        raise InputError(f"{path}: names no strong case")
    return assignment


# ------------------------------------------------------------------------------------------- one case
@dataclass
class CaseJob:
    source: sources.CaseSource
    split: str
    config: BuildConfig
    work_dir: str
    user_boxes: list = field(default_factory=list)
    target_spacing: tuple[float, float] | None = None  # in-plane mm of the records; None keeps the scan's


def _three_slice_group(slices: np.ndarray, z: int) -> bytes:
    """(H, W, 3) int16 little-endian bytes: slices z-1, z, z+1 of a slice-major volume, edges replicated."""
    depth = slices.shape[0]
    group = np.stack([slices[max(z - 1, 0)], slices[z], slices[min(z + 1, depth - 1)]], axis=-1)
    return group.astype("<i2", copy=False).tobytes()


def _selected_slices(has_box: np.ndarray, margin: int, keep_all: bool) -> np.ndarray:
    if keep_all:
        return np.arange(has_box.size)
    selected = np.zeros_like(has_box)
    for z in np.nonzero(has_box)[0]:
        selected[max(0, z - margin): z + margin + 1] = True
    return np.nonzero(selected)[0]


def _perturb(slice_boxes, seed: int, case_id: str, z: int, shape):
    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "little"), z])
    organ, lesion = slice_boxes
    return ([box_ops.perturb_box(b, rng, box_ops.LIVER_PERTURBATION, shape) for b in organ],
            [box_ops.perturb_box(b, rng, box_ops.LESION_PERTURBATION, shape) for b in lesion])


def _case_file(work: str, case_id: str, suffix: str) -> str:
    """A case's work file: ``.chunks`` (its deflated examples) or ``.json`` (its entry, written last)."""
    return os.path.join(work, "cases", f"{case_id}{suffix}")


def process_case(job: CaseJob) -> dict:
    """Read, check, serialize and compress one case to its work file; returns the case's manifest entry."""
    source, config, split = job.source, job.config, job.split
    image = load_image(source.image)
    check_3d(image, source.image)
    reorientation = Reorientation.of(image)
    use_user_boxes = split == "weak" and config.boxes is not None
    needs_label = not use_user_boxes
    if needs_label and source.label is None:
        raise InputError(f"{source.image}: case {source.case_id} ({split}) needs a label file")
    # Slice-major (D, H, W): three-slice groups and per-slice boxes are gathered from contiguous slices.
    slices = read_canonical_hu(image, source.image, reorientation, window=config.hu_window, slice_major=True)

    label = None
    if needs_label:
        label_image = load_image(source.label)
        check_3d(label_image, source.label)
        check_same_grid(label_image, source.label, image, source.image)
        label = reorientation.to_canonical(read_labels(label_image, source.label), slice_major=True)

    depth, height, width = slices.shape
    native_shape, spacing = (height, width), reorientation.canonical_spacing
    grid = resample.grid_for(native_shape, spacing, job.target_spacing)
    if grid is not None:
        height, width = grid
        slices = np.stack([resample.resample_image(plane, (height, width)) for plane in slices])
        if label is not None:
            label = np.stack([resample.resample_labels(plane, (height, width), schema.NUM_CLASSES) for plane in label])
        # the grids share the field of view's edges, so this is the records' exact pixel size (about the target)
        spacing = (spacing[0] * native_shape[0] / height, spacing[1] * native_shape[1] / width, spacing[2])
    if use_user_boxes:
        user = box_files.per_slice_boxes(job.user_boxes, reorientation, config.boxes, source.image)
        boxes_by_slice = []
        for z in range(depth):
            organ, lesion = user.get(z, ([], []))
            boxes_by_slice.append(([resample.scale_box(b, native_shape, (height, width)) for b in organ],
                                   [resample.scale_box(b, native_shape, (height, width)) for b in lesion]))
    else:
        boxes_by_slice = [box_ops.slice_boxes(label[z]) for z in range(depth)]
    if split == "weak" and config.perturb_boxes:
        boxes_by_slice = [_perturb(b, config.seed, source.case_id, z, (height, width)) if (b[0] or b[1]) else b
                          for z, b in enumerate(boxes_by_slice)]
    has_box = np.array([bool(organ or lesion) for organ, lesion in boxes_by_slice])
    if split == "weak" and not has_box.any():
        raise InputError(f"{config.boxes or source.label}: weak case {source.case_id} has no liver or lesion box")
    selected = _selected_slices(has_box, config.margin_slices, keep_all=(split == "val"))

    path = _case_file(job.work_dir, source.case_id, ".chunks")
    temporary = path + ".tmp"
    total_bytes = 0
    with fs.open_file(temporary, "wb") as stream:
        writer = tfrecord_wire.ChunkWriter(stream, compressed=bool(config.compression), level=config.compression_level)
        for z in selected:
            organ, lesion = boxes_by_slice[z]
            example = schema.serialize_example(
                _three_slice_group(slices, z),
                box_ops.box_channels(organ, lesion, (height, width)).tobytes(),
                case_id=source.case_id, split=split, slice_index=int(z), num_slices=depth, height=height,
                width=width, spacing=spacing, hu_window=config.hu_window,
                organ_boxes=[c for b in organ for c in b], lesion_boxes=[c for b in lesion for c in b],
                boxes_source="user" if use_user_boxes else "mask",
                boxes_perturbed=bool(split == "weak" and config.perturb_boxes and (organ or lesion)),
                label=None if split == "weak" else label[z].tobytes(),
            )
            writer.write(example)
            total_bytes += len(example)
    fs.rename(temporary, path)
    entry = {
        "case_id": source.case_id,
        "split": split,
        "image": source.image,
        "label": source.label if needs_label else None,
        "image_sha256": file_sha256(source.image),
        "label_sha256": file_sha256(source.label) if needs_label else None,
        "original_shape": list(reorientation.file_shape),
        "original_affine": np.round(reorientation.file_affine, 6).tolist(),
        "original_axcodes": reorientation.axcodes,
        "canonical_shape": [height, width, depth],  # of the records (resampled in-plane unless native)
        "spacing_mm": [round(float(s), 6) for s in spacing],
        "native_shape": [native_shape[0], native_shape[1], depth],
        "native_spacing_mm": [round(float(s), 6) for s in reorientation.canonical_spacing],
        "examples": int(selected.size),
        "slices": [int(z) for z in selected],
        "slices_with_boxes": int(has_box.sum()),
        "organ_boxes": int(sum(len(b[0]) for b in boxes_by_slice)),
        "lesion_boxes": int(sum(len(b[1]) for b in boxes_by_slice)),
        "lesion_examples": int(sum(bool(boxes_by_slice[z][1]) for z in selected)),  # for lesion oversampling
        "serialized_bytes": total_bytes,
        "chunks": [chunk.as_list() for chunk in writer.chunks],  # where each example sits in the work file
    }
    write_json(_case_file(job.work_dir, source.case_id, ".json"), entry)
    return entry


# -------------------------------------------------------------------------------------------- helpers
def _example_key(seed: int, split: str, case_id: str, z: int) -> bytes:
    return hashlib.sha256(f"{seed}/{split}/{case_id}/{z}".encode()).digest()[:8]


def _is_ours(name: str) -> bool:
    return name in (schema.MANIFEST, WORK) or (name.endswith(".tfrecord") and "-of-" in name)


# ----------------------------------------------------------------------------------------------- shards
def _write_split_shards(out: str, work: str, split: str, entries: list[dict], config: BuildConfig) -> list[str]:
    """Spread the split's examples over shards by their seeded hash and write each shard in hash order.

    The examples were framed and compressed by the case workers; a shard only copies their chunks.
    """
    for name in fs.listdir(out):
        if name.startswith(f"{split}-") and name.endswith(".tfrecord"):
            fs.remove(os.path.join(out, name))
    total = sum(e["serialized_bytes"] for e in entries)
    if not entries or total == 0:
        return []
    count = config.shards or max(1, math.ceil(total / (config.shard_mb * MB)))
    members = [[] for _ in range(count)]
    for entry in entries:
        for z, chunk in zip(entry["slices"], entry["chunks"]):
            key = _example_key(config.seed, split, entry["case_id"], z)
            members[int.from_bytes(key, "little") % count].append((key, entry["case_id"], z, Chunk(*chunk)))
    names = []
    with _WorkFiles(work) as work_files:
        for index, shard in enumerate(members):
            shard.sort(key=lambda member: member[:3])
            name = schema.shard_name(split, index, count)
            temporary = os.path.join(out, name + ".tmp")
            with fs.open_file(temporary, "wb") as stream:
                tfrecord_wire.assemble_shard(stream, ((work_files.read(case_id, chunk), chunk)
                                                      for _, case_id, _, chunk in shard),
                                             compressed=bool(config.compression))
            fs.rename(temporary, os.path.join(out, name))
            names.append(name)
    return names


class _WorkFiles:
    """Open case work files, for reading chunks in any order (at most ``limit`` open at once)."""

    def __init__(self, work: str, limit: int = 128):
        self._work, self._limit, self._open = work, limit, {}

    def read(self, case_id: str, chunk: Chunk) -> bytes:
        stream = self._open.get(case_id)
        if stream is None:
            if len(self._open) >= self._limit:
                self.close()
            stream = self._open[case_id] = fs.open_file(_case_file(self._work, case_id, ".chunks"), "rb")
        stream.seek(chunk.offset)
        return stream.read(chunk.size)

    def close(self) -> None:
        for stream in self._open.values():
            stream.close()
        self._open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------------------------------- driver
def _prepare_output(out: str, identity: dict, overwrite: bool) -> str:
    """Create or reuse ``out``; returns the work folder. Refuses foreign or differently-built content."""
    work = os.path.join(out, WORK)
    config_path = os.path.join(work, "build_config.json")
    manifest_path = os.path.join(out, schema.MANIFEST)
    if fs.exists(out) and not fs.isdir(out):
        raise InputError(f"{out}: exists and is not a folder")
    existing = fs.listdir(out) if fs.exists(out) else []
    if existing:
        previous = None
        if fs.exists(config_path):
            previous = read_json(config_path)
        elif fs.exists(manifest_path):
            previous = read_json(manifest_path).get("config")
        if previous != identity:
            if not overwrite:
                what = "a build of a different configuration" if previous else "files that are not an o2l build"
                raise InputError(f"{out}: holds {what}; pass --overwrite to replace it or choose another --out")
            for name in existing:
                if _is_ours(name):
                    path = os.path.join(out, name)
                    fs.rmtree(path) if fs.isdir(path) else fs.remove(path)
    fs.makedirs(os.path.join(work, "cases"))
    if not fs.exists(config_path):
        write_json(config_path, identity)
    return work


def _finished_case(work: str, case_id: str) -> dict | None:
    """The entry of a case an interrupted build finished, if its chunks are there (older builds wrote none)."""
    done = _case_file(work, case_id, ".json")
    if not fs.exists(done):
        return None
    entry = read_json(done)
    return entry if "chunks" in entry and fs.exists(_case_file(work, case_id, ".chunks")) else None


def _resolve_cases(config: BuildConfig) -> tuple[str, list[sources.CaseSource]]:
    if config.cases_file:
        return "list", sources.read_case_list(config.cases_file)
    return sources.discover(config.data, config.layout)


def build_phantom_records(data: str, out: str, split: tuple[int, int, int], seed: int = 0,
                          perturb_boxes: bool = False, workers: int = 1, progress: bool = True,
                          spacing="auto") -> dict:
    """Records of a phantom cohort folder with default settings, replacing an earlier build in ``out``: the
    ``RecordsBuilder`` that ``o2l demo`` and ``o2l reproduce`` are given (o2l_tf never imports this package)."""
    return build_records(BuildConfig(data=data, split=tuple(split), seed=seed, perturb_boxes=perturb_boxes,
                                     spacing=spacing), out,
                         workers=workers, overwrite=True, progress=progress)


def build_records(config: BuildConfig, out: str, workers: int = 1, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Build (or finish building) the records of ``config`` in ``out``; returns the manifest."""
    config.validate()
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    layout, cases = _resolve_cases(config)
    split_of = assign_splits([c.case_id for c in cases], config)
    user_boxes, ignored_box_cases = {}, []
    if config.boxes:
        user_boxes = box_files.read_box_file(config.boxes)
        known = {c.case_id for c in cases}
        unknown = sorted(set(user_boxes) - known)
        if unknown:
            raise InputError(f"{config.boxes}: boxes for unknown case(s) {', '.join(unknown[:5])}")
        ignored_box_cases = sorted(c for c in user_boxes if split_of.get(c) != "weak")
        missing = sorted(c for c, s in split_of.items() if s == "weak" and c not in user_boxes)
        if missing:
            raise InputError(f"{config.boxes}: no boxes for weak case(s) {', '.join(missing[:5])}")

    identity = config.identity()
    identity["cases"] = [[c.case_id, c.image, c.label] for c in cases]
    target = target_spacing(config, cases, split_of)
    manifest_path = os.path.join(out, schema.MANIFEST)
    if fs.exists(manifest_path) and read_json(manifest_path).get("config") == identity:
        return read_json(manifest_path)  # already complete
    work = _prepare_output(out, identity, overwrite)

    jobs, entries = [], {}
    for source in cases:
        split = split_of.get(source.case_id)
        if split is None:
            continue
        done = _finished_case(work, source.case_id)
        if done is not None:
            entries[source.case_id] = done
        else:
            jobs.append(CaseJob(source, split, config, work, user_boxes.get(source.case_id, []), target))
    bar = _progress(len(jobs), progress)
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            entries[job.source.case_id] = process_case(job)
            bar.update(1)
    else:
        context = multiprocessing.get_context("spawn")  # fork is unsafe once a caller has loaded TensorFlow
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            for entry in pool.map(process_case, jobs):
                entries[entry["case_id"]] = entry
                bar.update(1)
    bar.close()

    splits = {}
    for split in schema.SPLITS:
        members = [entries[c.case_id] for c in cases if split_of.get(c.case_id) == split]
        marker = os.path.join(work, f"{split}.done")
        if fs.exists(marker):
            names = read_json(marker)["shards"]
        else:
            names = _write_split_shards(out, work, split, members, config)
            write_json(marker, {"shards": names})
        splits[split] = {
            "cases": [e["case_id"] for e in members],
            "examples": sum(e["examples"] for e in members),
            "lesion_examples": sum(e["lesion_examples"] for e in members),
            "shards": names,
        }
    manifest = {
        "o2l_version": __version__,
        "schema_version": schema.SCHEMA_VERSION,
        "layout": layout,
        "config": identity,
        "preprocessing": {
            "orientation": "RAS (canonical axes: right, anterior, superior)",
            "hu_window": [float(x) for x in config.hu_window],
            # in-plane only (the slices stay the scan's own): images linear, labels per class linear + argmax
            "spacing": {"mode": config.identity()["spacing"], "target_mm": None if target is None else list(target)},
            "image_dtype": "int16 little-endian, (H, W, 3) = (slice below, slice, slice above)",
            "normalisation": "in the reader: (HU - low) / (high - low), giving [0, 1]",
            "compression": config.compression or "none",
            "compression_level": config.compression_level if config.compression else None,
        },
        "boxes": {
            "weak_source": "user" if config.boxes else "mask",
            "file": config.boxes,
            "file_sha256": file_sha256(config.boxes) if config.boxes else None,
            "ignored_cases": ignored_box_cases,
            "perturbation": {
                "applied_to": "weak split",
                "liver": asdict(box_ops.LIVER_PERTURBATION),
                "lesion": asdict(box_ops.LESION_PERTURBATION),
                "seed": config.seed,
            } if config.perturb_boxes else None,
        },
        "splits": splits,
        # per case, without the chunk offsets into the work files (deleted below)
        "cases": {c.case_id: {k: v for k, v in entries[c.case_id].items() if k != "chunks"}
                  for c in cases if c.case_id in entries},
    }
    write_json(manifest_path, manifest)
    fs.rmtree(work)
    return manifest


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="build-records", unit="case", disable=not enabled or total == 0,
                dynamic_ncols=True)

