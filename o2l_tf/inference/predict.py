"""``o2l predict``: NIfTI volumes in, label volumes out on exactly the input's voxel grid, shape and affine.

Per input: read (header scaling applied) -> canonical RAS+ int16 HU -> every three-slice group through the
network in batches (resampled in-plane to the model's spacing and back, when they differ) -> argmax ->
post-processing -> back to the file's grid -> ``uint8`` NIfTI with the input's header geometry. Each output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from tqdm.auto import tqdm

from o2l_tf import visualization as viz
from o2l_tf.data import boxes as box_ops
from o2l_tf.data import resample
from o2l_tf.data import schema
from o2l_tf.errors import InputError
from o2l_tf.inference import naming
from o2l_tf.inference.loading import InferenceModel, load_inference_model
from o2l_tf.inference.postprocess import postprocess
from o2l_tf.inference.volume import SlicePredictor, predict_volume
from o2l_tf.io_utils import atomic_write_bytes, reproducible_gzip
from o2l_tf.nifti import Reorientation, check_3d, check_volume, load_image, read_canonical_hu


@dataclass
class PredictOptions:
    batch_size: int = 4
    tta: bool = False
    postprocess: bool = True
    probabilities: bool = False
    preview: bool = False
    name_template: str = "auto"
    precision: str = "auto"  # see loading.resolve_precision
    min_lesion_mm3: float | None = None  # None: the model's (export.json); 0: no small-lesion removal
    output_format: str = "nifti"  # or "dicom-seg" (DICOM series inputs only)


def collect_inputs(inputs: list[str]) -> list[str]:
    """NIfTI files named directly, found in folders (not recursive) or matched by globs; order kept.

    In folders, label volumes (LiTS ``segmentation-N``) and o2l's own outputs are skipped. A folder holding DICOM
    files is one input: a CT series (``o2l_tf.dicom``).
    """
    from o2l_tf import dicom

    files: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        if os.path.isdir(item) and dicom.is_series_folder(item):
            found = [os.path.normpath(item)]
        elif os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item) if naming.is_image_name(n))
            if not found:
                raise InputError(f"{item}: folder holds no .nii or .nii.gz files")
        elif os.path.isfile(item):
            found = [item]
        else:
            found = sorted(p for p in glob.glob(item) if naming.is_nifti(p) and os.path.isfile(p))
            if not found:
                raise InputError(f"{item}: no such file, folder, or matching NIfTI files")
        for path in found:
            if os.path.abspath(path) not in seen:
                seen.add(os.path.abspath(path))
                files.append(path)
    return files


OUTPUT_FORMATS = ("nifti", "dicom-seg")


def plan_outputs(files: list[str], out_dir: str, template: str, output_format: str = "nifti") -> list[tuple[str, str]]:
    """(input, output) pairs; refuses two inputs with one output name and any output that is an input."""
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"--output-format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    plan, seen = [], {}
    inputs = {os.path.realpath(f) for f in files}
    for path in files:
        if output_format == "dicom-seg":
            if not os.path.isdir(path):
                raise InputError(f"{path}: --output-format dicom-seg needs DICOM series inputs (a folder per series);"
                                 " this is a NIfTI file")
            output = os.path.join(out_dir, os.path.basename(path) + naming.SEG_SUFFIX + ".dcm")
        else:
            output = os.path.join(out_dir, naming.output_name(path, template))
        if output in seen:
            raise InputError(f"{path}: would be written to {output}, as {seen[output]} is; use --name")
        if os.path.realpath(output) in inputs:
            raise InputError(f"{output}: the output would overwrite an input; choose another -o folder or --name")
        seen[output] = path
        plan.append((path, output))
    return plan


def like(reference: nib.Nifti1Image, data: np.ndarray, slope: float = 1.0) -> nib.Nifti1Image:
    """A NIfTI image with ``reference``'s geometry (affine, qform/sform and codes, zooms) holding ``data``."""
    header = reference.header.copy() if isinstance(reference.header, nib.Nifti1Header) else None
    image = nib.Nifti1Image(data, reference.affine, header)
    image.set_data_dtype(data.dtype)
    image.header.set_slope_inter(slope, 0.0)
    image.header["descrip"] = b"o2l prediction"
    image.header["cal_min"], image.header["cal_max"] = 0, 0
    if header is not None:
        image.set_qform(*reference.get_qform(coded=True))
        image.set_sform(*reference.get_sform(coded=True))
    return image


def write_nifti(image: nib.Nifti1Image, path: str) -> None:
    data = image.to_bytes()
    atomic_write_bytes(path, reproducible_gzip(data) if path.endswith(".gz") else data)


def sibling(output: str, suffix: str, extension: str | None = None) -> str:
    """``case_seg.nii.gz`` -> ``case_seg<suffix><extension>`` (extension kept unless given)."""
    stem, original = naming.split_extension(output)
    return os.path.join(os.path.dirname(output), stem + suffix + (extension or original))


class BoxLookup:
    """Per-slice box channels of one volume for a teacher, from a user box file (file voxel coordinates)."""

    def __init__(self, boxes, reorientation: Reorientation, box_file: str, image_path: str):
        from o2l_tf.data import box_files

        self.slices = box_files.per_slice_boxes(boxes, reorientation, box_file, image_path)
        self.shape = reorientation.canonical_shape[:2]

    def __call__(self, z: int) -> np.ndarray:
        organ, lesion = self.slices.get(z, ([], []))
        return box_ops.box_channels(organ, lesion, self.shape)


def predict_file(model: InferenceModel, predictor: SlicePredictor, input_path: str, output_path: str,
                 options: PredictOptions, user_boxes=None, box_file: str | None = None,
                 progress: bool = True) -> dict:
    """Predict one volume and write its outputs; returns what was written and a short summary."""
    started = time.perf_counter()
    image = load_image(input_path)
    check_3d(image, input_path)
    reorientation = Reorientation.of(image)
    hu = read_canonical_hu(image, input_path, reorientation)
    boxes = None
    if model.needs_boxes:
        if user_boxes is None:
            raise InputError(f"{input_path}: the teacher needs boxes for case {naming.case_id(input_path)} "
                             f"and {box_file} has none")
        boxes = BoxLookup(user_boxes, reorientation, box_file, input_path)
    with tqdm(total=hu.shape[2], desc=os.path.basename(input_path), unit="slice", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        grid = resample.grid_for(hu.shape[:2], reorientation.canonical_spacing, model.spacing)
        labels, probabilities = predict_volume(predictor, hu, options.batch_size, boxes, options.probabilities,
                                               on_batch=bar.update, grid=grid)
    preview = None
    if not options.preview:
        del hu  # the HU volume is only needed again for the preview: the label volumes need the room
    if options.postprocess:
        smallest = model.min_lesion_mm3 if options.min_lesion_mm3 is None else options.min_lesion_mm3
        labels = postprocess(labels, in_place=True, spacing=reorientation.canonical_spacing, min_lesion_mm3=smallest)
    if options.preview:
        preview = viz.volume_preview(hu, labels, reorientation.canonical_spacing)
        del hu
    written = [output_path]
    if options.output_format == "dicom-seg":
        from o2l_tf import dicom_seg

        atomic_write_bytes(output_path, dicom_seg.segmentation_bytes(input_path, reorientation.to_file(labels)))
    else:
        write_nifti(like(image, reorientation.to_file(labels)), output_path)
    # beside a DICOM SEG, probabilities are NIfTI on the series' grid and the preview a PNG, named after it
    siblings_of = output_path[: -len(".dcm")] + ".nii.gz" if options.output_format == "dicom-seg" else output_path
    if probabilities is not None:
        path = sibling(siblings_of, naming.PROBABILITIES_SUFFIX)
        on_file_grid = np.stack([reorientation.to_file(probabilities[..., c]) for c in range(3)], axis=-1)
        write_nifti(like(image, on_file_grid, slope=1.0 / schema.PROBABILITY_LEVELS), path)
        written.append(path)
    if preview is not None:
        path = sibling(siblings_of, "", ".png")
        viz.write_png(path, preview)
        written.append(path)
    voxel_ml = float(np.prod(reorientation.canonical_spacing)) / 1000.0
    return {"input": input_path, "outputs": written, "shape": list(reorientation.file_shape),
            "orientation": reorientation.axcodes, "seconds": round(time.perf_counter() - started, 2),
            "liver_ml": round(float(np.count_nonzero(labels)) * voxel_ml, 1),
            "lesion_ml": round(float(np.count_nonzero(labels == 2)) * voxel_ml, 1)}


def predict_files(model_path: str, inputs: list[str], out_dir: str, options: PredictOptions,
                  box_file: str | None = None, hu_window: tuple[float, float] | None = None,
                  progress: bool = True, log=print) -> list[dict]:
    """Predict every input; all inputs are checked (readable 3D headers, names, boxes) before any work."""
    if options.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.min_lesion_mm3 is not None and options.min_lesion_mm3 < 0:
        raise InputError(f"--min-lesion-mm3 must be non-negative, got {options.min_lesion_mm3:g}")
    plan = plan_outputs(collect_inputs(inputs), out_dir, options.name_template, options.output_format)
    for path, _ in plan:
        check_volume(path)
    model = load_inference_model(model_path, hu_window, options.precision)
    boxes_by_case = None
    if box_file is not None:
        from o2l_tf.data.box_files import read_box_file

        boxes_by_case = read_box_file(box_file)
    if model.needs_boxes:
        if boxes_by_case is None:
            raise InputError(f"{model.path}: is a teacher, which needs --boxes FILE (liver and lesion boxes per case)")
        missing = [p for p, _ in plan if naming.case_id(p) not in boxes_by_case]
        if missing:
            raise InputError(f"{box_file}: no boxes for {', '.join(naming.case_id(p) for p in missing[:5])}")
    os.makedirs(out_dir, exist_ok=True)
    predictor = SlicePredictor(model, options.tta)
    smallest = model.min_lesion_mm3 if options.min_lesion_mm3 is None else options.min_lesion_mm3
    removal = f", lesions under {smallest:g} mm3 removed" if options.postprocess and smallest > 0 else ""
    grid = "native spacing" if model.spacing is None else \
        f"resampled in-plane to {model.spacing[0]:g} x {model.spacing[1]:g} mm and back"
    log(f"model {model.path} ({model.role}, {model.precision}, HU window {model.hu_window[0]:g}..{model.hu_window[1]:g}"
        f", {grid}{removal}); {len(plan)} volume(s) -> {out_dir}")
    results = []
    for number, (path, output) in enumerate(plan, start=1):
        user_boxes = boxes_by_case.get(naming.case_id(path)) if boxes_by_case and model.needs_boxes else None
        result = predict_file(model, predictor, path, output, options, user_boxes, box_file, progress)
        log(f"[{number}/{len(plan)}] {os.path.basename(path)} {result['orientation']} "
            f"{'x'.join(map(str, result['shape']))} -> {os.path.basename(output)}: liver {result['liver_ml']:.0f} ml, "
            f"lesion {result['lesion_ml']:.1f} ml, {result['seconds']:.1f} s")
        results.append(result)
    return results
