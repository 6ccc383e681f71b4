"""The Vision Transformer's input stem (Dosovitskiy et al., "An Image is
Worth 16x16 Words: Transformers for Image Recognition at Scale", 2020): an
image cut into patches, each patch a token, a learned class token in front
and a learned position embedding added (the paper's equation 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.ir.graph import Graph
from nas.ir.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Block,
    Call,
    Composite,
    Cost,
    Example,
    Param,
    Params,
    Shape,
    pair,
    register,
)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, H * W, C)``: one token per position, row by row."""
    return x.flatten(2).transpose(1, 2)


@register
class Tokens(Block):
    """A ``(C, H, W)`` map as ``(H * W, C)`` tokens, positions in row-major
    order, as ViT reads its patch grid (torchvision's ``_process_input``,
    timm's ``PatchEmbed`` with ``flatten``). Each token still stands for its
    own position: the receptive field does not grow."""

    name = "tokens"
    rank = 3
    examples = (Example({}, ((6, 3, 4),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        return (h * w, c)

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(to_tokens)


class PrependToken(nn.Module):
    """A learned ``(1, 1, D)`` token put before the ``(B, N, D)`` tokens of
    every sample; zero at initialisation, as torchvision's ViT starts it."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


@register
class ClassToken(Block):
    """A learned class token before the ``(N, D)`` tokens, giving ``N + 1``:
    the transformer's summary of the image, read by the classifier (ViT's
    ``x_class``; torchvision's ``class_token``, timm's ``cls_token``, both
    ``(1, 1, D)``, the shape of this block's ``token``)."""

    name = "class_token"
    rank = 2
    keeps_output = False
    examples = (Example({}, ((4, 6),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        n, d = ins[0]
        return (n + 1, d)

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=ins[0][1])

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return PrependToken(ins[0][1])


class AddEmbedding(nn.Module):
    """A learned ``(1, N, D)`` embedding added to ``(B, N, D)`` tokens;
    initialised from N(0, 0.02^2), as torchvision's ViT does."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(1, tokens, dim).normal_(std=0.02))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding


@register
class PositionEmbedding(Block):
    """A learned position embedding, one ``D``-vector per token, added to
    ``(N, D)`` tokens (ViT's ``E_pos``; torchvision's ``pos_embedding``,
    timm's ``pos_embed``, both ``(1, N, D)``, the shape of this block's
    ``embedding``). It fixes the number of tokens, hence the input size."""

    name = "position_embedding"
    rank = 2
    keeps_output = False
    examples = (Example({}, ((5, 6),)),)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=ins[0][0] * ins[0][1])

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return AddEmbedding(*ins[0])


@register
class PatchEmbed(Composite):
    """ViT's stem: a ``patch_size`` convolution with stride ``patch_size``
    (one linear projection per non-overlapping patch) to ``embed_dim``
    channels, the patch grid as tokens, then, if asked, a class token in
    front and a position embedding added (over the class token too, as
    torchvision's and timm's ViTs do). ``(C, H, W) -> (N, embed_dim)`` with
    ``N = (H / p) * (W / p)``, plus one for the class token.

    Node names: ``proj`` (timm's; torchvision's ``conv_proj``), ``tokens``,
    ``class_token``, ``pos_embedding``."""

    name = "patch_embed"
    rank = 3
    params = (
        Param("embed_dim", int, low=1, high=MAX_CHANNELS, doc="token width D"),
        Param("patch_size", pair, default=16, low=1, high=MAX_EXTENT, doc="p or [ph, pw]"),
        Param("class_token", bool, default=True, doc="put a learned class token first"),
        Param("position_embedding", bool, default=True, doc="add a learned position embedding"),
        Param("bias", bool, default=True, doc="bias of the projection"),
    )
    examples = (
        Example({"embed_dim": 8, "patch_size": 4}, ((3, 8, 12),)),
        Example(
            {"embed_dim": 6, "patch_size": [2, 3], "class_token": False, "position_embedding": False, "bias": False},
            ((2, 4, 6),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        y = g.add(
            "proj", "conv2d", x, out_channels=p.embed_dim, kernel_size=p.patch_size, stride=p.patch_size, bias=p.bias
        )
        y = g.add("tokens", "tokens", y)
        if p.class_token:
            y = g.add("class_token", "class_token", y)
        if p.position_embedding:
            y = g.add("pos_embedding", "position_embedding", y)
        g.set_outputs(y)
        return g
