"""The IR's identity: the canonical hash against an independent oracle.

Two graphs have the same hash exactly when networkx finds them isomorphic
(same block types and parameters, same edges with the same ports, same
outputs in the same order). Hypothesis draws small random DAGs, relabels and
reorders them, and mutates one field.
"""

from __future__ import annotations

import random

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nas
from nas.ir.errors import GraphError

SHAPE = (4, 5, 5)
# Blocks that keep the shape SHAPE, so any wiring is valid.
OPS: list[tuple[str, dict[str, object], int]] = [
    ("relu", {}, 1),
    ("tanh", {}, 1),
    ("sigmoid", {}, 1),
    ("batch_norm", {}, 1),
    ("conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}, 1),
    ("conv2d", {"out_channels": 4, "kernel_size": 1}, 1),
    ("max_pool2d", {"kernel_size": 3, "stride": 1, "padding": 1}, 1),
    ("add", {}, 2),
    ("add", {}, 3),
]

Spec = list[tuple[str, dict[str, object], list[int]]]


@st.composite
def dags(draw: st.DrawFn) -> Spec:
    """A DAG as a list of (block, params, input indices); index 0 is the input."""
    spec: Spec = [("input", {"shape": SHAPE}, [])]
    for _ in range(draw(st.integers(1, 7))):
        block, params, arity = draw(st.sampled_from(OPS))
        inputs = [draw(st.integers(0, len(spec) - 1)) for _ in range(arity)]
        spec.append((block, dict(params), inputs))
    return spec


def build(spec: Spec, names: list[str] | None = None, order: list[int] | None = None) -> nas.Graph:
    """Build ``spec`` with the given node names and insertion order."""
    names = names or [f"n{i}" for i in range(len(spec))]
    order = order or list(range(len(spec)))
    used = {i for _, _, inputs in spec for i in inputs}
    g = nas.Graph()
    for i in order:
        block, params, _ = spec[i]
        g.add(names[i], block, (), **params)
    for i in order:
        g.set_inputs(names[i], [names[j] for j in spec[i][2]])
    g.set_outputs(*(names[i] for i in range(len(spec)) if i not in used))
    return g


def oracle(g: nas.Graph) -> nx.DiGraph:
    """A labelled DiGraph for networkx's isomorphism test (independent of
    nas.canonical): node labels are block + params; edges into commutative
    blocks forget their ports; outputs are extra labelled nodes."""
    d = nx.DiGraph()
    for node in g:
        d.add_node(node.name, label=(node.block.name, sorted(node.params.items())))
    for u, v, data in g.nx.edges(data=True):
        ports = data["ports"]
        key = sorted(i for i, _ in ports) if g.node(v).block.commutative else sorted(ports)
        d.add_edge(u, v, label=key)
    for position, ref in enumerate(g.outputs):
        d.add_node(("out", position), label=("out", position))
        d.add_edge(ref.node, ("out", position), label=[ref.output])
    return d


def isomorphic(a: nas.Graph, b: nas.Graph) -> bool:
    da, db = oracle(a), oracle(b)

    def signature(d: nx.DiGraph) -> list[str]:
        # A necessary condition, checked first: VF2 alone can take seconds
        # to refute symmetric graphs.
        return sorted(
            repr(
                (
                    d.nodes[n]["label"],
                    sorted(repr((d.nodes[u]["label"], e["label"])) for u, _, e in d.in_edges(n, data=True)),
                    d.out_degree(n),
                )
            )
            for n in d
        )

    if signature(da) != signature(db):
        return False
    same = lambda x, y: x["label"] == y["label"]  # noqa: E731
    return nx.is_isomorphic(da, db, node_match=same, edge_match=same)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.randoms(use_true_random=False))
def test_hash_ignores_names_and_insertion_order(spec: Spec, rng: random.Random) -> None:
    names = [f"v{i}" for i in range(len(spec))]
    rng.shuffle(names)
    order = list(range(len(spec)))
    rng.shuffle(order)
    assert build(spec).hash == build(spec, names, order).hash


def _mutate(spec: Spec, rng: random.Random) -> Spec:
    spec = [(b, dict(p), list(i)) for b, p, i in spec]
    k = rng.randrange(1, len(spec))
    block, params, inputs = spec[k]
    what = rng.choice(["block", "param", "edge", "swap"])
    if what == "block" and not block.startswith(("conv", "add", "max")):
        spec[k] = (rng.choice(["relu", "tanh", "sigmoid", "batch_norm"]), {}, inputs)
    elif what == "param" and block == "conv2d":
        params["bias"] = False
    elif what == "param" and block == "batch_norm":
        params["eps"] = 1e-3
    elif what == "swap" and len(inputs) > 1:
        inputs.reverse()
    else:
        inputs[rng.randrange(len(inputs))] = rng.randrange(k)
    return spec


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.randoms(use_true_random=False))
def test_hash_equal_exactly_when_isomorphic(spec: Spec, rng: random.Random) -> None:
    a, b = build(spec), build(_mutate(spec, rng))
    assert (a.hash == b.hash) == isomorphic(a, b)


def test_one_shared_node_differs_from_two_identical_copies() -> None:
    shared = build([("input", {"shape": SHAPE}, []), ("relu", {}, [0]), ("add", {}, [1, 1])])
    copies = build([("input", {"shape": SHAPE}, []), ("relu", {}, [0]), ("relu", {}, [0]), ("add", {}, [1, 2])])
    assert shared.hash != copies.hash


def test_port_order_matters_except_for_commutative_blocks() -> None:
    def net(block: str, first: str, second: str) -> nas.Graph:
        g = nas.Graph()
        x = g.add_input("x", (2, 4, 4))
        g.add("a", "relu", x)
        g.add("b", "conv2d", x, out_channels=3, kernel_size=1)
        g.set_outputs(g.add("m", block, [first, second]))
        return g

    assert net("concat", "a", "b").hash != net("concat", "b", "a").hash
    g1, g2 = net("concat", "a", "b"), net("concat", "a", "b")
    g2.set_params("b", out_channels=2)  # changes the shapes too
    assert g1.hash != g2.hash


def test_input_shape_and_output_order_are_part_of_the_hash() -> None:
    spec: Spec = [("input", {"shape": SHAPE}, []), ("relu", {}, [0]), ("tanh", {}, [0])]
    g = build(spec)
    h = build([("input", {"shape": (4, 6, 6)}, []), *spec[1:]])
    assert g.hash != h.hash
    swapped = build(spec)
    swapped.set_outputs("n2", "n1")
    assert swapped.hash != g.hash


def test_hierarchical_and_flattened_graphs_hash_the_same() -> None:
    g = nas.build("examples/resnet18.yaml")
    flat = nas.flatten(g)
    assert len(flat) > 3 * len(g)
    assert not any(node.block.composite for node in flat)
    assert flat.hash == g.hash
    g.set_params("layer3_1", shortcut="zero_pad")  # a no-op here: the block keeps its shape
    assert g.hash == flat.hash
    g.set_params("layer3_1", stride=2)
    assert g.hash != flat.hash


def test_the_flat_form_is_kept_until_the_graph_changes() -> None:
    g = nas.build("examples/resnet18.yaml")
    flat = g.fact("flat")
    assert flat is g.fact("flat")  # flattened once for every reader of the fact
    assert [n.name for n in flat] == [n.name for n in nas.flatten(g)]
    assert flat.fact("flat") is flat  # nothing composite left: the graph is its own flat form
    g.set_params("layer3_1", stride=2)
    assert g.fact("flat") is not flat
    assert g.fact("flat").node("layer3_1_conv1").params["stride"] == 2


def test_name_and_metadata_are_not_hashed() -> None:
    a = nas.build("examples/resnet18.yaml")
    b = nas.build(a.to_yaml().replace("name: resnet18", "name: other").replace("year: 2015", "year: 1999"))
    assert a.hash == b.hash


def test_graph_api_keeps_edges_consistent() -> None:
    g = nas.Graph()
    x = g.add_input("x", (3, 8, 8))
    p = g.add("pool", "max_pool2d", x, kernel_size=2, return_indices=True)
    u = g.add("up", "max_unpool2d", [p, "pool.indices"], kernel_size=2)
    g.add("sum", "add", [u, u])
    g.set_outputs("sum")
    assert g.inputs("up") == [nas.Ref("pool", 0), nas.Ref("pool", 1)]
    assert g.inputs("sum") == [nas.Ref("up", 0), nas.Ref("up", 0)]
    assert sorted(g.users("pool")) == [("up", 0, 0), ("up", 1, 1)]
    assert g.summary.outputs == [(3, 8, 8)]
    g.set_inputs("sum", ["up", "x"])
    assert g.inputs("sum") == [nas.Ref("up", 0), nas.Ref("x", 0)]
    with pytest.raises(GraphError, match="has no output 'idx'"):
        g.set_inputs("sum", ["pool.idx", "x"])
    with pytest.raises(GraphError, match="duplicate node name"):
        g.add("up", "relu", x)
    with pytest.raises(GraphError, match="reserved"):
        g.add("forward", "relu", x)
