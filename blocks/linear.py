"""Fully connected layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_CHANNELS, Block, Cost, Example, Param, Params, Shape, register


@register
class Linear(Block):
    """A fully connected layer on the last dimension (``torch.nn.Linear``):
    a flat ``(F,)`` vector, or each of the ``N`` tokens of an ``(N, D)`` input
    (a transformer's MLP). A ``(C, H, W)`` map is refused: its last dimension
    is a width, and a classifier reading a map was meant to flatten it first."""

    name = "linear"
    fusion = "head"
    keeps_output = False
    params = (
        Param("out_features", int, low=1, high=MAX_CHANNELS),
        Param("bias", bool, default=True),
    )
    examples = (
        Example({"out_features": 5}, ((12,),)),
        Example({"out_features": 3, "bias": False}, ((7,),)),
        Example({"out_features": 6}, ((4, 8),)),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        if len(ins[0]) == 3:
            raise ShapeError(
                "linear reads a flat (F,) vector or (N, D) tokens, not a (C, H, W) map",
                hint="insert a 'flatten' block before it",
            )
        return (*ins[0][:-1], p.out_features)

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        weights = ins[0][-1] * p.out_features
        # The same weights are applied at every position before the last dimension.
        return Cost(params=weights + (p.out_features if p.bias else 0), macs=weights * math.prod(ins[0][:-1]))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.Linear(ins[0][-1], p.out_features, p.bias)
