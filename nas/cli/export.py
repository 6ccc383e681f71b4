"""``nas export``: a model written as files other tools load, with its model card."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

import nas.export
from nas.cli.console import CardLatencyOption, ForceOption, FormatsOption, Json, backend_list, si, table_console
from nas.cli.root import as_command
from nas.ir.errors import NASError
from nas.search.results import from_trial


def export(
    source: Annotated[
        str | None,
        typer.Argument(help="Zoo name, IR YAML file or export directory (or --storage/--study for a search trial)."),
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="The directory to write.")] = "",
    formats: FormatsOption = "yaml,weights,pt2,torchscript,onnx",
    weights: Annotated[str | None, typer.Option("--weights", help="A .safetensors file of weights for SOURCE.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Optuna storage URL of a search.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the storage's only one).")] = None,
    trial: Annotated[int | None, typer.Option("--trial", help="The trial of the study to export.")] = None,
    best: Annotated[
        bool, typer.Option("--best", help="The most accurate feasible trial of the study's Pareto front.")
    ] = False,
    budget: Annotated[
        float | None, typer.Option("--latency-budget-ms", help="With --best: only trials at most this fast.")
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Another input shape without the batch, e.g. 3x64x64.")
    ] = None,
    latency: CardLatencyOption = "torch",
    batch: Annotated[int, typer.Option("--batch", help="Batch of the example input the files are checked with.")] = 2,
    force: ForceOption = False,
    as_json: Json = False,
) -> None:
    """Write a model as files other tools load, checked against the IR module, with its model card.

    Every format is loaded back and run; one that fails (a missing library,
    an operator the format cannot express) is reported and the rest are
    written. The directory appears whole or not at all.
    """
    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if storage is not None or study is not None:
        if source is not None:
            raise NASError("give SOURCE or a search trial, not both", field="source", hint="drop SOURCE or --storage")
        if trial is None and not best:
            raise NASError("which trial of the study?", field="trial", hint="give --trial N or --best")
        model = from_trial(storage or "sqlite:///runs/nas.db", study, trial=trial, best=best, latency_budget_ms=budget)
        if weights is not None or input_shape is not None:
            raise NASError("a trial brings its own weights and input", field="weights", hint="drop --weights/--input")
    elif source is None:
        raise NASError("nothing to export", field="source", hint="give a zoo name or file, or --storage/--study")
    else:
        model = nas.export.from_source(source, weights=weights, input_shape=input_shape)
    backends = backend_list(latency)
    exported = nas.export.export(model, output, formats, batch=batch, overwrite=force, latency=backends)
    raise typer.Exit(print_export(exported, as_json))


def print_export(exported: nas.export.Exported, as_json: bool) -> int:
    """Report an export: a table (or the manifest as JSON); the exit code, 2
    if a format failed (each failure one line on stderr)."""
    if as_json:
        print(json.dumps({"directory": str(exported.directory), **exported.manifest}, indent=2, default=str))
    else:
        console = table_console()
        table = Table(title=f"{exported.directory}", title_justify="left")
        for column in ("format", "file", "check"):
            table.add_column(column)
        for name, written in exported.formats.items():
            if written.ok:
                check = "" if written.max_abs_error is None else f"max abs error {written.max_abs_error:.2g}"
                table.add_row(name, str(written.file), check)
            else:
                table.add_row(name, "-", f"failed: {written.reason}")
        console.print(table)
        card = exported.manifest
        arch = card["architecture"]
        closest = card.get("closest_zoo")
        console.print(
            f"{arch['params']:,} params, {si(arch['macs'])} MACs; weights: {card['weights']['note']}"
            + (f"; closest zoo net: {closest['name']} ({closest['distance']} decisions)" if closest else ""),
            highlight=False,
        )
        console.print(f"model card: {exported.directory}/MODEL.md; load it with nas.load('{exported.directory}')")
    for name, reason in exported.failed.items():
        print(f"nas: error: format {name} not written: {reason}", file=sys.stderr)
    return 2 if exported.failed else 0


command = as_command(export, "export")
