"""``nas zoo``: the classic nets."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

import nas
import nas.passes.draw
from nas.cli.console import Json, si, table_console, text_console
from nas.cli.root import as_command


def zoo(
    as_json: Json = False,
    plot: Annotated[
        str | None, typer.Option("--plot", help="Also draw MACs against params to this image file.")
    ] = None,
) -> None:
    """List the classic nets: family, year, input, params, MACs, reference."""
    rows = nas.zoo.table()
    if plot:
        nas.passes.draw.plot_zoo(rows, plot)
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
            si(row["macs"]),
            str(row["reference"]),
        )
    table_console().print(table)
    if plot:
        text_console(stderr=True).print(f"wrote {plot}", highlight=False)


command = as_command(zoo, "zoo")
