"""Residual blocks (He et al., "Deep Residual Learning for Image Recognition", 2015)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nas.errors import ShapeError
from nas.graph import Graph, Ref
from nas.registry import MAX_CHANNELS, MAX_EXTENT, Block, Call, Composite, Example, Param, Params, Shape, register


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


@register
class BasicBlock(Composite):
    """Two 3x3 convolutions with batch norm and an identity shortcut, as in
    ResNet-18/34 and the CIFAR ResNets. When the block changes the width or
    the resolution, the shortcut is a 1x1 convolution with batch norm
    (``projection``, option B) or a zero-padded identity (``zero_pad``,
    option A). Node names follow torchvision's ``BasicBlock``."""

    name = "basic_block"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT),
        Param("shortcut", str, default="projection", choices=("projection", "zero_pad")),
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
        shortcut = x
        if p.stride != 1 or ins[0][0] != p.out_channels:
            if p.shortcut == "projection":
                shortcut = _conv_bn(g, "_down", x, p.out_channels, 1, p.stride)
            else:
                shortcut = g.add("pad", "zero_pad", x, out_channels=p.out_channels, stride=p.stride)
        g.set_outputs(g.add("relu2", "relu", g.add("add", "add", [y, shortcut])))
        return g
