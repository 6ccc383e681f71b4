"""Convolutions."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nas.ir.errors import ShapeError
from nas.ir.graph import Graph
from nas.ir.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Block,
    Composite,
    Cost,
    Example,
    Param,
    Params,
    Shape,
    Window,
    as_pair,
    get_block,
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
    fusion = "head"
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
        return Window(extent=(dh * (kh - 1) + 1, dw * (kw - 1) + 1), stride=(sh, sw))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.Conv2d(ins[0][0], p.out_channels, p.kernel_size, p.stride, p.padding, p.dilation, p.groups, p.bias)


@register
class ConvBnAct(Composite):
    """Convolution, batch norm and activation: the unit most CNNs are made of
    (Inception's ``BasicConv2d``, MobileNet's layers, VGG with BN).

    ``padding`` defaults to "same" for stride 1 (half the dilated kernel);
    ``bias`` defaults to false because batch norm has its own shift. Set
    ``norm: none`` for the conv-ReLU units of networks before batch norm
    (then usually ``bias: true``), and ``act: none`` for a linear output.
    """

    name = "conv_bn_act"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("kernel_size", pair, low=1, high=MAX_EXTENT),
        Param("stride", pair, default=1, low=1, high=MAX_EXTENT),
        Param("padding", pair, default=None, low=0, high=MAX_EXTENT, doc="default: dilation * (kernel_size - 1) // 2"),
        Param("dilation", pair, default=1, low=1, high=MAX_EXTENT),
        Param("groups", int, default=1, low=1, high=MAX_CHANNELS),
        Param("bias", bool, default=False),
        Param("norm", str, default="batch_norm", choices=("batch_norm", "none")),
        Param("eps", float, default=1e-5, low=0.0, high=1.0, doc="batch norm epsilon"),
        Param("momentum", float, default=0.1, low=0.0, high=1.0, doc="batch norm momentum (training only)"),
        Param("act", str, default="relu", doc="an activation block (relu, relu6, elu, ...) or none"),
    )
    examples = (
        Example({"out_channels": 8, "kernel_size": 3}, ((3, 9, 9),)),
        Example({"out_channels": 6, "kernel_size": [1, 7], "norm": "none", "bias": True, "act": "tanh"}, ((4, 9, 9),)),
        Example(
            {
                "out_channels": 4,
                "kernel_size": 3,
                "stride": 2,
                "groups": 4,
                "eps": 1e-3,
                "momentum": 0.01,
                "act": "none",
            },
            ((4, 8, 8),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        if p.act != "none":
            get_block(p.act)  # an unknown name fails here, with suggestions
        (kh, kw), (dh, dw) = as_pair(p.kernel_size), as_pair(p.dilation)
        padding = p.padding if p.padding is not None else pair([dh * (kh - 1) // 2, dw * (kw - 1) // 2])
        g = Graph(self.name)
        y = g.add_input("x", ins[0])
        y = g.add(
            "conv",
            "conv2d",
            y,
            out_channels=p.out_channels,
            kernel_size=p.kernel_size,
            stride=p.stride,
            padding=padding,
            dilation=p.dilation,
            groups=p.groups,
            bias=p.bias,
        )
        if p.norm == "batch_norm":
            y = g.add("bn", "batch_norm", y, eps=p.eps, momentum=p.momentum)
        if p.act != "none":
            y = g.add("act", p.act, y)
        g.set_outputs(y)
        return g
