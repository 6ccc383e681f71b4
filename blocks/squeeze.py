"""SqueezeNet's fire module (Iandola et al., "SqueezeNet: AlexNet-level
accuracy with 50x fewer parameters and <0.5MB model size", 2016)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.ir.graph import Graph
from nas.ir.registry import MAX_CHANNELS, Composite, Example, Param, Params, Shape, register


@register
class Fire(Composite):
    """A 1x1 "squeeze" convolution that narrows the input, then two parallel
    "expand" convolutions, 1x1 and 3x3, whose outputs are concatenated; every
    convolution has a bias and a ReLU (no batch norm), as in the paper's
    Figure 1 and torchvision's ``Fire``.

    The three widths are separate parameters because they are the paper's
    design-space knobs (section 4: squeeze ratio and the share of 3x3
    filters). Output channels: ``expand1x1_channels + expand3x3_channels``.
    Node names follow torchvision.
    """

    name = "fire"
    rank = 3
    params = (
        Param("squeeze_channels", int, low=1, high=MAX_CHANNELS, doc="width of the 1x1 squeeze layer (s1x1)"),
        Param("expand1x1_channels", int, low=1, high=MAX_CHANNELS, doc="1x1 filters of the expand layer (e1x1)"),
        Param("expand3x3_channels", int, low=1, high=MAX_CHANNELS, doc="3x3 filters of the expand layer (e3x3)"),
    )
    examples = (
        Example({"squeeze_channels": 4, "expand1x1_channels": 8, "expand3x3_channels": 8}, ((12, 7, 7),)),
        Example({"squeeze_channels": 2, "expand1x1_channels": 3, "expand3x3_channels": 5}, ((6, 5, 4),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        unit: dict[str, Any] = {"norm": "none", "bias": True}
        squeeze = g.add("squeeze", "conv_bn_act", x, out_channels=p.squeeze_channels, kernel_size=1, **unit)
        e1 = g.add("expand1x1", "conv_bn_act", squeeze, out_channels=p.expand1x1_channels, kernel_size=1, **unit)
        e3 = g.add("expand3x3", "conv_bn_act", squeeze, out_channels=p.expand3x3_channels, kernel_size=3, **unit)
        g.set_outputs(g.add("concat", "concat", [e1, e3]))
        return g
