"""``nas show``: a network's figures, node by node."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

import nas
from nas.cli.console import NETWORK_HELP, Json, shapes_text, si, table_console
from nas.cli.root import as_command
from nas.io.build import collector_paused
from nas.passes.analysis import node_table


def show(
    source: Annotated[str, typer.Argument(help=NETWORK_HELP)],
    as_json: Json = False,
    flat: Annotated[bool, typer.Option("--flat", help="Expand composite blocks into primitives.")] = False,
) -> None:
    """Shapes, parameters, MACs and receptive fields of a network, node by node."""
    with collector_paused():  # a short-lived process over many long-lived objects
        graph = nas.build(source)
        if flat:
            graph = nas.flatten(graph)
        rows = node_table(graph)
        if as_json:
            print(json.dumps(_report(graph, rows), indent=2))
            return
        summary = graph.summary
        console = table_console()
        cells = _cells(graph, rows)
        if len(cells) > PLAIN_ROWS:
            sys.stdout.write(_plain(graph, cells))
        else:
            console.print(_table(graph, cells))
        console.print(
            f"params {summary.params:,}  MACs {summary.macs:,}  activations {si(summary.activation_bytes)}B "
            f"(peak {si(summary.peak_activation_bytes)}B)  hash {graph.hash}",
            highlight=False,
        )


def _report(graph: nas.Graph, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of ``nas show --json``."""
    summary = graph.summary
    return {
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


COLUMNS = (
    ("node", "left"),
    ("block", "left"),
    ("output", "left"),
    ("params", "right"),
    ("MACs", "right"),
    ("MACs/px", "right"),
    ("RF", "right"),
)

PLAIN_ROWS = 2_000
"""Above this many rows the table is printed as plain aligned text: rich lays
out a table at about a millisecond a row, minutes for a 200,000-node network."""


def _cells(graph: nas.Graph, rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The text of each node's row, then the total's."""
    cells = []
    for row in rows:
        rf = row["receptive_field"]
        cells.append(
            (
                str(row["name"]),
                str(row["block"]),
                shapes_text(row["shapes"]),
                f"{row['params']:,}",
                si(row["macs"]),
                "" if row["macs_per_position"] is None else f"{row['macs_per_position']:,}",
                f"{rf[0]}" if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}",
            )
        )
    summary = graph.summary
    outputs = shapes_text([list(s) for s in summary.outputs])
    cells.append(("total", "", outputs, f"{summary.params:,}", si(summary.macs), "", ""))
    return cells


def _title(graph: nas.Graph) -> str:
    return f"{graph.name}  ({graph.source or 'built'})"


def _table(graph: nas.Graph, cells: list[tuple[str, ...]]) -> Table:
    """One row per node and a total."""
    table = Table(title=_title(graph), title_justify="left")
    for column, justify in COLUMNS:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in cells[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*cells[-1])
    return table


def _plain(graph: nas.Graph, cells: list[tuple[str, ...]]) -> str:
    """The same rows as :func:`_table`, aligned in plain text, in linear time."""
    header = tuple(name for name, _ in COLUMNS)
    widths = [max(len(row[i]) for row in (header, *cells)) for i in range(len(COLUMNS))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            text.ljust(width) if justify == "left" else text.rjust(width)
            for text, width, (_, justify) in zip(row, widths, COLUMNS, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([_title(graph), line(header), rule, *map(line, cells[:-1]), rule, line(cells[-1]), ""])


command = as_command(show, "show")
