"""Xception's separable convolution and residual block (Chollet, "Xception:
Deep Learning with Depthwise Separable Convolutions", CVPR 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from nas.ir.graph import Graph
from nas.ir.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Composite,
    Example,
    Param,
    Params,
    Shape,
    as_pair,
    pair,
    register,
)


@register
class SeparableConv2d(Composite):
    """A depthwise convolution (one ``kernel_size`` filter per channel) then a
    1x1 pointwise convolution to ``out_channels``, with nothing in between:
    Xception's "separable convolution" (section 2, Keras ``SeparableConv2D``,
    timm's ``legacy_xception``). MobileNet's variant, with batch norm and an
    activation after each half, is ``depthwise_separable``.

    ``padding`` defaults to "same" for stride 1; the depthwise half has no
    bias, ``bias`` adds one after the pointwise half, as Keras does.
    """

    name = "separable_conv2d"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("kernel_size", pair, default=3, low=1, high=MAX_EXTENT),
        Param("stride", pair, default=1, low=1, high=MAX_EXTENT),
        Param("padding", pair, default=None, low=0, high=MAX_EXTENT, doc="default: dilation * (kernel_size - 1) // 2"),
        Param("dilation", pair, default=1, low=1, high=MAX_EXTENT),
        Param("bias", bool, default=False, doc="a bias after the pointwise convolution"),
    )
    examples = (
        Example({"out_channels": 8}, ((4, 7, 7),)),
        Example({"out_channels": 3, "kernel_size": [3, 5], "stride": 2, "dilation": 2, "bias": True}, ((5, 11, 12),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        (kh, kw), (dh, dw) = as_pair(p.kernel_size), as_pair(p.dilation)
        padding = p.padding if p.padding is not None else pair([dh * (kh - 1) // 2, dw * (kw - 1) // 2])
        channels = ins[0][0]
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        y = g.add(
            "depthwise",
            "conv2d",
            x,
            out_channels=channels,
            kernel_size=p.kernel_size,
            stride=p.stride,
            padding=padding,
            dilation=p.dilation,
            groups=channels,
            bias=False,
        )
        g.set_outputs(g.add("pointwise", "conv2d", y, out_channels=p.out_channels, kernel_size=1, bias=p.bias))
        return g


@register
class XceptionBlock(Composite):
    """Xception's residual block (Figure 5; timm's ``legacy_xception``
    ``Block``): ``reps`` times ReLU, 3x3 separable convolution, batch norm;
    then, when ``stride`` > 1, a 3x3 max pool; plus a shortcut, the identity
    or, when the width or resolution changes, a strided 1x1 convolution with
    batch norm.

    ``start_with_relu: false`` drops the first ReLU (the first entry-flow
    block, whose input is already activated). ``grow_first`` widens to
    ``out_channels`` in the first separable convolution; otherwise in the
    last (the exit flow's 728 -> 1024 block). One block type covers the
    entry, middle and exit flows, so a search can vary each flow's depth
    (``reps``, or the number of blocks with a ``stage``) and widths.

    The shortcut is added before the main path so that, lowered, its weights
    come first, in the order of ``legacy_xception``.
    """

    name = "xception_block"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("reps", int, default=2, low=1, high=1000, doc="separable convolutions in the main path"),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT, doc="of the closing 3x3 max pool and the shortcut"),
        Param("start_with_relu", bool, default=True, doc="begin with a ReLU"),
        Param("grow_first", bool, default=True, doc="widen in the first separable convolution, else in the last"),
    )
    examples = (
        Example({"out_channels": 8, "stride": 2, "start_with_relu": False}, ((4, 9, 9),)),
        Example({"out_channels": 6, "reps": 3}, ((6, 5, 5),)),
        Example({"out_channels": 8, "stride": 2, "grow_first": False}, ((6, 8, 7),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        channels = ins[0][0]
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        skip = x
        if p.out_channels != channels or p.stride != 1:
            conv = g.add("skip", "conv2d", x, out_channels=p.out_channels, kernel_size=1, stride=p.stride, bias=False)
            skip = g.add("skipbn", "batch_norm", conv)
        y = x
        for i in range(1, p.reps + 1):
            width = p.out_channels if p.grow_first or i == p.reps else channels
            if i > 1 or p.start_with_relu:
                y = g.add(f"relu{i}", "relu", y)
            y = g.add(f"sepconv{i}", "separable_conv2d", y, out_channels=width)
            y = g.add(f"bn{i}", "batch_norm", y)
        if p.stride != 1:
            y = g.add("pool", "max_pool2d", y, kernel_size=3, stride=p.stride, padding=1)
        g.set_outputs(g.add("add", "add", [y, skip]))
        return g
