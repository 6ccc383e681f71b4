"""The ``nas`` command: a thin layer over the public API.

Every error a user can cause is one line on stderr and exit code 2; ``nas
--debug ...`` shows the traceback instead.

Each command is a module of this package (``nas.cli.show``,
``nas.cli.latency``, ...) exposing ``command``, and is imported only when it
runs (click's lazy loading of subcommands): ``nas show`` does not pay for
Optuna, which ``nas search`` needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from difflib import get_close_matches
from typing import Annotated, Any

import typer
import typer.core

import nas
from nas.ir.errors import NASError

# In the order ``nas --help`` lists them; each is the module nas.cli.<name>.
COMMANDS = (
    "show",
    "blocks",
    "space",
    "zoo",
    "draw",
    "search",
    "supernet",
    "results",
    "export",
    "import",
    "train",
    "latency",
)

MODULES = {"import": "importer"}
"""Commands whose module is named otherwise (``import`` is a Python keyword)."""

_SETTINGS: dict[str, Any] = {"add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None}


def as_command(function: Callable[..., Any], name: str) -> typer.core.TyperCommand:
    """``function`` as the command ``name``: its parameters' annotations read
    by typer, as the root app reads its own."""
    single = typer.Typer(**_SETTINGS)
    single.command(name)(function)
    command = typer.main.get_command(single)
    assert isinstance(command, typer.core.TyperCommand)
    return command


class LazyGroup(typer.core.TyperGroup):
    """A group whose commands are the modules ``nas.cli.<name>``, imported
    when a command is asked for (to run it, or for ``--help``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suggest_commands = False  # typer suggests from the loaded commands only; resolve_command does it

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> typer.core.TyperCommand | None:  # type: ignore[override]
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.commands[cmd_name] = importlib.import_module(f"nas.cli.{MODULES.get(cmd_name, cmd_name)}").command
        return self.commands[cmd_name]  # type: ignore[return-value]

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:  # type: ignore[override]
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as e:
            matches = get_close_matches(args[0], COMMANDS) if args else []
            if matches:
                e.message = f"{e.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise


app = typer.Typer(
    name="nas",
    help="Neural architecture search by block composition.",
    cls=LazyGroup,
    no_args_is_help=True,
    **_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        print(f"nas {nas.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Neural architecture search by block composition."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns a command's typer.Exit code
        # instead of raising it.
        code = command.main(args=args, prog_name="nas", standalone_mode=False)
    except NASError as e:
        if debug:
            raise
        print(f"nas: error: {e}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("nas: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as e:  # usage errors: unknown command, missing argument
        e.show()  # type: ignore[attr-defined]
        return int(getattr(e, "exit_code", 2))
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug of ours: still one line, unless --debug
        if debug:
            raise
        print(
            f"nas: internal error: {type(e).__name__}: {e} (run 'nas --debug ...' for the traceback and report it)",
            file=sys.stderr,
        )
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())
