"""``nas draw``: a network as a Graphviz picture."""

from __future__ import annotations

from typing import Annotated

import typer

import nas
import nas.passes.draw
from nas.cli.console import NETWORK_HELP
from nas.cli.root import as_command


def draw(
    source: Annotated[str, typer.Argument(help=NETWORK_HELP)],
    output: Annotated[str, typer.Option("-o", "--output", help="The picture: .svg, .png, .pdf or .dot.")],
    expand: Annotated[bool, typer.Option("--expand", help="Draw composite blocks with their inner blocks.")] = False,
) -> None:
    """Draw a network: blocks as boxes, tensor shapes on the edges (Graphviz)."""
    path = nas.passes.draw.render(nas.passes.draw.to_dot(nas.build(source), expand=expand), output)
    print(f"wrote {path}")


command = as_command(draw, "draw")
