"""Shape inference and cost: one linear pass in topological order.

For every node the pass writes its facts into ``node.meta``:

* ``shapes``: the output shape(s), without the batch dimension;
* ``cost``: a :class:`~nas.ir.registry.Cost` (parameters, MACs);
* ``receptive_field`` and ``jump``: how many input pixels one output position
  sees, and the distance in input pixels between neighbouring outputs,
  taken along the path that sees farthest;
* ``expansion``: for composite blocks, their analysed expanded graph.

and returns a :class:`Summary` with the totals. Composite blocks are analysed
through their expansion, so their costs and receptive fields come from the
same definition as their lowering.

Example:
    >>> import nas
    >>> g = nas.build('''
    ... inputs: {x: [3, 32, 32]}
    ... nodes:
    ...   a: {block: conv2d, in: x, out_channels: 8, kernel_size: 3}
    ...   b: {block: conv2d, in: a, out_channels: 8, kernel_size: 3}
    ... outputs: [b]
    ... ''')
    >>> g.summary.receptive_field   # two 3x3 convolutions see as far as one 5x5
    (5, 5)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from nas.ir.errors import NASError, ShapeError
from nas.ir.graph import computes
from nas.ir.registry import Block, Composite, Cost, Params, Shape, Window
from nas.passes.validate import validate

if TYPE_CHECKING:
    from nas.ir.graph import Graph, Node

BYTES_PER_ELEMENT = 4
"""Activation memory is reported for float32 tensors at batch 1."""

_ONE = (1, 1)


@dataclass(frozen=True)
class Summary:
    """Totals of an analysed graph (batch 1, float32).

    Attributes:
        params: trainable parameters.
        macs: multiply-accumulates of one forward pass.
        activation_bytes: bytes of all intermediate outputs together (what
            training keeps for the backward pass, roughly).
        peak_activation_bytes: the most bytes alive at once in inference,
            freeing each tensor after its last reader.
        inputs: input name -> shape.
        outputs: the shape of each graph output, in order.
        receptive_field: (height, width) in input pixels seen by one
            position of the first output, along the farthest-seeing path.
        order: the nodes in topological order.
    """

    params: int
    macs: int
    activation_bytes: int
    peak_activation_bytes: int
    inputs: dict[str, Shape]
    outputs: list[Shape]
    receptive_field: tuple[int, int]
    order: list[Node]


@computes("summary")
def analyze(graph: Graph) -> Summary:
    """Validate ``graph`` and infer shapes, costs and receptive fields.

    Usually reached through ``graph.summary``, ``graph.params`` or
    ``graph.macs``, which cache the result until the graph changes.

    Raises:
        GraphError, ShapeError: naming the node (``outer > inner`` inside
        composite blocks), its line, both producers and both shapes.
    """
    order = validate(graph)
    last_use = {n.name: i for i, n in enumerate(order)}
    for i, node in enumerate(order):
        for ref in graph.inputs(node.name):
            last_use[ref.node] = i
    for ref in graph.outputs:
        last_use[ref.node] = len(order)

    params = macs = activation = live = peak = 0
    sizes: dict[str, int] = {}
    for i, node in enumerate(order):
        refs = graph.inputs(node.name)
        ins = [order_shape(graph, ref) for ref in refs]
        try:
            inner_peak = _infer_node(node, ins, graph, refs)
        except NASError as e:
            raise e.located(file=graph.source, line=node.meta.get("line"), node=node.name) from None
        cost: Cost = node.meta["cost"]
        params += cost.params
        macs += cost.macs
        sizes[node.name] = size = sum(math.prod(s) for s in node.meta["shapes"]) * BYTES_PER_ELEMENT
        if not node.block.placeholder:
            activation += node.meta.get("activation_bytes", size)
        live += size
        peak = max(peak, live, live - size + inner_peak)
        for name in {ref.node for ref in refs}:
            if last_use[name] == i:
                live -= sizes[name]

    first = graph.outputs[0]
    rf = graph.node(first.node).meta["receptive_field"]
    return Summary(
        params=params,
        macs=macs,
        activation_bytes=activation,
        peak_activation_bytes=peak,
        inputs={n.name: n.params["shape"] for n in graph.input_nodes},
        outputs=[order_shape(graph, ref) for ref in graph.outputs],
        receptive_field=(math.ceil(rf[0]), math.ceil(rf[1])),
        order=order,
    )


def order_shape(graph: Graph, ref: tuple[str, int]) -> Shape:
    """The inferred shape of one tensor (its producer must be analysed)."""
    return graph.node(ref[0]).meta["shapes"][ref[1]]


@functools.lru_cache(maxsize=4096)
def _expand(block: Block, p: Params, ins: tuple[Shape, ...]) -> Graph:
    """The expansion of a composite block, shared by every node with the same
    parameters and input shapes (ResNet-1202 has 600 blocks but 6 distinct
    ones), so each is built and analysed once. Treat it as read-only."""
    return cast("Composite", block).expand(p, ins)


def clear_cache() -> None:
    """Forget the shared expansions, so that the next analysis builds each
    composite again (what a cold start, or a benchmark of one, measures)."""
    _expand.cache_clear()


_RANK_NAMES = {1: "a flat (F,)", 2: "a (C, L) or (N, D)", 3: "a (C, H, W)"}


def _check_rank(block: Block, ins: Sequence[Shape], refs: Sequence[tuple[str, int]]) -> None:
    for ref, shape in zip(refs, ins):
        if block.rank is not None and len(shape) != block.rank:
            raise ShapeError(
                f"{block.name} expects {_RANK_NAMES.get(block.rank, f'a rank-{block.rank}')} input, "
                f"but {ref[0]} gives {tuple(shape)}",
                hint="insert a 'flatten' block before it"
                if block.rank == 1
                else "feed it feature maps, not flat vectors",
            )


def _infer_node(node: Node, ins: list[Shape], graph: Graph, refs: Sequence[tuple[str, int]]) -> int:
    """Write the node's facts into ``node.meta``; return its inner peak bytes."""
    block, p = node.block, node.params
    inner_peak = 0
    if block.composite:
        expansion = _expand(block, p, tuple(ins))
        try:
            sub = expansion.summary
        except NASError as e:
            raise e.inside(node.name) from None
        shapes = tuple(sub.outputs)
        cost = Cost(sub.params, sub.macs)
        head = expansion.node(expansion.outputs[0].node).meta
        window = Window(
            extent=(math.ceil(head["receptive_field"][0]), math.ceil(head["receptive_field"][1])),
            stride=head["jump"],
        )
        input_bytes = sum(math.prod(s) for s in ins) * BYTES_PER_ELEMENT
        inner_peak = sub.peak_activation_bytes - input_bytes
        node.meta["expansion"] = expansion
        node.meta["activation_bytes"] = sub.activation_bytes
    else:
        _check_rank(block, ins, refs)
        try:
            out = block.infer(p, ins)
        except ShapeError as e:
            e.message += _described(refs, ins)
            raise
        # A block returns one shape, or a tuple of shapes for several outputs.
        shapes = cast(tuple[Shape, ...], out if out and isinstance(out[0], tuple) else (out,))
        cost = block.cost(p, ins, shapes)
        window = block.window(p, ins)
    for s in shapes:
        if any(d < 1 for d in s):
            raise ShapeError(
                f"output shape {s} has an empty dimension" + _described(refs, ins),
                hint="use a smaller kernel or stride, or a larger input",
            )

    rf, jump = _ONE, _ONE
    for ref in refs:
        meta = graph.node(ref[0]).meta
        rf = (max(rf[0], meta["receptive_field"][0]), max(rf[1], meta["receptive_field"][1]))
        jump = (max(jump[0], meta["jump"][0]), max(jump[1], meta["jump"][1]))
    node.meta["shapes"] = shapes
    node.meta["cost"] = cost
    node.meta["receptive_field"] = tuple(r + (e - 1) * j for r, e, j in zip(rf, window.extent, jump))
    node.meta["jump"] = tuple(j * s for j, s in zip(jump, window.stride))
    return inner_peak


def _described(refs: Sequence[tuple[str, int]], ins: Sequence[Shape]) -> str:
    """`` [inputs: conv1 (8, 3, 3), ...]``: the producers and their shapes, for shape errors."""
    if not ins:
        return ""
    return " [inputs: " + ", ".join(f"{ref[0]} {tuple(s)}" for ref, s in zip(refs, ins)) + "]"


def node_table(graph: Graph) -> list[dict[str, object]]:
    """One row per node (topological order) of what ``nas show`` prints:
    name, block, output shapes, params, MACs and receptive field."""
    rows = []
    for node in graph.summary.order:
        cost: Cost = node.meta["cost"]
        rf = node.meta["receptive_field"]
        rows.append(
            {
                "name": node.name,
                "block": node.block.name,
                "inputs": [graph.ref_text(ref) for ref in graph.inputs(node.name)],
                "shapes": [list(s) for s in node.meta["shapes"]],
                "params": cost.params,
                "macs": cost.macs,
                "receptive_field": [math.ceil(rf[0]), math.ceil(rf[1])],
                # The cost of one output pixel: what a bottleneck saves.
                "macs_per_position": cost.macs // math.prod(out[1:])
                if len(out := node.meta["shapes"][0]) == 3
                else None,
            }
        )
    return rows
