"""Multi-head self-attention over tokens (Vaswani et al., "Attention Is All
You Need", 2017), as the Vision Transformer uses it (Dosovitskiy et al., "An
Image is Worth 16x16 Words", 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.ir.errors import ShapeError
from nas.ir.registry import MAX_CHANNELS, Block, Cost, Example, Param, Params, Shape, register


def split_heads(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, N, 3D)`` projections -> queries, keys and values, each ``(B,
    heads, N, D / heads)``: the rows of ``qkv`` are the queries, the keys and
    the values, each head's features contiguous."""
    batch, tokens, width = qkv.shape
    q, k, v = qkv.reshape(batch, tokens, 3, heads, width // (3 * heads)).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, N, D / heads) -> (B, N, D)``, the inverse of :func:`split_heads` for one of its outputs."""
    batch, heads, tokens, width = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * width)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention over ``(B, N, D)`` tokens with ``heads`` heads of
    ``D / heads`` features.

    Weights: ``qkv``, one ``Linear(D, 3D)`` whose output rows are the
    queries, the keys and the values, each head's features contiguous (timm's
    ``Attention``; the layout of ``nn.MultiheadAttention``'s
    ``in_proj_weight``), and ``proj``, a ``Linear(D, D)`` (its
    ``out_proj``). The two products of the attention are written as matrix
    products rather than ``F.scaled_dot_product_attention``: the fused kernel
    gives the same values, but on a CPU ``FlopCounterMode`` does not see its
    MACs, and the costs of this block must be the ones a counter sees."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, proj_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), self.heads)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj(merge_heads(attn @ v))

    def extra_repr(self) -> str:
        return f"heads={self.heads}"


@register
class SelfAttention(Block):
    """Multi-head self-attention on ``(N, D)`` tokens: each of ``heads`` heads
    attends from every token to every token with scaled dot products, and a
    linear projection mixes the heads (timm's ``Attention``, the attention of
    torchvision's ``EncoderBlock`` with ``nn.MultiheadAttention``; weights as
    :class:`MultiHeadSelfAttention` lays them out).

    MACs: the query-key-value projection ``3 N D^2``, the output projection
    ``N D^2``, and the two products of the attention, ``N^2 D`` each (scores
    and weighted sum); softmax and scaling are not counted, as a FLOP counter
    does not count them."""

    name = "self_attention"
    rank = 2
    keeps_output = False
    params = (
        Param("heads", int, low=1, high=MAX_CHANNELS, doc="number of heads; must divide the token width"),
        Param("qkv_bias", bool, default=True, doc="bias on the query-key-value projection"),
        Param("proj_bias", bool, default=True, doc="bias on the output projection"),
    )
    examples = (
        Example({"heads": 2}, ((5, 8),)),
        Example({"heads": 3, "qkv_bias": False, "proj_bias": False}, ((7, 12),)),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        if ins[0][1] % p.heads:
            raise ShapeError(
                f"heads={p.heads} must divide the token width {ins[0][1]}", hint="pick heads that divide the width"
            )
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        tokens, dim = ins[0]
        weights = 4 * dim * dim
        biases = (3 * dim if p.qkv_bias else 0) + (dim if p.proj_bias else 0)
        return Cost(params=weights + biases, macs=tokens * weights + 2 * tokens * tokens * dim)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return MultiHeadSelfAttention(ins[0][1], p.heads, p.qkv_bias, p.proj_bias)
