"""Latency units: how a network is cut into the blocks a latency table times.

A unit is what a runtime executes as one piece, as far as that can be told
from the graph:

* a *leaf composite* (a composite block whose expansion holds primitives
  only: ``basic_block``, ``bottleneck``, ``conv_bn_act``, ``fire`` ...);
* a *fused chain* of primitives: a head (a convolution or linear layer)
  followed by its norm and/or activation, each the only reader of the one
  before, the roles each block declares as :attr:`~nas.ir.registry.Block.fusion`
  (ONNX Runtime folds the norm into the convolution and fuses the
  activation, so timing them apart would count work that never runs; see
  nn-Meter#83);
* any other primitive on its own (pooling, concat, add, flatten ...).

Composites that contain composites (``stage``, ``fractal_block``,
``xception_block``, inception modules) are opened, one level at a time,
until these units appear, so that a 200-deep stage is 200 units of a few
distinct configurations, not one configuration never seen before.

A unit's identity is its block type(s), canonical parameters, input shapes
and wiring (which input tensor feeds which port): :attr:`Unit.key`. Units
are memoised by that identity and the decomposition of every expansion
(shared by the analysis across nodes and graphs) is memoised once, so that
cutting a freshly decoded candidate costs a few microseconds per top-level
node.

Example:
    >>> import nas
    >>> [u.kind for u in units(nas.build("lenet5"))][:3]   # doctest: +SKIP
    ['conv2d+scaled_tanh', 'subsampling2d', ...]
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nas.ir.graph import Graph, Node, Ref
from nas.ir.registry import get_block
from nas.ir.values import plain
from nas.passes.analysis import BYTES_PER_ELEMENT, order_shape

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Unit:
    """One unit: enough to look it up, to model it, and to time it alone.

    Attributes:
        kind: the block type, or the fused chain's types joined by ``+``.
        members: ``(block type, parameter items)`` of each member, in order
            (one entry for a composite or a lone primitive).
        inputs: the shapes of its distinct input tensors.
        wiring: for each port of the first member, which input it reads.
        macs, params: its cost (batch 1).
        bytes: input, output and weight bytes (float32): what it must move.
    """

    kind: str
    members: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    inputs: tuple[Shape, ...]
    wiring: tuple[int, ...]
    macs: int
    params: int
    bytes: int

    @property
    def identity(self) -> tuple[Any, ...]:
        """Type(s), parameters, input shapes and wiring, as a hashable tuple."""
        return (self.members, self.inputs, self.wiring)

    @functools.cached_property
    def key(self) -> str:
        """32 hex digits of the canonical JSON of :attr:`identity`: the
        portable name of this configuration in latency tables."""
        return unit_key(self.members, self.inputs, self.wiring)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (what a latency table stores beside the key)."""
        return {
            "kind": self.kind,
            "members": [[block, plain(params, sort_keys=True)] for block, params in self.members],
            "inputs": [list(s) for s in self.inputs],
            "wiring": list(self.wiring),
            "macs": self.macs,
            "params": self.params,
            "bytes": self.bytes,
        }

    def graph(self) -> Graph:
        """The unit alone as a network: one input per distinct input tensor,
        then its members; its outputs are the last member's outputs."""
        g = Graph(f"unit_{self.key[:8]}")
        names = [g.add_input(f"x{i}", shape) for i, shape in enumerate(self.inputs)]
        previous: list[Ref] = [names[i] for i in self.wiring]
        last = None
        for i, (block, params) in enumerate(self.members):
            last = g.add(f"u{i}", block, previous, **dict(params))
            previous = [last]
        assert last is not None
        count = len(g.node(last.node).output_names)
        g.set_outputs(*(Ref(last.node, k) for k in range(count)))
        return g


_UNITS: dict[Any, Unit] = {}
"""Unit by identity tuple: the identity is built from hashable parameters,
the key (a digest of its JSON) only once per distinct unit."""

_LEVELS: dict[int, tuple[Graph, tuple[Unit, ...]]] = {}
"""Decomposition of an expansion graph, by ``id`` (the graph is kept alive
here, so an ``id`` is never reused while its entry exists)."""

_MAX_MEMO = 200_000

T = TypeVar("T")


def _items(params: Any) -> tuple[tuple[str, Any], ...]:
    """Parameters as a tuple of items: hashable and compared in C (the
    Mapping protocol's ``==`` costs microseconds per call)."""
    values = getattr(params, "_values", None)
    return tuple(values.items() if isinstance(values, dict) else params.items())


def unit_key(members: Sequence[tuple[str, Any]], inputs: Sequence[Sequence[int]], wiring: Sequence[int]) -> str:
    """The digest naming a unit configuration (see :attr:`Unit.key`)."""
    text = json.dumps(
        [[[b, plain(p, sort_keys=True)] for b, p in members], [list(s) for s in inputs], list(wiring)],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def identity_of(members: Sequence[Sequence[Any]], inputs: Sequence[Sequence[int]], wiring: Sequence[int]) -> Any:
    """The :attr:`Unit.identity` of a unit described in JSON (a table's
    entry): parameters are checked by their block, as a graph would."""
    pairs = tuple((str(b), _items(get_block(b).check_params(dict(p)))) for b, p in members)
    return (pairs, tuple(tuple(int(d) for d in s) for s in inputs), tuple(int(w) for w in wiring))


def _unit(members: Sequence[Node], inputs: tuple[Shape, ...], wiring: tuple[int, ...], kind: str) -> Unit:
    pairs = tuple((n.block.name, _items(n.params)) for n in members)
    identity = (pairs, inputs, wiring)
    found = _UNITS.get(identity)
    if found is not None:
        return found
    macs = sum(n.meta["cost"].macs for n in members)
    params = sum(n.meta["cost"].params for n in members)
    moved = sum(math.prod(s) for s in inputs) + sum(math.prod(s) for s in members[-1].meta["shapes"]) + params
    unit = Unit(
        kind=kind,
        members=pairs,
        inputs=inputs,
        wiring=wiring,
        macs=macs,
        params=params,
        bytes=moved * BYTES_PER_ELEMENT,
    )
    if len(_UNITS) > _MAX_MEMO:
        _UNITS.clear()
    _UNITS[identity] = unit
    return unit


_OPENS: dict[int, tuple[Graph, bool]] = {}
"""Whether an expansion graph holds composites, by ``id`` (as :data:`_LEVELS`)."""


def _by_graph(memo: dict[int, tuple[Graph, T]], graph: Graph, compute: Callable[[Graph], T]) -> T:
    """``compute(graph)``, memoised in ``memo`` by the graph's ``id``: the
    graph is kept alive there, so the ``id`` is not reused while its entry
    exists (expansions are memoised and shared between graphs)."""
    entry = memo.get(id(graph))
    if entry is not None and entry[0] is graph:
        return entry[1]
    value = compute(graph)
    if len(memo) > _MAX_MEMO:
        memo.clear()
    memo[id(graph)] = (graph, value)
    return value


def _holds_composites(expansion: Graph) -> bool:
    return any(n.block.composite for n in expansion)


def _opens(node: Node) -> bool:
    """Whether a node is a composite of composites, to be cut further."""
    return node.block.composite and _by_graph(_OPENS, node.meta["expansion"], _holds_composites)


Part = Unit | tuple[Unit, ...]
"""A unit, or the (memoised, shared) units of an opened composite."""


def parts(graph: Graph) -> list[Part]:
    """The units of one graph level in topological order, those of opened
    composites as one memoised tuple each (what a predictor sums once)."""
    summary = graph.summary
    outputs = {ref.node for ref in graph.outputs}
    found: list[Part] = []
    taken: set[str] = set()
    # networkx's own dicts, not its views: a view object per lookup cost
    # a third of a memoised prediction (DiGraph has kept them since 2.0).
    pred, nodes = graph.nx._pred, graph.nx._node
    for node in summary.order:
        block = node.block
        if block.placeholder or node.name in taken:
            continue
        if block.composite and _opens(node):
            found.append(_expansion_units(node.meta["expansion"]))
            continue
        chain = [node]
        if block.fusion == "head":
            _extend_chain(graph, chain, outputs)
            taken.update(n.name for n in chain[1:])
            kind = "+".join(n.block.name for n in chain)
        else:
            kind = block.name
        sources = pred[node.name]
        if len(sources) == 1:  # the common case, without sorting
            ((source, data),) = sources.items()
            ports = data["ports"]
            if len(ports) == 1:
                shape = nodes[source]["node"].meta["shapes"][ports[0][0]]
                found.append(_unit(chain, (shape,), (0,), kind))
                continue
        refs = [ref for _, ref in sorted((port, (src, i)) for src, d in sources.items() for i, port in d["ports"])]
        distinct: list[tuple[str, int]] = []
        wiring = []
        for ref in refs:
            if ref not in distinct:
                distinct.append(ref)
            wiring.append(distinct.index(ref))
        shapes = tuple(order_shape(graph, ref) for ref in distinct)
        found.append(_unit(chain, shapes, tuple(wiring), kind))
    return found


def _extend_chain(graph: Graph, chain: list[Node], outputs: set[str]) -> None:
    """Append the norm and activation that fuse into ``chain[0]``."""
    allowed: tuple[str | None, ...] = ("norm", "activation")
    current = chain[0]
    while allowed and current.name not in outputs:
        users = graph.users(current.name)
        if len(users) != 1:
            return
        reader = graph.node(users[0][0])
        role = reader.block.fusion
        if role not in allowed:
            return
        allowed = allowed[allowed.index(role) + 1 :]
        chain.append(reader)
        current = reader


def _expansion_units(expansion: Graph) -> tuple[Unit, ...]:
    return _by_graph(_LEVELS, expansion, lambda g: tuple(_flat(parts(g))))


def units(graph: Graph) -> list[Unit]:
    """The units of ``graph`` (validated and analysed), in execution order.

    Raises:
        NASError: the graph does not validate.
    """
    return _flat(parts(graph))


def _flat(found: Sequence[Part]) -> list[Unit]:
    result: list[Unit] = []
    for part in found:
        if isinstance(part, Unit):
            result.append(part)
        else:
            result.extend(part)
    return result


__all__ = ["Part", "Unit", "identity_of", "parts", "unit_key", "units"]
