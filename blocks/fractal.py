"""Fractal blocks (Larsson, Maire, Shakhnarovich, "FractalNet: Ultra-Deep
Neural Networks without Residuals", arXiv:1605.07648).

A fractal block is the expansion rule of the paper's equation (1) and (2),

    f_1(z) = conv(z)
    f_{C+1}(z) = join(f_C(f_C(z)), conv(z)),

applied ``columns - 1`` times: ``2**columns - 1`` convolutions in ``columns``
columns, the deepest ``2**(columns - 1)`` long. The join is an element-wise
mean that, in training, may drop some of its inputs (drop-path).

Drop-path (section 3.1) comes in two kinds, drawn per mini-batch: local
(every join drops each input with probability ``drop_path``, keeping at
least one) and global (one column is chosen for the whole network and every
join keeps only its input from that column). The global choice must be one
draw shared by every join, so it is a tensor in the graph, not hidden state:
a ``drop_path_sampler`` node draws it (a ``(columns,)`` mask per sample: all
ones for local sampling, one-hot for global) and every join that honours it
is a ``fractal_global_join`` reading that mask as its last input, with
``columns`` naming the column of each of its other inputs. A fractal block
with ``global_drop`` > 0 draws its own mask; a network shares one draw across
its blocks, as the paper does, by feeding one sampler's output to every
block as its second input. The analyses, the hash and the lowering thus see
the sharing; in eval the mask is all ones and the joins are plain means, so
the lowered net is deterministic and exports.

``fractal_global_join`` is its own block type rather than a parameter of
``fractal_join`` because its ports carry meaning (the column of each input):
``fractal_join`` is commutative, so the canonical hash ignores its input
order, and a ``columns`` parameter there would let two differently wired
nets share a hash. With ``global_drop`` = 0 (the default) a fractal block
expands exactly as before, with ``fractal_join``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from nas.blocks.merge import same_shape
from nas.ir.errors import ParamError, ShapeError
from nas.ir.graph import Graph, Ref
from nas.ir.registry import MAX_CHANNELS, MAX_EXTENT, Block, Composite, Example, Param, Params, Shape, register

MAX_COLUMNS = 10


def column_numbers(value: Any) -> tuple[int, ...]:
    """Distinct column numbers (1 = shallowest), one per input of a join."""
    if not isinstance(value, (list, tuple)) or not value or not all(type(v) is int for v in value):
        raise TypeError("a list of column numbers, e.g. [3, 2, 1]")
    if len(set(value)) != len(value):
        raise ValueError(f"distinct column numbers, got {list(value)}")
    return tuple(value)


def _local_keep(count: int, batch: int, p: float, device: torch.device) -> torch.Tensor:
    """Local drop-path: a ``(count, batch)`` mask of kept inputs, each
    dropped with probability ``p`` per sample, at least one kept."""
    if p == 0:
        return torch.ones(count, batch, dtype=torch.bool, device=device)
    keep = torch.rand(count, batch, device=device) >= p
    # Where every input was dropped, revive one at random.
    lost = ~keep.any(dim=0)
    keep[torch.randint(count, (batch,), device=device), torch.arange(batch, device=device)] |= lost
    return keep


class DropPathMean(nn.Module):
    """Element-wise mean of the inputs; in training, the mean of the inputs
    that drop-path keeps.

    Local: each input is dropped with probability ``p``, independently per
    sample, keeping at least one. Global (when ``columns`` gives the column
    of each input): the last input is a ``(batch, C)`` sampler mask; where
    it is one-hot, only the input from that column is kept, and a join with
    no input from it keeps the plain mean (it is off the chosen path: its
    output is dropped further on, but its batch norms still see realistic
    inputs); where it is all ones, local drop-path applies.

    Dropped inputs are multiplied by zero rather than left out, so every
    branch stays in the autograd graph (its gradient is zero, not missing)
    and the batch is processed in one pass.
    """

    def __init__(self, p: float, columns: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.p = p
        self.columns = columns

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.columns is not None:
            *inputs, mask = inputs  # type: ignore[assignment]
        if not self.training or (self.p == 0 and self.columns is None):
            total = inputs[0]
            for x in inputs[1:]:
                total = total + x
            return total / len(inputs)
        first = inputs[0]
        count, batch = len(inputs), first.shape[0]
        keep = _local_keep(count, batch, self.p, first.device)
        if self.columns is not None:
            chosen = mask[:, [c - 1 for c in self.columns]].T > 0  # (count, batch)
            global_mode = ~(mask > 0).all(dim=1)
            keep = torch.where(global_mode, chosen | ~chosen.any(dim=0), keep)
        weights = keep.to(first.dtype) / keep.sum(dim=0).to(first.dtype)
        shape = (batch,) + (1,) * (first.dim() - 1)
        total = weights[0].view(shape) * first
        for weight, x in zip(weights[1:], inputs[1:]):
            total = total + weight.view(shape) * x
        return total

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", columns={self.columns}" if self.columns is not None else "")


class GlobalDropPathSampler(nn.Module):
    """One draw per mini-batch: with probability ``p`` a column chosen
    uniformly (a one-hot mask), else local sampling (all ones). The mask is
    ``(batch, columns)``, the same row for every sample; all ones in eval."""

    def __init__(self, columns: int, p: float) -> None:
        super().__init__()
        self.columns = columns
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones(x.shape[0], self.columns)
        if not self.training or self.p == 0:
            return ones
        column = torch.randint(self.columns, (), device=x.device)
        one_hot = (torch.arange(self.columns, device=x.device) == column).to(x.dtype)
        use_global = torch.rand((), device=x.device) < self.p
        return torch.where(use_global, one_hot, ones)

    def extra_repr(self) -> str:
        return f"columns={self.columns}, p={self.p}"


@register
class DropPathSampler(Block):
    """FractalNet's per-mini-batch choice between local and global drop-path
    (section 3.1): with probability ``global_drop`` one of ``columns``
    columns is kept in the whole network, else every join samples locally.
    Its output, a ``(columns,)`` mask (one-hot or all ones), feeds every
    fractal block that shares the choice; its input only lends the batch
    size and device. All ones in eval."""

    name = "drop_path_sampler"
    params = (
        Param("columns", int, low=1, high=MAX_COLUMNS, doc="the number of columns to choose from"),
        Param("global_drop", float, default=0.5, low=0.0, high=1.0, doc="probability of global sampling"),
    )
    examples = (
        Example(
            source="""
inputs: {x: [3, 6, 6]}
nodes:
  pick: {block: drop_path_sampler, in: x, columns: 2, global_drop: 1.0}
  block1: {block: fractal_block, in: [x, pick], out_channels: 4, columns: 2, drop_path: 0.15}
  block2: {block: fractal_block, in: [block1, pick], out_channels: 4, columns: 2}
outputs: [block2]
"""
        ),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return (p.columns,)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return GlobalDropPathSampler(p.columns, p.global_drop)


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
    params: ClassVar[tuple[Param, ...]] = (
        Param("drop_path", float, default=0.0, low=0.0, high=0.99, doc="local drop-path probability; 0: off"),
    )
    examples: ClassVar[tuple[Example, ...]] = (
        Example({}, ((4, 5, 5), (4, 5, 5))),
        Example({"drop_path": 0.5}, ((3, 4, 4), (3, 4, 4), (3, 4, 4))),
        Example({"drop_path": 0.15}, ((6,), (6,))),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return same_shape("a join", ins, hint="give every column the same width and stride")

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        # A module, not a Call: the drop depends on training mode.
        return DropPathMean(p.drop_path)


@register
class FractalGlobalJoin(FractalJoin):
    """A ``fractal_join`` that also honours global drop-path: its last input
    is a ``drop_path_sampler`` mask and ``columns`` names the column of each
    other input, in port order. Where the mask picks one column, only the
    input from that column is kept (the plain mean if none is); else local
    drop-path with ``drop_path``. Not commutative: the ports carry columns."""

    name = "fractal_global_join"
    arity = (3, None)
    commutative = False
    params = (
        FractalJoin.params[0],
        Param("columns", column_numbers, low=1, high=MAX_COLUMNS, doc="the column of each input but the mask"),
    )
    # A whole graph: random tensors cannot stand in for a sampler's mask.
    examples = (
        Example(
            source="""
inputs: {x: [2, 4, 4]}
nodes:
  pick: {block: drop_path_sampler, in: x, columns: 2}
  conv: {block: conv2d, in: x, out_channels: 2, kernel_size: 1}
  join: {block: fractal_global_join, in: [conv, x, pick], columns: [2, 1], drop_path: 0.5}
outputs: [join]
"""
        ),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        *xs, mask = ins
        if len(p.columns) != len(xs):
            raise ShapeError(
                f"columns names {len(p.columns)} columns but the join has {len(xs)} inputs besides the mask",
                hint="give one column number per input, the sampler's mask last",
            )
        if len(mask) != 1 or mask[0] < max(p.columns):
            raise ShapeError(
                f"the last input must be a sampler mask of at least {max(p.columns)} columns, got {mask}",
                hint="feed a drop_path_sampler's output last",
            )
        return super().infer(p, xs)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return DropPathMean(p.drop_path, p.columns)


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

    Global drop-path: with ``global_drop`` > 0 the block draws its own
    choice (a ``drop_path_sampler`` node named ``sampler``); given a
    sampler's mask as a second input, it uses that choice instead, shared
    with every block fed the same mask. Either way its joins are
    ``fractal_global_join``s.
    """

    name = "fractal_block"
    arity = (1, 2)
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS),
        Param("columns", int, default=4, low=1, high=MAX_COLUMNS, doc="C: 2**C - 1 convolutions, 2**(C-1) deep"),
        Param("kernel_size", int, default=3, low=1, high=MAX_EXTENT),
        Param("drop_path", float, default=0.0, low=0.0, high=0.99, doc="local drop-path of every join; 0: off"),
        Param("dropout", float, default=0.0, low=0.0, high=0.99, doc="dropout after every convolution; 0: off"),
        Param(
            "global_drop",
            float,
            default=0.0,
            low=0.0,
            high=1.0,
            doc="probability that a mini-batch keeps one column (global drop-path); 0: off",
        ),
    )
    examples = (
        Example({"out_channels": 4, "columns": 3}, ((3, 6, 6),)),
        Example({"out_channels": 4, "columns": 4, "drop_path": 0.15, "dropout": 0.1}, ((4, 5, 5),)),
        Example({"out_channels": 2, "columns": 1, "kernel_size": 1}, ((3, 4, 4),)),
        Example({"out_channels": 4, "columns": 3, "drop_path": 0.15, "global_drop": 0.5}, ((3, 6, 6),)),
        Example({"out_channels": 3, "columns": 3, "global_drop": 1.0}, ((2, 5, 5),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        rows = [0] * (p.columns + 1)  # units so far per column (1-based)
        joins = 0
        x = g.add_input("x", ins[0])
        mask = self._mask(g, p, ins, x)

        def conv(z: Ref, column: int) -> Ref:
            rows[column] += 1
            name = f"col{column}_{rows[column]}"
            y = g.add(name, "conv_bn_act", z, out_channels=p.out_channels, kernel_size=p.kernel_size)
            return g.add(f"{name}_drop", "dropout", y, p=p.dropout) if p.dropout > 0 else y

        def join(branches: list[tuple[int, Ref]]) -> Ref:
            nonlocal joins
            if len(branches) == 1:
                return branches[0][1]
            joins += 1
            columns, refs = zip(*branches)
            if mask is None:
                return g.add(f"join{joins}", "fractal_join", refs, drop_path=p.drop_path)
            return g.add(f"join{joins}", "fractal_global_join", [*refs, mask], drop_path=p.drop_path, columns=columns)

        def fractal(z: Ref, columns: int, first: int) -> list[tuple[int, Ref]]:
            """The unjoined column outputs of f_columns(z), deepest first, with
            their column numbers; its shallowest column is number ``first``."""
            if columns == 1:
                return [(first, conv(z, first))]
            deep = join(fractal(z, columns - 1, first + 1))
            return [*fractal(deep, columns - 1, first + 1), (first, conv(z, first))]

        g.set_outputs(join(fractal(x, p.columns, 1)))
        return g

    @staticmethod
    def _mask(g: Graph, p: Params, ins: Sequence[Shape], x: Ref) -> Ref | None:
        """The global drop-path mask the joins read: the second input, the
        block's own sampler, or none (global drop-path off)."""
        if len(ins) == 1:
            if p.global_drop == 0 or p.columns == 1:
                return None
            return g.add("sampler", "drop_path_sampler", x, columns=p.columns, global_drop=p.global_drop)
        if p.global_drop != 0:
            raise ParamError(
                "a block given a sampler's mask takes its global_drop from the sampler",
                field="global_drop",
                hint="leave global_drop out here and set it on the drop_path_sampler",
            )
        if p.columns == 1:
            raise ShapeError("a 1-column block has no joins to drop paths in", hint="leave out the sampler's mask")
        if ins[1] != (p.columns,):
            raise ShapeError(
                f"the second input must be a drop_path_sampler mask of {p.columns} columns, got {ins[1]}",
                hint=f"give the sampler columns: {p.columns}",
            )
        return g.add_input("mask", ins[1])
