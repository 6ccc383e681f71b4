"""``nas blocks``: the registered block types."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

import nas
from nas.cli.console import Json, table_console
from nas.cli.root import as_command
from nas.ir.registry import REQUIRED


def blocks(
    pattern: Annotated[str, typer.Argument(help="Shell-style pattern, e.g. 'conv*'.")] = "*",
    as_json: Json = False,
) -> None:
    """List the registered block types and their parameters."""
    entries = [_entry(name) for name in nas.list_blocks(pattern)]
    if as_json:
        print(json.dumps(entries, indent=2, default=list))
        return
    table = Table(title_justify="left")
    for column in ("block", "parameters", "description"):
        table.add_column(column)
    for entry in entries:
        params = ", ".join(k if v["required"] else f"{k}={v['default']}" for k, v in entry["params"].items())
        table.add_row(str(entry["name"]) + (" *" if entry["composite"] else ""), params, str(entry["doc"]))
    table_console().print(table)
    table_console().print("* composite: defined as a graph of smaller blocks", highlight=False)


def _entry(name: str) -> dict[str, Any]:
    """A block type as ``nas blocks --json`` lists it."""
    block = nas.get_block(name)
    return {
        "name": name,
        "composite": block.composite,
        "inputs": list(block.arity),
        "params": {
            p.name: {"default": None if p.default is REQUIRED else p.default, "required": p.default is REQUIRED}
            for p in block.params
        },
        "doc": (block.__doc__ or "").strip().split("\n")[0],
    }


command = as_command(blocks, "blocks")
