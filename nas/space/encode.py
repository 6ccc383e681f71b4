"""Networks and stored data back into assignments.

:func:`encode` finds the assignment that gives a network (every zoo net is
a fixed point of a shipped space: ``decode(encode(net))`` has its hash);
:func:`from_plain` and :func:`assignment_from_plain` read back assignments
stored as JSON (an Optuna trial's attributes).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from nas.ir.errors import NASError
from nas.ir.graph import Graph, Node
from nas.ir.registry import REQUIRED, get_block
from nas.ir.values import plain, same
from nas.space.model import Assignment, Const, Decision, Expr, MappingValue, Slot, Space, Use, evaluate
from nas.space.operations import complete, decode


def encode(space: Space, graph: Graph) -> Assignment:
    """The assignment whose :func:`decode` is ``graph`` (same canonical hash).

    The template's nodes are aligned with the graph's (skipping optional
    ones); each aligned node's block and parameters give the values of its
    decisions; shared decisions are tried in turn.

    Raises:
        NASError: the graph is not in the space, with the first reason found.
    """
    target = graph.hash
    nodes = [n for n in graph.summary.order if n.block.name != "input"]
    reason = "no alignment of the space's nodes with the network's"
    named = [d for d in space.named if d.size <= 4096]
    if any(d.size > 4096 for d in space.named):
        raise NASError("shared decisions with more than 4096 values cannot be encoded", file=space.file)
    for values in itertools.product(*(range(d.size) for d in named)):
        base: Assignment = {d.label: d.value(j) for d, j in zip(named, values)}
        if not all(all(same(base.get(lab), v) for lab, v in d.when) for d in named if d.label in base):
            continue
        inputs = _match_inputs(space, graph, base)
        if inputs is None:
            reason = "the input shapes are not in the space"
            continue
        aligned = _align(space, nodes, {**base, **inputs})
        if aligned is None:
            continue
        assignment = complete(space, aligned, random.Random(0))
        try:
            if decode(space, assignment).hash == target:
                return assignment
            reason = "an alignment was found but the decoded network differs"
        except NASError as e:
            reason = str(e)
    raise NASError(f"'{graph.name}' is not a fixed point of space '{space.name}': {reason}", file=space.file)


def may_hold(space: Space, graph: Graph) -> bool:
    """Whether ``graph``'s inputs could be those of a network of ``space``:
    the same names, each shape one its template allows. Read from the
    input nodes without analysing the graph: a cheap necessary condition
    of :func:`encode`, which a listing of fixed points asks of every zoo net."""
    shapes = {node.name: node.params.get("shape") for node in graph.input_nodes}
    if set(shapes) != set(space.inputs):
        return False
    for name, template in space.inputs.items():
        if shapes[name] is None:
            continue  # no shape to read here: encode decides
        if _bind_within(space, template, tuple(shapes[name]), {}) is None:
            return False
    return True


def _match_inputs(space: Space, graph: Graph, base: Assignment) -> Assignment | None:
    result: Assignment = {}
    shapes = graph.summary.inputs
    if list(shapes) != list(space.inputs):
        return None
    for name, value in space.inputs.items():
        got = _bind(value, shapes[name], {**base, **result})
        if got is None:
            return None
        result.update(got)
    return result


def _bind(
    value: Any, actual: Any, known: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> Assignment | None:
    """The decision values under which template ``value`` equals ``actual``.

    ``defaults`` gives, for a mapping parameter, the value a key left out of
    ``actual`` stands for (a ``stage``'s ``args`` left at the unit's defaults).
    """
    if isinstance(value, Const):
        return {} if same(value.value, actual) else None
    if isinstance(value, Use):
        if value.label in known:
            return {} if same(known[value.label], actual) else None
        return {value.label: actual}
    if isinstance(value, Expr):
        try:
            return {} if same(evaluate(value.tree, known), actual) else None
        except KeyError:
            return None
    if isinstance(value, MappingValue):
        if not isinstance(actual, Mapping) or not set(actual) <= {k for k, _ in value.items}:
            return None
        result: Assignment = {}
        for key, item in value.items:
            if key not in actual and key not in (defaults or {}):
                return None
            got = _bind(item, actual[key] if key in actual else defaults[key], {**known, **result})  # type: ignore[index]
            if got is None:
                return None
            result.update(got)
        return result
    return None


def _bind_within(
    space: Space, value: Any, actual: Any, known: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> Assignment | None:
    """:func:`_bind`, keeping only a binding whose every value lies in its decision's domain."""
    got = _bind(value, actual, known, defaults)
    if got is None:
        return None
    for label, bound in got.items():
        decision = space.by_label.get(label)
        if decision is not None and not decision.contains(bound):
            return None
    return got


def _align(space: Space, nodes: Sequence[Node], base: Assignment) -> Assignment | None:
    """Match template slots to network nodes in order, skipping optional
    slots: a small dynamic programme over (slot, node)."""
    slots = space.slots

    @functools.cache
    def solve(i: int, j: int) -> tuple[tuple[str, Any], ...] | None:
        if i == len(slots):
            return () if j == len(nodes) else None
        slot = slots[i]
        if j < len(nodes):
            matched = _match_slot(space, slot, nodes[j], base)
            if matched is not None:
                rest = solve(i + 1, j + 1)
                if rest is not None:
                    present = ((slot.optional, True),) if slot.optional else ()
                    return (*present, *matched.items(), *rest)
        if slot.skippable:
            rest = solve(i + 1, j)
            if rest is not None:
                return ((slot.optional, False), *rest) if slot.optional else rest
        return None

    found = solve(0, 0)
    return None if found is None else {**base, **dict(found)}


def _match_slot(space: Space, slot: Slot, node: Node, base: Assignment) -> Assignment | None:
    block = node.block.name
    result: Assignment = {}
    if isinstance(slot.block, Const):
        if slot.block.value != block:
            return None
    else:
        if not space.by_label[slot.block.label].contains(block):
            return None
        result[slot.block.label] = block
    template = slot.params.get(block, {})
    declared = {p.name: p for p in node.block.params}
    for pname, actual in node.params.items():
        if pname in template:
            got = _bind_within(space, template[pname], actual, {**base, **result}, _unit_defaults(node.params))
            if got is None:
                return None
            result.update(got)
        elif not same(actual, declared[pname].default if declared[pname].default is not REQUIRED else None):
            return None  # the space would leave it at its default
    return result


def _unit_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of the unit block a ``stage``-like node passes ``args`` to."""
    unit = params.get("unit")
    if not isinstance(unit, str):
        return {}
    try:
        return {p.name: p.default for p in get_block(unit).params if p.default is not REQUIRED}
    except NASError:
        return {}


def from_plain(decision: Decision, value: Any) -> Any:
    """The space's own value for ``value`` read back from JSON or a parameter."""
    if isinstance(value, str) and decision.kind == "choice" and not any(same(value, c) for c in decision.choices):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if decision.kind == "choice":
        for choice in decision.choices:
            if same(plain(choice), plain(value)):
                return choice
        raise NASError(f"{value!r} is not among its choices", field=decision.label)
    return value


def assignment_from_plain(space: Space, data: Mapping[str, Any]) -> Assignment:
    """An assignment stored as JSON data (a trial's user attribute) read back."""
    return {label: from_plain(space.by_label[label], v) for label, v in data.items() if label in space.by_label}
