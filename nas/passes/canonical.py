"""Canonical form: flattening to primitives, and the canonical hash.

The hash answers "is this the same network?" for every cache in the toolkit.
It is computed on the graph flattened to primitive blocks, so a graph and its
flattened form hash the same, and it ignores node names, insertion order,
the graph's name and metadata, and the input order of commutative blocks.
Any change of a block type, a parameter value (defaults filled in), an edge,
a port or an input shape changes it.

How: each node gets a *forward* digest of its block, parameters and the
digests of its inputs in port order (a Merkle DAG), then a *backward* digest
of its forward digest and the backward digests of its readers with their
ports. The graph's hash digests the sorted multiset of backward digests and
the outputs in order. Forward digests alone would confuse one shared node
with two identical copies; the backward pass tells them apart. Both passes
are linear in the size of the graph.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nas.ir.graph import Graph, Ref, computes

HASH_VERSION = b"nas-graph-hash-1"
"""Bumped whenever the digest changes, so stale caches miss instead of lie."""


def flatten(graph: Graph) -> Graph:
    """A copy of ``graph`` with every composite block replaced by its
    expansion, recursively. Inner nodes are named ``outer_inner``; each
    node's ``meta["path"]`` is where the nested lowering puts it
    (``outer.inner``), so that a flat module's weights can be named as the
    nested module's.

    Example:
        >>> import nas
        >>> g = nas.build("examples/resnet18.yaml")          # doctest: +SKIP
        >>> flatten(g).hash == g.hash                         # doctest: +SKIP
        True
    """
    _ = graph.summary  # expansions are written by the analysis
    if not any(node.block.composite for node in graph):
        return graph.copy()
    flat = Graph(graph.name, graph.meta, graph.source)
    bindings: dict[str, list[Ref]] = {}
    _inline(graph, flat, prefix="", path="", bindings=bindings)
    flat.set_outputs(*(_resolve(graph, ref, "", bindings) for ref in graph.outputs))
    return flat


@computes("flat")
def flat_form(graph: Graph) -> Graph:
    """``graph`` flattened (:func:`flatten`), kept as the graph's fact ``flat``
    for the readers that need it more than once (the hash, a supernet's
    lowering): the graph itself where it has no composite block. Read it,
    do not change it (:func:`flatten` gives a copy to change)."""
    return flatten(graph) if any(node.block.composite for node in graph) else graph


def _inline(graph: Graph, flat: Graph, prefix: str, path: str, bindings: dict[str, list[Ref]]) -> None:
    """Copy ``graph``'s nodes into ``flat`` with names prefixed (and their
    nested module path after ``path``); ``bindings`` maps this graph's input
    nodes to tensors of ``flat``."""
    for node in graph.summary.order:
        if prefix and node.block.placeholder:
            continue
        name = _fresh(flat, prefix + node.name)
        if node.block.composite:
            expansion: Graph = node.meta["expansion"]
            inner = {
                inp.name: [_resolve(graph, ref, prefix, bindings)]
                for inp, ref in zip(expansion.input_nodes, graph.inputs(node.name))
            }
            _inline(expansion, flat, name + "_", f"{path}{node.name}.", inner)
            # The composite's outputs are the expansion's outputs, renamed.
            bindings[node.name] = [_resolve(expansion, ref, name + "_", inner) for ref in expansion.outputs]
            continue
        inputs = [_resolve(graph, ref, prefix, bindings) for ref in graph.inputs(node.name)]
        flat.add(name, node.block, inputs, line=node.meta.get("line"), **node.params)
        flat.node(name).meta["path"] = path + node.name
        bindings[node.name] = [Ref(name, i) for i in range(len(node.output_names))]


def _resolve(graph: Graph, ref: Ref, prefix: str, bindings: dict[str, list[Ref]]) -> Ref:
    if ref.node in bindings:
        return bindings[ref.node][ref.output]
    return Ref(prefix + ref.node, ref.output)


def _fresh(flat: Graph, name: str) -> str:
    candidate, k = name, 1
    while candidate in flat:
        k += 1
        candidate = f"{name}_{k}"
    return candidate


def node_label(block: str, params: Any) -> bytes:
    """The digest input for one block instance: its type and all parameters."""
    return json.dumps([block, params], sort_keys=True, separators=(",", ":"), default=list).encode()


@computes("hash")
def graph_hash(graph: Graph) -> str:
    """The canonical hash of ``graph`` as 32 hex digits (see module docs)."""
    graph = graph.fact("flat")
    order = graph.topological_order()
    forward: dict[str, bytes] = {}
    for node in order:
        h = hashlib.blake2b(node_label(node.block.name, dict(node.params)), digest_size=16)
        inputs = [forward[ref.node] + ref.output.to_bytes(2, "little") for ref in graph.inputs(node.name)]
        if node.block.commutative:
            inputs.sort()
        for item in inputs:
            h.update(item)
        forward[node.name] = h.digest()

    output_ports: dict[str, list[bytes]] = {}
    for position, ref in enumerate(graph.outputs):
        output_ports.setdefault(ref.node, []).append(b"out" + bytes([ref.output]) + position.to_bytes(4, "little"))
    backward: dict[str, bytes] = {}
    for node in reversed(order):
        readers = []
        for reader, index, port in graph.users(node.name):
            # A commutative reader does not care at which port it reads us.
            port = 0 if graph.node(reader).block.commutative else port
            readers.append(backward[reader] + index.to_bytes(2, "little") + port.to_bytes(2, "little"))
        h = hashlib.blake2b(forward[node.name], digest_size=16)
        for item in sorted(readers) + output_ports.get(node.name, []):
            h.update(item)
        backward[node.name] = h.digest()

    h = hashlib.blake2b(HASH_VERSION, digest_size=16)
    for digest in sorted(backward.values()):
        h.update(digest)
    for ref in graph.outputs:
        h.update(forward[ref.node] + ref.output.to_bytes(2, "little"))
    return h.hexdigest()
