"""Pictures: a graph as Graphviz DOT (blocks as boxes, shapes on edges), and
the zoo on a MACs-against-parameters chart.

Layout is Graphviz's job (``dot``, Debian package ``graphviz``); this module
writes the description and calls it. Composite blocks are drawn as one box,
or with ``expand=True`` as a labelled cluster around their inner blocks.

Example:
    >>> import nas
    >>> text = to_dot(nas.build("resnet18"))
    >>> text.startswith("digraph")
    True
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.ir.errors import NASError
from nas.ir.graph import Graph, Ref
from nas.ir.registry import Block, Params

FORMATS = ("svg", "png", "pdf", "dot")


def to_dot(graph: Graph, *, expand: bool = False) -> str:
    """Graphviz DOT text for ``graph`` (analysed first, for the shapes)."""
    _ = graph.summary
    lines = [
        "digraph nas {",
        "  rankdir=TB; nodesep=0.25; ranksep=0.3;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8, color="#555555"];',
        f"  label={_quote(graph.name)}; labelloc=t; fontname=Helvetica;",
    ]
    edges: list[str] = []
    bindings: dict[str, list[str]] = {}
    _emit(graph, "", bindings, lines, edges, expand, indent="  ")
    for i, ref in enumerate(graph.outputs):
        lines.append(f'  "output{i}" [label="output", shape=ellipse, fillcolor="#dde8f5"];')
        edges.append(_edge(bindings[ref.node][ref.output], f"output{i}", graph, ref))
    return "\n".join([*lines, *edges, "}"]) + "\n"


def _emit(
    graph: Graph,
    prefix: str,
    bindings: dict[str, list[str]],
    lines: list[str],
    edges: list[str],
    expand: bool,
    indent: str,
) -> None:
    for node in graph.summary.order:
        ident = prefix + node.name
        refs = graph.inputs(node.name)
        if node.block.placeholder and prefix:
            continue  # an expansion's inputs are the enclosing node's inputs
        if node.block.composite and expand:
            expansion: Graph = node.meta["expansion"]
            inner: dict[str, list[str]] = {
                inp.name: [bindings[ref.node][ref.output]] for inp, ref in zip(expansion.input_nodes, refs)
            }
            inner_edges: list[str] = []
            lines.append(f"{indent}subgraph {_quote('cluster_' + ident)} {{")
            lines.append(f'{indent}  label={_quote(f"{node.name}: {node.block.name}")}; style="rounded,dashed";')
            _emit(expansion, ident + "/", inner, lines, inner_edges, expand, indent + "  ")
            lines.append(f"{indent}}}")
            edges.extend(inner_edges)
            # Edges into the cluster were drawn by its inner nodes.
            bindings[node.name] = [inner[ref.node][ref.output] for ref in expansion.outputs]
            continue
        fill = "#dde8f5" if node.block.placeholder else ("#fbe5c8" if node.block.composite else "#f2f2f2")
        label = _quote(_label(node.name, node.block, node.params))
        lines.append(f"{indent}{_quote(ident)} [label={label}, fillcolor={_quote(fill)}];")
        bindings[node.name] = [ident] * len(node.output_names)
        for ref in refs:
            edges.append(_edge(_resolve(bindings, ref), ident, graph, ref))


def _resolve(bindings: Mapping[str, list[str]], ref: Ref) -> str:
    return bindings[ref.node][ref.output]


def _edge(src: str, dst: str, graph: Graph, ref: Ref) -> str:
    producer = graph.node(ref.node)
    shape = "x".join(map(str, producer.meta["shapes"][ref.output]))
    name = producer.output_names[ref.output]
    label = shape if ref.output == 0 else f"{name} {shape}"
    return f"  {_quote(src)} -> {_quote(dst)} [label={_quote(label)}];"


def _label(name: str, block: Block, params: Params) -> str:
    explicit = block.explicit_params(params)
    shown = ", ".join(f"{k}={_short(v)}" for k, v in list(explicit.items())[:4])
    return "\n".join(p for p in (name, block.name, shown) if p)


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else str(list(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render(dot_text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``dot_text`` to ``path``, laid out by Graphviz in the format its
    suffix names (svg, png, pdf; ``.dot`` writes the text itself).

    The file appears whole or not at all: it is written beside its target
    and renamed.

    Raises:
        NASError: an unknown format, or Graphviz missing or failing.
    """
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise NASError(
            f"cannot draw to '.{fmt}'", file=str(target), hint=f"use one of {', '.join('.' + f for f in FORMATS)}"
        )
    if fmt == "dot":
        return _atomic_write(target, dot_text.encode())
    dot = shutil.which("dot")
    if dot is None:
        raise NASError(
            "Graphviz's 'dot' program is not installed",
            file=str(target),
            hint="apt-get install graphviz (or write a .dot file)",
        )
    result = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise NASError(f"Graphviz failed: {message[-1] if message else result.returncode}", file=str(target))
    return _atomic_write(target, result.stdout)


def _atomic_write(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def plot_zoo(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """The classic nets on MACs against parameters (log scales), one colour
    per family, each point labelled: the history at a glance.

    Args:
        rows: mappings with ``name``, ``family``, ``params`` and ``macs``.
        path: an image file (png, svg, pdf).

    Raises:
        NASError: matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NASError("plotting needs matplotlib", file=str(path), hint="pip install 'nas[plot]'") from None
    rows = list(rows)
    families = sorted({str(r["family"]) for r in rows})
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(11, 7.5))
    for i, family in enumerate(families):
        members: Sequence[Mapping[str, Any]] = [r for r in rows if r["family"] == family]
        ax.scatter(
            [r["params"] for r in members], [r["macs"] for r in members], color=colours(i % 20), label=family, s=28
        )
        for r in members:
            ax.annotate(
                str(r["name"]), (r["params"], r["macs"]), fontsize=6.5, xytext=(3, 2), textcoords="offset points"
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("multiply-accumulates per image (at the standard input size)")
    ax.set_title("The classic CNNs: compute against size")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=150)
    plt.close(fig)
    return _atomic_write(target, buffer.getvalue())
