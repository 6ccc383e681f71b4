"""Splitting a feature map into equal groups of channels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_CHANNELS, Block, Call, Example, Param, Params, Shape, register


@register
class Chunk(Block):
    """The channels cut into ``chunks`` equal consecutive groups, one output
    each (``torch.chunk(x, chunks, dim=1)``): ShuffleNet v2's channel split,
    half the channels through the branch and half past it (Ma et al.,
    "ShuffleNet V2", 2018, Figure 3c). The outputs are named ``out`` (the
    first group), ``part1``, ``part2``, ... Views of the input: no
    parameters, no MACs."""

    name = "chunk"
    params = (Param("chunks", int, default=2, low=2, high=MAX_CHANNELS, doc="number of groups; must divide C"),)
    outputs = ("out", "part1")
    examples = (Example({}, ((6, 4, 4),)), Example({"chunks": 3}, ((9, 5),)))

    def output_names(self, p: Params) -> tuple[str, ...]:
        return ("out", *(f"part{i}" for i in range(1, p.chunks)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> tuple[Shape, ...]:
        channels = ins[0][0]
        if channels % p.chunks:
            raise ShapeError(
                f"chunks={p.chunks} must divide the {channels} channels", hint="pick chunks that divide the channels"
            )
        part = (channels // p.chunks, *ins[0][1:])
        return (part,) * p.chunks

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.chunk, {"chunks": p.chunks, "dim": 1})
