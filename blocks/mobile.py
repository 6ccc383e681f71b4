"""MobileNet's depthwise separable convolution (Howard et al., "MobileNets:
Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from nas.ir.graph import Graph
from nas.ir.registry import MAX_CHANNELS, MAX_EXTENT, Composite, Example, Param, Params, Shape, register


@register
class DepthwiseSeparable(Composite):
    """A depthwise ``kernel_size`` convolution (one filter per channel,
    carrying the stride) then a 1x1 pointwise convolution to ``out_channels``,
    each followed by batch norm and an activation: the paper's Figure 3, and
    timm's ``DepthwiseSeparableConv`` without squeeze-excite.

    The width multiplier alpha (paper, section 3.3) is not a parameter: the
    zoo writes each block's ``out_channels`` already multiplied (e.g. 0.75 *
    512 = 384), so a search can set the width of every block on its own.
    The paper's nets ask for no rounding (alpha * 32 is an integer for alpha in
    1, 0.75, 0.5, 0.25).
    """

    name = "depthwise_separable"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS, doc="width of the pointwise convolution"),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT, doc="stride of the depthwise convolution"),
        Param("kernel_size", int, default=3, low=1, high=MAX_EXTENT, doc="of the depthwise convolution"),
        Param("eps", float, default=1e-5, low=0.0, high=1.0, doc="batch norm epsilon"),
        Param("act", str, default="relu", doc="an activation block (relu, relu6, ...) or none"),
    )
    examples = (
        Example({"out_channels": 8}, ((4, 7, 7),)),
        Example({"out_channels": 6, "stride": 2, "kernel_size": 5, "eps": 1e-3, "act": "relu6"}, ((3, 9, 8),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        common = {"eps": p.eps, "act": p.act}
        y = g.add(
            "conv_dw",
            "conv_bn_act",
            x,
            out_channels=ins[0][0],
            kernel_size=p.kernel_size,
            stride=p.stride,
            groups=ins[0][0],
            **common,
        )
        g.set_outputs(g.add("conv_pw", "conv_bn_act", y, out_channels=p.out_channels, kernel_size=1, **common))
        return g
