"""Normalisation layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_CHANNELS, Block, Cost, Example, Param, Params, Shape, register


@register
class BatchNorm(Block):
    """Batch normalisation over channels: ``BatchNorm1d`` for ``(C,)`` and
    ``(C, L)`` inputs, ``BatchNorm2d`` for ``(C, H, W)``."""

    name = "batch_norm"
    fusion = "norm"
    keeps_output = False
    params = (
        Param("eps", float, default=1e-5, low=0.0, high=1.0),
        Param("momentum", float, default=0.1, low=0.0, high=1.0),
        Param("affine", bool, default=True, doc="learn a scale and a shift per channel"),
    )
    examples = (Example({}, ((6, 5, 5),)), Example({"affine": False, "eps": 1e-3}, ((6,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=2 * ins[0][0] if p.affine else 0)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        kind = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
        return kind(ins[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine)


class ChannelsFirstLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of an ``(N, C, H, W)`` tensor: the
    channels are moved last, normalised and moved back, as ConvNeXt's
    ``LayerNorm2d`` (torchvision and timm) does. A subclass, so that its
    ``weight`` and ``bias`` are named and shaped as theirs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


_LAYER_NORM_PARAMS = (
    Param("eps", float, default=1e-5, low=0.0, high=1.0, doc="added to the variance (ViT: 1e-6)"),
    Param("affine", bool, default=True, doc="learn a scale and a shift per channel (elementwise_affine)"),
)


@register
class LayerNorm(Block):
    """Layer normalisation over the last dimension (``nn.LayerNorm(shape[-1])``):
    the channels-last form of transformers, where a ``(N, D)`` input is ``N``
    tokens of ``D`` features and each token is normalised on its own (ViT).

    Not a fusion ``norm``: its statistics come from the data at inference, so
    no runtime folds it into the preceding convolution's weights."""

    name = "layer_norm"
    keeps_output = False
    params = _LAYER_NORM_PARAMS
    examples = (
        Example({}, ((5, 8),)),
        Example({"eps": 1e-6, "affine": False}, ((7,),)),
        Example({"eps": 1e-6}, ((4, 3, 6),)),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=2 * ins[0][-1] if p.affine else 0)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.LayerNorm(ins[0][-1], eps=p.eps, elementwise_affine=p.affine)


@register
class LayerNorm2d(LayerNorm):
    """Layer normalisation over the channels of a ``(C, H, W)`` map, each
    position on its own: the channels-first form of ConvNeXt's ``LayerNorm2d``
    (not ``nn.GroupNorm(1, C)``, which also averages over positions)."""

    name = "layer_norm2d"
    rank = 3
    examples = (Example({}, ((6, 4, 5),)), Example({"eps": 1e-6, "affine": False}, ((3, 2, 2),)))

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=2 * ins[0][0] if p.affine else 0)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return ChannelsFirstLayerNorm(ins[0][0], eps=p.eps, elementwise_affine=p.affine)


@register
class GroupNorm(Block):
    """Group normalisation (Wu and He, 2018): the channels of a ``(C, ...)``
    input cut into ``groups`` groups, each normalised over its channels and
    positions, then a learned scale and shift per channel
    (``nn.GroupNorm``). One group is PoolFormer's and timm's ``GroupNorm1``,
    which also averages over positions, unlike :class:`LayerNorm2d`."""

    name = "group_norm"
    keeps_output = False
    params = (
        Param("groups", int, default=1, low=1, high=MAX_CHANNELS, doc="must divide the channels"),
        Param("eps", float, default=1e-5, low=0.0, high=1.0),
        Param("affine", bool, default=True, doc="learn a scale and a shift per channel"),
    )
    examples = (Example({}, ((6, 4, 5),)), Example({"groups": 3, "eps": 1e-6}, ((6, 5),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        if len(ins[0]) < 2 or ins[0][0] % p.groups:
            raise ShapeError(
                f"{p.groups} groups do not divide the channels of {tuple(ins[0])}",
                hint="feed (C, ...) and pick groups that divide C",
            )
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=2 * ins[0][0] if p.affine else 0)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.GroupNorm(p.groups, ins[0][0], eps=p.eps, affine=p.affine)


class ResponseNorm(nn.Module):
    """Global response normalisation of an ``(N, C, H, W)`` tensor, with
    ``weight`` and ``bias`` of shape ``(C,)`` as timm names them."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = x.norm(p=2, dim=(2, 3), keepdim=True)
        relative = energy / (energy.mean(dim=1, keepdim=True) + self.eps)
        shape = (1, -1, 1, 1)
        return x + torch.addcmul(self.bias.view(shape), self.weight.view(shape), x * relative)


@register
class GlobalResponseNorm(Block):
    """Global response normalisation (Woo et al., "ConvNeXt V2", 2023, Eq. 1-3):
    each channel's L2 norm over the positions, divided by the mean of those
    norms over the channels, scales the channel; with a learned scale and
    shift per channel, both zero at the start, and a residual, so that the
    block starts as the identity. It makes channels compete, against the
    feature collapse the paper finds in ConvNeXt's MLPs (timm's
    ``GlobalResponseNorm``)."""

    name = "global_response_norm"
    rank = 3
    keeps_output = False
    params = (Param("eps", float, default=1e-6, low=0.0, high=1.0),)
    examples = (Example({}, ((6, 4, 5),)), Example({"eps": 1e-5}, ((3, 2, 2),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=2 * ins[0][0])

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return ResponseNorm(ins[0][0], p.eps)
