"""The ``worldline`` command line: one app, one module per subcommand.

Each ``worldline/cmd_<name>.py`` defines ``register(app)``; this file wires them
and turns bad input into one clear line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import importlib
import sys

import typer

from particles import FileFormatError, ValidationError
from worldline.errors import BadInput

def _init_warp_quietly() -> None:
    """Initialise Warp without its banner and module-load lines on the user's terminal.

    Warp 1.19 prints those at log level INFO; its native code also prints a warning to stderr
    on every machine without a CUDA driver. That one expected line is dropped; anything else
    Warp writes to stderr while starting is passed on.
    """
    import os
    import tempfile

    import warp as wp

    wp.config.quiet = True  # older Warp
    wp.config.log_level = getattr(wp, "LOG_WARNING", 30)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            wp.init()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    rest = [line for line in text.splitlines() if "Could not find or load the NVIDIA CUDA driver" not in line]
    if any(line.strip() for line in rest):
        sys.stderr.write("\n".join(rest) + "\n")


_init_warp_quietly()

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["demo", "lift", "simulate", "dataset", "train", "rollout", "audit", "plan", "view"]

EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="worldline",
    help="A 3D world-model simulator on particles and keypoints, with a physics critic.\n\n"
    "Lift a scene into particles, simulate or predict how they move under a tool, audit any rollout "
    "for physical glitches, and view it all in Rerun.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """A 3D world-model simulator on particles and keypoints, with a physics critic."""


def _click_exceptions():
    """typer >= 0.20 vendors click; usage errors come from whichever click typer runs on."""
    try:
        from typer._click import exceptions as exc  # type: ignore[attr-defined]
    except ImportError:  # older typer on plain click
        from click import exceptions as exc
    return exc


def _register_all() -> None:
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"worldline.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"worldline.cmd_{name}":
                continue  # subcommand not built yet
            raise
        module.register(app)


_register_all()


def main(argv=None) -> int:
    """Entry point of the ``worldline`` console script."""
    try:
        app(args=argv, standalone_mode=False)
    except (FileFormatError, ValidationError, BadInput, FileNotFoundError) as exc:
        typer.secho(f"worldline: error: {exc}", err=True, fg=typer.colors.RED)
        return EXIT_BAD_INPUT
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        typer.secho("worldline: interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors (bad flags, missing arguments)
        cx = _click_exceptions()
        if isinstance(exc, cx.ClickException):
            exc.show()
            return EXIT_BAD_INPUT
        if isinstance(exc, cx.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
