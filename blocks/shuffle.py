"""ShuffleNet's channel shuffle (Zhang et al., "ShuffleNet: An Extremely
Efficient Convolutional Neural Network for Mobile Devices", 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_CHANNELS, Block, Call, Example, Param, Params, Shape, register


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups: channel ``g * k + i``
    (group ``g``, place ``i``) moves to ``i * groups + g``. Written as view,
    transpose, flatten (not ``F.channel_shuffle``), which every exporter
    translates."""
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).flatten(1, 2)


@register
class ChannelShuffle(Block):
    """Channel shuffle: the channels of ``groups`` groups interleaved, so
    that the next grouped convolution mixes information across groups (the
    paper's Figure 1; torchvision's ``channel_shuffle`` in ShuffleNet v2,
    ``nn.ChannelShuffle``). A permutation: no parameters, no MACs."""

    name = "channel_shuffle"
    rank = 3
    params = (Param("groups", int, low=1, high=MAX_CHANNELS, doc="number of groups; must divide the channels"),)
    examples = (Example({"groups": 2}, ((6, 4, 4),)), Example({"groups": 3}, ((12, 3, 5),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        if ins[0][0] % p.groups:
            raise ShapeError(
                f"groups={p.groups} must divide the {ins[0][0]} channels", hint="pick groups that divide the channels"
            )
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(channel_shuffle, {"groups": p.groups})
