"""Fully connected layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nas.ir.registry import MAX_CHANNELS, Block, Cost, Example, Param, Params, Shape, register


@register
class Linear(Block):
    """A fully connected layer on a flat input (``torch.nn.Linear``)."""

    name = "linear"
    fusion = "head"
    keeps_output = False
    rank = 1
    params = (
        Param("out_features", int, low=1, high=MAX_CHANNELS),
        Param("bias", bool, default=True),
    )
    examples = (Example({"out_features": 5}, ((12,),)), Example({"out_features": 3, "bias": False}, ((7,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return (p.out_features,)

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        weights = ins[0][0] * p.out_features
        return Cost(params=weights + (p.out_features if p.bias else 0), macs=weights)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.Linear(ins[0][0], p.out_features, p.bias)
