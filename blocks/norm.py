"""Normalisation layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nas.ir.registry import Block, Cost, Example, Param, Params, Shape, register


@register
class BatchNorm(Block):
    """Batch normalisation over channels: ``BatchNorm1d`` for ``(C,)`` and
    ``(C, L)`` inputs, ``BatchNorm2d`` for ``(C, H, W)``."""

    name = "batch_norm"
    fusion = "norm"
    keeps_output = False
    params = (
        Param("eps", float, default=1e-5, low=0.0, high=1.0),
        Param("momentum", float, default=0.1, low=0.0, high=1.0),
        Param("affine", bool, default=True, doc="learn a scale and a shift per channel"),
    )
    examples = (Example({}, ((6, 5, 5),)), Example({"affine": False, "eps": 1e-3}, ((6,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=2 * ins[0][0] if p.affine else 0)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        kind = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
        return kind(ins[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine)
