"""The ``o2l`` command group and its console entry point (the error convention is in ``cli.errors``)."""

from __future__ import annotations

import os
import sys

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow start-up chatter off the terminal

from o2l_tf import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="o2l")
def o2l() -> None:
    """Liver and lesion segmentation from mixed supervision (teacher-student, O2L attention)."""


def _register_commands() -> None:
    from .demo import demo
    from .evaluate import evaluate
    from .predict import predict
    from .records import build_records, inspect_records
    from .reproduce import reproduce
    from .synth import synth
    from .train import pseudo_label, train

    for command in (synth, build_records, inspect_records, train, pseudo_label, predict, evaluate, demo,
                    reproduce):
        o2l.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group and print errors on one line."""
    try:
        o2l.main(args=argv, prog_name="o2l", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        click.echo("o2l: aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        where = f"o2l {error.ctx.command.name}" if getattr(error, "ctx", None) and error.ctx.command.name != "o2l" else "o2l"
        message = " ".join(error.format_message().split())
        click.echo(f"{where}: error: {message}", err=True)
        sys.exit(error.exit_code)
    sys.exit(0)


if __name__ == "__main__":
    main()
