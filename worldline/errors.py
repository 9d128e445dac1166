"""Errors the CLI reports as one line with exit code 2, and checks that raise them early."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path


class BadInput(Exception):
    """A user error in a subcommand (bad flag value, missing file): one line, exit code 2."""


def check_output(path, flag: str = "--out", folder: bool = False) -> Path:
    """Refuse, before any work, an output the command could not write at the end.

    ``path`` is a file to write (``folder=False``: it must not be a folder) or a folder to fill
    (``folder=True``: it must not be a file). The nearest existing parent must be a folder this
    process can create files in (probed with a temporary file that is removed at once).
    Raises :class:`BadInput` naming ``flag`` and the path.
    """
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise BadInput(f"{flag} {path}: cannot write a folder there, it is a file")
    elif path.is_dir():
        raise BadInput(f"{flag} {path}: cannot write a file there, it is a folder")
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists():
        if parent.is_symlink() or parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise BadInput(f"{flag} {path}: cannot write there, {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".worldline-probe-", dir=parent)
    except OSError as exc:
        raise BadInput(f"{flag} {path}: cannot write in {parent} ({exc.strerror or exc}; is it read-only?)") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_number(value: float, flag: str, positive: bool = False, nonneg: bool = False,
                 at_most: float | None = None) -> float:
    """Refuse a non-finite flag value (NaN, inf), a non-positive one (``positive``), a negative one
    (``nonneg``) or one above ``at_most``, naming the flag."""
    if value is None:
        return value
    if not math.isfinite(value):
        raise BadInput(f"{flag}: must be a finite number, got {value}")
    if positive and value <= 0:
        raise BadInput(f"{flag}: must be positive, got {value}")
    if nonneg and value < 0:
        raise BadInput(f"{flag}: must not be negative, got {value}")
    if at_most is not None and value > at_most:
        raise BadInput(f"{flag}: must be at most {at_most:g}, got {value}")
    return value
