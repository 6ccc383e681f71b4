"""What a parsed search space is made of: decisions, template values, slots.

A :class:`Space` is a list of :class:`Decision` s (in an order where every
decision comes after the ones its condition reads) and a list of
:class:`Slot` s, template nodes whose block and parameters are template
values: a :class:`Const`, the value of a decision (:class:`Use`), arithmetic
over declared decisions (:class:`Expr`) or a mapping of them
(:class:`MappingValue`). An :data:`Assignment` gives the decisions values.
"""

from __future__ import annotations

import ast
import functools
import operator
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.ir.values import same

Assignment = dict[str, Any]
"""A flat dict from decision labels to values, holding the active decisions only."""


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
            return ", ".join(short(c) for c in self.choices)
        return f"{short(self.low)}..{short(self.high)} step {short(self.step)}"


def short(value: Any) -> str:
    """``value`` as text of at most 40 characters, for listings."""
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


SAFE_FUNCTIONS: dict[str, Callable[..., Any]] = {"int": int, "round": round, "min": min, "max": max, "float": float}
"""The functions an :class:`Expr` may call."""

_SAFE_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def evaluate(node: ast.AST, env: Mapping[str, Any]) -> Any:
    """The value of an :class:`Expr`'s tree with decision values ``env``.

    Only numbers, names, ``+ - * / // % **``, unary minus and
    :data:`SAFE_FUNCTIONS` are evaluated: a space file cannot run code.

    Raises:
        ValueError: anything else in the tree.
        KeyError: a name missing from ``env``.
    """
    if isinstance(node, ast.Expression):
        return evaluate(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _SAFE_OPS:
        return _SAFE_OPS[type(node.op)](evaluate(node.left, env), evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -evaluate(node.operand, env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SAFE_FUNCTIONS:
        return SAFE_FUNCTIONS[node.func.id](*(evaluate(a, env) for a in node.args))
    raise ValueError(f"not allowed in an expression: {ast.dump(node)[:60]}")


# --------------------------------------------------------------------------
# Slots and spaces


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
    """A parsed search space. Build it with :func:`nas.space.load_space`."""

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
