"""``o2l reproduce``."""

from __future__ import annotations

import click

from .errors import BadInput, reports_bad_input
from o2l_tf.reproduce.plan import SCALES


@click.command("reproduce")
@click.option("--study", type=click.Choice(["table1", "table2", "ratios", "perturbation", "all"]), required=True,
              help="table2: teacher ablation; table1: students; ratios: Fig. 10; perturbation: Sec. IV-F.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for cohorts, records, runs and reports; rerun the same command to resume.")
@click.option("--scale", type=click.Choice(list(SCALES)), default="small", show_default=True,
              help="small: minutes (checks the machinery); medium: about 50 minutes per seed on 2 CPU cores "
                   "with bf16; paper: GPUs.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Phantom and training seed (test phantoms use seed + 1).")
@click.option("--seeds", help="Several seeds, e.g. 0,2: each in OUT/seed-N, and OUT/report.md with mean and "
                              "per-seed values (seeds must not be adjacent).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@reports_bad_input
def reproduce(study, out, scale, seed, seeds, quiet):
    """Reproduce the paper's experiments on synthetic phantoms; writes <study>.md/.csv (and report.md for all)."""
    from o2l_tf.reproduce import reproduce as run

    chosen = None
    if seeds:
        try:
            chosen = [int(s) for s in seeds.replace(" ", ",").split(",") if s]
        except ValueError:
            raise BadInput(f"--seeds {seeds!r}: expected integers separated by commas, e.g. 0,2") from None
    from o2l_tfrecords_builder.build import build_phantom_records

    click.echo(run(out, study, build_phantom_records, scale, seed, progress=not quiet, log=click.echo, seeds=chosen))
