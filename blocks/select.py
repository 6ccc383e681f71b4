"""Reading one position out of a sequence of tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_EXTENT, Block, Call, Example, Param, Params, Shape, register


@register
class Select(Block):
    """Position ``index`` of the first dimension: ``(N, D) -> (D,)``. ViT's
    classifier reads the class token this way (``x[:, 0]`` in torchvision's
    ``VisionTransformer``; timm's ``global_pool='token'``). A view of its
    input, with no parameters and no MACs."""

    name = "select"
    params = (Param("index", int, default=0, low=0, high=MAX_EXTENT * 16, doc="the position to keep"),)
    examples = (Example({}, ((5, 8),)), Example({"index": 2}, ((3, 4, 4),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        if len(ins[0]) < 2 or p.index >= ins[0][0]:
            raise ShapeError(
                f"cannot take position {p.index} of the first dimension of {tuple(ins[0])}",
                hint="feed tokens (N, D) and an index below N",
            )
        return ins[0][1:]

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.select, {"dim": 1, "index": p.index})
