"""Reshaping."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nas.ir.registry import Block, Call, Example, Params, Shape, Window, register


@register
class Flatten(Block):
    """``(C, H, W) -> (C*H*W,)``, the bridge from feature maps to classifiers."""

    name = "flatten"
    examples = (Example({}, ((3, 4, 5),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return (math.prod(ins[0]),)

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        # The layer that reads a flattened map sees all of it at once.
        if len(ins[0]) != 3:
            return Window()
        _, h, w = ins[0]
        return Window(extent=(h, w), stride=(h, w))

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.flatten, {"start_dim": 1})
