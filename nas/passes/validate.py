"""Structural validation: the checks that need no shapes.

Names, block types and parameters are checked when a node is created (see
:meth:`nas.ir.graph.Graph.add`); this pass checks what only the whole graph can
tell: inputs and outputs exist, every node gets the number of inputs its
block takes, nothing is left dangling, and there is no cycle. Shape checks
follow in :mod:`nas.passes.analysis`.
"""

from __future__ import annotations

from nas.ir.errors import GraphError
from nas.ir.graph import Graph, Node


def validate(graph: Graph) -> list[Node]:
    """Check the structure of ``graph``; return its nodes in topological order.

    Raises:
        GraphError: naming the node, its source line and the fix.
    """
    if not graph.input_nodes:
        raise GraphError("the graph has no inputs", file=graph.source, hint="declare one under 'inputs:'")
    if not graph.outputs:
        raise GraphError("the graph has no outputs", file=graph.source, hint="list them under 'outputs:'")
    order = graph.topological_order()
    used = {ref.node for ref in graph.outputs}
    for node in order:
        ports = [port for _, _, port in graph.users(node.name)]
        if ports:
            used.add(node.name)
        _check_arity(graph, node)
    for node in order:
        if node.name not in used:
            raise GraphError(
                "this node's output is never used",
                file=graph.source,
                line=node.meta.get("line"),
                node=node.name,
                hint="feed it to another node, list it under 'outputs:', or remove it",
            )
    return order


def _check_arity(graph: Graph, node: Node) -> None:
    low, high = node.block.arity
    n = len(graph.inputs(node.name))
    if n < low or (high is not None and n > high):
        if high is None:
            expected = f"at least {low}"
        elif low == high:
            expected = str(low)
        else:
            expected = f"{low} to {high}"
        raise GraphError(
            f"block '{node.block.name}' takes {expected} input{'s' if expected != '1' else ''}, got {n}",
            file=graph.source,
            line=node.meta.get("line"),
            node=node.name,
            hint="fix its 'in:' list" if n else "add 'in: <node>'",
        )
