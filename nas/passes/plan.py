"""A graph's nodes in the order they run, composite blocks inlined where asked.

What :func:`nas.passes.canonical.flatten` (a flat graph), :func:`nas.lower`
(FX code) and :class:`nas.passes.lower.Stepped` (a loop) are each made from,
so that their names and order cannot drift apart. Composites are inlined
from the expansions the analysis wrote (shared by every node of the same
parameters and input shapes), so planning does not build or analyse
another graph.

An inlined node is named after the composites it is inside
(``layer1_0_conv1``; a name already taken gets ``_2``, ``_3`` ...) and
knows its path in the nested lowering (``layer1_0.conv1``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.ir.graph import Graph, Node, Ref
from nas.ir.registry import Shape

Value = tuple[str, int]
"""A tensor: the step that computes it, and which of its outputs."""


@dataclass
class Step:
    """One node to run, with the tensors it reads (in port order) and their shapes."""

    name: str
    """The node's name, prefixed by the composites it is inside (``layer1_0_conv1``)."""
    path: str
    """Its name in the nested lowering (``layer1_0.conv1``)."""
    node: Node
    inputs: list[Value]
    shapes: list[Shape]

    @property
    def made(self) -> list[Value]:
        """The tensors it computes."""
        return [(self.name, i) for i in range(len(self.node.output_names))]


class Plan:
    """The steps of ``graph`` in topological order (the graph's own, its
    composites' inlined in place where ``flatten``), the tensors that are
    its outputs, and how many times each tensor is read."""

    def __init__(self, graph: Graph, *, flatten: bool) -> None:
        _ = graph.summary  # validates, writes the shapes and the composites' expansions
        self.graph = graph
        self.steps: list[Step] = []
        self._shapes: dict[Value, Shape] = {}
        self._taken: set[str] = set()
        self.outputs = self._walk(graph, flatten, "", "", {})
        self.reads: dict[Value, int] = {}
        for step in self.steps:
            for v in step.inputs:
                self.reads[v] = self.reads.get(v, 0) + 1
        self.by_name = {step.name: step for step in self.steps}

    def _walk(self, graph: Graph, flatten: bool, prefix: str, path: str, bound: dict[str, Value]) -> list[Value]:
        """Add ``graph``'s steps (names after ``prefix``, nested paths after
        ``path``); ``bound`` gives its input nodes' tensors inside an
        expansion. Returns the tensors of its outputs."""
        made: dict[str, list[Value]] = {}

        def value(ref: Ref) -> Value:
            return made[ref.node][ref.output]

        for node in graph.summary.order:
            if prefix and node.block.placeholder:
                made[node.name] = [bound[node.name]]
                continue
            inputs = [value(ref) for ref in graph.inputs(node.name)]
            name, k = prefix + node.name, 1
            while name in self._taken:
                k += 1
                name = f"{prefix}{node.name}_{k}"
            if flatten and node.block.composite:
                expansion: Graph = node.meta["expansion"]
                inner = {inp.name: v for inp, v in zip(expansion.input_nodes, inputs)}
                made[node.name] = self._walk(expansion, flatten, name + "_", f"{path}{node.name}.", inner)
                continue
            self._taken.add(name)
            step = Step(name, path + node.name, node, inputs, [self._shapes[v] for v in inputs])
            self.steps.append(step)
            made[node.name] = step.made
            for v, shape in zip(step.made, node.meta["shapes"]):
                self._shapes[v] = shape
        return [value(ref) for ref in graph.outputs]

    def last_reads(self) -> dict[Value, int]:
        """Each tensor that is read: the position of the last step that reads it."""
        last: dict[Value, int] = {}
        for position, step in enumerate(self.steps):
            for v in step.inputs:
                last[v] = position
        return last
