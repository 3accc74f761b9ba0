"""``o2l synth``: write a cohort of realistic LiTS-like CT phantoms."""

from __future__ import annotations

import os

import click

from .errors import reports_bad_input


def parse_range(text: str) -> tuple[int, int]:
    """'60:120' -> (60, 120); a single number means a fixed value."""
    parts = text.split(":")
    if len(parts) not in (1, 2) or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise click.BadParameter(f"expected LOW:HIGH (e.g. 60:120), got {text!r}")
    low, high = int(parts[0]), int(parts[-1])
    if not 1 <= low <= high:
        raise click.BadParameter(f"expected 1 <= LOW <= HIGH, got {text!r}")
    return low, high


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--cases", type=click.IntRange(min=1), required=True, help="Number of cases to generate.")
@click.option("--size", type=click.IntRange(min=32), default=512, show_default=True,
              help="In-plane matrix size; spacing scales so the body still fills the field.")
@click.option("--slices", default="60:120", show_default=True, callback=lambda c, p, v: parse_range(v),
              help="Range of slice counts per case (LOW:HIGH).")
@click.option("--seed", type=int, default=0, show_default=True, help="Cohort seed; same arguments, same bytes.")
@click.option("--layout", type=click.Choice(["lits", "msd"]), default="lits", show_default=True,
              help="LiTS (volume-N/segmentation-N) or MSD Task03 (imagesTr/labelsTr/dataset.json).")
@click.option("--gzip/--no-gzip", default=True, show_default=True, help="Write .nii.gz (MSD is always gzipped).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel processes [default: number of CPUs, at most --cases].")
@click.option("--preview", is_flag=True, help="Also write previews/case-N.png and a cohort preview.png.")
@click.option("--overwrite", is_flag=True, help="Allow writing into a non-empty folder (replaces our files only).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@reports_bad_input
def synth(out, cases, size, slices, seed, layout, gzip, workers, preview, overwrite, quiet):
    """Write a cohort of synthetic abdominal CT phantoms with liver and lesion labels to OUT."""
    from o2l_tf.synth.cohort import CohortSpec, write_cohort

    spec = CohortSpec(cases=cases, size=size, slices=slices, seed=seed, layout=layout, gzip=gzip)
    spec.validate()
    workers = workers or max(1, min(os.cpu_count() or 1, cases))
    summaries = write_cohort(out, spec, workers=workers, preview=preview, overwrite=overwrite, progress=not quiet)
    lesions = sum(s["lesions_planted"] for s in summaries)
    phases = sorted({s["phase"] for s in summaries})
    click.echo(f"wrote {len(summaries)} {layout.upper()} cases to {out} ({lesions} lesions; phases: {', '.join(phases)})")
    if preview:
        click.echo(f"preview: {os.path.join(out, 'preview.png')} and {os.path.join(out, 'previews')}/")
