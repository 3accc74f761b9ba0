"""The command line's error convention, shared by every command module (none of them imports ``cli.main``).

Every failure the user can fix ends in one line on stderr, ``o2l <command>: error: <what, where>``, and exit
code 2. Those are the library's ``InputError`` (and click's own usage errors); anything else is a bug or an
environment failure and keeps its traceback, with exit code 1.
"""

from __future__ import annotations

import functools

import click

from o2l_tf.errors import InputError


class BadInput(click.ClickException):
    """A problem with what the user gave us (a file, a folder, an option value): exit code 2."""

    exit_code = 2


def reports_bad_input(command):
    """Turn the library's ``InputError`` into a one-line ``BadInput`` error."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as error:
            problem = BadInput(str(error).splitlines()[0] if str(error) else type(error).__name__)
            problem.ctx = click.get_current_context(silent=True)
            raise problem from error

    return wrapper
