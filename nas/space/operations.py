"""The operations a searcher needs, as functions over a :class:`~nas.space.model.Space`.

:func:`decode` turns an assignment into a validated network; :func:`sample`
and :func:`mutate` draw assignments that decode (and stay within the space's
``limits``); :func:`distance` and :func:`size` measure assignments and
spaces; :func:`active` and :func:`complete` follow the conditions that make
decisions exist.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml

from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.ir.values import same
from nas.space.model import Assignment, Const, Decision, Expr, MappingValue, Space, Use, evaluate

MAX_TRIES = 200
"""Draws of :func:`sample` and :func:`mutate` before they give up."""


def active(space: Space, assignment: Mapping[str, Any]) -> list[Decision]:
    """The decisions that exist under ``assignment`` (conditions hold), in order."""
    result = []
    for d in space.decisions:
        if all(same(assignment.get(label), value) for label, value in d.when):
            result.append(d)
    return result


def _resolve(value: Any, assignment: Mapping[str, Any]) -> Any:
    if isinstance(value, Const):
        return value.value
    if isinstance(value, Use):
        return assignment[value.label]
    if isinstance(value, Expr):
        return evaluate(value.tree, {n: assignment[n] for n in value.names})
    if isinstance(value, MappingValue):
        return {k: _resolve(v, assignment) for k, v in value.items}
    raise TypeError(value)


def decode(space: Space, assignment: Mapping[str, Any], *, check: bool = True) -> Graph:
    """The network an assignment describes, validated and analysed.

    Raises:
        NASError: a missing or out-of-domain decision, or a network that does
            not validate (a stride that shrinks a map below 1x1 ...): the
            reason names the node.
    """
    for d in active(space, assignment):
        if d.label not in assignment:
            raise NASError(f"the assignment lacks decision '{d.label}'", file=space.file, field=d.label)
        if check and not d.contains(assignment[d.label]):
            raise NASError(
                f"{assignment[d.label]!r} is outside the domain ({d.describe()})", file=space.file, field=d.label
            )
    graph = Graph(space.name, {"space": space.name})
    for name, shape in space.inputs.items():
        graph.add_input(name, _resolve(shape, assignment))
    alias: dict[str, str] = {}
    previous = next(iter(space.inputs))
    for slot in space.slots:
        refs = slot.inputs if slot.inputs is not None else [previous]
        refs = [_alias(r, alias) for r in refs]
        if slot.skippable and not slot.present(assignment):
            alias[slot.name] = refs[0]
            previous = alias[slot.name]
            continue
        block = _resolve(slot.block, assignment)
        params = {k: _resolve(v, assignment) for k, v in slot.params[block].items()}
        graph.add(slot.name, block, refs, **params)
        previous = slot.name
    graph.set_outputs(*(_alias(o, alias) for o in space.outputs))
    _ = graph.summary
    return graph


def _alias(ref: str, alias: Mapping[str, str]) -> str:
    name, dot, output = ref.partition(".")
    while name in alias:
        name, _, inner = alias[name].partition(".")
        output = output or inner
    return name + (dot or ("." if output else "")) + output


def _invalid(space: Space, assignment: Mapping[str, Any]) -> str | None:
    """Why ``assignment`` is not a network that sample and mutate may return
    (it does not decode, or it exceeds the space's limits), or None."""
    return _decoded(space, assignment)[1]


def _decoded(space: Space, assignment: Mapping[str, Any]) -> tuple[Graph | None, str | None]:
    """The network ``assignment`` decodes to, or why it is not one that
    sample and mutate may return (see :func:`_invalid`)."""
    try:
        graph = decode(space, assignment)
    except NASError as e:
        return None, str(e)
    for key, bound in space.limits.items():
        value = getattr(graph, key)
        if value > bound:
            return None, f"{key} {value:,} exceed the space's limit of {bound:,.0f}"
    return graph, None


def sample(space: Space, rng: random.Random, *, tries: int = MAX_TRIES) -> Assignment:
    """A random valid assignment: every active decision drawn uniformly;
    draws that do not decode to a valid network, or exceed the space's
    ``limits``, are redrawn.

    Raises:
        NASError: no valid network in ``tries`` draws (with the last reason).
    """
    return draw(space, rng, tries=tries)[0]


def draw(space: Space, rng: random.Random, *, tries: int = MAX_TRIES) -> tuple[Assignment, Graph]:
    """:func:`sample`, with the network the assignment decodes to (as
    :func:`decode` gives it): checking a draw decodes it, and a caller that
    builds the network next need not decode it again.

    Raises:
        NASError: no valid network in ``tries`` draws (with the last reason).
    """
    reason: str | None = None
    for _ in range(tries):
        assignment = complete(space, {}, rng)
        graph, reason = _decoded(space, assignment)
        if graph is not None:
            return assignment, graph
    raise NASError(f"no valid architecture in {tries} draws; last reason: {reason}", file=space.file)


def complete(space: Space, assignment: Mapping[str, Any], rng: random.Random) -> Assignment:
    """Keep the given values of active decisions, draw the missing ones,
    and drop the ones that no longer exist."""
    result: Assignment = {}
    for d in space.decisions:
        if all(same(result.get(label), value) for label, value in d.when):
            result[d.label] = assignment[d.label] if d.label in assignment else d.sample(rng)
    return result


def mutate(
    space: Space, assignment: Mapping[str, Any], rng: random.Random, k: int = 1, *, tries: int = MAX_TRIES
) -> Assignment:
    """Change ``k`` decisions of ``assignment`` to other values; decisions that
    appear (a new block type's parameters) are drawn, those that disappear
    are dropped. The result decodes to a valid network.

    Raises:
        NASError: no valid mutation in ``tries`` draws.
    """
    reason = "the space has no decision with more than one value"
    for _ in range(tries):
        candidates = [d for d in active(space, assignment) if d.size > 1]
        if not candidates:
            break
        changed = dict(assignment)
        for d in rng.sample(candidates, min(k, len(candidates))):
            changed[d.label] = d.sample(rng, exclude=assignment.get(d.label))
        result = complete(space, changed, rng)
        problem = _invalid(space, result)
        if problem is None:
            return result
        reason = problem
    raise NASError(f"no valid mutation in {tries} draws; last reason: {reason}", file=space.file)


def distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """The number of decisions on which two assignments differ (a decision
    active in one and not in the other counts)."""
    return sum(1 for label in set(a) | set(b) if label not in a or label not in b or not same(a[label], b[label]))


def assignment_key(assignment: Mapping[str, Any]) -> str:
    """A key of ``assignment`` for a cache: equal for equal assignments,
    whatever the order of their decisions."""
    return repr(sorted(assignment.items()))


def size(space: Space) -> int:
    """The number of distinct assignments the space holds (exact).

    Decisions linked by conditions form components (typically one node:
    present -> block -> that block's parameters); each component is counted
    by enumerating the decisions that conditions read, and components
    multiply.
    """
    parent = {d.label: d.label for d in space.decisions}

    def root(label: str) -> str:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    for d in space.decisions:
        for label, _ in d.when:
            parent[root(d.label)] = root(label)
    components: dict[str, list[Decision]] = {}
    for d in space.decisions:  # keeps the condition order inside each component
        components.setdefault(root(d.label), []).append(d)
    read = {label for d in space.decisions for label, _ in d.when}
    return math.prod(_count(members, read) for members in components.values())


def _count(decisions: Sequence[Decision], read: set[str]) -> int:
    def rec(i: int, fixed: dict[str, Any]) -> int:
        if i == len(decisions):
            return 1
        d = decisions[i]
        if not all(same(fixed.get(label), value) for label, value in d.when):
            return rec(i + 1, fixed)
        if d.label not in read:
            return d.size * rec(i + 1, fixed)
        return sum(rec(i + 1, {**fixed, d.label: d.value(j)}) for j in range(d.size))

    return rec(0, {})


def restrict(space: Space, values: Mapping[str, Any]) -> Space:
    """The space with some decisions narrowed: a value fixes a decision, a
    list keeps those values of its domain.

    An input's shape (``x.shape``) may be fixed to any shape, in the domain
    or not: a network reads what the data gives it.

    Raises:
        NASError: an unknown decision, or a value outside its domain (naming both).
    """
    inputs = {f"{name}.shape" for name in space.inputs}
    decisions = []
    unknown = set(values) - set(space.by_label)
    if unknown:
        label = sorted(unknown)[0]
        close = [d.label for d in space.decisions if d.label.startswith(label.split(".")[0])][:6]
        raise NASError(
            f"the space has no decision '{label}'",
            file=space.file,
            field=label,
            hint=f"its decisions include {', '.join(close or [d.label for d in space.decisions[:6]])}",
        )
    for d in space.decisions:
        if d.label not in values:
            decisions.append(d)
            continue
        wanted = values[d.label]
        kept = list(wanted) if isinstance(wanted, list) else [wanted]
        if d.label in inputs and not isinstance(wanted, list):
            kept = [tuple(wanted)]
        for v in kept:
            if d.label not in inputs and not d.contains(v):
                raise NASError(
                    f"{v!r} is outside the domain of '{d.label}' ({d.describe()})", file=space.file, field=d.label
                )
        decisions.append(replace(d, kind="choice", choices=tuple(kept), low=0, high=0, step=1))
    return replace(space, decisions=decisions)


def parse_fixes(space: Space, texts: Iterable[str]) -> dict[str, Any]:
    """``LABEL=VALUE`` texts as values for :func:`nas.space.restrict`.

    A value is YAML (``3``, ``relu``, ``[1, 2]`` for a subset); an input's
    shape may also be written ``3x32x32``.

    Raises:
        NASError: a text without ``=``, or a value that is not YAML.
    """
    inputs = {f"{name}.shape" for name in space.inputs}
    values: dict[str, Any] = {}
    for text in texts:
        label, eq, raw = text.partition("=")
        label = label.strip()
        if not eq or not label:
            raise NASError(f"cannot read the fix {text!r}", field="fix", hint="write LABEL=VALUE, e.g. x.shape=3x32x32")
        raw = raw.strip()
        if label in inputs and "x" in raw:
            try:
                values[label] = tuple(int(v) for v in raw.split("x"))
                continue
            except ValueError:
                pass
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise NASError(
                f"cannot read the value of {label!r}: {raw!r}", field="fix", hint="give a YAML value"
            ) from None
        if label in inputs and isinstance(value, list) and all(isinstance(v, int) for v in value):
            value = tuple(value)
        values[label] = value
    return values


def narrowed(space: Space, fixes: Iterable[str]) -> Space:
    """``space`` with the ``LABEL=VALUE`` texts of ``--fix`` applied (:func:`parse_fixes`, :func:`restrict`).

    Raises:
        NASError: an unreadable text, an unknown decision or a value outside its domain.
    """
    return restrict(space, parse_fixes(space, fixes))


def extreme(space: Space, largest: bool = True) -> Assignment:
    """The assignment with every decision at the top (``largest``) or bottom of
    its domain: optional nodes present (or left out), numbers at their
    highest (or lowest); a choice of names (a block type, an activation)
    takes its first. The sandwich rule of a supernet trains these two.

    Raises:
        NASError: that assignment is not a valid network of the space.
    """
    result: Assignment = {}
    for d in space.decisions:
        if not all(same(result.get(label), value) for label, value in d.when):
            continue
        if d.kind == "bool":
            result[d.label] = largest
        elif d.kind in ("int", "float"):
            result[d.label] = d.value(d.size - 1 if largest else 0)
        elif all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in d.choices):
            result[d.label] = (max if largest else min)(d.choices)
        else:
            result[d.label] = d.choices[0]
    reason = _invalid(space, result)
    if reason is not None:
        which = "largest" if largest else "smallest"
        raise NASError(f"the {which} network of the space is not valid: {reason}", file=space.file)
    return result


END_DRAWS = 64
"""Random networks that start :func:`end` where the ends of the domains are no network of the space."""
END_PASSES = 4
"""Passes over the decisions in :func:`end` (each pass changes one decision at a time)."""


def end(space: Space, *, largest: bool) -> Assignment:
    """The network of the most (``largest``) or fewest MACs within the
    space's limits, as far as changing one decision at a time finds it:
    :func:`extreme`, then each numeric or optional decision in turn set to
    the value that most raises (lowers) the MACs, until no change helps (the
    top of a domain is not always the most work: a stride of 2, a pooling
    that may be left out). Where the ends of every domain together are no
    network of the space (``early``'s widest, deepest net has too many
    parameters), it starts from the most (fewest) MACs of :data:`END_DRAWS`
    random networks.

    Raises:
        NASError: the space has no valid network in those draws.
    """
    sign = 1 if largest else -1
    try:
        best = extreme(space, largest=largest)
    except NASError:
        rng = random.Random(0)
        best = max((sample(space, rng) for _ in range(END_DRAWS)), key=lambda a: sign * decode(space, a).macs)
    score = sign * decode(space, best).macs
    for _ in range(END_PASSES):
        before = score
        for d in space.decisions:
            if d.label not in best or d.size < 2 or (d.kind == "choice" and not numeric(d.choices)):
                continue
            for i in range(d.size):
                trial = complete(space, {**best, d.label: d.value(i)}, random.Random(0))
                if _invalid(space, trial) is None and sign * decode(space, trial).macs > score:
                    best, score = trial, sign * decode(space, trial).macs
        if score == before:
            break
    return best


def near(space: Space, anchor: Mapping[str, Any], fraction: float) -> Space:
    """The space narrowed around the network ``anchor``: each numeric or
    optional decision that the anchor sets keeps the ``ceil(fraction * size)``
    values of its domain nearest the anchor's, in the domain's order (ties to
    the later value); choices of names (block types, activations) and
    decisions the anchor leaves unset are kept whole. Around the largest
    network, a fraction growing to 1 over training is Once-for-All's
    progressive shrinking, for any space: the largest network first, then
    ever smaller kernels, depths and widths beside it.
    """
    if fraction >= 1:
        return space
    values: dict[str, Any] = {}
    for d in space.decisions:
        if d.label not in anchor or d.size < 2 or (d.kind == "choice" and not numeric(d.choices)):
            continue
        domain = [d.value(i) for i in range(d.size)]
        if d.kind == "choice":
            domain = sorted(domain)
        at = next(i for i, v in enumerate(domain) if same(v, anchor[d.label]))
        keep = max(1, math.ceil(fraction * d.size))
        nearest = sorted(range(d.size), key=lambda i: (abs(i - at), -i))[:keep]
        values[d.label] = [domain[i] for i in sorted(nearest)]
    return restrict(space, values)


def numeric(values: Iterable[Any]) -> bool:
    """Whether every value is a number (not a name, not a bool): a domain :func:`end` may order."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
