"""Stochastic depth (Huang et al., "Deep Networks with Stochastic Depth",
2016): in training, a residual branch is dropped for a random part of the
batch, so the network trains as an ensemble of shallower ones; at inference
every branch is kept. EfficientNet and the ViT family place it on each
residual branch, just before the sum."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.ir.registry import Block, Example, Param, Params, Shape, register


class DropBranch(nn.Module):
    """Zero the input for each sample (``row``) or the whole batch (``batch``)
    with probability ``p`` in training, scaling what is kept by ``1 / (1 - p)``
    so that the expected value is unchanged; the identity in eval, which is
    why inference (and an exported model) never sees it."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0],) + (1,) * (x.dim() - 1) if self.mode == "row" else (1,) * x.dim()
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


@register
class StochasticDepth(Block):
    """A training-only drop of a whole residual branch, as
    ``torchvision.ops.StochasticDepth`` (timm's ``DropPath`` is its ``row``
    mode): its input for each sample (``row``) or for the whole batch
    (``batch``) is zeroed with probability ``p`` in training and the rest
    scaled by ``1 / (1 - p)``. The identity in eval: no parameters, no MACs.

    Like FractalNet's drop-path, it is a module that reads ``self.training``
    rather than a change of the graph, so one graph serves training and
    inference, and the lowered network in eval computes exactly what the
    network without it computes."""

    name = "stochastic_depth"
    params = (
        Param("p", float, default=0.1, low=0.0, high=0.99, doc="probability of dropping the branch"),
        Param("mode", str, default="row", choices=("row", "batch"), doc="drop per sample or per batch"),
    )
    examples = (Example({"p": 0.2}, ((4, 5, 5),)), Example({"p": 0.5, "mode": "batch"}, ((6, 8),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return DropBranch(p.p, p.mode)
