"""Errors about what the user gave us. The command line prints them on one line with exit code 2."""


class InputError(ValueError):
    """Bad input: the message names the file (or option) and the problem."""
