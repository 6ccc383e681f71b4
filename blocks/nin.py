"""Network in Network's mlpconv layer (Lin, Chen, Yan, "Network In Network",
ICLR 2014, arXiv:1312.4400)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.ir.graph import Graph
from nas.ir.registry import MAX_CHANNELS, MAX_EXTENT, Composite, Example, Param, Params, Shape, pair, register


def widths(value: Any) -> tuple[int, ...]:
    """A non-empty list of layer widths, e.g. ``[192, 160, 96]``."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 64:
        raise TypeError("a list of 1 to 64 widths, e.g. [192, 160, 96]")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise TypeError("a list of integer widths, e.g. [192, 160, 96]")
    return tuple(value)


@register
class Mlpconv(Composite):
    """A ``k x k`` convolution followed by 1x1 convolutions, each with its
    activation: the paper's micro network (a multilayer perceptron slid over
    the input, section 3.1), which Caffe writes as ``conv``, ``cccp1``,
    ``cccp2``. ``widths`` gives the output channels of each layer, the first
    for the ``k x k`` one, so a search varies the depth and the widths of the
    micro network through one parameter.

    ``norm: batch_norm`` gives the batch-normalised variants that came later
    (convolutions then lose their bias).
    """

    name = "mlpconv"
    rank = 3
    params = (
        Param("widths", widths, low=1, high=MAX_CHANNELS, doc="output channels of the kxk conv and of each 1x1 conv"),
        Param("kernel_size", pair, low=1, high=MAX_EXTENT),
        Param("stride", pair, default=1, low=1, high=MAX_EXTENT),
        Param("padding", pair, default=None, low=0, high=MAX_EXTENT, doc="default: (kernel_size - 1) // 2"),
        Param("norm", str, default="none", choices=("none", "batch_norm")),
        Param("act", str, default="relu", doc="an activation block"),
    )
    examples = (
        Example({"widths": [8, 6, 4], "kernel_size": 5}, ((3, 9, 9),)),
        Example({"widths": [6, 5], "kernel_size": 3, "stride": 2, "padding": 0, "norm": "batch_norm"}, ((4, 9, 8),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        y = g.add_input("x", ins[0])
        unit = {"norm": p.norm, "bias": p.norm == "none", "act": p.act}
        y = g.add(
            "conv",
            "conv_bn_act",
            y,
            out_channels=p.widths[0],
            kernel_size=p.kernel_size,
            stride=p.stride,
            padding=p.padding,
            **unit,
        )
        for i, width in enumerate(p.widths[1:], 1):
            y = g.add(f"cccp{i}", "conv_bn_act", y, out_channels=width, kernel_size=1, **unit)
        g.set_outputs(y)
        return g
