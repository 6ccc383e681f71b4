"""MobileNet's depthwise separable convolution (Howard et al., "MobileNets:
Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017)
and the inverted residual of MobileNet v2 (Sandler et al., "MobileNetV2:
Inverted Residuals and Linear Bottlenecks", 2018), which MobileNet v3 and
EfficientNet's MBConv extend with squeeze-and-excitation."""

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
    get_block,
    register,
)


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


def make_divisible(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least
    ``divisor`` and never more than 10% below ``value``: the rule by which
    MobileNet v2/v3 and EfficientNet round their widths (torchvision's and
    TensorFlow's ``_make_divisible``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@register
class InvertedResidual(Composite):
    """The inverted residual: a 1x1 convolution expanding the input to
    ``expanded_channels``, a depthwise ``kernel_size`` convolution carrying
    the stride, optional squeeze-and-excitation, and a linear 1x1 projection
    to ``out_channels`` (batch norm after each convolution, ``act`` after the
    first two), with an identity shortcut when the stride is 1 and the width
    is kept: MobileNet v2's Figure 3b and Table 1, MobileNet v3's block with
    ``se_ratio``, ``act: hardswish`` and ``gate: hardsigmoid``, and
    EfficientNet's MBConv with ``act: silu`` and ``drop_path`` (stochastic
    depth on the residual branch, training only).

    ``expanded_channels`` defaults to ``round(expansion * in_channels)``
    (MobileNet v2); give it directly where a net's widths are not a ratio of
    its input (MobileNet v3's 24 -> 88). When it equals the input width, the
    expanding convolution is left out, as every one of these nets does. The
    squeeze width is ``se_ratio`` of the input width (EfficientNet; SE's
    paper) or of the expanded one (``se_from: expanded``, MobileNet v3),
    rounded by :func:`make_divisible` with ``se_divisor`` (8 in MobileNet v3).
    """

    name = "inverted_residual"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT, doc="stride of the depthwise convolution"),
        Param("kernel_size", int, default=3, low=1, high=MAX_EXTENT, doc="of the depthwise convolution"),
        Param("expansion", float, default=6.0, low=0.01, high=64.0, doc="expanded width / input width"),
        Param("expanded_channels", int, default=None, low=1, high=MAX_CHANNELS, doc="default: expansion * input"),
        Param("dilation", int, default=1, low=1, high=MAX_EXTENT, doc="of the depthwise convolution"),
        Param("act", str, default="relu6", doc="an activation block (relu6, relu, hardswish, silu, ...)"),
        Param("se_ratio", float, default=0.0, low=0.0, high=1.0, doc="squeeze width / se_from width; 0: no SE"),
        Param("se_from", str, default="input", choices=("input", "expanded"), doc="the width se_ratio scales"),
        Param("se_divisor", int, default=1, low=1, high=MAX_CHANNELS, doc="round the squeeze width to a multiple"),
        Param("se_act", str, default="relu", doc="the activation inside the SE block"),
        Param("se_gate", str, default="sigmoid", choices=("sigmoid", "hardsigmoid")),
        Param("eps", float, default=1e-5, low=0.0, high=1.0, doc="batch norm epsilon"),
        Param("momentum", float, default=0.1, low=0.0, high=1.0, doc="batch norm momentum (training only)"),
        Param("drop_path", float, default=0.0, low=0.0, high=0.99, doc="stochastic depth of the residual branch"),
    )
    examples = (
        Example({"out_channels": 4}, ((4, 6, 6),)),
        Example({"out_channels": 6, "stride": 2, "expansion": 1.0}, ((4, 7, 7),)),
        Example(
            {"out_channels": 5, "kernel_size": 5, "expanded_channels": 11, "act": "hardswish", "se_ratio": 0.25}
            | {"se_from": "expanded", "se_divisor": 2, "se_gate": "hardsigmoid", "eps": 1e-3, "momentum": 0.01},
            ((5, 6, 5),),
        ),
        Example(
            {"out_channels": 4, "act": "silu", "se_ratio": 0.25, "se_act": "silu", "drop_path": 0.2},
            ((4, 5, 5),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        for act in (p.act, p.se_act):
            get_block(act)  # an unknown name fails here, with suggestions
        width = ins[0][0]
        expanded = p.expanded_channels or max(1, round(p.expansion * width))
        common = {"eps": p.eps, "momentum": p.momentum, "act": p.act}
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        y = x
        if expanded != width:
            y = g.add("expand", "conv_bn_act", y, out_channels=expanded, kernel_size=1, **common)
        y = g.add(
            "depthwise",
            "conv_bn_act",
            y,
            out_channels=expanded,
            kernel_size=p.kernel_size,
            stride=p.stride,
            dilation=p.dilation,
            groups=expanded,
            **common,
        )
        if p.se_ratio > 0:
            base = width if p.se_from == "input" else expanded
            squeeze = make_divisible(base * p.se_ratio, p.se_divisor)
            y = g.add("se", "squeeze_excitation", y, squeeze_channels=squeeze, act=p.se_act, gate=p.se_gate)
        y = g.add("project", "conv_bn_act", y, out_channels=p.out_channels, kernel_size=1, **common | {"act": "none"})
        if p.stride == 1 and width == p.out_channels:
            if p.drop_path > 0:
                y = g.add("drop_path", "stochastic_depth", y, p=p.drop_path)
            y = g.add("add", "add", [y, x])
        g.set_outputs(y)
        return g
