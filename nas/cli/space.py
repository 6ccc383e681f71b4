"""``nas space``: the shipped search spaces, or one described."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import nas.space
from nas.cli.console import Json, power, si, table_console
from nas.cli.root import as_command
from nas.ir.errors import NASError


def space(
    source: Annotated[str | None, typer.Argument(help="A shipped space name or a space file; none lists them.")] = None,
    as_json: Json = False,
    samples: Annotated[
        int, typer.Option("--sample", help="Draw N architectures (with -o: write them as IR YAML).")
    ] = 0,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Directory for the sampled architectures (with --around: the space file)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the draws.")] = 0,
    around: Annotated[
        str | None,
        typer.Option(
            "--around",
            help="Write a space whose fixed point is this network (a zoo name, an IR file, an export directory "
            "or a PyTorch model: torchvision:NAME, timm:NAME, file.py:factory).",
        ),
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option("--input", help="With --around: the network's input shape, e.g. 3x64x64.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="With --around: overwrite the -o file.")] = False,
) -> None:
    """Describe a search space: decisions, size, fixed points, cost range."""
    if around is not None:
        if source is not None:
            raise NASError("give a space to describe or --around NETWORK, not both", field="--around")
        _around(around, output, force, input_shape)
        return
    if input_shape is not None:
        raise NASError("--input applies to --around", field="--input", hint="give --around NETWORK")
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


def _around(source: str, output: str | None, force: bool, input_shape: str | None) -> None:
    """``nas space --around NET``: the space's summary on stderr, its YAML
    to ``-o`` (written whole, then renamed into place) or to stdout."""
    target = None if output is None else Path(output)
    if target is not None and target.exists() and not force:
        raise NASError("would overwrite an existing file", file=output, hint="pass --force or choose another -o")
    text = nas.space.around(nas.build(source, input_shape=input_shape))
    print(nas.space.around_summary(nas.space.parse_space(text)), file=sys.stderr)
    if target is None:
        print(text, end="")
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    print(f"wrote {output}", file=sys.stderr)


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
