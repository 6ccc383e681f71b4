"""``nas import``: bring your own network, as an export directory the other commands read."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

import nas.export
from nas.cli.console import ForceOption, Json, si
from nas.cli.root import as_command
from nas.io.build import parse_shape
from nas.io.importing import SPEC_FORMS, import_spec
from nas.ir.errors import NASError


def import_model(
    spec: Annotated[str, typer.Argument(help=f"The model: {SPEC_FORMS}.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The export directory to write.")] = "",
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Input shape without the batch (default: the model's, or 3x224x224).")
    ] = None,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated export formats.")] = "yaml,weights",
    flat: Annotated[bool, typer.Option("--flat", help="Import every call as a primitive block.")] = False,
    force: ForceOption = False,
    as_json: Json = False,
) -> None:
    """Import a PyTorch model (random weights; nothing is downloaded) into the IR, with its weights.

    The import is exact or fails: a call that no block computes is one line
    naming the module path and the operation. The directory (model.yaml,
    model.safetensors, MODEL.md) is what 'nas export' writes, so show, draw,
    latency, export and train read it.
    """
    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    shape = parse_shape(input_shape) if input_shape is not None else None
    graph, weights = import_spec(spec, shape, composites=not flat)
    name = graph.name
    model = nas.export.Model(graph, weights, name=name, source={"kind": "import", "spec": spec})
    exported = nas.export.export(model, output, formats, overwrite=force)
    if as_json:
        print(json.dumps({"directory": str(exported.directory), **exported.manifest}, indent=2, default=str))
    else:
        print(
            f"{spec}: {len(graph)} nodes, {graph.params:,} params, {si(graph.macs)} MACs at "
            f"{'x'.join(map(str, next(iter(graph.summary.inputs.values()))))} -> {exported.directory}"
        )
    for fmt, reason in exported.failed.items():
        print(f"nas: error: format {fmt} not written: {reason}", file=sys.stderr)
    raise typer.Exit(2 if exported.failed else 0)


command = as_command(import_model, "import")
