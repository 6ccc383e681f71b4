"""Convolutions."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from torch import nn

from nas.errors import ShapeError
from nas.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Block,
    Cost,
    Example,
    Param,
    Params,
    Shape,
    Window,
    as_pair,
    pair,
    register,
    sliding_output,
)


@register
class Conv2d(Block):
    """2-D convolution with groups and dilation (``torch.nn.Conv2d``).

    ``in_channels`` is not a parameter: it is read from the input shape, so a
    search can change a width upstream and everything downstream follows.
    """

    name = "conv2d"
    keeps_output = False
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS, doc="output channels"),
        Param("kernel_size", pair, low=1, high=MAX_EXTENT, doc="k or [kh, kw]"),
        Param("stride", pair, default=1, low=1, high=MAX_EXTENT),
        Param("padding", pair, default=0, low=0, high=MAX_EXTENT),
        Param("dilation", pair, default=1, low=1, high=MAX_EXTENT),
        Param("groups", int, default=1, low=1, high=MAX_CHANNELS, doc="1: dense; in_channels: depthwise"),
        Param("bias", bool, default=True),
    )
    examples = (
        Example({"out_channels": 8, "kernel_size": 3, "padding": 1}, ((3, 9, 9),)),
        Example(
            {"out_channels": 6, "kernel_size": [3, 1], "stride": 2, "dilation": [1, 2], "groups": 2, "bias": False},
            ((4, 11, 10),),
        ),
        Example({"out_channels": 8, "kernel_size": 3, "groups": 8}, ((8, 5, 5),)),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        if c % p.groups or p.out_channels % p.groups:
            raise ShapeError(
                f"groups={p.groups} must divide both in_channels={c} and out_channels={p.out_channels}",
                hint="pick a number of groups that divides both",
            )
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(as_pair, (p.kernel_size, p.stride, p.padding, p.dilation))
        return (p.out_channels, sliding_output(h, kh, sh, ph, dh), sliding_output(w, kw, sw, pw, dw))

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        (c, _, _), (o, h, w) = ins[0], outs[0]
        kh, kw = as_pair(p.kernel_size)
        weights = o * (c // p.groups) * kh * kw
        return Cost(params=weights + (o if p.bias else 0), macs=weights * h * w)

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        (kh, kw), (sh, sw), (dh, dw) = map(as_pair, (p.kernel_size, p.stride, p.dilation))
        return Window(extent=(dh * (kh - 1) + 1, dw * (kw - 1) + 1), stride=(Fraction(sh), Fraction(sw)))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.Conv2d(ins[0][0], p.out_channels, p.kernel_size, p.stride, p.padding, p.dilation, p.groups, p.bias)
