"""Entry point of the ``embcompress`` command.

Each verb lives in its own module of this package and exposes ``command``; this file only wires
them into one Typer app and turns exceptions into exit codes (0 ok, 1 bad input, 2 usage,
3 integrity failure), printing one line, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ..container import file_in_the_way
from ..errors import EmbcompressError

# verb -> module of embcompress.cli that defines `command`
COMMANDS = {
    "demo": "demo",
    "evaluate": "evaluate",
    "export": "export",
    "fit-hash": "fit_hash",
    "inspect": "inspect",
    "mine": "mine",
    "verify": "verify",
}

app = typer.Typer(
    name="embcompress",
    help="Compress recommendation-model embedding tables and serve them fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


for _verb, _module in COMMANDS.items():
    _mod = importlib.import_module(f"{__package__}.{_module}")
    # The docstring's line breaks are for the source: rejoin each paragraph for the terminal,
    # and list a verb by its first paragraph.
    _paras = [" ".join(p.split()) for p in (_mod.__doc__ or "").split("\n\n") if p.strip()]
    app.command(name=_verb, help="\n\n".join(_paras), short_help=_paras[0] if _paras else None)(_mod.command)


def main(argv: list[str] | None = None) -> None:
    try:
        # Outside standalone mode Typer returns the code of a typer.Exit (and 130 for Ctrl-C)
        # instead of exiting: hand it to the shell.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            if code == 130:
                print("Interrupted.", file=sys.stderr)
            sys.exit(code)
    except SystemExit:
        raise
    except Exception as exc:  # the one place exceptions become exit codes
        try:  # typer >= 0.2x vendors click and raises its own exceptions, whether or not click is installed
            from typer._click.exceptions import ClickException
        except ImportError:  # an earlier typer raises click's
            from click import ClickException

        if isinstance(exc, typer.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, typer.Abort):
            print("Aborted.", file=sys.stderr)
            sys.exit(1)
        if _state["debug"]:
            import traceback

            traceback.print_exc()
        blocker = file_in_the_way(exc.filename) if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename else None
        if blocker is not None:
            # e.g. an output folder's path names a file: OSError's text says neither which nor what to do
            print(f"error: {str(blocker)!r} is a file, not a folder, so {str(exc.filename)!r} "
                  f"cannot be used as a folder. Pass another path, or move the file away.", file=sys.stderr)
            sys.exit(1)
        if isinstance(exc, PermissionError) and exc.filename:
            print(f"error: Permission denied for {str(exc.filename)!r}. Pass another path, or change its permissions.",
                  file=sys.stderr)
            sys.exit(1)
        if isinstance(exc, EmbcompressError):
            code = exc.exit_code  # 3 for a damaged artifact, 1 for a missing one and bad input
        elif isinstance(exc, (OSError, ValueError)):
            code = 1
        else:
            code = 1
            print(f"embcompress: unexpected {type(exc).__name__} (rerun with --debug for the traceback)", file=sys.stderr)
        flag = _flag_of(exc, sys.argv[1:] if argv is None else argv)
        print(f"error: {exc}" + (f" (on the command line: {flag})" if flag else ""), file=sys.stderr)
        sys.exit(code)


def _flag_of(exc: Exception, argv: list[str]) -> str | None:
    """The option of the running verb that sets the library parameter ``exc`` names, if any: each
    verb's module maps its parameters to its flags in ``FLAGS``."""
    param = getattr(exc, "param", None)
    verb = next((a for a in argv if not a.startswith("-")), None)
    if param is None or verb not in COMMANDS:
        return None
    return getattr(importlib.import_module(f"{__package__}.{COMMANDS[verb]}"), "FLAGS", {}).get(param)
