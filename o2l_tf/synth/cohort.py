"""Write a phantom cohort to disk in LiTS or MSD Task03 layout, in parallel, with previews."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from o2l_tf import __version__
from o2l_tf import visualization as viz
from o2l_tf.errors import InputError
from o2l_tf.io_utils import atomic_write_bytes, reproducible_gzip
from o2l_tf.synth.phantom import Phantom, generate_phantom

LAYOUTS = ("lits", "msd")
MSD_LABELS = {"0": "background", "1": "liver", "2": "cancer"}


@dataclass(frozen=True)
class CohortSpec:
    """Everything that defines a phantom cohort; the same spec always gives the same bytes."""

    cases: int
    size: int = 512
    slices: tuple[int, int] = (60, 120)
    seed: int = 0
    layout: str = "lits"
    gzip: bool = True

    def validate(self) -> None:
        if self.cases < 1:
            raise InputError(f"--cases must be at least 1, got {self.cases}")
        if self.size < 32:
            raise InputError(f"--size must be at least 32 pixels, got {self.size}")
        low, high = self.slices
        if not 1 <= low <= high:
            raise InputError(f"--slices must be LOW:HIGH with 1 <= LOW <= HIGH, got {low}:{high}")
        if self.layout not in LAYOUTS:
            raise InputError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.layout == "msd" and not self.gzip:
            raise InputError("the MSD layout stores .nii.gz files; drop --no-gzip or use --layout lits")

    def paths(self, index: int) -> tuple[str, str]:
        """Relative (image, label) paths of case ``index``."""
        if self.layout == "msd":
            return f"imagesTr/liver_{index}.nii.gz", f"labelsTr/liver_{index}.nii.gz"
        suffix = ".nii.gz" if self.gzip else ".nii"
        return f"volume-{index}{suffix}", f"segmentation-{index}{suffix}"


def _encode(image, gzip: bool) -> bytes:
    data = image.to_bytes()
    return reproducible_gzip(data) if gzip else data


OVERVIEW_CASES = 12  # cases shown in the cohort's preview.png


def largest_liver_tile(phantom: Phantom, min_size: int = 192) -> np.ndarray:
    """The slice with the most liver (the cohort overview's tile for this case)."""
    area = (phantom.segmentation > 0).sum(axis=(0, 1))
    k = int(np.argmax(area)) if area.any() else phantom.volume.shape[2] // 2
    return viz.axial_tile(phantom.volume, phantom.segmentation, k, min_size)


def preview_image(phantom: Phantom, tiles: int = 6, min_tile: int = 256) -> np.ndarray:
    return viz.volume_preview(phantom.volume, phantom.segmentation, phantom.spacing, tiles, min_tile)


def write_case(out_dir: str, spec: CohortSpec, index: int, preview: bool) -> tuple[dict, np.ndarray | None]:
    """Generate and write one case (files appear only when complete).

    Returns its summary and, with ``preview`` for the first ``OVERVIEW_CASES`` cases, its overview tile.
    """
    phantom = generate_phantom(index, spec.size, spec.slices, spec.seed)
    volume_image, label_image = phantom.to_nifti()
    image_path, label_path = spec.paths(index)
    for relative, image in ((image_path, volume_image), (label_path, label_image)):
        path = os.path.join(out_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write_bytes(path, _encode(image, spec.gzip))
    summary = phantom.summary()
    summary.update(image=image_path, label=label_path)
    if preview:
        relative = f"previews/case-{index}.png"
        viz.write_png(os.path.join(out_dir, relative), preview_image(phantom))
        summary["preview"] = relative
    tile = largest_liver_tile(phantom) if preview and index < OVERVIEW_CASES else None
    return summary, tile


def _write_case_job(args) -> tuple[dict, np.ndarray | None]:
    return write_case(*args)


def _one_blas_thread() -> None:
    """Worker initializer: the workers already fill the cores, and each worker's BLAS starting a thread per core
    made two workers slower than one (8 phantoms of 192 px on 2 cores: 6.8 s with one worker, 11.3 s with two,
    4.1 s with two single-threaded ones). Thread counts do not change a phantom's bytes (tested)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def write_cohort(out_dir: str, spec: CohortSpec, workers: int = 1, preview: bool = False,
                 overwrite: bool = False, progress: bool = True) -> list[dict]:
    """Write ``spec.cases`` phantoms into ``out_dir``; returns one summary per case.

    Refuses a non-empty ``out_dir`` unless ``overwrite`` (then only our own file names are replaced).
    ``phantoms.json`` is written last: its presence marks a complete cohort.
    """
    spec.validate()
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise InputError(f"{out_dir}: output folder is not empty (pass --overwrite to replace a cohort)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a folder")
    os.makedirs(out_dir, exist_ok=True)
    marker = os.path.join(out_dir, "phantoms.json")
    if os.path.exists(marker):
        os.unlink(marker)  # a rewritten cohort is not complete until its new marker exists
    jobs = [(out_dir, spec, index, preview) for index in range(spec.cases)]
    bar = _progress(total=spec.cases, enabled=progress)
    summaries, tiles = [], []
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_blas_thread) if workers > 1 else _Inline() as pool:
        for summary, tile in pool.map(_write_case_job, jobs):
            summaries.append(summary)
            if tile is not None:
                tiles.append(tile)
            bar.update(1)
    bar.close()
    if spec.layout == "msd":
        dataset = {
            "name": "Liver",
            "description": "o2l synthetic LiTS-like CT phantoms (not patient data)",
            "reference": "generated by o2l synth",
            "licence": "CC0",
            "release": __version__,
            "tensorImageSize": "3D",
            "modality": {"0": "CT"},
            "labels": MSD_LABELS,
            "numTraining": spec.cases,
            "numTest": 0,
            "training": [{"image": f"./{s['image']}", "label": f"./{s['label']}"} for s in summaries],
            "test": [],
        }
        atomic_write_bytes(os.path.join(out_dir, "dataset.json"), json.dumps(dataset, indent=2).encode())
    if preview:
        viz.write_png(os.path.join(out_dir, "preview.png"), viz.montage(tiles, columns=4))
    spec_json = asdict(spec)
    spec_json["slices"] = list(spec.slices)
    record = {"generator": f"o2l {__version__}", "spec": spec_json, "cases": summaries}
    atomic_write_bytes(marker, json.dumps(record, indent=1).encode())
    return summaries


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="synth", unit="case", disable=not enabled, dynamic_ncols=True)


class _Inline:
    """A one-process stand-in for the process pool (same ``map``), so both paths share one loop."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(function, items):
        return map(function, items)
