"""Zero padding of a feature map's borders, each side its own."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from nas.ir.registry import MAX_EXTENT, Block, Call, Example, Param, Params, Shape, register


@register
class Pad(Block):
    """Zeros added around a ``(C, H, W)`` map, ``left`` and ``right`` columns,
    ``top`` and ``bottom`` rows (``F.pad(x, (left, right, top, bottom))``).
    A convolution pads both sides alike; TensorFlow's ``SAME`` padding puts
    the odd pixel after (bottom and right), which the nets ported from it
    (timm's ``tf_`` EfficientNets and MobileNets) keep as a pad before an
    unpadded convolution. No parameters, no MACs."""

    name = "pad"
    rank = 3
    params = (
        Param("left", int, default=0, low=0, high=MAX_EXTENT),
        Param("right", int, default=0, low=0, high=MAX_EXTENT),
        Param("top", int, default=0, low=0, high=MAX_EXTENT),
        Param("bottom", int, default=0, low=0, high=MAX_EXTENT),
    )
    examples = (Example({"right": 1, "bottom": 1}, ((3, 6, 6),)), Example({"left": 2, "top": 1}, ((2, 4, 5),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        return (c, h + p.top + p.bottom, w + p.left + p.right)

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(F.pad, {"pad": (p.left, p.right, p.top, p.bottom)})
