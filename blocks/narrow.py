"""Reading a consecutive range of channels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_CHANNELS, Block, Call, Example, Param, Params, Shape, register


@register
class Narrow(Block):
    """Channels ``start`` to ``start + length`` (``torch.narrow(x, 1, start,
    length)``, ``x[:, start:start + length]``): the split of a
    dual-path network (DPN) into its residual and dense parts, GhostNet's
    trim of the cheap features, ReXNet's partial shortcut, and each part of
    ``torch.split`` (Res2Net's scales, MixNet's kernel groups). A view of
    its input: no parameters, no MACs."""

    name = "narrow"
    params = (
        Param("start", int, default=0, low=0, high=MAX_CHANNELS, doc="the first channel kept"),
        Param("length", int, low=1, high=MAX_CHANNELS, doc="how many channels are kept"),
    )
    examples = (Example({"length": 3}, ((6, 4, 4),)), Example({"start": 2, "length": 5}, ((9, 5),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        channels = ins[0][0]
        if p.start + p.length > channels:
            raise ShapeError(
                f"channels {p.start} to {p.start + p.length} do not exist in {channels}",
                hint=f"keep start + length at most {channels}",
            )
        return (p.length, *ins[0][1:])

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.narrow, {"dim": 1, "start": p.start, "length": p.length})
