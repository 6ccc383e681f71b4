"""The space YAML reader: text to :class:`~nas.space.model.Space`, with file,
line and field in every error (see ``search_spaces/README.md`` for the format).

Every constant and every choice of a parameter is checked against the
block's declaration here, so that a bad space fails when it is read, not in
the middle of a search.
"""

from __future__ import annotations

import ast
import difflib
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.io.parse import read_file, read_yaml
from nas.ir.errors import NASError, SourceError
from nas.ir.registry import Block, get_block
from nas.ir.values import freeze
from nas.space.model import SAFE_FUNCTIONS, Const, Decision, Expr, MappingValue, Slot, Space, Use, evaluate

_SPACE_KEYS = ("name", "description", "decisions", "inputs", "nodes", "outputs", "meta", "limits")
_LIMITS = ("params", "macs")
_NODE_KEYS = ("block", "in", "optional", "params")

Condition = tuple[tuple[str, Any], ...]
"""``(label, value)`` pairs that must all hold."""


class _Parser:
    """Turns the YAML of a space into a :class:`Space`, with file, line and
    field in every error."""

    def __init__(self, file: str | None):
        self.file = file
        self.decisions: list[Decision] = []
        self.named: dict[str, Decision] = {}
        """Decisions declared under ``decisions:``."""
        self.labels: dict[str, Decision] = {}
        self.presences: list[tuple[str, Condition, int | None]] = []

    def error(self, message: str, line: int | None, field: str | None = None, hint: str | None = None) -> NASError:
        return SourceError(message, file=self.file, line=line, field=field, hint=hint)

    def decision(self, label: str, spec: Any, line: int | None, when: Condition) -> Decision:
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

    def value(self, label: str, raw: Any, line: int | None, when: Condition) -> Any:
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
            self.add(d)
            return Use(d.label)
        if isinstance(raw, Mapping) and "expr" in raw:
            try:
                tree = ast.parse(str(raw["expr"]), mode="eval")
                names = tuple(sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(SAFE_FUNCTIONS)))
                evaluate(tree, {n: 1 for n in names})
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
        if not isinstance(declared, Mapping):
            raise self.error(
                "'decisions' must be a mapping of names to decisions",
                lines.get("decisions"),
                hint="e.g. decisions: {width: {choice: [16, 32]}}",
            )
        self.declare(declared)
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
        return Space(
            str(data.get("name", name)),
            str(data.get("description", "")),
            self.file,
            self.decisions,
            inputs,
            slots,
            [str(o) for o in outputs],
            dict(data.get("meta") or {}),
            self.limits(data.get("limits") or {}, lines.get("limits")),
        )

    def add(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.labels.setdefault(decision.label, decision)

    def declare(self, declared: Mapping[str, Any]) -> None:
        """The shared decisions, under ``decisions:``."""
        dlines = getattr(declared, "lines", {})
        for label, spec in declared.items():
            if not str(label).isidentifier():
                raise self.error(f"decision name '{label}' must be an identifier", dlines.get(label), str(label))
            when: Condition = ()
            if isinstance(spec, Mapping) and "when" in spec:
                condition = spec["when"]
                if not isinstance(condition, Mapping):
                    raise self.error("'when' is a mapping {decision: value}", dlines.get(label), str(label))
                when = tuple((str(k), freeze(v)) for k, v in condition.items())
                spec = {k: v for k, v in spec.items() if k != "when"}
            d = self.decision(str(label), spec, dlines.get(label), when)
            self.named[d.label] = d
            self.add(d)

    def limits(self, limits: Any, line: int | None) -> dict[str, float]:
        if not isinstance(limits, Mapping) or any(
            k not in _LIMITS or isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
            for k, v in limits.items()
        ):
            raise self.error("'limits' is a mapping of params and/or macs to positive numbers", line, "limits")
        return {str(k): float(v) for k, v in limits.items()}

    def slot(self, name: str, spec: Any, line: int | None) -> Slot:
        if not isinstance(spec, Mapping):
            raise self.error(f"node '{name}' must be a mapping", line, name)
        flines = getattr(spec, "lines", {})
        optional, presence = self.optional(name, spec.get("optional"), flines.get("optional", line))
        when: Condition = ((optional, True),) if optional else presence
        if "block" not in spec:
            raise self.error("missing 'block:'", line, name)
        block_line = flines.get("block", line)
        block = self.value(f"{name}.block", spec["block"], block_line, when)
        if not isinstance(block, (Const, Use)) or (isinstance(block, Use) and "." not in block.label):
            raise self.error("'block' is a block name or {choice: [block names]}", block_line, f"{name}.block")
        types = [block.value] if isinstance(block, Const) else list(self.labels[block.label].choices)
        for t in types:
            try:
                get_block(str(t))
            except NASError as e:
                raise self.error(e.message, block_line, f"{name}.block", e.hint) from None
        params = self.slot_params(name, spec, block, types, when, line)
        refs = spec.get("in")
        inputs = None if refs is None else [str(r) for r in (refs if isinstance(refs, list) else [refs])]
        return Slot(name, block, params, inputs, optional, line, presence)

    def optional(self, name: str, flag: Any, line: int | None) -> tuple[str | None, Condition]:
        """A node's ``optional:``: the label of its ``present`` decision, or
        the condition under which it is present."""
        if isinstance(flag, Mapping):
            # Present exactly when a condition on other decisions holds (a
            # classifier conv that exists only with head: conv).
            if set(flag) != {"when"} or not isinstance(flag["when"], Mapping) or not flag["when"]:
                raise self.error("'optional' is true or {when: {decision: value}}", line, name)
            presence = tuple((str(k), freeze(v)) for k, v in flag["when"].items())
            self.presences.append((name, presence, line))
            return None, presence
        if flag:
            self.add(Decision(f"{name}.present", "bool", line=line))
            return f"{name}.present", ()
        return None, ()

    def slot_params(
        self,
        name: str,
        spec: Mapping[str, Any],
        block: Const | Use,
        types: list[Any],
        when: Condition,
        line: int | None,
    ) -> dict[str, dict[str, Any]]:
        """A node's parameters for each of its block types: inline ones for a
        constant block, ``params: {type: {...}}`` for both kinds."""
        flines = getattr(spec, "lines", {})
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
        return params

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
        d = self.labels[label]
        if d.size <= 64:
            return [d.value(i) for i in range(d.size)]
        return [d.value(0), d.value(d.size - 1)]  # a range: its ends bound it

    def check_conditions(self) -> None:
        """Conditions name decisions and values that exist and form no cycle;
        then order the decisions so that condition targets come first."""
        labels = {d.label: d for d in self.decisions}
        checks = [(f"{node}.optional", line, presence) for node, presence, line in self.presences]
        checks += [(d.label, d.line, d.when) for d in self.decisions]
        for field, line, condition in checks:
            for other, value in condition:
                if other not in labels:
                    raise self.error(f"condition on '{other}', which is not a decision", line, field)
                if not labels[other].contains(value):
                    raise self.error(f"condition {other} = {value!r} can never hold", line, field)
        self.check_cycles(labels)
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

    def check_cycles(self, labels: Mapping[str, Decision]) -> None:
        """Refuse a cycle of conditions: a decision that exists only if one
        that depends on it has some value."""
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
        return parse_space(read_file(path), str(path), path.stem)
    if str(source) in space_names():
        resource = importlib.resources.files("nas.search_spaces").joinpath(f"{source}.yaml")
        return parse_space(resource.read_bytes(), str(resource), str(source))
    close = difflib.get_close_matches(str(source), space_names(), n=1)
    raise SourceError(
        "no such space file or shipped space",
        file=str(source),
        hint=f"did you mean '{close[0]}'?" if close else f"shipped spaces: {', '.join(space_names())}",
    )
