"""Graph inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from nas.ir.errors import GraphError
from nas.ir.registry import Block, Param, Params, Shape, register, shape


@register
class Input(Block):
    """A graph input: a tensor of ``shape`` (without batch) fed by the caller.

    Lowered to a placeholder, the argument of ``forward``.
    """

    name = "input"
    params = (Param("shape", shape, doc="shape without the batch dimension, e.g. [3, 224, 224]"),)
    arity = (0, 0)
    placeholder = True

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return p.shape

    def lower(self, p: Params, ins: Sequence[Shape]) -> NoReturn:
        raise GraphError("an input is lowered to a placeholder, not a module")
