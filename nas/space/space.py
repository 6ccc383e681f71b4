"""Search spaces: an IR template whose values may be decisions.

A space is written like a network (see ``search_spaces/README.md``), except
that any value may be a decision instead of a constant::

    nodes:
      conv1: {block: conv2d, in: x, out_channels: {range: [16, 128, 16]}, kernel_size: {choice: [3, 5, 7]}}
      pool1: {block: max_pool2d, optional: true, kernel_size: 2}
      mix: {block: {choice: [relu, elu]}}
      body: {block: {choice: [basic_block, bottleneck]},
             params: {basic_block: {out_channels: 64}, bottleneck: {out_channels: 256, width: {choice: [32, 64]}}}}

A decision is ``{choice: [...]}``, ``{range: [low, high, step]}`` (int or
float), a reference ``$name`` to a decision declared once under
``decisions:`` (shared: one width multiplier for the whole net), or
``{expr: "int(64 * width)"}``, arithmetic over declared decisions. Nodes with
``optional: true`` may be left out (their readers then read their first
input). When ``block`` is a choice, each block type has its own parameters
under ``params:``, so that its decisions exist only when that type is chosen
(and have distinct names: the Optuna pitfall of a parameter whose
distribution changes between trials never arises). Declared decisions may be
conditional: ``when: {other_label: value}``.

An *assignment* is a flat dict from decision labels to values, holding the
active decisions only: ``{"conv1.kernel_size": 3, "pool1.present": True,
"body.block": "bottleneck", "body.bottleneck.width": 64}``.

The operations a searcher needs are functions over a :class:`Space`:
:func:`decode`, :func:`encode` (the assignment that gives a network; every
zoo net is a fixed point of a shipped space), :func:`sample`, :func:`mutate`,
:func:`distance` and :func:`size`.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import importlib.resources
import itertools
import json
import math
import operator
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.io import zoo
from nas.io.parse import read_yaml
from nas.ir.errors import NASError, SourceError
from nas.ir.graph import Graph
from nas.ir.registry import REQUIRED, Block, get_block
from nas.ir.values import freeze, plain, same

Assignment = dict[str, Any]

_SPACE_KEYS = ("name", "description", "decisions", "inputs", "nodes", "outputs", "meta", "limits")
_LIMITS = ("params", "macs")
_NODE_KEYS = ("block", "in", "optional", "params")
MAX_TRIES = 200
"""Draws of :func:`sample` and :func:`mutate` before they give up."""


# --------------------------------------------------------------------------
# Decisions


@dataclass(frozen=True)
class Decision:
    """One decision: a label, its domain, and the condition under which it exists.

    ``kind`` is ``choice`` (``choices`` lists the values), ``int`` or
    ``float`` (``low`` to ``high`` in ``step``s), or ``bool`` (optional nodes).
    ``when`` is a tuple of ``(label, value)`` pairs that must all hold.
    """

    label: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0
    high: float = 0
    step: float = 1
    when: tuple[tuple[str, Any], ...] = ()
    line: int | None = None

    @property
    def size(self) -> int:
        if self.kind == "bool":
            return 2
        if self.kind == "choice":
            return len(self.choices)
        return round((self.high - self.low) / self.step) + 1

    def value(self, index: int) -> Any:
        """The ``index``-th value of the domain."""
        if self.kind == "bool":
            return bool(index)
        if self.kind == "choice":
            return self.choices[index]
        v = self.low + index * self.step
        return int(v) if self.kind == "int" else round(v, 12)

    def contains(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return any(same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        k = (value - self.low) / self.step
        return self.low <= value <= self.high and abs(k - round(k)) < 1e-9

    def sample(self, rng: random.Random, exclude: Any = None) -> Any:
        """A uniformly drawn value, different from ``exclude`` when possible."""
        if self.size > 1 and exclude is not None:
            while True:
                v = self.value(rng.randrange(self.size))
                if not same(v, exclude):
                    return v
        return self.value(rng.randrange(self.size))

    def describe(self) -> str:
        if self.kind == "bool":
            return "present or not"
        if self.kind == "choice":
            return ", ".join(_short(c) for c in self.choices)
        return f"{_short(self.low)}..{_short(self.high)} step {_short(self.step)}"


def _short(value: Any) -> str:
    text = str(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------
# Template values


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Use:
    """The value of decision ``label``."""

    label: str


@dataclass(frozen=True)
class Expr:
    """Arithmetic over declared decisions, e.g. ``int(64 * width)``."""

    text: str
    tree: ast.Expression
    names: tuple[str, ...]


@dataclass(frozen=True)
class MappingValue:
    """A mapping parameter (``stage``'s ``args``) whose values are template values."""

    items: tuple[tuple[str, Any], ...]


@dataclass
class Slot:
    """One template node: a block (constant or decided), its parameters per
    block type, its inputs, and whether it may be left out."""

    name: str
    block: Const | Use
    params: dict[str, dict[str, Any]]
    inputs: list[str] | None
    optional: str | None
    line: int | None
    presence: tuple[tuple[str, Any], ...] = ()
    """With ``optional: {when: {...}}``: present exactly when this holds."""

    @property
    def skippable(self) -> bool:
        return self.optional is not None or bool(self.presence)

    def present(self, assignment: Mapping[str, Any]) -> bool:
        if self.optional is not None:
            return bool(assignment.get(self.optional))
        return all(same(assignment.get(label), value) for label, value in self.presence)


@dataclass
class Space:
    """A parsed search space. Build it with :func:`load_space`."""

    name: str
    description: str
    file: str | None
    decisions: list[Decision]
    inputs: dict[str, Any]
    slots: list[Slot]
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    """Upper bounds on ``params`` and ``macs`` of what sample and mutate return."""

    @functools.cached_property
    def by_label(self) -> dict[str, Decision]:
        return {d.label: d for d in self.decisions}

    @functools.cached_property
    def named(self) -> list[Decision]:
        """Decisions declared under ``decisions:`` (shared across nodes)."""
        return [d for d in self.decisions if "." not in d.label]


# --------------------------------------------------------------------------
# Parsing


_SAFE_FUNCS: dict[str, Callable[..., Any]] = {"int": int, "round": round, "min": min, "max": max, "float": float}
_SAFE_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _SAFE_OPS:
        return _SAFE_OPS[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SAFE_FUNCS:
        return _SAFE_FUNCS[node.func.id](*(_eval(a, env) for a in node.args))
    raise ValueError(f"not allowed in an expression: {ast.dump(node)[:60]}")


class _Parser:
    """Turns the YAML of a space into a :class:`Space`, with file, line and
    field in every error."""

    def __init__(self, file: str | None):
        self.file = file
        self.decisions: list[Decision] = []
        self.named: dict[str, Decision] = {}
        self.presences: list[tuple[str, tuple[tuple[str, Any], ...], int | None]] = []

    def error(self, message: str, line: int | None, field: str | None = None, hint: str | None = None) -> NASError:
        return SourceError(message, file=self.file, line=line, field=field, hint=hint)

    def decision(self, label: str, spec: Any, line: int | None, when: tuple[tuple[str, Any], ...]) -> Decision:
        if not isinstance(spec, Mapping):
            raise self.error(
                f"a decision is {{choice: [...]}} or {{range: [low, high, step]}}, got {spec!r}", line, label
            )
        if "choice" in spec:
            choices = spec["choice"]
            if not isinstance(choices, list) or not choices:
                raise self.error("'choice' needs a non-empty list", line, label)
            return Decision(label, "choice", tuple(freeze(c) for c in choices), when=when, line=line)
        if "range" in spec:
            bounds = spec["range"]
            if not isinstance(bounds, list) or len(bounds) not in (2, 3):
                raise self.error("'range' is [low, high] or [low, high, step]", line, label)
            low, high, step = (*bounds, 1) if len(bounds) == 2 else bounds
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high, step)):
                raise self.error("'range' bounds and step must be numbers", line, label)
            if step <= 0 or high < low:
                raise self.error(
                    f"empty range [{low}, {high}] step {step}", line, label, "use low <= high and a positive step"
                )
            kind = "int" if all(isinstance(v, int) for v in (low, high, step)) else "float"
            return Decision(label, kind, low=low, high=high, step=step, when=when, line=line)
        raise self.error(
            f"unknown decision {dict(spec)!r}", line, label, "use {choice: [...]} or {range: [low, high, step]}"
        )

    def value(self, label: str, raw: Any, line: int | None, when: tuple[tuple[str, Any], ...]) -> Any:
        """A template value: constant, new inline decision, reference or expression."""
        if isinstance(raw, str) and raw.startswith("$"):
            name = raw[1:]
            if name not in self.named:
                close = difflib.get_close_matches(name, list(self.named), n=1)
                raise self.error(
                    f"'{raw}' names no declared decision",
                    line,
                    label,
                    f"did you mean '${close[0]}'?" if close else "declare it under 'decisions:'",
                )
            return Use(name)
        if isinstance(raw, Mapping) and ("choice" in raw or "range" in raw):
            d = self.decision(label, raw, line, when)
            self.decisions.append(d)
            return Use(d.label)
        if isinstance(raw, Mapping) and "expr" in raw:
            try:
                tree = ast.parse(str(raw["expr"]), mode="eval")
                names = tuple(sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_SAFE_FUNCS)))
                _eval(tree, {n: 1 for n in names})
            except (SyntaxError, ValueError, ZeroDivisionError) as e:
                raise self.error(f"bad expression {raw['expr']!r}: {e}", line, label) from None
            missing = [n for n in names if n not in self.named]
            if missing:
                raise self.error(
                    f"expression uses '{missing[0]}', which is not declared",
                    line,
                    label,
                    "declare it under 'decisions:'",
                )
            return Expr(str(raw["expr"]), tree, names)
        if isinstance(raw, Mapping):
            return MappingValue(tuple((str(k), self.value(f"{label}.{k}", v, line, when)) for k, v in raw.items()))
        return Const(freeze(raw))

    def parse(self, data: Any, name: str) -> Space:
        if not isinstance(data, Mapping):
            raise self.error("a space is a mapping with 'inputs:', 'nodes:' and 'outputs:'", 1)
        lines = getattr(data, "lines", {})
        for key in data:
            if key not in _SPACE_KEYS:
                close = difflib.get_close_matches(str(key), _SPACE_KEYS, n=1)
                raise self.error(
                    f"unknown key '{key}'", lines.get(key), hint=f"did you mean '{close[0]}'?" if close else None
                )
        declared = data.get("decisions") or {}
        dlines = getattr(declared, "lines", {})
        for label, spec in declared.items():
            if not str(label).isidentifier():
                raise self.error(f"decision name '{label}' must be an identifier", dlines.get(label), str(label))
            when: tuple[tuple[str, Any], ...] = ()
            if isinstance(spec, Mapping) and "when" in spec:
                condition = spec["when"]
                if not isinstance(condition, Mapping):
                    raise self.error("'when' is a mapping {decision: value}", dlines.get(label), str(label))
                when = tuple((str(k), freeze(v)) for k, v in condition.items())
                spec = {k: v for k, v in spec.items() if k != "when"}
            d = self.decision(str(label), spec, dlines.get(label), when)
            self.named[d.label] = d
            self.decisions.append(d)

        inputs_raw = data.get("inputs")
        if not isinstance(inputs_raw, Mapping) or not inputs_raw:
            raise self.error("'inputs' must be a non-empty mapping", lines.get("inputs"))
        ilines = getattr(inputs_raw, "lines", {})
        inputs = {str(k): self.value(f"{k}.shape", v, ilines.get(k), ()) for k, v in inputs_raw.items()}

        nodes = data.get("nodes")
        if not isinstance(nodes, Mapping) or not nodes:
            raise self.error("'nodes' must be a non-empty mapping", lines.get("nodes"))
        nlines = getattr(nodes, "lines", {})
        slots = [self.slot(str(n), spec, nlines.get(n)) for n, spec in nodes.items()]
        outputs = data.get("outputs", [slots[-1].name])
        outputs = outputs if isinstance(outputs, list) else [outputs]
        self.check_conditions()
        meta = dict(data.get("meta") or {})
        limits = data.get("limits") or {}
        if not isinstance(limits, Mapping) or any(
            k not in _LIMITS or isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
            for k, v in limits.items()
        ):
            raise self.error(
                "'limits' is a mapping of params and/or macs to positive numbers", lines.get("limits"), "limits"
            )
        return Space(
            str(data.get("name", name)),
            str(data.get("description", "")),
            self.file,
            self.decisions,
            inputs,
            slots,
            [str(o) for o in outputs],
            meta,
            {str(k): float(v) for k, v in limits.items()},
        )

    def slot(self, name: str, spec: Any, line: int | None) -> Slot:
        if not isinstance(spec, Mapping):
            raise self.error(f"node '{name}' must be a mapping", line, name)
        flines = getattr(spec, "lines", {})
        optional = None
        when: tuple[tuple[str, Any], ...] = ()
        presence: tuple[tuple[str, Any], ...] = ()
        flag = spec.get("optional")
        if isinstance(flag, Mapping):
            # Present exactly when a condition on other decisions holds (a
            # classifier conv that exists only with head: conv).
            if set(flag) != {"when"} or not isinstance(flag["when"], Mapping) or not flag["when"]:
                raise self.error("'optional' is true or {when: {decision: value}}", flines.get("optional", line), name)
            presence = tuple((str(k), freeze(v)) for k, v in flag["when"].items())
            self.presences.append((name, presence, flines.get("optional", line)))
            when = presence
        elif flag:
            optional = f"{name}.present"
            self.decisions.append(Decision(optional, "bool", line=flines.get("optional", line)))
            when = ((optional, True),)
        if "block" not in spec:
            raise self.error("missing 'block:'", line, name)
        block = self.value(f"{name}.block", spec["block"], flines.get("block", line), when)
        if not isinstance(block, (Const, Use)) or (isinstance(block, Use) and "." not in block.label):
            raise self.error(
                "'block' is a block name or {choice: [block names]}", flines.get("block", line), f"{name}.block"
            )
        types = [block.value] if isinstance(block, Const) else list(self.by_label(block.label).choices)
        for t in types:
            try:
                get_block(str(t))
            except NASError as e:
                raise self.error(e.message, flines.get("block", line), f"{name}.block", e.hint) from None
        inline = {k: v for k, v in spec.items() if k not in _NODE_KEYS}
        per_type = spec.get("params") or {}
        if isinstance(block, Const) and per_type:
            per_type = {block.value: per_type} if block.value not in per_type else per_type
        if isinstance(block, Use) and inline:
            raise self.error(
                f"parameter '{next(iter(inline))}' of a node whose block is a choice",
                line,
                name,
                "put parameters under 'params: {block_type: {...}}'",
            )
        params: dict[str, dict[str, Any]] = {}
        for t in types:
            raw = dict(per_type.get(t, {})) if isinstance(block, Use) else {**dict(per_type.get(t, {})), **inline}
            branch = when if isinstance(block, Const) else (*when, (block.label, t))
            prefix = f"{name}." if isinstance(block, Const) else f"{name}.{t}."
            values = {}
            for pname, praw in raw.items():
                values[str(pname)] = self.value(prefix + str(pname), praw, flines.get(pname, line), branch)
            self.check_params(get_block(str(t)), values, name, flines, line)
            params[str(t)] = values
        unknown_types = [t for t in per_type if t not in types]
        if unknown_types:
            raise self.error(
                f"parameters for '{unknown_types[0]}', which is not among the node's blocks", line, f"{name}.params"
            )
        refs = spec.get("in")
        inputs = None if refs is None else [str(r) for r in (refs if isinstance(refs, list) else [refs])]
        return Slot(name, block, params, inputs, optional, line, presence)

    def by_label(self, label: str) -> Decision:
        return next(d for d in self.decisions if d.label == label)

    def check_params(
        self, block: Block, values: Mapping[str, Any], node: str, flines: Mapping[str, int], line: int | None
    ) -> None:
        """Every constant and every choice must be a valid value of its parameter."""
        declared = {p.name: p for p in block.params}
        for pname, value in values.items():
            where = flines.get(pname, line)
            if pname not in declared:
                close = difflib.get_close_matches(pname, list(declared), n=1)
                raise self.error(
                    f"block '{block.name}' has no parameter '{pname}'",
                    where,
                    f"{node}.{pname}",
                    f"did you mean '{close[0]}'?" if close else None,
                )
            param = declared[pname]
            if isinstance(value, (MappingValue, Expr)):
                continue
            candidates = [value.value] if isinstance(value, Const) else self._domain(value.label)
            for candidate in candidates:
                try:
                    param.check(candidate)
                except NASError as e:
                    raise self.error(
                        f"{candidate!r} is not a valid {pname} of {block.name}: {e.message}",
                        where,
                        f"{node}.{pname}",
                        e.hint,
                    ) from None

    def _domain(self, label: str) -> list[Any]:
        d = self.by_label(label)
        if d.size <= 64:
            return [d.value(i) for i in range(d.size)]
        return [d.value(0), d.value(d.size - 1)]  # a range: its ends bound it

    def check_conditions(self) -> None:
        labels = {d.label: d for d in self.decisions}
        for node, presence, line in self.presences:
            for other, value in presence:
                if other not in labels:
                    raise self.error(f"condition on '{other}', which is not a decision", line, f"{node}.optional")
                if not labels[other].contains(value):
                    raise self.error(f"condition {other} = {value!r} can never hold", line, f"{node}.optional")
        for d in self.decisions:
            for other, value in d.when:
                if other not in labels:
                    raise self.error(f"condition on '{other}', which is not a decision", d.line, d.label)
                if not labels[other].contains(value):
                    raise self.error(f"condition {other} = {value!r} can never hold", d.line, d.label)
        # A cycle of conditions: a decision that exists only if one that
        # depends on it has some value.
        state: dict[str, int] = {}

        def visit(label: str, path: list[str]) -> None:
            if state.get(label) == 1:
                cycle = [*path[path.index(label) :], label]
                raise self.error("a cycle of conditions: " + " -> ".join(cycle), labels[label].line, label)
            if state.get(label) == 2:
                return
            state[label] = 1
            for other, _ in labels[label].when:
                visit(other, [*path, label])
            state[label] = 2

        for d in self.decisions:
            visit(d.label, [])
        # Condition targets first, so that one pass decides what is active.
        order: list[Decision] = []
        placed: set[str] = set()
        pending = list(self.decisions)
        while pending:
            ready = [d for d in pending if all(o in placed for o, _ in d.when)]
            order.extend(ready)
            placed.update(d.label for d in ready)
            pending = [d for d in pending if d.label not in placed]
        self.decisions[:] = order


def parse_space(text: str | bytes, file: str | None = None, name: str = "space") -> Space:
    """Parse the YAML text of a space.

    Raises:
        SourceError: with file, line and field: unknown block, a choice out of
            its parameter's range, a condition on a missing decision, a cycle
            of conditions.
    """
    return _Parser(file).parse(read_yaml(text, file), name)


def space_names() -> list[str]:
    """The spaces shipped with nas (``search_spaces/*.yaml``)."""
    root = importlib.resources.files("nas.search_spaces")
    return sorted(r.name.removesuffix(".yaml") for r in root.iterdir() if r.name.endswith(".yaml"))


def load_space(source: str | Path) -> Space:
    """A shipped space by name (``"residual"``) or a space file."""
    path = Path(source)
    if path.is_file():
        return parse_space(path.read_bytes(), str(path), path.stem)
    if str(source) in space_names():
        resource = importlib.resources.files("nas.search_spaces").joinpath(f"{source}.yaml")
        return parse_space(resource.read_bytes(), str(resource), str(source))
    close = difflib.get_close_matches(str(source), space_names(), n=1)
    raise SourceError(
        "no such space file or shipped space",
        file=str(source),
        hint=f"did you mean '{close[0]}'?" if close else f"shipped spaces: {', '.join(space_names())}",
    )


# --------------------------------------------------------------------------
# The operations


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
        return _eval(value.tree, {n: assignment[n] for n in value.names})
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
    try:
        graph = decode(space, assignment)
    except NASError as e:
        return str(e)
    for key, bound in space.limits.items():
        value = getattr(graph, key)
        if value > bound:
            return f"{key} {value:,} exceed the space's limit of {bound:,.0f}"
    return None


def sample(space: Space, rng: random.Random, *, tries: int = MAX_TRIES) -> Assignment:
    """A random valid assignment: every active decision drawn uniformly;
    draws that do not decode to a valid network, or exceed the space's
    ``limits``, are redrawn.

    Raises:
        NASError: no valid network in ``tries`` draws (with the last reason).
    """
    reason: str | None = None
    for _ in range(tries):
        assignment = _complete(space, {}, rng)
        reason = _invalid(space, assignment)
        if reason is None:
            return assignment
    raise NASError(f"no valid architecture in {tries} draws; last reason: {reason}", file=space.file)


def _complete(space: Space, assignment: Mapping[str, Any], rng: random.Random) -> Assignment:
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
        result = _complete(space, changed, rng)
        problem = _invalid(space, result)
        if problem is None:
            return result
        reason = problem
    raise NASError(f"no valid mutation in {tries} draws; last reason: {reason}", file=space.file)


def distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """The number of decisions on which two assignments differ (a decision
    active in one and not in the other counts)."""
    return sum(1 for label in set(a) | set(b) if label not in a or label not in b or not same(a[label], b[label]))


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


# --------------------------------------------------------------------------
# Encoding


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
        assignment = _complete(space, aligned, random.Random(0))
        try:
            if decode(space, assignment).hash == target:
                return assignment
            reason = "an alignment was found but the decoded network differs"
        except NASError as e:
            reason = str(e)
    raise NASError(f"'{graph.name}' is not a fixed point of space '{space.name}': {reason}", file=space.file)


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
            return {} if same(_eval(value.tree, known), actual) else None
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


def _align(space: Space, nodes: Sequence[Any], base: Assignment) -> Assignment | None:
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


def _match_slot(space: Space, slot: Slot, node: Any, base: Assignment) -> Assignment | None:
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
            got = _bind(template[pname], actual, {**base, **result}, _unit_defaults(node.params))
            if got is None:
                return None
            for label, v in got.items():
                d = space.by_label.get(label)
                if d is not None and not d.contains(v):
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


def describe(space: Space) -> Iterator[tuple[str, str, str]]:
    """``(label, domain, condition)`` for every decision, in order."""
    for d in space.decisions:
        condition = ", ".join(f"{label} = {_short(v)}" for label, v in d.when)
        yield d.label, d.describe(), condition


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


__all__ = [
    "Assignment",
    "Const",
    "Decision",
    "Space",
    "Use",
    "active",
    "assignment_from_plain",
    "decode",
    "describe",
    "distance",
    "encode",
    "fixed_points",
    "from_plain",
    "load_space",
    "mutate",
    "overview",
    "parse_space",
    "report",
    "sample",
    "size",
    "space_names",
    "write_samples",
]


def fixed_points(space: Space, names: Sequence[str] | None = None) -> list[str]:
    """The zoo nets that are fixed points of ``space``: ``decode(encode(net))``
    has the net's canonical hash."""

    found = []
    for name in zoo.names() if names is None else names:
        graph = zoo.load(name)
        if list(graph.summary.inputs) != list(space.inputs):
            continue
        try:
            encode(space, graph)
        except NASError:
            continue
        found.append(name)
    return found


def overview(space: Space) -> dict[str, Any]:
    """Name, size and description of a space, for listings."""
    return {
        "name": space.name,
        "size": size(space),
        "decisions": len(space.decisions),
        "description": re.split(r"(?<!\bal)\.\s", space.description, maxsplit=1)[0].strip(),
    }


def report(space: Space, *, samples: int = 20, seed: int = 0) -> dict[str, Any]:
    """What ``nas space NAME`` prints: decisions, size (exact and as a power
    of ten), the zoo nets that are fixed points, and the params and MACs
    range over ``samples`` random architectures."""
    rng = random.Random(seed)
    graphs = [decode(space, sample(space, rng)) for _ in range(samples)]
    n = size(space)
    return {
        "name": space.name,
        "description": space.description,
        "file": space.file,
        "size": n,
        "size_log10": round(math.log10(n), 2),
        "decisions": [{"label": label, "choices": domain, "when": when} for label, domain, when in describe(space)],
        "fixed_points": fixed_points(space),
        "sample": {
            "n": samples,
            "seed": seed,
            "params": [min(g.params for g in graphs), max(g.params for g in graphs)],
            "macs": [min(g.macs for g in graphs), max(g.macs for g in graphs)],
        },
    }


def write_samples(space: Space, count: int, directory: str | Path, *, seed: int = 0) -> list[Path]:
    """Draw ``count`` architectures and write each as canonical IR YAML.

    Existing files are never overwritten: the directory must not already
    hold files of the names this writes.
    """
    rng = random.Random(seed)
    folder = Path(directory)
    targets = [folder / f"{space.name}_{seed}_{i:04d}.yaml" for i in range(count)]
    clash = [t for t in targets if t.exists()]
    if clash:
        raise NASError(
            "would overwrite an existing file", file=str(clash[0]), hint="choose an empty directory or another --seed"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for target in targets:
        graph = decode(space, sample(space, rng))
        graph.name = target.stem
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(graph.to_yaml())
        tmp.replace(target)
    return targets
