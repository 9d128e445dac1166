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


class _QuietWarp:
    """Import hook: the first ``import warp`` (anywhere, by any command) is followed by
    :func:`_init_warp_quietly`, so Warp stays silent without every start paying for its import (about a
    second: ``worldline audit`` on rollouts whose objects never come close does not need it)."""

    def find_spec(self, name, path=None, target=None):
        if name != "warp":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module
        hook = self

        def exec_module(module):
            run(module)
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
            _init_warp_quietly()

        loader.exec_module = exec_module
        return spec


if "warp" in sys.modules:
    _init_warp_quietly()
elif not any(isinstance(f, _QuietWarp) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietWarp())

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["demo", "lift", "simulate", "dataset", "train", "rollout", "audit", "plan", "evaluate", "view"]

#: Exit codes of every subcommand (README "Command line"). ``audit`` also uses 1 for "glitches found".
EXIT_OK = 0
EXIT_GLITCHES = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

#: Environment variable that, like ``worldline --debug``, shows the traceback of an unexpected error.
DEBUG_ENV = "WORLDLINE_DEBUG"

_state = {"debug": False, "command": None}

app = typer.Typer(
    name="worldline",
    help="A 3D world-model simulator on particles and keypoints, with a physics critic.\n\n"
    "Lift a scene into particles, simulate or predict how they move under a tool, audit any rollout "
    "for physical glitches, and view it all in Rerun.\n\n"
    "Exit codes: 0 done, 1 glitches found (audit), 2 bad input, 3 unexpected error (rerun with --debug "
    "for its traceback), 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help=f"Show the full traceback of an unexpected error "
                                                      f"(also: {DEBUG_ENV}=1)."),
) -> None:
    """A 3D world-model simulator on particles and keypoints, with a physics critic."""
    if debug:
        _state["debug"] = True
    _state["command"] = ctx.invoked_subcommand


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


def _usage_error_types() -> tuple[type, ...]:
    """The exception types of usage errors (bad flags, missing arguments), from public APIs only.

    typer >= 0.26 runs on its own copy of click (from 0.29 its ``ClickException`` derives from the
    public ``typer.TyperException``); older typer runs on the ``click`` package (``click.ClickException``).
    In every version the public ``typer.BadParameter`` is a subclass of the ``ClickException`` in use.
    """
    types: list[type] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    # typer 0.26-0.28 vendor click without exporting its base class; the public typer.BadParameter
    # derives from it in every version
    types += [cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"]
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # typer that vendors click does not pull the click package in
        pass
    return tuple(types)


def _one_line(text: str, limit: int = 800) -> str:
    """``text`` on one line (whitespace runs collapsed), cut at ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _say(text: str) -> None:
    typer.secho(f"worldline: error: {_one_line(text)}", err=True, fg=typer.colors.RED)


def _os_error_line(exc: OSError) -> str:
    """``path: problem`` for an OSError about a file (permission, folder, missing)."""
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    if isinstance(exc, IsADirectoryError):
        what = "is a folder, expected a file"
    elif isinstance(exc, NotADirectoryError):
        what = "a part of this path is a file, not a folder"
    elif isinstance(exc, PermissionError):
        what = "permission denied (is the folder read-only?)"
    elif isinstance(exc, FileNotFoundError):
        what = "no such file or folder"
    return f"{where}: {what}" if where else what


def _bad_input_types() -> tuple[type, ...]:
    return (FileFormatError, ValidationError, BadInput)


#: OSErrors that are the user's input (a path that is missing, a folder, read-only), not a failure of ours.
_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def main(argv=None) -> int:
    """Entry point of the ``worldline`` console script; returns the exit code.

    Bad input (:class:`particles.FileFormatError`, :class:`particles.ValidationError`,
    :class:`worldline.errors.BadInput`, a path that is missing, a folder or read-only, a bad
    flag) prints one line and returns 2. Ctrl-C returns 130 (every file is written atomically,
    so nothing half-written is left). Any other error prints one line naming what failed and
    returns 3; ``worldline --debug ...`` or ``WORLDLINE_DEBUG=1`` adds its traceback.
    """
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")
    _state["command"] = None
    import warnings

    if not _state["debug"]:  # NumPy's overflow / invalid-value notes on wild input say nothing to a user
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(numpy|critic|particles|dynamics|viz)")
    try:
        rv = app(args=args, standalone_mode=False, prog_name="worldline")
    except _bad_input_types() as exc:
        _say(exc)
        return EXIT_BAD_INPUT
    except _PATH_ERRORS as exc:
        _say(_os_error_line(exc))
        return EXIT_BAD_INPUT
    except typer.Exit as exc:  # older typer raises it here; newer returns its code
        return int(exc.exit_code)
    except typer.Abort:  # older click turns Ctrl-C (and EOF at a prompt) into Abort
        typer.secho("worldline: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        typer.secho("worldline: interrupted", err=True)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except _usage_error_types() as exc:
        ctx = getattr(exc, "ctx", None)
        if not args and ctx is not None:  # bare `worldline`: the help (rich help is already printed)
            text = exc.format_message()
            if text.strip():
                typer.echo(text)
            return EXIT_OK
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        _say(f"{exc.format_message()}{where}")
        return EXIT_BAD_INPUT
    except MemoryError:
        _say(f"{_state['command'] or 'worldline'}: ran out of memory; try a coarser spacing, fewer frames or "
             "fewer particles")
        return EXIT_INTERNAL
    except Exception as exc:
        if _state["debug"]:
            import traceback

            traceback.print_exc()
        what = f"'worldline {_state['command']}'" if _state["command"] else "worldline"
        hint = "the traceback is above" if _state["debug"] else \
            f"run again with 'worldline --debug ...' or {DEBUG_ENV}=1 for the traceback"
        typer.secho(f"worldline: internal error: {what} failed: {type(exc).__name__}: {_one_line(exc)[:300]} "
                    f"({hint}; please report it)", err=True, fg=typer.colors.RED)
        return EXIT_INTERNAL
    if isinstance(rv, int) and not isinstance(rv, bool):  # newer typer returns Exit's code (Ctrl-C: 130)
        if rv == EXIT_INTERRUPTED:
            typer.secho("worldline: interrupted", err=True)
        return rv
    return EXIT_OK


def run() -> None:
    """Console entry point: ``sys.exit(main())``, except that an interrupted run ends with status 130 for sure.

    After a Ctrl-C that ``main`` caught, CPython may still end the process by re-raising SIGINT at exit (status
    -2 to a parent); seen in two of four full test-suite runs here, never when the test ran alone. Every file is
    already closed or removed by then (atomic writes clean up in ``finally``), so the
    process flushes its streams and leaves with ``os._exit(130)``.
    """
    import os

    code = main()
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed pipe: nothing left to say
                pass
        os._exit(EXIT_INTERRUPTED)
    sys.exit(code)


if __name__ == "__main__":
    run()
