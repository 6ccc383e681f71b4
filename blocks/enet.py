"""ENet (Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network
Architecture for Real-Time Semantic Segmentation", arXiv:1606.02147) and the
primitives it needs: PReLU, spatial dropout and the transposed convolution.

The downsampling bottleneck exposes the indices of its shortcut's max pooling
as a second output, ``indices``; the matching upsampling bottleneck reads
them through the graph (``in: [prev, bottleneck2_0.indices]``), so the
encoder-decoder pairing is an edge of the IR, not hidden module state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from torch import nn

from nas.ir.errors import ParamError, ShapeError
from nas.ir.graph import Graph, Ref
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
)


@register
class PReLU(Block):
    """Parametric ReLU (He et al. 2015): ``max(x, 0) + a * min(x, 0)`` with a
    learned slope ``a`` per channel (or one for the whole tensor). ENet uses
    it instead of ReLU in its encoder."""

    name = "prelu"
    fusion = "activation"
    keeps_output = False  # the backward reads the input and the slopes, and F.prelu returns a fresh tensor
    params = (
        Param("per_channel", bool, default=True, doc="one slope per channel (dim 0); false: one shared slope"),
        Param("init", float, default=0.25, low=-1.0, high=1.0, doc="initial slope"),
    )
    examples = (Example({}, ((4, 6, 6),)), Example({"per_channel": False, "init": 0.1}, ((7,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=ins[0][0] if p.per_channel else 1)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.PReLU(ins[0][0] if p.per_channel else 1, init=p.init)


@register
class Dropout2d(Block):
    """Spatial dropout (Tompson et al. 2015): zeroes whole channels with
    probability ``p`` in training, identity in eval. Neighbouring pixels are
    correlated, so dropping single elements regularises feature maps little."""

    name = "dropout2d"
    rank = 3
    params = (Param("p", float, default=0.5, low=0.0, high=0.99),)
    examples = (Example({"p": 0.1}, ((6, 5, 5),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.Dropout2d(p.p)


@register
class ConvTranspose2d(Block):
    """Transposed ("full", "fractionally strided") convolution
    (``torch.nn.ConvTranspose2d``): the learned upsampling of decoders.

    MACs are ``in_channels * out_channels / groups * kh * kw`` per *input*
    position: every input pixel scatters one kernel, as PyTorch's FLOP
    counter counts it.
    """

    name = "conv_transpose2d"
    fusion = "head"
    keeps_output = False
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("kernel_size", pair, low=1, high=MAX_EXTENT, doc="k or [kh, kw]"),
        Param("stride", pair, default=1, low=1, high=MAX_EXTENT, doc="the upsampling factor"),
        Param("padding", pair, default=0, low=0, high=MAX_EXTENT, doc="cropped from each border of the output"),
        Param("output_padding", pair, default=0, low=0, high=MAX_EXTENT, doc="added to one side, < stride"),
        Param("dilation", pair, default=1, low=1, high=MAX_EXTENT),
        Param("groups", int, default=1, low=1, high=MAX_CHANNELS),
        Param("bias", bool, default=True),
    )
    examples = (
        Example({"out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}, ((4, 5, 5),)),
        Example({"out_channels": 4, "kernel_size": 2, "stride": 2, "bias": False}, ((3, 4, 6),)),
        Example(
            {"out_channels": 6, "kernel_size": [3, 1], "stride": [2, 1], "dilation": [1, 2], "groups": 2},
            ((4, 5, 4),),
        ),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        if c % p.groups or p.out_channels % p.groups:
            raise ShapeError(
                f"groups={p.groups} must divide both in_channels={c} and out_channels={p.out_channels}",
                hint="pick a number of groups that divides both",
            )
        geometry = map(as_pair, (p.kernel_size, p.stride, p.padding, p.output_padding, p.dilation))
        out = []
        for n, k, s, pad, extra, d in zip((h, w), *geometry):
            if extra >= max(s, d):
                raise ParamError(
                    f"output_padding {extra} must be smaller than the stride {s} or the dilation {d}",
                    field="output_padding",
                    hint="use output_padding: stride - 1 or less",
                )
            out.append((n - 1) * s - 2 * pad + d * (k - 1) + extra + 1)
        return (p.out_channels, *out)

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        c, h, w = ins[0]
        kh, kw = as_pair(p.kernel_size)
        weights = c * (p.out_channels // p.groups) * kh * kw
        return Cost(params=weights + (p.out_channels if p.bias else 0), macs=weights * h * w)

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        # An output pixel is reached by the kernels of the input pixels within
        # one dilated kernel span of it, that is span / stride of them.
        (kh, kw), (sh, sw), (dh, dw) = map(as_pair, (p.kernel_size, p.stride, p.dilation))
        extent = (math.ceil((dh * (kh - 1) + 1) / sh), math.ceil((dw * (kw - 1) + 1) / sw))
        return Window(extent=extent, stride=(Fraction(1, sh), Fraction(1, sw)))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.ConvTranspose2d(
            ins[0][0],
            p.out_channels,
            p.kernel_size,
            p.stride,
            p.padding,
            p.output_padding,
            p.groups,
            p.bias,
            p.dilation,
        )


# --------------------------------------------------------------------------
# ENet's blocks. Convolutions are followed by batch norm (eps 1e-3, as in the
# authors' Torch code) and, between convolutions, by the activation ``act``.

_EPS = Param("eps", float, default=1e-3, low=0.0, high=1.0, doc="batch norm epsilon")
_ACT = Param("act", str, default="prelu", doc="activation block between convolutions and after the sum")
_DROPOUT = Param("dropout", float, default=0.1, low=0.0, high=0.99, doc="spatial dropout of the main branch; 0: none")
_RATIO = Param("internal_ratio", int, default=4, low=1, high=MAX_CHANNELS, doc="internal width: out_channels / this")


def _unit(g: Graph, name: str, x: Ref, p: Params, channels: int, kernel: object, **conv: Any) -> Ref:
    """Convolution, batch norm and ``p.act``: a ``conv_bn_act`` node."""
    return g.add(name, "conv_bn_act", x, out_channels=channels, kernel_size=kernel, eps=p.eps, act=p.act, **conv)


def _expansion(g: Graph, x: Ref, p: Params) -> Ref:
    """The 1x1 expansion back to ``out_channels`` (unbiased, no activation:
    the sum with the shortcut comes first), then spatial dropout."""
    y = g.add("expand", "conv_bn_act", x, out_channels=p.out_channels, kernel_size=1, eps=p.eps, act="none")
    return g.add("dropout", "dropout2d", y, p=p.dropout) if p.dropout > 0 else y


@register
class EnetInitial(Composite):
    """ENet's initial block (the paper's Figure 2a): a 3x3 stride-2
    convolution with ``out_channels - in_channels`` filters concatenated with
    a 2x2 max pooling of the input, then batch norm and the activation. It
    halves the resolution at once, as large inputs are spatially redundant."""

    name = "enet_initial"
    rank = 3
    params = (
        Param("out_channels", int, default=16, low=2, high=MAX_CHANNELS, doc="convolution filters + input channels"),
        Param("bias", bool, default=True, doc="bias of the convolution (the authors' code has one)"),
        _EPS,
        _ACT,
    )
    examples = (Example({}, ((3, 8, 8),)), Example({"out_channels": 8, "act": "relu", "bias": False}, ((2, 6, 10),)))

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        get_block(p.act)
        channels = ins[0][0]
        if p.out_channels <= channels:
            raise ParamError(
                f"out_channels {p.out_channels} must exceed the {channels} input channels that the pooling keeps",
                field="out_channels",
                hint=f"use out_channels >= {channels + 1}",
            )
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        conv = g.add(
            "conv",
            "conv2d",
            x,
            out_channels=p.out_channels - channels,
            kernel_size=3,
            stride=2,
            padding=1,
            bias=p.bias,
        )
        pool = g.add("pool", "max_pool2d", x, kernel_size=2)
        y = g.add("bn", "batch_norm", g.add("concat", "concat", [conv, pool]), eps=p.eps)
        g.set_outputs(g.add("act", p.act, y))
        return g


@register
class EnetBottleneck(Composite):
    """ENet's bottleneck (the paper's Figure 2b and section 3).

    Main branch: a 1x1 projection to ``out_channels / internal_ratio``
    (a 2x2 stride-2 convolution when downsampling), the main convolution
    (``kernel_size`` square, dilated by ``dilation``, or with ``asymmetric``
    a ``k x 1`` then ``1 x k`` pair), a 1x1 expansion and spatial dropout,
    with batch norm after every convolution and the activation between them.
    Shortcut: identity, or a 2x2 max pooling when downsampling, zero-padded
    to ``out_channels``. The sum goes through the activation.

    Following the paper, the projections have no bias ("we have decided to
    not use bias terms in any of the projections"), the main convolution
    has one (``bias``). When downsampling the block has a second output,
    ``indices``: where the shortcut's pooling took its maxima, which the
    matching ``enet_upsample`` unpools to.
    """

    name = "enet_bottleneck"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("downsample", bool, default=False, doc="halve the resolution; adds the output 'indices'"),
        Param("kernel_size", int, default=3, low=1, high=MAX_EXTENT, doc="of the main convolution"),
        Param("dilation", int, default=1, low=1, high=MAX_EXTENT, doc="of the main convolution"),
        Param("asymmetric", bool, default=False, doc="main convolution as k x 1 then 1 x k"),
        _RATIO,
        _DROPOUT,
        Param("bias", bool, default=True, doc="bias of the main convolution"),
        _EPS,
        _ACT,
    )
    outputs = ("out", "indices")
    examples = (
        Example({"out_channels": 8}, ((8, 6, 6),)),
        Example({"out_channels": 16, "downsample": True, "dropout": 0.01}, ((4, 8, 8),)),
        Example({"out_channels": 8, "dilation": 2, "act": "relu", "bias": False}, ((8, 7, 7),)),
        Example({"out_channels": 8, "kernel_size": 5, "asymmetric": True, "internal_ratio": 2}, ((4, 6, 6),)),
    )

    def output_names(self, p: Params) -> tuple[str, ...]:
        return self.outputs if p.downsample else self.outputs[:1]

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        get_block(p.act)
        internal = max(1, p.out_channels // p.internal_ratio)
        g = Graph(self.name)
        x = g.add_input("x", ins[0])

        step = 2 if p.downsample else 1  # a 2x2 stride-2 projection halves the resolution
        y = _unit(g, "project", x, p, internal, step, stride=step)
        reach = p.dilation * (p.kernel_size - 1) // 2
        if p.asymmetric:
            y = g.add(
                "conv_a",
                "conv2d",
                y,
                out_channels=internal,
                kernel_size=[p.kernel_size, 1],
                padding=[reach, 0],
                dilation=p.dilation,
                bias=p.bias,
            )
            y = _unit(g, "conv_b", y, p, internal, [1, p.kernel_size], dilation=p.dilation, bias=p.bias)
        else:
            y = _unit(g, "conv", y, p, internal, p.kernel_size, dilation=p.dilation, bias=p.bias)
        main = _expansion(g, y, p)

        shortcut, indices = x, None
        if p.downsample:
            shortcut = g.add("pool", "max_pool2d", x, kernel_size=2, return_indices=True)
            indices = Ref("pool", 1)
        if p.out_channels != ins[0][0]:
            shortcut = g.add("pad", "zero_pad", shortcut, out_channels=p.out_channels)
        y = g.add("out", p.act, g.add("add", "add", [main, shortcut]))
        if indices is None:
            g.set_outputs(y)
        else:
            g.set_outputs(y, indices)
        return g


@register
class EnetUpsample(Composite):
    """ENet's upsampling bottleneck (section 3 and the authors' decoder).

    Inputs: the feature map and the ``indices`` output of the matching
    downsampling ``enet_bottleneck``. Shortcut: a 1x1 convolution with batch
    norm to ``out_channels`` ("padding is replaced with spatial convolution
    without bias"), then max unpooling to the recorded positions. Main
    branch: 1x1 projection, a stride-2 transposed convolution of size
    ``kernel_size``, 1x1 expansion and spatial dropout. The resolution
    doubles exactly, whatever the kernel size.
    """

    name = "enet_upsample"
    rank = 3
    arity = (2, 2)
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("kernel_size", int, default=3, low=1, high=MAX_EXTENT, doc="of the transposed convolution"),
        _RATIO,
        _DROPOUT,
        Param("bias", bool, default=True, doc="bias of the transposed convolution"),
        _EPS,
        _ACT,
    )
    examples = (
        Example(
            source="""
inputs: {x: [4, 8, 8]}
nodes:
  down: {block: enet_bottleneck, in: x, out_channels: 16, downsample: true}
  up: {block: enet_upsample, in: [down, down.indices], out_channels: 4}
outputs: [up]
"""
        ),
        Example(
            source="""
inputs: {x: [4, 6, 10]}
nodes:
  down: {block: enet_bottleneck, in: x, out_channels: 8, downsample: true, act: relu}
  up: {block: enet_upsample, in: [down, down.indices], out_channels: 4, kernel_size: 2, bias: false, dropout: 0}
outputs: [up]
"""
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        get_block(p.act)
        internal = max(1, p.out_channels // p.internal_ratio)
        # (n - 1) * 2 - 2 * padding + kernel + output_padding == 2 * n
        padding = (p.kernel_size - 1) // 2
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        indices = g.add_input("indices", ins[1])

        y = _unit(g, "project", x, p, internal, 1)
        y = g.add(
            "deconv",
            "conv_transpose2d",
            y,
            out_channels=internal,
            kernel_size=p.kernel_size,
            stride=2,
            padding=padding,
            output_padding=2 + 2 * padding - p.kernel_size,
            bias=p.bias,
        )
        y = g.add("deconv_act", p.act, g.add("deconv_bn", "batch_norm", y, eps=p.eps))
        main = _expansion(g, y, p)

        shortcut = g.add(
            "shortcut", "conv_bn_act", x, out_channels=p.out_channels, kernel_size=1, eps=p.eps, act="none"
        )
        shortcut = g.add("unpool", "max_unpool2d", [shortcut, indices], kernel_size=2)
        g.set_outputs(g.add("out", p.act, g.add("add", "add", [main, shortcut])))
        return g
