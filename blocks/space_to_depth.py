"""Neighbourhoods of a feature map stacked on its channels: the gather step of
the Swin Transformer's patch merging (Liu et al., "Swin Transformer:
Hierarchical Vision Transformer using Shifted Windows", 2021, Section 3.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nas.ir.registry import MAX_EXTENT, Block, Call, Example, Param, Params, Shape, Window, register


def space_to_depth(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, size^2 C, ceil(H / size), ceil(W / size))``: the
    map zero-padded at the bottom and right to a multiple of ``size``, then
    each ``size x size`` neighbourhood stacked on the channels, one group of
    ``C`` channels per offset, the row offset running fastest."""
    n, c = x.shape[:2]
    x = F.pad(x, (0, -x.shape[3] % size, 0, -x.shape[2] % size))
    rows, columns = x.shape[2] // size, x.shape[3] // size
    # (B, C, rows, row offset, columns, column offset) -> (B, column offset, row offset, C, rows, columns)
    x = x.reshape(n, c, rows, size, columns, size).permute(0, 5, 3, 1, 2, 4)
    return x.reshape(n, size * size * c, rows, columns)


@register
class SpaceToDepth(Block):
    """Each ``size x size`` neighbourhood of a ``(C, H, W)`` map stacked on
    the channels, giving ``(size^2 C, ceil(H / size), ceil(W / size))``; an
    odd edge is zero-padded first, at the bottom and right.

    Swin's patch merging concatenates "the features of each group of 2 x 2
    neighboring patches" and applies a linear layer to the 4C features
    (Section 3.1); this block is that gather, so patch merging is this block,
    a layer norm and a 1x1 convolution (torchvision's ``_patch_merging_pad``
    before ``PatchMerging``'s norm and reduction). The offsets come in
    torchvision's order, the row offset fastest: ``(0, 0), (1, 0), (0, 1),
    (1, 1)`` for ``size=2`` (also YOLOv5's ``Focus``), not
    ``F.pixel_unshuffle``'s, which puts the channel first. A rearrangement:
    no parameters, no MACs."""

    name = "space_to_depth"
    rank = 3
    params = (Param("size", int, default=2, low=1, high=MAX_EXTENT, doc="side of the neighbourhood"),)
    examples = (Example({}, ((3, 4, 6),)), Example({}, ((2, 5, 3),)), Example({"size": 3}, ((2, 6, 7),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        return (p.size * p.size * c, -(-h // p.size), -(-w // p.size))

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        return Window(extent=(p.size, p.size), stride=(p.size, p.size))

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(space_to_depth, {"size": p.size})
