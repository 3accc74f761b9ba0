"""``o2l demo``."""

from __future__ import annotations

import click

from .errors import reports_bad_input


@click.command("demo")
@click.option("--out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every output (an earlier demo there is replaced).")
@click.option("--scale", type=click.Choice(["demo", "full", "test"]), default="demo", show_default=True,
              help="demo: minutes on 2 CPU cores (make demo); full: the converged recipe (make demo-full, about "
                   "an hour); test: tiny phantoms and the test preset (the test suite's).")
@click.option("--precision", type=click.Choice(["auto", "float32", "mixed_bfloat16"]), default=None,
              help="Replace the preset's train.precision (auto: bf16 only where the CPU runs it natively); "
                   "float32 times what a CPU without native bf16 runs. Prediction follows.")
@click.option("--quiet", is_flag=True, help="No progress bars (stage lines and results are still printed).")
@reports_bad_input
def demo(out, scale, precision, quiet):
    """Synthesise phantoms, build records, train teacher and student, predict held-out phantoms, evaluate."""
    from o2l_tf.demo import run_demo
    from o2l_tfrecords_builder.build import build_phantom_records

    run_demo(out, build_phantom_records, scale, progress=not quiet, log=click.echo, precision=precision)
