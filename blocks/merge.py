"""Blocks that merge several tensors into one."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from nas.ir.errors import ShapeError
from nas.ir.registry import Block, Call, Example, Params, Shape, register


def add_all(*tensors: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of any number of tensors."""
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


def same_shape(what: str, ins: Sequence[Shape], hint: str) -> Shape:
    """The shape of element-wise joins (sum, mean): every input's, or a
    ShapeError naming the first input that differs."""
    for i, s in enumerate(ins[1:], 1):
        if s != ins[0]:
            raise ShapeError(
                f"{what} needs inputs of one shape, but input {i} is {s} and input 0 is {ins[0]}", hint=hint
            )
    return ins[0]


@register
class Add(Block):
    """Element-wise sum of two or more tensors of one shape (residual joins)."""

    name = "add"
    arity = (2, None)
    commutative = True
    keeps_output = False
    examples = (Example({}, ((4, 5, 5), (4, 5, 5))), Example({}, ((6,), (6,), (6,))))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return same_shape("add", ins, hint="project the shortcut (1x1 conv) or fix the widths and strides")

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(operator.add, inplace="add_") if len(ins) == 2 else Call(add_all)


@register
class Concat(Block):
    """Concatenation along channels (Inception's filter concatenation)."""

    name = "concat"
    arity = (1, None)
    keeps_output = False
    examples = (Example({}, ((2, 5, 5), (3, 5, 5))), Example({}, ((4,), (1,))))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        for i, s in enumerate(ins[1:], 1):
            if len(s) != len(ins[0]) or s[1:] != ins[0][1:]:
                raise ShapeError(
                    f"concat needs inputs that differ only in channels, but input {i} is {s} and input 0 is {ins[0]}",
                    hint="make the branches keep the same spatial size (padding, stride)",
                )
        return (sum(s[0] for s in ins), *ins[0][1:])

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.cat, {"dim": 1}, variadic=True)
