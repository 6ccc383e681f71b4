"""``nas space``: the shipped search spaces, or one described."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

import nas.space
from nas.cli.console import Json, power, si, table_console
from nas.cli.root import as_command


def space(
    source: Annotated[str | None, typer.Argument(help="A shipped space name or a space file; none lists them.")] = None,
    as_json: Json = False,
    samples: Annotated[
        int, typer.Option("--sample", help="Draw N architectures (with -o: write them as IR YAML).")
    ] = 0,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Directory for the sampled architectures.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the draws.")] = 0,
) -> None:
    """Describe a search space: decisions, size, fixed points, cost range."""
    if source is None:
        _overview(as_json)
        return
    sp = nas.space.load_space(source)
    if output is not None:
        written = nas.space.write_samples(sp, samples or 1, output, seed=seed)
        print(f"wrote {len(written)} architectures to {output}")
        return
    report = nas.space.report(sp, samples=samples or 20, seed=seed)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    console = table_console()
    console.print(f"{report['name']}: {report['description']}", highlight=False)
    table = Table(title_justify="left")
    for column in ("decision", "choices", "exists when"):
        table.add_column(column)
    for d in report["decisions"]:
        table.add_row(d["label"], d["choices"], d["when"])
    console.print(table)
    cost = report["sample"]
    console.print(
        f"architectures: {power(report['size'])}\n"
        f"fixed points: {', '.join(report['fixed_points']) or 'none'}\n"
        f"over {cost['n']} samples: params {si(cost['params'][0])} .. {si(cost['params'][1])}, "
        f"MACs {si(cost['macs'][0])} .. {si(cost['macs'][1])}",
        highlight=False,
    )


def _overview(as_json: bool) -> None:
    """``nas space`` alone: one row per shipped space."""
    rows = [nas.space.overview(nas.space.load_space(name)) for name in nas.space.space_names()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title_justify="left")
    for column in ("space", "architectures", "decisions", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], power(row["size"]), str(row["decisions"]), row["description"])
    table_console().print(table)


command = as_command(space, "space")
