"""Lowering: an IR graph becomes a ``torch.fx.GraphModule``.

The generated ``forward`` is straight-line code with one line per node,
named after the node, so ``print(model.code)`` reads like hand-written
PyTorch. Blocks with weights become submodules named after their nodes;
stateless blocks become function calls. A composite block becomes a
submodule of its own (lowered from its expansion) unless ``flatten=True``,
so the module tree mirrors the IR's hierarchy, as torchvision's does::

    def forward(self, x):
        conv1 = self.conv1(x);  x = None
        bn1 = self.bn1(conv1);  conv1 = None
        relu = torch.relu(bn1);  bn1 = None
        ...
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from nas.canonical import flatten as flatten_graph
from nas.errors import NASError
from nas.graph import Graph
from nas.registry import Call


def lower(graph: Graph, *, flatten: bool = False) -> fx.GraphModule:
    """Compile ``graph`` to a ``torch.fx.GraphModule``.

    Args:
        graph: a graph; it is validated and analysed first.
        flatten: inline composite blocks instead of nesting them.

    Returns:
        A module whose ``forward`` takes one tensor per graph input (with a
        batch dimension) and returns the output, or a tuple of outputs.

    Example:
        >>> import nas, torch
        >>> g = nas.build("inputs: {x: [4]}\\nnodes: {fc: {block: linear, out_features: 2}}")
        >>> nas.lower(g)(torch.zeros(1, 4)).shape
        torch.Size([1, 2])
    """
    summary = graph.summary
    if flatten:
        graph = flatten_graph(graph)
        summary = graph.summary
    root = torch.nn.Module()
    code = fx.Graph()
    values: dict[tuple[str, int], fx.Node] = {}

    for node in summary.order:
        refs = graph.inputs(node.name)
        args = [values[ref] for ref in refs]
        ins = [graph.node(ref.node).meta["shapes"][ref.output] for ref in refs]
        block = node.block
        if block.name == "input":
            result = code.placeholder(node.name)
        elif block.composite:
            root.add_module(node.name, lower(node.meta["expansion"]))
            result = code.create_node("call_module", node.name, tuple(args), name=node.name)
        else:
            try:
                lowering = block.lower(node.params, ins)
            except NASError as e:
                raise e.located(file=graph.source, line=node.meta.get("line"), node=node.name) from None
            if isinstance(lowering, Call):
                call_args: tuple[Any, ...] = (args,) if lowering.variadic else tuple(args)
                result = code.create_node(
                    "call_function", lowering.fn, call_args, dict(lowering.kwargs), name=node.name
                )
            else:
                root.add_module(node.name, lowering)
                result = code.create_node("call_module", node.name, tuple(args), name=node.name)
        names = node.output_names
        if len(names) == 1:
            values[(node.name, 0)] = result
        else:
            for index in sorted({index for _, index, _ in graph.users(node.name)} | _output_indices(graph, node.name)):
                item = code.create_node(
                    "call_function", operator.getitem, (result, index), name=f"{node.name}_{names[index]}"
                )
                values[(node.name, index)] = item

    outputs = [values[ref] for ref in graph.outputs]
    code.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    code.lint()
    return fx.GraphModule(root, code, class_name=_class_name(graph.name))


def _output_indices(graph: Graph, name: str) -> set[int]:
    return {ref.output for ref in graph.outputs if ref.node == name}


def _class_name(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name).split()
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Net"
    return text if text[0].isalpha() else "Net" + text
