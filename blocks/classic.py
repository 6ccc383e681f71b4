"""Layers of the early convolutional networks, before batch norm: LeNet-5's
partially connected convolution, trainable subsampling, scaled tanh and RBF
output (LeCun et al. 1998), AlexNet's local response normalisation
(Krizhevsky et al. 2012), and the sum of average and max pooling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.activation import Activation
from nas.blocks.pool import CEIL_MODE, KERNEL_SIZE, PADDING, POOL_STRIDE, SlidingPool2d
from nas.ir.errors import ShapeError
from nas.ir.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Block,
    Call,
    Cost,
    Example,
    Param,
    Params,
    Shape,
    Window,
    as_pair,
    pair,
    register,
    sliding_output,
)

LENET_C3_TABLE = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (0, 4, 5),
    (0, 1, 5),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (0, 3, 4, 5),
    (0, 1, 4, 5),
    (0, 1, 2, 5),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
"""Table I of LeCun et al. 1998, by columns: the S2 maps each C3 map reads."""


# --------------------------------------------------------------------------
# Scaled tanh


def scaled_tanh(x: torch.Tensor, amplitude: float = 1.7159, slope: float = 2 / 3) -> torch.Tensor:
    """``amplitude * tanh(slope * x)``."""
    return amplitude * torch.tanh(slope * x)


@register
class ScaledTanh(Activation):
    """LeCun's squashing function ``A tanh(S x)`` (LeCun et al. 1998,
    appendix A): with A = 1.7159 and S = 2/3, f(1) = 1 and f(-1) = -1, and the
    gain is close to 1 over the normal operating range."""

    name = "scaled_tanh"
    fn = staticmethod(scaled_tanh)
    params = (
        Param("amplitude", float, default=1.7159, low=0.0, high=1e3, doc="A, the output range is (-A, A)"),
        Param("slope", float, default=2 / 3, low=0.0, high=1e3, doc="S, the slope at 0 is A * S"),
    )
    examples = (*Activation.examples, Example({"amplitude": 1.0, "slope": 0.5}, ((3, 4, 4),)))


# --------------------------------------------------------------------------
# Partially connected convolution (LeNet-5's C3)


def connection_table(value: Any) -> tuple[tuple[int, ...], ...]:
    """Which input maps each output map reads: one list of input indices per
    output map. Each list is sorted, so equal tables compare equal."""
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_CHANNELS:
        raise TypeError("a list of lists of input map indices, one per output map, e.g. [[0, 1], [1, 2]]")
    rows = []
    for row in value:
        if not isinstance(row, (list, tuple)) or not row:
            raise TypeError("a non-empty list of input map indices for every output map")
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in row):
            raise TypeError("input map indices: integers >= 0")
        if len(set(row)) != len(row):
            raise ValueError(f"each input map at most once per output map, got {list(row)}")
        rows.append(tuple(sorted(row)))
    return tuple(rows)


class PartialConv2dModule(nn.Module):
    """A convolution in which output map ``j`` reads only the input maps
    ``table[j]``.

    ``weight`` holds the kernels in table order (row 0's kernels, then row
    1's, ...), so it has exactly as many entries as the layer has weights.
    Output maps with the same fan-in are computed by one grouped convolution
    over the gathered input maps.
    """

    def __init__(
        self,
        table: tuple[tuple[int, ...], ...],
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = as_pair(kernel_size), stride, padding
        offsets = [0]
        for row in table:
            offsets.append(offsets[-1] + len(row))
        self.weight = nn.Parameter(torch.empty(offsets[-1], *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table))) if bias else None
        self._groups: list[tuple[int, int]] = []  # (maps, fan-in) per group
        order: list[int] = []
        for n, fan_in in enumerate(sorted({len(row) for row in table})):
            maps = [j for j, row in enumerate(table) if len(row) == fan_in]
            order += maps
            self._groups.append((len(maps), fan_in))
            self.register_buffer(f"_inputs{n}", torch.tensor([i for j in maps for i in table[j]]), persistent=False)
            rows = [offsets[j] + k for j in maps for k in range(fan_in)]
            self.register_buffer(f"_rows{n}", torch.tensor(rows), persistent=False)
        # Position, in the concatenated group outputs, of each output map.
        self.register_buffer("_order", torch.tensor(order).argsort(), persistent=False)
        self._init(table)

    @torch.no_grad()
    def _init(self, table: tuple[tuple[int, ...], ...]) -> None:
        # Uniform in +-2.4 / fan-in, the paper's initialisation (appendix A).
        area = self.kernel_size[0] * self.kernel_size[1]
        bounds = torch.tensor([2.4 / (len(row) * area) for row in table])
        fan_ins = torch.tensor([len(row) for row in table])
        self.weight.uniform_(-1, 1).mul_(
            bounds.repeat_interleave(fan_ins, output_size=self.weight.shape[0]).view(-1, 1, 1)
        )
        if self.bias is not None:
            self.bias.uniform_(-1, 1).mul_(bounds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for n, (maps, fan_in) in enumerate(self._groups):
            inputs, rows = getattr(self, f"_inputs{n}"), getattr(self, f"_rows{n}")
            weight = self.weight.index_select(0, rows).view(maps, fan_in, *self.kernel_size)
            outs.append(F.conv2d(x.index_select(1, inputs), weight, None, self.stride, self.padding, groups=maps))
        order: torch.Tensor = self._order  # type: ignore[assignment]
        y = torch.cat(outs, 1).index_select(1, order)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


@register
class PartialConv2d(Block):
    """A convolution whose output maps each see a chosen subset of the input
    maps: LeNet-5's C3, which the paper wires by its Table I to keep the
    number of connections in bounds and to break the symmetry between maps.

    ``table`` lists, per output map, the input maps it reads, so its length is
    the number of output maps. A table in which every row lists every input
    map is an ordinary convolution.
    """

    name = "partial_conv2d"
    fusion = "head"
    keeps_output = False
    rank = 3
    params = (
        Param("table", connection_table, doc="per output map, the input maps it reads: [[0, 1, 2], [1, 2, 3], ...]"),
        Param("kernel_size", pair, low=1, high=MAX_EXTENT, doc="k or [kh, kw]"),
        Param("stride", pair, default=1, low=1, high=MAX_EXTENT),
        Param("padding", pair, default=0, low=0, high=MAX_EXTENT),
        Param("bias", bool, default=True),
    )
    examples = (
        Example({"table": LENET_C3_TABLE, "kernel_size": 5}, ((6, 14, 14),)),
        Example(
            {"table": [[0], [0, 2], [1, 2], [2]], "kernel_size": [3, 2], "stride": 2, "padding": 1, "bias": False},
            ((3, 7, 8),),
        ),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        highest = max(max(row) for row in p.table)
        if highest >= c:
            raise ShapeError(
                f"the table reads input map {highest}, but the input has {c} maps",
                hint=f"use input map indices 0..{c - 1}",
            )
        (kh, kw), (sh, sw), (ph, pw) = map(as_pair, (p.kernel_size, p.stride, p.padding))
        return (len(p.table), sliding_output(h, kh, sh, ph), sliding_output(w, kw, sw, pw))

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        _, h, w = outs[0]
        kh, kw = as_pair(p.kernel_size)
        weights = sum(len(row) for row in p.table) * kh * kw
        return Cost(params=weights + (len(p.table) if p.bias else 0), macs=weights * h * w)

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        (kh, kw), (sh, sw) = as_pair(p.kernel_size), as_pair(p.stride)
        return Window(extent=(kh, kw), stride=(sh, sw))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return PartialConv2dModule(p.table, p.kernel_size, p.stride, p.padding, p.bias)


# --------------------------------------------------------------------------
# Trainable subsampling (LeNet-5's S2 and S4)


class Subsampling2dModule(nn.Module):
    """Sum over each window, times a trainable coefficient, plus a trainable
    bias, per map."""

    def __init__(
        self, channels: int, kernel_size: int | tuple[int, int], stride: int | tuple[int, int], bias: bool = True
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        area = math.prod(as_pair(kernel_size))
        self.area = float(area)
        # Starts as average pooling: coefficient 1 / area, bias 0.
        self.weight = nn.Parameter(torch.full((channels,), 1.0 / area))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The window's mean times its area, not avg_pool2d(divisor_override=1):
        # the ONNX exporter drops divisor_override without a word.
        total = F.avg_pool2d(x, self.kernel_size, self.stride) * self.area
        y = total * self.weight.view(1, -1, 1, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


@register
class Subsampling2d(Block):
    """LeNet-5's sub-sampling layer (S2, S4): the inputs of each window are
    added, multiplied by a trainable coefficient and shifted by a trainable
    bias, one of each per map. The squashing that follows in the paper is a
    separate ``scaled_tanh``."""

    name = "subsampling2d"
    keeps_output = False
    rank = 3
    params = (
        Param("kernel_size", pair, default=2, low=1, high=MAX_EXTENT),
        Param("stride", pair, default=None, low=1, high=MAX_EXTENT, doc="default: kernel_size"),
        Param("bias", bool, default=True),
    )
    examples = (
        Example({}, ((6, 28, 28),)),
        Example({"kernel_size": 3, "stride": [2, 1], "bias": False}, ((2, 7, 6),)),
    )

    def _geometry(self, p: Params) -> tuple[tuple[int, int], tuple[int, int]]:
        return as_pair(p.kernel_size), as_pair(p.stride if p.stride is not None else p.kernel_size)

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c, h, w = ins[0]
        (kh, kw), (sh, sw) = self._geometry(p)
        return (c, sliding_output(h, kh, sh), sliding_output(w, kw, sw))

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        return Cost(params=ins[0][0] * (2 if p.bias else 1))

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        (kh, kw), (sh, sw) = self._geometry(p)
        return Window(extent=(kh, kw), stride=(sh, sw))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return Subsampling2dModule(ins[0][0], p.kernel_size, p.stride or p.kernel_size, p.bias)


# --------------------------------------------------------------------------
# Euclidean RBF output (LeNet-5's output layer)


RBF_CODE_SEED = 5
"""Seed of the +-1 codes that stand in for LeNet-5's hand-drawn class bitmaps."""


def rbf_codes(in_features: int, out_features: int) -> torch.Tensor:
    """The ``out_features x in_features`` +-1 centres of an RBF output.

    Drawn from their own seed, not the global generator: every lowering of
    a network has the same centres (a supernet lowers each subnet anew, and
    a fixed code that changed with each lowering would be a new target each
    time), and the codes of a narrower input are the leading columns of a
    wider one's, as a supernet's windows are the leading features.
    """
    generator = torch.Generator().manual_seed(RBF_CODE_SEED)
    codes = torch.randint(0, 2, (in_features, out_features), generator=generator, dtype=torch.int64)
    return codes.T.contiguous().float() * 2 - 1


class EuclideanRBFModule(nn.Module):
    """``y_i = sum_j (x_j - c_ij)^2``, computed as
    ``|x|^2 - 2 x.c_i + |c_i|^2`` so that the work is one matrix product."""

    def __init__(self, in_features: int, out_features: int, trainable: bool = False) -> None:
        super().__init__()
        # The paper's centres are +-1 codes (stylised 7x12 bitmaps of the
        # characters); fixed random +-1 codes stand in for them.
        centres = rbf_codes(in_features, out_features)
        if trainable:
            self.centres = nn.Parameter(centres)
        else:
            self.register_buffer("centres", centres)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).sum(1, keepdim=True) - 2 * (x @ self.centres.T) + self.centres.pow(2).sum(1)


@register
class EuclideanRBF(Block):
    """LeNet-5's output layer: one Euclidean radial basis function unit per
    class, whose output is the squared distance between the input and the
    unit's centre (a penalty: the smallest output wins).

    The paper chooses the centres by hand and keeps them fixed, so by default
    they are a buffer, not parameters; ``trainable: true`` learns them.
    """

    name = "euclidean_rbf"
    rank = 1
    penalty = True
    params = (
        Param("out_features", int, low=1, high=MAX_CHANNELS, doc="number of RBF units (classes)"),
        Param("trainable", bool, default=False, doc="learn the centres (the paper keeps them fixed)"),
    )
    examples = (Example({"out_features": 10}, ((84,),)), Example({"out_features": 3, "trainable": True}, ((5,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return (p.out_features,)

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        weights = ins[0][0] * p.out_features
        return Cost(params=weights if p.trainable else 0, macs=weights)

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return EuclideanRBFModule(ins[0][0], p.out_features, p.trainable)


# --------------------------------------------------------------------------
# Local response normalisation (AlexNet)


@register
class LocalResponseNorm(Block):
    """Local response normalisation across channels, with the semantics of
    ``torch.nn.LocalResponseNorm``: ``b_c = a_c / (k + alpha / size *
    sum a_c'^2) ** beta`` over the ``size`` neighbouring channels.

    Krizhevsky et al. (2012) write the sum without dividing by ``size``: their
    ``alpha = 1e-4`` with ``size = 5`` is ``alpha: 0.0005`` here.
    """

    name = "lrn"
    rank = 3
    params = (
        Param("size", int, default=5, low=1, high=MAX_CHANNELS, doc="channels in the window, n"),
        Param("alpha", float, default=1e-4, low=0.0, high=1e3, doc="scale of the mean of squares"),
        Param("beta", float, default=0.75, low=0.0, high=1e3, doc="exponent"),
        Param("k", float, default=1.0, low=0.0, high=1e3, doc="additive constant"),
    )
    examples = (
        Example({}, ((8, 5, 5),)),
        Example({"size": 3, "alpha": 5e-4, "beta": 0.5, "k": 2.0}, ((4, 3, 6),)),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(F.local_response_norm, dict(p))


# --------------------------------------------------------------------------
# Average plus max pooling


def avg_max_pool2d(
    x: torch.Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int],
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """``avg_pool2d(x) + max_pool2d(x)`` over the same windows."""
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode) + F.max_pool2d(
        x, kernel_size, stride, padding, 1, ceil_mode
    )


@register
class AvgMaxPool2d(SlidingPool2d):
    """The sum of average and max pooling over the same windows: the mean
    keeps the context that max pooling drops, the max the peak that averaging
    blurs (a parameter-free mixed pooling)."""

    name = "avg_max_pool2d"
    params = (KERNEL_SIZE, POOL_STRIDE, PADDING, CEIL_MODE)
    examples = (
        Example({"kernel_size": 2}, ((3, 8, 8),)),
        Example({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, ((2, 10, 9),)),
    )

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        kernel, stride, padding, _ = self._geometry(p)
        return Call(
            avg_max_pool2d, {"kernel_size": kernel, "stride": stride, "padding": padding, "ceil_mode": p.ceil_mode}
        )
