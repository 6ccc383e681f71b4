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
from nas.passes.plan import Plan

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
    plan = Plan(graph, flatten=True)
    flat = Graph(graph.name, graph.meta, graph.source)
    for step in plan.steps:
        node = step.node
        flat.add(step.name, node.block, [Ref(*v) for v in step.inputs], line=node.meta.get("line"), **node.params)
        flat.node(step.name).meta["path"] = step.path
    flat.set_outputs(*(Ref(*v) for v in plan.outputs))
    return flat


@computes("flat")
def flat_form(graph: Graph) -> Graph:
    """``graph`` flattened (:func:`flatten`), kept as the graph's fact ``flat``
    for a reader that needs it more than once: the graph itself where it has
    no composite block. Read it, do not change it (:func:`flatten` gives a
    copy to change)."""
    return flatten(graph) if any(node.block.composite for node in graph) else graph


def node_label(block: str, params: Any) -> bytes:
    """The digest input for one block instance: its type and all parameters."""
    return json.dumps([block, params], sort_keys=True, separators=(",", ":"), default=list).encode()


@computes("hash")
def graph_hash(graph: Graph) -> str:
    """The canonical hash of ``graph`` as 32 hex digits (see module docs)."""
    graph = flat_form(graph)  # not kept: the hash itself is
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
