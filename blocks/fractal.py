"""Fractal blocks (Larsson, Maire, Shakhnarovich, "FractalNet: Ultra-Deep
Neural Networks without Residuals", arXiv:1605.07648).

A fractal block is the expansion rule of the paper's equation (1) and (2),

    f_1(z) = conv(z)
    f_{C+1}(z) = join(f_C(f_C(z)), conv(z)),

applied ``columns - 1`` times: ``2**columns - 1`` convolutions in ``columns``
columns, the deepest ``2**(columns - 1)`` long. The join is an element-wise
mean that, in training, may drop some of its inputs (drop-path).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.blocks.merge import same_shape
from nas.graph import Graph, Ref
from nas.registry import MAX_CHANNELS, MAX_EXTENT, Block, Composite, Example, Param, Params, Shape, register


class LocalDropPathMean(nn.Module):
    """Element-wise mean of the inputs; in training each input is dropped with
    probability ``p``, independently per sample, keeping at least one.

    Dropped inputs are multiplied by zero rather than left out, so every
    branch stays in the autograd graph (its gradient is zero, not missing)
    and the batch is processed in one pass.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            total = inputs[0]
            for x in inputs[1:]:
                total = total + x
            return total / len(inputs)
        first = inputs[0]
        count, batch = len(inputs), first.shape[0]
        keep = torch.rand(count, batch, device=first.device) >= self.p
        # Where every input was dropped, revive one at random.
        lost = ~keep.any(dim=0)
        keep[torch.randint(count, (batch,), device=first.device), torch.arange(batch, device=first.device)] |= lost
        weights = keep.to(first.dtype) / keep.sum(dim=0).to(first.dtype)
        shape = (batch,) + (1,) * (first.dim() - 1)
        total = weights[0].view(shape) * first
        for weight, x in zip(weights[1:], inputs[1:]):
            total = total + weight.view(shape) * x
        return total

    def extra_repr(self) -> str:
        return f"p={self.p}"


@register
class FractalJoin(Block):
    """FractalNet's join: the element-wise mean of two or more tensors of one
    shape. With ``drop_path`` > 0, local drop-path in training (section 3.1):
    each input is dropped with that probability, at least one survives, and
    the mean is over the survivors. In eval it is the plain mean."""

    name = "fractal_join"
    arity = (2, None)
    commutative = True
    keeps_output = False
    params = (Param("drop_path", float, default=0.0, low=0.0, high=0.99, doc="local drop-path probability; 0: off"),)
    examples = (
        Example({}, ((4, 5, 5), (4, 5, 5))),
        Example({"drop_path": 0.5}, ((3, 4, 4), (3, 4, 4), (3, 4, 4))),
        Example({"drop_path": 0.15}, ((6,), (6,))),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return same_shape("a join", ins, hint="give every column the same width and stride")

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        # A module, not a Call: the drop depends on training mode.
        return LocalDropPathMean(p.drop_path)


@register
class FractalBlock(Composite):
    """A fractal block of ``columns`` columns of ``conv_bn_act`` units
    (``kernel_size`` convolution, batch norm, ReLU; optional ``dropout``
    after each), joined by ``fractal_join`` with ``drop_path``.

    Built by the paper's recursive expansion rule. Where the rule puts a
    join right after another join (the end of ``f_C(f_C(z))`` next to
    ``conv(z)``), the two are one join over all their columns, as the
    paper's Figure 1 draws them: a join of ``f_C``'s columns and the new one.
    Column 1 (one unit) is the shallowest, column ``columns`` the deepest;
    units are named ``col<column>_<row>``, joins ``join<n>`` in order.
    """

    name = "fractal_block"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("columns", int, default=4, low=1, high=10, doc="C: 2**C - 1 convolutions, 2**(C-1) deep"),
        Param("kernel_size", int, default=3, low=1, high=MAX_EXTENT),
        Param("drop_path", float, default=0.0, low=0.0, high=0.99, doc="local drop-path of every join; 0: off"),
        Param("dropout", float, default=0.0, low=0.0, high=0.99, doc="dropout after every convolution; 0: off"),
    )
    examples = (
        Example({"out_channels": 4, "columns": 3}, ((3, 6, 6),)),
        Example({"out_channels": 4, "columns": 4, "drop_path": 0.15, "dropout": 0.1}, ((4, 5, 5),)),
        Example({"out_channels": 2, "columns": 1, "kernel_size": 1}, ((3, 4, 4),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        rows = [0] * (p.columns + 1)  # units so far per column (1-based)
        joins = 0

        def conv(z: Ref, column: int) -> Ref:
            rows[column] += 1
            name = f"col{column}_{rows[column]}"
            y = g.add(name, "conv_bn_act", z, out_channels=p.out_channels, kernel_size=p.kernel_size)
            return g.add(f"{name}_drop", "dropout", y, p=p.dropout) if p.dropout > 0 else y

        def join(branches: list[Ref]) -> Ref:
            nonlocal joins
            if len(branches) == 1:
                return branches[0]
            joins += 1
            return g.add(f"join{joins}", "fractal_join", branches, drop_path=p.drop_path)

        def fractal(z: Ref, columns: int, first: int) -> list[Ref]:
            """The unjoined column outputs of f_columns(z), whose shallowest
            column is number ``first`` of the block."""
            if columns == 1:
                return [conv(z, first)]
            deep = join(fractal(z, columns - 1, first + 1))
            return [*fractal(deep, columns - 1, first + 1), conv(z, first)]

        x = g.add_input("x", ins[0])
        g.set_outputs(join(fractal(x, p.columns, 1)))
        return g
