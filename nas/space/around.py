"""A search space around a network: the net is its fixed point, and its
widths, depths, kernel sizes and expansions become decisions to edit.

:func:`around` reads the network as it is written (stages stay stages,
single blocks stay blocks) and writes the same nodes as a space template in
which

- every *width group* gets a width decision: the channels that must change
  together (the branches of an ``add``, a depthwise convolution and its
  input, a run of identical composite blocks such as SqueezeNet's fire
  modules of one width) scale by one multiplier. A group with one width
  parameter lists its channel counts; a larger one declares the multiplier
  and derives each width with ``{expr: ...}``. The group that reaches the
  net's outputs (the classifier) and the one that holds its inputs are kept;
- a stage (a block with ``depth``) gets a depth from 1 to its own plus
  ``deeper``;
- a learnable convolution with a square kernel larger than 1x1 gets kernel
  sizes (its "same" padding follows the kernel);
- a block with ``expansion`` gets expansions.

Each decision lists the net's own value first, so :func:`nas.space.encode`
finds the net at once, and every choice is kept only if the net with that
one change still validates (LeNet-5's C3 connection table needs exactly six
input maps, so C1's width is not decided). The result is checked: the text
parses, and ``decode(encode(net))`` has the net's hash.

Example:
    >>> import nas, nas.space as S
    >>> text = S.around(nas.build("resnet18"))
    >>> space = S.parse_space(text)
    >>> S.decode(space, S.encode(space, nas.build("resnet18"))).hash == nas.build("resnet18").hash
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from nas.ir.errors import NASError
from nas.ir.graph import Graph, Node
from nas.ir.registry import REQUIRED, get_block
from nas.ir.values import plain
from nas.space.encode import encode
from nas.space.model import Assignment, Decision, Space
from nas.space.operations import decode, size
from nas.space.parser import parse_space

WIDTHS = (0.5, 0.75, 1.0, 1.25, 1.5)
"""Width multipliers of every group (1.0, the net's own width, is always kept)."""

KERNELS = (3, 5, 7)
"""Kernel sizes offered besides the net's own."""

EXPANSIONS = (3.0, 4.0, 6.0)
"""Expansion ratios offered besides the net's own (MobileNetV2's 6, MnasNet's 3)."""

DEEPER = 2
"""A stage may grow by this many units (and shrink to one)."""

MAX_SHARED = 625
"""The most combinations of declared (shared) decisions: :func:`~nas.space.encode`
tries each in turn before it says a net is not in the space (``nas space``
and a search try every zoo net), so beyond it width groups share a
multiplier and kernels that would need declaring stay as they are."""

WIDTH_NAMES = ("out_channels", "out_features", "width", "widths", "embed_dim")
"""Parameters that set how many channels a block produces (an integer, or
a list of them for a block of several layers), besides those named ``*_channels``."""


@dataclass(frozen=True)
class Site:
    """One parameter value of the net: node, path (``("depth",)`` or
    ``("args", "kernel_size")`` inside a stage's mapping), value."""

    node: str
    path: tuple[str, ...]
    value: Any

    @property
    def label(self) -> str:
        """The label the space parser gives an inline decision here."""
        return ".".join((self.node, *self.path))


@dataclass
class _Plan:
    """What the space decides, before it is written."""

    inline: dict[Site, list[Any]] = field(default_factory=dict)
    """A decision of its own at each site: its values, the net's first."""
    ranges: dict[Site, tuple[int, int]] = field(default_factory=dict)
    shared: dict[str, list[Any]] = field(default_factory=dict)
    """Declared decisions: name -> values, the net's first."""
    derived: dict[Site, str] = field(default_factory=dict)
    """Sites computed from declared decisions: site -> expression."""


def around(
    graph: Graph,
    *,
    widths: Sequence[float] = WIDTHS,
    kernels: Sequence[int] = KERNELS,
    expansions: Sequence[float] = EXPANSIONS,
    deeper: int = DEEPER,
    name: str | None = None,
) -> str:
    """The YAML text of a search space whose fixed point is ``graph``.

    Args:
        widths: multipliers of each width group's channels (rounded, at least 1).
        kernels: kernel sizes offered to convolutions larger than 1x1.
        expansions: ratios offered to blocks with an ``expansion``.
        deeper: how many units a stage may gain.
        name: the space's name (``around_<net>`` by default).

    Raises:
        NASError: the net has nothing that can change, or (a fault here)
            the written space does not hold it.
    """
    _ = graph.summary
    name = name or f"around_{graph.name}"
    plan = _plan(graph, widths, kernels, expansions, deeper)
    space = parse_space(_render(graph, plan, name), f"<around {graph.name}>", name)
    _prune(graph, plan, space)
    if not plan.inline and not plan.ranges and not plan.shared:
        raise NASError(
            f"'{graph.name}' has no width, depth, kernel size or expansion that can change and stay valid",
            hint="write the space by hand (see search_spaces/README.md)",
        )
    space = parse_space(_render(graph, plan, name), f"<around {graph.name}>", name)
    try:
        point = encode(space, graph)
        fixed = decode(space, point).hash == graph.hash
    except NASError as e:
        raise NASError(f"the space around '{graph.name}' does not hold it: {e}") from None
    if not fixed:
        raise NASError(f"the space around '{graph.name}' does not give it back")
    return _render(graph, plan, name, point)


def around_point(space: Space) -> Assignment | None:
    """The assignment of the network a space was written around
    (``meta.point``, which :func:`around` records), where the space still
    gives that network back (``meta.hash``); else ``None``. A search starts
    there, as it starts from a zoo net."""
    point, expected = space.meta.get("point"), space.meta.get("hash")
    if not isinstance(point, Mapping) or not expected:
        return None
    try:
        return dict(point) if decode(space, dict(point)).hash == expected else None
    except NASError:
        return None  # the space was edited so that the point is no longer in it


def around_summary(space: Space) -> str:
    """One line: how many decisions of each kind, and the space's size."""
    n = size(space)
    kinds = {"width": 0, "depth": 0, "kernel": 0, "expansion": 0}
    for d in space.decisions:
        kinds[_kind(d)] += 1
    counts = ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
    magnitude = f"{n:,}" if n < 10**6 else f"~1e{math.log10(n):.1f}"
    return f"{space.name}: {len(space.decisions)} decisions ({counts}), {magnitude} architectures"


def _kind(decision: Decision) -> str:
    last = decision.label.rsplit(".", 1)[-1]
    if last.endswith("kernel") or last == "kernel_size":
        return "kernel"
    return {"depth": "depth", "expansion": "expansion"}.get(last, "width")


# --------------------------------------------------------------------------
# Finding the decisions


def _plan(
    graph: Graph, widths: Sequence[float], kernels: Sequence[int], expansions: Sequence[float], deeper: int
) -> _Plan:
    plan = _Plan()
    budget = _plan_widths(plan, graph, widths)
    for node in graph.summary.order:
        for site, padding in _kernel_sites(graph, node):
            options = list(dict.fromkeys([site.value, *kernels]))
            if padding is None:
                plan.inline[site] = options
            elif budget >= len(options):
                # "Same" padding follows the kernel, so the kernel is declared and the padding derived.
                label = f"{node.name}_kernel"
                plan.shared[label] = options
                plan.derived[site] = label
                plan.derived[padding] = f"{label} // 2"
                budget //= len(options)
        for site in _param_sites(node, "expansion"):
            if isinstance(site.value, (int, float)) and _expansion_free(node, site):
                plan.inline[site] = list(dict.fromkeys([float(site.value), *map(float, expansions)]))
        for site in _param_sites(node, "depth"):
            if isinstance(site.value, int) and not isinstance(site.value, bool):
                plan.ranges[site] = (1, site.value + deeper)
    return plan


def _plan_widths(plan: _Plan, graph: Graph, widths: Sequence[float]) -> int:
    """Width decisions into ``plan``; returns what is left of :data:`MAX_SHARED`.

    A group of several width parameters declares a multiplier, shared with
    the group before it when both hold the same widths (units of one stage
    written out layer by layer); once the budget is spent, the remaining
    groups share the last multiplier, so every width still changes.
    """
    budget = MAX_SHARED
    multipliers = list(dict.fromkeys(m for m in (1.0, *widths) if m > 0))
    label, previous = None, None
    for group in _width_groups(graph):
        scaled = list(dict.fromkeys(tuple(_scaled(s.value, m) for s in group) for m in multipliers))
        if len(scaled) < 2 or (len(group) > 1 and any(isinstance(s.value, tuple) for s in group)):
            continue  # nothing changes, or a list of widths that an expression cannot write
        if len(group) == 1:
            plan.inline[group[0]] = [v[0] for v in scaled]
            continue
        values = [s.value for s in group]
        if label is None or (values != previous and budget >= len(multipliers)):
            label = f"{group[0].node}_width"
            plan.shared[label] = multipliers
            budget //= len(multipliers)
        plan.derived.update({s: f"max(1, round({label} * {s.value}))" for s in group})
        previous = values
    return budget


def _width_groups(graph: Graph) -> list[list[Site]]:
    """The width parameters that must scale together, one list per group,
    in the net's order; groups holding an input or an output are left out."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    sites: dict[str, list[Site]] = {}
    for node in graph.summary.order:
        parent[node.name] = node.name
        inputs = [ref.node for ref in graph.inputs(node.name)]
        own = _width_sites(graph, node)
        if not own:
            for other in inputs:  # shape-keeping, merging or reshaping: the channels pass through
                union(node.name, other)
            continue
        sites[node.name] = own
        if inputs and (_grouped(node) or _continues_run(graph, node)):
            union(node.name, inputs[0])
    fixed = {root(n.name) for n in graph.input_nodes} | {root(ref.node) for ref in graph.outputs}
    groups: dict[str, list[Site]] = {}
    for node_name, own in sites.items():
        if root(node_name) not in fixed:
            groups.setdefault(root(node_name), []).extend(own)
    return list(groups.values())


def _width_sites(graph: Graph, node: Node) -> list[Site]:
    """The parameters of ``node`` (or of its stage's units) that set channel counts."""
    found = [Site(node.name, (k,), v) for k, v in node.params.items() if _is_width(k, v)]
    unit = _unit(node)
    if unit is not None:
        args = node.params.get("args") or {}
        found += [Site(node.name, ("args", k), v) for k, v in args.items() if _is_width(k, v)]
    groups = node.params.get("groups")
    if isinstance(groups, int) and groups > 1 and groups == _in_channels(graph, node):
        found.append(Site(node.name, ("groups",), groups))  # depthwise: one group per input channel
    return found


def _is_width(name: str, value: Any) -> bool:
    values = value if isinstance(value, tuple) and value else (value,)
    return (name in WIDTH_NAMES or name.endswith("_channels")) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    )


def _scaled(value: int | tuple[int, ...], multiplier: float) -> int | tuple[int, ...]:
    if isinstance(value, tuple):
        return tuple(max(1, round(multiplier * v)) for v in value)
    return max(1, round(multiplier * value))


def _grouped(node: Node) -> bool:
    """A grouped convolution: its input's channels must stay divisible, so
    input and output scale together."""
    groups = node.params.get("groups")
    return isinstance(groups, int) and groups > 1


def _continues_run(graph: Graph, node: Node) -> bool:
    """``node`` repeats the composite block before it at the same output
    width (SqueezeNet's fire modules, or units written out one by one): one
    stage, one multiplier. Stages (blocks with a ``depth``) stand alone."""
    if not node.block.composite or "depth" in node.params:
        return False
    previous = _previous_width_node(graph, node)
    return (
        previous is not None
        and previous.block is node.block
        and previous.meta["shapes"][0][:1] == node.meta["shapes"][0][:1]
    )


def _previous_width_node(graph: Graph, node: Node) -> Node | None:
    """The nearest node up the first-input chain that sets channels."""
    refs = graph.inputs(node.name)
    while refs:
        other = graph.node(refs[0].node)
        if _width_sites(graph, other):
            return other
        refs = graph.inputs(other.name)
    return None


def _in_channels(graph: Graph, node: Node) -> int | None:
    refs = graph.inputs(node.name)
    if not refs:
        return None
    shape = graph.node(refs[0].node).meta["shapes"][refs[0].output]
    return shape[0] if shape else None


def _unit(node: Node) -> Any:
    """The block a stage-like node repeats (its ``unit``), or None."""
    unit = node.params.get("unit")
    if not isinstance(unit, str) or not isinstance(node.params.get("args"), Mapping):
        return None
    try:
        return get_block(unit)
    except NASError:
        return None


def _param_sites(node: Node, name: str) -> Iterable[Site]:
    """Where ``node`` sets parameter ``name``: its own, or its units' (given or default)."""
    if name in node.params and node.params[name] is not None:
        yield Site(node.name, (name,), node.params[name])
    unit = _unit(node)
    if unit is not None:
        defaults = {p.name: p.default for p in unit.params}
        args = node.params["args"]
        value = args.get(name, defaults.get(name, REQUIRED))
        if value is not REQUIRED and value is not None:
            yield Site(node.name, ("args", name), value)


def _kernel_sites(graph: Graph, node: Node) -> Iterable[tuple[Site, Site | None]]:
    """Kernel sizes to decide, each with the padding that must follow it (or
    None): learnable convolutions (blocks that set channels) with a square
    kernel larger than 1x1."""
    if not _width_sites(graph, node) and _unit(node) is None:
        return
    for site in _param_sites(node, "kernel_size"):
        k = site.value
        if isinstance(k, tuple):
            if len(set(k)) != 1:
                continue
            k = k[0]
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            continue
        site = Site(site.node, site.path, k)
        padding = Site(site.node, (*site.path[:-1], "padding"), None)
        holder = node.params if len(site.path) == 1 else node.params["args"]
        pad = holder.get("padding")
        pad = pad[0] if isinstance(pad, tuple) and len(set(pad)) == 1 else pad
        if pad is None or pad != k // 2 or k % 2 == 0:
            yield site, None  # padding chosen by the block, or not "same": the kernel alone
        else:
            yield site, Site(padding.node, padding.path, pad)


def _expansion_free(node: Node, site: Site) -> bool:
    """An expansion that a fixed expanded width does not override."""
    holder = node.params if len(site.path) == 1 else node.params["args"]
    return holder.get("expanded_channels") is None


# --------------------------------------------------------------------------
# Keeping what validates


def _prune(graph: Graph, plan: _Plan, space: Space) -> None:
    """Drop every value that, alone, turns the net into an invalid one;
    decisions left with one value become constants."""
    base = encode(space, graph)

    def valid(label: str, value: Any) -> bool:
        try:
            decode(space, {**base, label: value})
        except NASError:
            return False
        return True

    for site, values in list(plan.inline.items()):
        kept = [v for i, v in enumerate(values) if i == 0 or valid(site.label, v)]
        if len(kept) > 1:
            plan.inline[site] = kept
        else:
            del plan.inline[site]
    for site, (low, high) in list(plan.ranges.items()):
        if not (valid(site.label, low) and valid(site.label, high)):
            del plan.ranges[site]
    for label, values in list(plan.shared.items()):
        kept = [v for i, v in enumerate(values) if i == 0 or valid(label, v)]
        if len(kept) > 1:
            plan.shared[label] = kept
            continue
        del plan.shared[label]
        for site in [s for s, text in plan.derived.items() if label in _names(text)]:
            del plan.derived[site]


def _names(expression: str) -> set[str]:
    return {word for word in expression.replace("(", " ").replace(")", " ").replace(",", " ").split()}


# --------------------------------------------------------------------------
# Writing


def _render(graph: Graph, plan: _Plan, name: str, point: Assignment | None = None) -> str:
    values: dict[Site, Any] = {s: {"choice": v} for s, v in plan.inline.items()}
    values.update({s: {"range": list(r)} for s, r in plan.ranges.items()})
    values.update({s: f"${text}" if text in plan.shared else {"expr": text} for s, text in plan.derived.items()})
    by_node: dict[str, dict[Site, Any]] = {}
    for site, value in values.items():
        by_node.setdefault(site.node, {})[site] = value
    head = {
        "name": name,
        "description": (
            f"A space around {graph.name}: its own nodes, with widths (a multiplier per group of channels"
            " that change together), stage depths, kernel sizes and expansions as decisions; each"
            f" choice lists {graph.name}'s value first, and meta.point is {graph.name}."
        ),
        "meta": {"around": graph.name, "hash": graph.hash} | ({"point": plain(point)} if point else {}),
    }
    out = [yaml.safe_dump(head, sort_keys=False, width=1 << 30)]
    if plan.shared:
        out.append("decisions:\n")
        out += [f"  {label}: {_flow({'choice': v})}\n" for label, v in plan.shared.items()]
    out.append("inputs:\n")
    out += [f"  {node.name}: {_flow(node.params['shape'])}\n" for node in graph.input_nodes]
    out.append("nodes:\n")
    for node in graph.summary.order:
        if node.block.placeholder:
            continue
        refs = [graph.ref_text(ref) for ref in graph.inputs(node.name)]
        entry: dict[str, Any] = {"block": node.block.name}
        if refs:
            entry["in"] = refs[0] if len(refs) == 1 else refs
        entry.update(plain(node.block.explicit_params(node.params)))
        for site, value in by_node.get(node.name, {}).items():
            holder = entry
            for key in site.path[:-1]:
                holder = holder.setdefault(key, {})
            holder[site.path[-1]] = value
        out.append(f"  {node.name}: {_flow(entry)}\n")
    out.append(f"outputs: {_flow([graph.ref_text(ref) for ref in graph.outputs])}\n")
    return "".join(out)


def _flow(value: Any) -> str:
    return yaml.safe_dump(plain(value), default_flow_style=True, sort_keys=False, width=1 << 30).rstrip("\n")
