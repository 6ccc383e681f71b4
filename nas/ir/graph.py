"""The IR: a network as a graph of block instances over ``networkx.DiGraph``.

Nodes are block instances (a block type from the registry, its canonical
parameters, and a ``meta`` dict where passes write facts such as shapes and
costs). Graph inputs are nodes of block type ``input``. An edge ``u -> v``
carries the tensors that ``v`` reads from ``u`` as a tuple of
``(output_index, input_port)`` pairs, so that port order (concat, unpool
indices) and several outputs per node (max pooling with indices) are exact,
and a node may read the same tensor twice (``add(x, x)``).

The graph owns its edge bookkeeping: build it with :meth:`Graph.add_input`,
:meth:`Graph.add` and :meth:`Graph.set_outputs`, never by editing ``.nx``.

Example:
    >>> g = Graph("tiny")
    >>> x = g.add_input("x", (3, 32, 32))
    >>> c = g.add("conv", "conv2d", x, out_channels=8, kernel_size=3, padding=1)
    >>> r = g.add("relu", "relu", c)
    >>> g.set_outputs(r)
    >>> g.params
    224
"""

from __future__ import annotations

import difflib
import keyword
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import networkx as nx

from nas.ir.errors import GraphError, NASError
from nas.ir.registry import Block, Params, get_block

if TYPE_CHECKING:
    from nas.passes.analysis import Summary

GraphPass = Callable[["Graph"], Any]
_P = TypeVar("_P", bound=GraphPass)

_PASSES: dict[str, GraphPass] = {}
"""The passes that compute a graph's facts, by fact name (``"summary"``,
``"hash"``, ``"yaml"``). The IR does not import its passes; they register
here when their module is imported (as torch.fx's ``ShapeProp`` writes
``node.meta`` without ``Graph`` knowing it), and ``import nas`` imports them."""


def computes(fact: str) -> Callable[[_P], _P]:
    """Register the decorated function as the pass that computes ``fact``.

    Example:
        >>> @computes("depth")                                  # doctest: +SKIP
        ... def depth(graph): return len(graph.order())
    """

    def register(compute: _P) -> _P:
        _PASSES[fact] = compute
        return compute

    return register


def _pass(fact: str) -> GraphPass:
    try:
        return _PASSES[fact]
    except KeyError:
        raise NASError(
            f"no pass computes the graph fact '{fact}'", hint="import nas, which registers the passes"
        ) from None


_RESERVED_NODE_NAMES = frozenset(
    # Node names become attribute names of the lowered nn.Module and local
    # variables of its generated forward().
    {"self", "forward", "training", "input", "type", "float", "double", "half", "cuda", "cpu", "to"}
    | {name for name in dir(object)}
)


class Ref(NamedTuple):
    """One tensor: output number ``output`` of node ``node``."""

    node: str
    output: int = 0


@dataclass(eq=False)
class Node:
    """One block instance. ``meta`` holds facts written by passes and the
    source location (``meta["line"]``) it was read from."""

    name: str
    block: Block
    params: Params
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.block.output_names(self.params)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.block.name!r}, {dict(self.params)!r})"


class Graph:
    """A network: block instances connected by tensors, with named inputs and
    ordered outputs.

    Args:
        name: a label for humans; it is not part of the hash.
        meta: free-form metadata (paper, year, dataset ...); not hashed.
        source: the file the graph was read from, for error messages.
    """

    def __init__(self, name: str = "net", meta: Mapping[str, Any] | None = None, source: str | None = None):
        self.name = name
        self.meta: dict[str, Any] = dict(meta or {})
        self.source = source
        self._nx = nx.DiGraph()
        self._outputs: list[Ref] = []
        self._facts: dict[str, Any] = {}

    # -- building -----------------------------------------------------------

    def add_input(self, name: str, shape: Sequence[int], *, line: int | None = None) -> Ref:
        """Add a graph input of the given shape (without the batch dimension)."""
        return self.add(name, "input", (), line=line, shape=shape)

    def add(
        self,
        name: str,
        block: str | Block,
        inputs: Ref | str | Iterable[Ref | str] = (),
        *,
        line: int | None = None,
        **params: Any,
    ) -> Ref:
        """Add a block instance and connect its inputs; returns its first output.

        Args:
            name: unique node name, a Python identifier.
            block: a registered block type or its name.
            inputs: the tensors it reads, in port order: ``Ref``s, node names,
                or ``"node.output"`` strings for named outputs.
            line: source line, for error messages.
            **params: the block's parameters; defaults fill in the rest.

        Raises:
            GraphError: bad or duplicate name, or an input that does not exist.
            UnknownBlockError, ParamError: as raised by the registry.
        """
        self._check_name(name, line)
        try:
            block_type = block if isinstance(block, Block) else get_block(block)
            checked = block_type.check_params(params)
        except NASError as e:
            raise e.located(node=name, line=line, file=self.source) from None
        node = Node(name, block_type, checked, {} if line is None else {"line": line})
        self._nx.add_node(name, node=node)
        self._changed()
        if isinstance(inputs, (Ref, str)):
            inputs = (inputs,)
        self.set_inputs(name, inputs)
        return Ref(name, 0)

    def set_inputs(self, name: str, inputs: Iterable[Ref | str]) -> None:
        """Replace the inputs of node ``name`` (in port order)."""
        refs = [self.ref(r, reader=name) for r in inputs]
        self._nx.remove_edges_from(list(self._nx.in_edges(name)))
        for port, ref in enumerate(refs):
            if self._nx.has_edge(ref.node, name):
                self._nx.edges[ref.node, name]["ports"] += ((ref.output, port),)
            else:
                self._nx.add_edge(ref.node, name, ports=((ref.output, port),))
        self._changed()

    def set_outputs(self, *outputs: Ref | str) -> None:
        """Declare the graph's outputs, in order."""
        self._outputs = [self.ref(r, reader="outputs") for r in outputs]
        self._changed()

    def set_params(self, name: str, **changes: Any) -> None:
        """Change some parameters of a node (others keep their values)."""
        node = self.node(name)
        raw = {**node.params, **changes}
        try:
            node.params = node.block.check_params(raw)
        except NASError as e:
            raise e.located(node=name, line=node.meta.get("line"), file=self.source) from None
        self._changed()

    def remove(self, name: str) -> None:
        """Remove a node and its edges; its consumers lose those inputs."""
        self.node(name)
        self._nx.remove_node(name)
        self._outputs = [r for r in self._outputs if r.node != name]
        self._changed()

    def ref(self, value: Ref | str, *, reader: str | None = None) -> Ref:
        """Resolve ``"node"`` or ``"node.output_name"`` to a :class:`Ref`."""
        if isinstance(value, Ref):
            name = value.node
            if name in self._nx:
                if 0 <= value.output < len(self.node(name).output_names):
                    return value
                raise self._error(GraphError, f"node '{name}' has no output {value.output}", reader)
        elif isinstance(value, str):
            name, _, output = value.partition(".")
            if name in self._nx:
                outputs = self.node(name).output_names
                if not output:
                    return Ref(name, 0)
                if output in outputs:
                    return Ref(name, outputs.index(output))
                raise self._error(
                    GraphError,
                    f"input '{value}': node '{name}' has no output '{output}'",
                    reader,
                    hint=f"its outputs are {', '.join(outputs)}",
                )
        else:
            raise self._error(GraphError, f"an input must be a node name, got {value!r}", reader)
        close = difflib.get_close_matches(name, list(self._nx), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "define that node or fix the name"
        raise self._error(GraphError, f"input '{name}' does not exist", reader, hint=hint)

    def ref_text(self, ref: Ref) -> str:
        """The inverse of :meth:`ref`: ``"node"`` or ``"node.output_name"``."""
        return ref.node if ref.output == 0 else f"{ref.node}.{self.node(ref.node).output_names[ref.output]}"

    # -- reading ------------------------------------------------------------

    @property
    def nx(self) -> nx.DiGraph:
        """The underlying ``networkx.DiGraph`` (read it; build through ``Graph``)."""
        return self._nx

    @property
    def outputs(self) -> list[Ref]:
        return list(self._outputs)

    def node(self, name: str) -> Node:
        try:
            return self._nx.nodes[name]["node"]
        except KeyError:
            raise GraphError(f"no node named '{name}'", file=self.source) from None

    def __contains__(self, name: object) -> bool:
        return name in self._nx

    def __len__(self) -> int:
        return len(self._nx)

    def __iter__(self) -> Iterator[Node]:
        """Nodes in insertion order."""
        nodes = self._nx.nodes
        return (nodes[n]["node"] for n in self._nx)

    @property
    def input_nodes(self) -> list[Node]:
        return [n for n in self if n.block.placeholder]

    def inputs(self, name: str) -> list[Ref]:
        """The tensors node ``name`` reads, in port order."""
        ports = sorted(
            (port, Ref(src, index)) for src, data in self._nx.pred[name].items() for index, port in data["ports"]
        )
        return [ref for _, ref in ports]

    def users(self, name: str) -> list[tuple[str, int, int]]:
        """``(consumer, output_index, input_port)`` for every read of ``name``."""
        return [(dst, index, port) for dst, data in self._nx.succ[name].items() for index, port in data["ports"]]

    def topological_order(self) -> list[Node]:
        """Nodes in a deterministic topological order (ties by insertion order).

        Raises:
            GraphError: the graph has a cycle (named node by node).
        """
        cached = self._facts.get("order")
        if cached is not None:
            return cached
        try:
            names = list(nx.lexicographical_topological_sort(self._nx, key=self._insertion_index().__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = [u for u, _ in nx.find_cycle(self._nx)]
            first = self.node(cycle[0])
            raise GraphError(
                "the graph has a cycle: " + " -> ".join(cycle + cycle[:1]),
                file=self.source,
                line=first.meta.get("line"),
                node=cycle[0],
                hint="a node cannot depend on its own output",
            ) from None
        order = [self.node(n) for n in names]
        self._facts["order"] = order
        return order

    # -- facts (computed by passes, cached until the graph changes) ---------

    def fact(self, key: str, compute: GraphPass | None = None) -> Any:
        """Return the cached fact ``key``, computing it first with ``compute``
        (by default the pass registered for ``key``, see :func:`computes`)."""
        if key not in self._facts:
            self._facts[key] = (compute or _pass(key))(self)
        return self._facts[key]

    @property
    def summary(self) -> Summary:
        """Shapes, costs and receptive fields of every node (see :mod:`nas.passes.analysis`)."""
        known = self._facts.get("summary")  # read per candidate by the latency predictor: one dict lookup
        return known if known is not None else self.fact("summary")

    @property
    def params(self) -> int:
        """Number of trainable parameters."""
        return self.summary.params

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass at batch 1."""
        return self.summary.macs

    @property
    def hash(self) -> str:
        """Canonical hash: equal for the same network whatever its node names,
        insertion order or hierarchy (see :mod:`nas.passes.canonical`)."""
        return self.fact("hash")

    def to_yaml(self) -> str:
        """The canonical YAML text of this graph (see :mod:`nas.io.parse`)."""
        return _pass("yaml")(self)

    def copy(self) -> Graph:
        """A structural copy (facts are recomputed on demand)."""
        new = Graph(self.name, self.meta, self.source)
        for node in self:
            meta = {"line": node.meta["line"]} if "line" in node.meta else {}
            new._nx.add_node(node.name, node=Node(node.name, node.block, node.params, meta))
        new._nx.add_edges_from((u, v, {"ports": d["ports"]}) for u, v, d in self._nx.edges(data=True))
        new._outputs = list(self._outputs)
        return new

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self)} nodes>"

    # -- internals ----------------------------------------------------------

    def _changed(self) -> None:
        self._facts.clear()

    def _insertion_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self._nx)}

    def _check_name(self, name: str, line: int | None) -> None:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise GraphError(
                f"node name {name!r} is not a valid identifier",
                file=self.source,
                line=line,
                hint="use letters, digits and '_', not starting with a digit",
            )
        if name in _RESERVED_NODE_NAMES or name.startswith("_"):
            raise GraphError(
                f"node name '{name}' is reserved (it would clash with the lowered module)",
                file=self.source,
                line=line,
                hint=f"rename it, e.g. '{name.strip('_')}_1'",
            )
        if name in self._nx:
            raise GraphError(
                f"duplicate node name '{name}'", file=self.source, line=line, hint="give each node its own name"
            )

    def _error(self, cls: type[NASError], message: str, reader: str | None, hint: str | None = None) -> NASError:
        line = None
        if reader is not None and reader in self._nx:
            line = self.node(reader).meta.get("line")
        return cls(message, file=self.source, line=line, node=reader, hint=hint)
