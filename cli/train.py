"""``o2l train`` and ``o2l pseudo-label``."""

from __future__ import annotations

import click

from .errors import BadInput, reports_bad_input
from o2l_tf.configs.run import PRESETS


@click.command("train")
@click.option("--role", type=click.Choice(["teacher", "student"]), required=True)
@click.option("--records", "records_dir", required=True, type=click.Path(), help="Output of o2l build-records.")
@click.option("--model-dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumed if it exists).")
@click.option("--teacher", "teacher_dir", type=click.Path(), help="Teacher run folder (student: makes pseudo-labels).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="paper", show_default=True,
              help="paper: Sec. IV-B; demo: make demo (minutes on a CPU); converge: the same recipe to convergence; "
                   "test: seconds.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a setting, e.g. --set train.epochs=10 --set model.base_filters=16 (repeatable).")
@click.option("--weak-labels", type=click.Choice(["pseudo", "boxes", "none"]),
              help="Student: teacher soft labels (the method), the box partition as mask, or strong cases only.")
@click.option("--no-localization", is_flag=True, help="Student without the localization branch.")
@click.option("--devices", help="Devices for MirroredStrategy, e.g. GPU:0,GPU:1 [default: all GPUs].")
@click.option("--jit", type=click.Choice(["auto", "on", "off"]), help="XLA [default auto: on for GPUs only].")
@click.option("--precision", type=click.Choice(["float32", "mixed_float16", "mixed_bfloat16", "auto"]),
              help="Compute precision [default float32; auto: mixed_bfloat16 on CPU-only machines with native bf16].")
@click.option("--seed", type=int, help="Data order and initialisation seed [default 0].")
@click.option("--overwrite", is_flag=True, help="Replace a run with a different configuration in --model-dir.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@reports_bad_input
def train(role, records_dir, model_dir, teacher_dir, preset, overrides, weak_labels, no_localization, devices, jit,
          precision, seed, overwrite, quiet):
    """Train the teacher annotator or the student segmentor (resumes an interrupted run)."""
    from o2l_tf.configs.run import apply_overrides, preset as make_preset
    from o2l_tf.training.callbacks import TrainingDiverged
    from o2l_tf.training.run import train as run_training

    config = apply_overrides(make_preset(preset, role), list(overrides))
    for name, value in (("weak_labels", weak_labels), ("jit", jit), ("precision", precision), ("seed", seed)):
        if value is not None:
            setattr(config.train, name, value)
    if no_localization:
        config.train.localization = False
    if role == "teacher" and (teacher_dir or weak_labels or no_localization):
        raise BadInput("--teacher, --weak-labels and --no-localization apply to --role student only")
    try:
        summary = run_training(config, records_dir, model_dir, teacher_dir=teacher_dir, overwrite=overwrite,
                               devices=devices, progress=not quiet, log=click.echo)
    except TrainingDiverged as error:
        raise click.ClickException(str(error)) from error
    history = summary["history"]
    final = {k: v[-1] for k, v in history.items() if k.startswith("val_") and k.endswith("dice")}
    shown = " ".join(f"{k}={v:.3f}" for k, v in sorted(final.items()))
    click.echo(f"done: {', '.join(summary.get('exported', []))} {shown}".rstrip())


@click.command("pseudo-label")
@click.option("--teacher", "teacher_dir", required=True, type=click.Path(), help="Teacher run folder.")
@click.option("--records", "records_dir", required=True, type=click.Path(), help="Records with a weak split.")
@click.option("--quiet", is_flag=True)
@reports_bad_input
def pseudo_label(teacher_dir, records_dir, quiet):
    """Write the teacher's soft labels for every weak example beside the weak shards."""
    from o2l_tf.training.pseudo_labels import generate

    info = generate(teacher_dir, records_dir, progress=not quiet)
    click.echo(f"wrote {info['examples']} soft labels in {len(info['shards'])} shards "
               f"(teacher sha256 {info['teacher_sha256'][:12]})")
