"""Dropout."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nas.ir.registry import Block, Example, Param, Params, Shape, register


@register
class Dropout(Block):
    """Zeroes each element with probability ``p`` in training; identity in eval."""

    name = "dropout"
    params = (Param("p", float, default=0.5, low=0.0, high=0.99),)
    examples = (Example({"p": 0.2}, ((10,),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.Dropout(p.p)
