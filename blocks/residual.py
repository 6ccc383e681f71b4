"""Residual blocks (He et al., "Deep Residual Learning for Image Recognition", 2015)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nas.ir.errors import ShapeError
from nas.ir.graph import Graph, Ref
from nas.ir.registry import MAX_CHANNELS, MAX_EXTENT, Block, Call, Composite, Example, Param, Params, Shape, register


def zero_pad_shortcut(x: torch.Tensor, out_channels: int, stride: int) -> torch.Tensor:
    """Option A shortcut: subsample by ``stride`` and append zero channels."""
    if stride > 1:
        x = x[:, :, ::stride, ::stride]
    return F.pad(x, (0, 0, 0, 0, 0, out_channels - x.shape[1]))


@register
class ZeroPad(Block):
    """The parameter-free shortcut of the paper's option A (CIFAR ResNets):
    identity subsampled by ``stride``, with zero channels appended."""

    name = "zero_pad"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT),
    )
    examples = (Example({"out_channels": 8, "stride": 2}, ((4, 7, 7),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        if p.out_channels < c:
            raise ShapeError(
                f"zero_pad cannot shrink {c} channels to {p.out_channels}", hint="use a projection shortcut"
            )
        return (p.out_channels, -(-h // p.stride), -(-w // p.stride))

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(zero_pad_shortcut, dict(p))


def _conv_bn(g: Graph, name: str, x: Ref, channels: int, kernel: int, stride: int) -> Ref:
    conv = g.add(
        f"conv{name}",
        "conv2d",
        x,
        out_channels=channels,
        kernel_size=kernel,
        stride=stride,
        padding=kernel // 2,
        bias=False,
    )
    return g.add(f"bn{name}", "batch_norm", conv)


def _shortcut(g: Graph, x: Ref, shape: Shape, p: Params) -> Ref:
    """Identity, or what matches a change of width or resolution: a 1x1
    convolution with batch norm (option B) or a zero-padded identity (A)."""
    if p.stride == 1 and shape[0] == p.out_channels:
        return x
    if p.shortcut == "projection":
        return _conv_bn(g, "_down", x, p.out_channels, 1, p.stride)
    return g.add("pad", "zero_pad", x, out_channels=p.out_channels, stride=p.stride)


@register
class BasicBlock(Composite):
    """Two 3x3 convolutions with batch norm and an identity shortcut, as in
    ResNet-18/34 and the CIFAR ResNets. When the block changes the width or
    the resolution, the shortcut is a 1x1 convolution with batch norm
    (``projection``, option B) or a zero-padded identity (``zero_pad``,
    option A). Node names follow torchvision's ``BasicBlock``.

    ``stride_at`` has one value, ``"3x3"``: a basic block subsamples on its
    first 3x3 in the paper and in torchvision alike. It is declared so that
    one stage template (the ``residual`` space) can state the stride
    position for either unit; ``bottleneck`` has the second value."""

    name = "basic_block"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT),
        Param("shortcut", str, default="projection", choices=("projection", "zero_pad")),
        Param("stride_at", str, default="3x3", choices=("3x3",), doc="where the stride is: the first 3x3"),
    )
    examples = (
        Example({"out_channels": 4}, ((4, 6, 6),)),
        Example({"out_channels": 8, "stride": 2}, ((4, 6, 6),)),
        Example({"out_channels": 8, "stride": 2, "shortcut": "zero_pad"}, ((4, 6, 6),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        y = g.add("relu1", "relu", _conv_bn(g, "1", x, p.out_channels, 3, p.stride))
        y = _conv_bn(g, "2", y, p.out_channels, 3, 1)
        g.set_outputs(g.add("relu2", "relu", g.add("add", "add", [y, _shortcut(g, x, ins[0], p)])))
        return g


@register
class Bottleneck(Composite):
    """1x1 reduce, 3x3, 1x1 expand, with batch norm and a shortcut: ResNet-50
    and deeper. ``width`` is the bottleneck width, ``out_channels / 4`` by
    default; ``groups`` > 1 gives ResNeXt's grouped 3x3.

    ``stride_at`` is where a stride-2 block subsamples: on the 3x3
    (``"3x3"``, torchvision's ``Bottleneck``, known as "ResNet v1.5") or on
    the first 1x1 (``"1x1"``, the paper's own nets and its Caffe models), which
    runs the 3x3 on the smaller grid and so costs fewer MACs for the same
    parameters."""

    name = "bottleneck"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT),
        Param("width", int, default=None, low=1, high=MAX_CHANNELS, doc="default: out_channels // 4"),
        Param("groups", int, default=1, low=1, high=MAX_CHANNELS),
        Param("shortcut", str, default="projection", choices=("projection", "zero_pad")),
        Param("stride_at", str, default="3x3", choices=("3x3", "1x1"), doc="3x3: ResNet v1.5; 1x1: the paper's"),
    )
    examples = (
        Example({"out_channels": 16}, ((16, 6, 6),)),
        Example({"out_channels": 16, "stride": 2, "width": 8, "groups": 2}, ((8, 7, 7),)),
        Example({"out_channels": 16, "stride": 2, "stride_at": "1x1"}, ((8, 7, 7),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        width = p.width or max(1, p.out_channels // 4)
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        first, second = (p.stride, 1) if p.stride_at == "1x1" else (1, p.stride)
        y = g.add("relu1", "relu", _conv_bn(g, "1", x, width, 1, first))
        conv2 = g.add(
            "conv2",
            "conv2d",
            y,
            out_channels=width,
            kernel_size=3,
            stride=second,
            padding=1,
            groups=p.groups,
            bias=False,
        )
        y = g.add("relu2", "relu", g.add("bn2", "batch_norm", conv2))
        y = _conv_bn(g, "3", y, p.out_channels, 1, 1)
        g.set_outputs(g.add("relu3", "relu", g.add("add", "add", [y, _shortcut(g, x, ins[0], p)])))
        return g
