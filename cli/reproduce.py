"""``o2l reproduce``."""

from __future__ import annotations

import click

from cli.main import reports_bad_input


@click.command("reproduce")
@click.option("--study", type=click.Choice(["table1", "table2", "ratios", "perturbation", "all"]), required=True,
              help="table2: teacher ablation; table1: students; ratios: Fig. 10; perturbation: Sec. IV-F.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for cohorts, records, runs and reports; rerun the same command to resume.")
@click.option("--scale", type=click.Choice(["small", "medium", "paper"]), default="small", show_default=True,
              help="small: minutes (checks the machinery); medium: about an hour on 2 CPU cores; paper: GPUs.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Phantom and training seed (test phantoms use seed + 1).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@reports_bad_input
def reproduce(study, out, scale, seed, quiet):
    """Reproduce the paper's experiments on synthetic phantoms; writes <study>.md/.csv (and report.md for all)."""
    from o2l_tf.reproduce import reproduce as run

    click.echo(run(out, study, scale, seed, progress=not quiet, log=click.echo))
