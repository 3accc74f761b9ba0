"""``o2l predict``."""

from __future__ import annotations

import click

from .errors import reports_bad_input


@click.command("predict")
@click.option("--model", "model_path", required=True, type=click.Path(),
              help="Run folder (student.keras, else teacher.keras) or a .keras file.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--name", "name_template", default="auto", show_default=True,
              help="Output names: auto = LiTS names for test-volume-N/volume-N inputs, else {name}_seg.nii.gz; "
                   "or a pattern such as '{name}.nii.gz'.")
@click.option("--output-format", type=click.Choice(["nifti", "dicom-seg"]), default="nifti", show_default=True,
              help="dicom-seg: a DICOM Segmentation object (liver, lesion) referencing each input DICOM series, "
                   "NAME_seg.dcm; DICOM series inputs only.")
@click.option("--no-postprocess", is_flag=True, help="Raw argmax labels (no largest component / hole filling).")
@click.option("--min-lesion-mm3", type=float,
              help="Lesion components smaller than this become liver [default: the run's export.json; 0: none, "
                   "as the paper].")
@click.option("--tta", type=click.Choice(["none", "flip"]), default="none", show_default=True,
              help="flip: average with a left-right mirrored pass.")
@click.option("--probabilities", is_flag=True, help="Also write NAME_probabilities (4D uint8, scaled by 1/255).")
@click.option("--preview", is_flag=True, help="Also write a PNG of axial slices with the predicted contours.")
@click.option("--boxes", "box_file", type=click.Path(), help="Box file (CSV/JSON): required for a teacher model.")
@click.option("--batch-size", default=4, show_default=True, type=int, help="Slices per network call.")
@click.option("--hu-window", nargs=2, type=float, help="Override the HU window from the run's export.json.")
@click.option("--precision", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
              help="auto: bfloat16 on CPUs with AVX512-BF16/AMX and no GPU (faster, same Dice: make bench), "
                   "else float32.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@reports_bad_input
def predict(model_path, inputs, out_dir, name_template, output_format, no_postprocess, min_lesion_mm3, tta, probabilities, preview,
            box_file, batch_size, hu_window, precision, quiet):
    """Segment liver and lesions in NIfTI volumes (files, folders or globs) or DICOM CT series (folders); outputs on
    each input's grid."""
    from o2l_tf.inference.predict import PredictOptions, predict_files

    options = PredictOptions(batch_size=batch_size, tta=tta == "flip", postprocess=not no_postprocess,
                             probabilities=probabilities, preview=preview, name_template=name_template,
                             precision=precision, min_lesion_mm3=min_lesion_mm3, output_format=output_format)
    results = predict_files(model_path, list(inputs), out_dir, options, box_file=box_file,
                            hu_window=tuple(hu_window) if hu_window else None, progress=not quiet, log=click.echo)
    click.echo(f"done: {len(results)} prediction(s) in {out_dir}")
