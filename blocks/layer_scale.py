"""LayerScale (Touvron et al., "Going deeper with Image Transformers", 2021):
a residual branch multiplied by a learned factor per channel, started small,
as ConvNeXt (Liu et al., "A ConvNet for the 2020s", 2022) and the deeper
ViTs do."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.ir.registry import Block, Cost, Example, Param, Params, Shape, register


class ChannelScale(nn.Module):
    """``x * scale`` with a learned ``scale``: ``(C, 1, 1)`` for ``(N, C, H, W)``
    maps (torchvision's ConvNeXt ``layer_scale``), ``(D,)`` for the last
    dimension otherwise (timm's ``LayerScale.gamma``)."""

    def __init__(self, shape: tuple[int, ...], init_value: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full(shape, init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


@register
class LayerScale(Block):
    """Multiplies each channel by its own learned factor, initialised to
    ``init_value``: the channels of a ``(C, H, W)`` map, the last dimension
    of tokens ``(N, D)`` or vectors ``(F,)``. One parameter per channel;
    the products are element-wise, so no MACs (as ``FlopCounterMode``)."""

    name = "layer_scale"
    keeps_output = False
    params = (Param("init_value", float, default=1e-6, low=0.0, high=1e6, doc="initial factor (ConvNeXt: 1e-6)"),)
    examples = (Example({}, ((4, 5, 5),)), Example({"init_value": 0.1}, ((6, 8),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=ins[0][0] if len(ins[0]) == 3 else ins[0][-1])

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        shape = (ins[0][0], 1, 1) if len(ins[0]) == 3 else (ins[0][-1],)
        return ChannelScale(shape, p.init_value)
