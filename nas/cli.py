"""The ``nas`` command: a thin layer over the public API.

Every error a user can cause is one line on stderr and exit code 2; ``nas
--debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import nas
import nas.draw
from nas.analysis import node_table
from nas.errors import NASError

app = typer.Typer(
    name="nas",
    help="Neural architecture search by block composition.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


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


def _console() -> Console:
    """A console for tables: as wide as the terminal, or roomy when piped
    (rich's default of 80 columns would cut node names in files and logs)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(int(value))


def _shape(shapes: list[list[int]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


@app.command()
def show(
    source: Annotated[str, typer.Argument(help="An IR YAML file or a YAML string.")],
    as_json: Json = False,
    flat: Annotated[bool, typer.Option("--flat", help="Expand composite blocks into primitives.")] = False,
) -> None:
    """Shapes, parameters, MACs and receptive fields of a network, node by node."""
    graph = nas.build(source)
    if flat:
        graph = nas.flatten(graph)
    summary = graph.summary
    rows = node_table(graph)
    if as_json:
        report = {
            "name": graph.name,
            "params": summary.params,
            "macs": summary.macs,
            "input": list(next(iter(summary.inputs.values()))),
            "output": list(summary.outputs[0]),
            "inputs": {k: list(v) for k, v in summary.inputs.items()},
            "outputs": [list(s) for s in summary.outputs],
            "nodes": sum(1 for row in rows if row["block"] != "input"),
            "hash": graph.hash,
            "activation_bytes": summary.activation_bytes,
            "peak_activation_bytes": summary.peak_activation_bytes,
            "receptive_field": list(summary.receptive_field),
            "layers": rows,
        }
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{graph.name}  ({graph.source or 'built'})", title_justify="left")
    for column, justify in (
        ("node", "left"),
        ("block", "left"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("MACs/px", "right"),
        ("RF", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        rf = row["receptive_field"]
        table.add_row(
            str(row["name"]),
            str(row["block"]),
            _shape(row["shapes"]),  # type: ignore[arg-type]
            f"{row['params']:,}",
            _si(row["macs"]),  # type: ignore[arg-type]
            "" if row["macs_per_position"] is None else f"{row['macs_per_position']:,}",
            f"{rf[0]}" if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}",  # type: ignore[index]
        )
    table.add_section()
    outputs = _shape([list(s) for s in summary.outputs])
    table.add_row("total", "", outputs, f"{summary.params:,}", _si(summary.macs), "", "")
    console = _console()
    console.print(table)
    console.print(
        f"params {summary.params:,}  MACs {summary.macs:,}  activations {_si(summary.activation_bytes)}B "
        f"(peak {_si(summary.peak_activation_bytes)}B)  hash {graph.hash}",
        highlight=False,
    )


@app.command()
def blocks(
    pattern: Annotated[str, typer.Argument(help="Shell-style pattern, e.g. 'conv*'.")] = "*",
    as_json: Json = False,
) -> None:
    """List the registered block types and their parameters."""
    entries = []
    for name in nas.list_blocks(pattern):
        block = nas.get_block(name)
        entries.append(
            {
                "name": name,
                "composite": block.composite,
                "inputs": list(block.arity),
                "params": {
                    p.name: {
                        "default": None if p.default is nas.registry.REQUIRED else p.default,
                        "required": p.default is nas.registry.REQUIRED,
                    }
                    for p in block.params
                },
                "doc": (block.__doc__ or "").strip().split("\n")[0],
            }
        )
    if as_json:
        print(json.dumps(entries, indent=2, default=list))
        return
    table = Table(title_justify="left")
    for column in ("block", "parameters", "description"):
        table.add_column(column)
    for entry in entries:
        params = ", ".join(k if v["required"] else f"{k}={v['default']}" for k, v in entry["params"].items())  # type: ignore[attr-defined]
        table.add_row(str(entry["name"]) + (" *" if entry["composite"] else ""), params, str(entry["doc"]))
    _console().print(table)
    _console().print("* composite: defined as a graph of smaller blocks", highlight=False)


@app.command()
def zoo(
    as_json: Json = False,
    plot: Annotated[
        str | None, typer.Option("--plot", help="Also draw MACs against params to this image file.")
    ] = None,
) -> None:
    """List the classic nets: family, year, input, params, MACs, reference."""
    rows = nas.zoo.table()
    if plot:
        nas.draw.plot_zoo(rows, plot)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title_justify="left")
    for column, justify in (
        ("name", "left"),
        ("family", "left"),
        ("year", "right"),
        ("input", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("checked against", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            str(row["year"]),
            "x".join(map(str, row["input"])),
            f"{row['params']:,}",
            _si(row["macs"]),
            str(row["reference"]),
        )
    _console().print(table)
    if plot:
        Console(stderr=True).print(f"wrote {plot}", highlight=False)


@app.command()
def draw(
    source: Annotated[str, typer.Argument(help="A zoo name, an IR YAML file or a YAML string.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The picture: .svg, .png, .pdf or .dot.")],
    expand: Annotated[bool, typer.Option("--expand", help="Draw composite blocks with their inner blocks.")] = False,
) -> None:
    """Draw a network: blocks as boxes, tensor shapes on the edges (Graphviz)."""
    path = nas.draw.render(nas.draw.to_dot(nas.build(source), expand=expand), output)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="nas", standalone_mode=False)
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
    return 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
