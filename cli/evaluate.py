"""``o2l evaluate``."""

from __future__ import annotations

import click

from .errors import reports_bad_input


@click.command("evaluate")
@click.option("--pred", "pred_dir", required=True, type=click.Path(), help="Folder of predicted label volumes.")
@click.option("--ref", "ref_dir", required=True, type=click.Path(), help="Folder of reference label volumes.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the per-case scores as CSV.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write per-case and overall scores as JSON.")
@click.option("--missing-as-empty", is_flag=True, help="Score references without a prediction as empty predictions.")
@reports_bad_input
def evaluate(pred_dir, ref_dir, csv_path, json_path, missing_as_empty):
    """The official LiTS metrics per case and overall, printed in the layout of the paper's Table I."""
    from o2l_tf.io_utils import atomic_write_bytes, write_json
    from o2l_tf.metrics.evaluation import evaluate_folders, format_report, rows_to_csv

    rows, summary, unmatched = evaluate_folders(pred_dir, ref_dir, missing_as_empty, log=click.echo)
    if unmatched:
        click.echo(f"ignored {len(unmatched)} prediction(s) without a reference: {', '.join(unmatched[:8])}")
    click.echo(format_report(rows, summary))
    if csv_path:
        atomic_write_bytes(csv_path, rows_to_csv(rows))
    if json_path:
        write_json(json_path, {"cases": rows, "summary": summary})
