"""Squeeze-and-excitation (Hu, Shen, Sun, "Squeeze-and-Excitation Networks",
2017): channel attention, a gate per channel computed from the whole map."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nas.ir.errors import ShapeError
from nas.ir.graph import Graph
from nas.ir.registry import MAX_CHANNELS, Block, Call, Composite, Example, Param, Params, Shape, get_block, register


@register
class Mul(Block):
    """Element-wise product of two tensors whose shapes broadcast (PyTorch's
    rule, without the batch): a ``(C, 1, 1)`` gate scales every position of
    a ``(C, H, W)`` map. Counted as no MACs, as ``FlopCounterMode`` counts
    element-wise products."""

    name = "mul"
    arity = (2, 2)
    commutative = True
    keeps_output = False
    examples = (Example({}, ((4, 5, 5), (4, 1, 1))), Example({}, ((6,), (6,))))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        a, b = ins
        if len(a) != len(b) or any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
            raise ShapeError(
                f"mul needs shapes that broadcast, but input 0 is {a} and input 1 is {b}",
                hint="give both inputs the same rank, each dimension equal or 1",
            )
        return tuple(max(x, y) for x, y in zip(a, b))

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.mul)


@register
class SqueezeExcitation(Composite):
    """Squeeze-and-excitation: global average pooling, a 1x1 convolution down
    to ``squeeze_channels``, ``act``, a 1x1 convolution back to the input's
    channels, a ``gate`` (sigmoid, or MobileNet v3's hard sigmoid), and the
    input scaled channel by channel by the gate (the paper's Figure 2).

    Node names and weights are those of torchvision's ``SqueezeExcitation``
    (``fc1``, ``fc2``, both 1x1 convolutions with bias), the layout of timm's
    ``SqueezeExcite`` under other names (``conv_reduce``, ``conv_expand``).
    ``squeeze_channels`` is a width, not a ratio, because the nets round
    their ratios differently (MobileNet v3 to multiples of 8 of the expanded
    width, EfficientNet down from the block's input width)."""

    name = "squeeze_excitation"
    rank = 3
    params = (
        Param("squeeze_channels", int, low=1, high=MAX_CHANNELS, doc="width of the bottleneck"),
        Param("act", str, default="relu", doc="an activation block after the reduction (relu, silu, ...)"),
        Param("gate", str, default="sigmoid", choices=("sigmoid", "hardsigmoid"), doc="maps the scales into 0..1"),
    )
    examples = (
        Example({"squeeze_channels": 2}, ((8, 5, 5),)),
        Example({"squeeze_channels": 8, "act": "silu", "gate": "hardsigmoid"}, ((4, 3, 4),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        get_block(p.act)  # an unknown name fails here, with suggestions
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        y = g.add("avgpool", "adaptive_avg_pool2d", x)
        y = g.add("fc1", "conv2d", y, out_channels=p.squeeze_channels, kernel_size=1)
        y = g.add("activation", p.act, y)
        y = g.add("fc2", "conv2d", y, out_channels=ins[0][0], kernel_size=1)
        y = g.add("scale_activation", p.gate, y)
        g.set_outputs(g.add("scale", "mul", [y, x]))
        return g
