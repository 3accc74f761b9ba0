"""``o2l build-records`` and ``o2l inspect-records``."""

from __future__ import annotations

import os

import click

from .errors import reports_bad_input


def _split(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"expected STRONG:WEAK:VAL percentages such as 30:60:10, got {text!r}")
    return tuple(int(p) for p in parts)


def _window(text: str) -> tuple[float, float]:
    try:
        low, high = (float(p) for p in text.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected LOW:HIGH in HU such as -200:250, got {text!r}") from None
    return low, high


@click.command("build-records")
@click.option("--data", type=click.Path(), help="Cohort folder in LiTS or MSD Task03 layout.")
@click.option("--cases", "cases_file", type=click.Path(), help="CSV/JSON list of case_id, image[, label].")
@click.option("--layout", type=click.Choice(["lits", "msd"]), help="Force the layout of --data.")
@click.option("--out", required=True, type=click.Path(), help="Output folder (local or gs://...).")
@click.option("--split", default="30:60:10", show_default=True, callback=lambda c, p, v: _split(v),
              help="STRONG:WEAK:VAL percent of cases, seeded by --seed.")
@click.option("--split-file", type=click.Path(), help="JSON {split: [case ids]} or CSV case_id,split.")
@click.option("--boxes", type=click.Path(), help="Box annotations for weak cases (CSV/JSON, see README).")
@click.option("--perturb-boxes", is_flag=True, help="Perturb weak boxes as in Sec. IV-F of the paper.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--margin-slices", type=click.IntRange(min=0), default=2, show_default=True,
              help="Slices kept beyond the first/last box in strong and weak cases.")
@click.option("--spacing", default="auto", show_default=True,
              help="In-plane spacing of the records: auto (median of the strong cases, nnU-Net's rule), native (no "
                   "resampling, the paper's), or X,Y in mm. o2l predict resamples to it and back.")
@click.option("--hu-window", default="-200:250", show_default=True, callback=lambda c, p, v: _window(v),
              help="HU clipping window (paper: -200:250).")
@click.option("--shards", type=click.IntRange(min=1), help="Shards per split [default: ~150 MB each].")
@click.option("--compression", type=click.Choice(["gzip", "none"]), default="gzip", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes [default: CPUs].")
@click.option("--overwrite", is_flag=True, help="Replace a build of another configuration in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@reports_bad_input
def build_records(data, cases_file, layout, out, split, split_file, boxes, perturb_boxes, seed, margin_slices,
                  spacing, hu_window, shards, compression, workers, overwrite, quiet):
    """Turn a NIfTI cohort into sharded TFRecords of three-slice examples with box channels."""
    from o2l_tf.data.inspect import summary_lines
    from o2l_tfrecords_builder.build import BuildConfig, build_records as build, parse_spacing

    config = BuildConfig(data=data, cases_file=cases_file, layout=layout, split=split, split_file=split_file,
                         seed=seed, boxes=boxes, perturb_boxes=perturb_boxes, margin_slices=margin_slices,
                         spacing=parse_spacing(spacing), hu_window=hu_window, shards=shards, compression="GZIP" if compression == "gzip" else "")
    manifest = build(config, out, workers=workers or (os.cpu_count() or 1), overwrite=overwrite,
                     progress=not quiet)
    click.echo("\n".join(summary_lines(out, manifest)))


@click.command("inspect-records")
@click.argument("records_dir", type=click.Path())
@click.option("--png", type=click.Path(dir_okay=False), help="Write a montage of examples (one row per split).")
@click.option("--per-split", type=click.IntRange(min=1), default=4, show_default=True)
@reports_bad_input
def inspect_records(records_dir, png, per_split):
    """Print counts per split and optionally render examples with their boxes and labels."""
    from o2l_tf import visualization as viz
    from o2l_tf.data import inspect, records

    manifest = records.load_manifest(records_dir)
    click.echo("\n".join(inspect.summary_lines(records_dir, manifest)))
    if png:
        viz.write_png(png, inspect.render_records(records_dir, per_split, manifest))
        click.echo(f"wrote {png}")
