"""Errors the CLI reports as one line with exit code 2."""


class BadInput(Exception):
    """A user error in a subcommand (bad flag value, missing file): one line, exit code 2."""
