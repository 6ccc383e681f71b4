"""Pooling and unpooling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import torch
from torch import nn

from nas.ir.errors import ShapeError
from nas.ir.registry import (
    MAX_EXTENT,
    Block,
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


class SlidingPool2d(Block):
    """Shared rule of sliding-window pooling: kernel, stride (default: the
    kernel), padding, ceil_mode."""

    rank = 3
    keeps_output = False

    def _geometry(self, p: Params) -> tuple[tuple[int, int], ...]:
        kernel = as_pair(p.kernel_size)
        stride = as_pair(p.stride if p.stride is not None else p.kernel_size)
        dilation = as_pair(p.get("dilation", 1))
        return kernel, stride, as_pair(p.padding), dilation

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape | tuple[Shape, ...]:
        c, h, w = ins[0]
        kernel, stride, padding, dilation = self._geometry(p)
        if any(2 * pad > k for pad, k in zip(padding, kernel)):
            raise ShapeError(
                f"padding {p.padding} is more than half the kernel {p.kernel_size}",
                hint="use padding <= kernel_size // 2",
            )
        out = (
            c,
            *(
                sliding_output(n, k, s, pad, d, p.ceil_mode)
                for n, k, s, pad, d in zip((h, w), kernel, stride, padding, dilation)
            ),
        )
        return (out, out) if len(self.output_names(p)) == 2 else out

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        kernel, stride, _, dilation = self._geometry(p)
        return Window(
            extent=(dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1),
            stride=(stride[0], stride[1]),
        )


KERNEL_SIZE = Param("kernel_size", pair, low=1, high=MAX_EXTENT)
POOL_STRIDE = Param("stride", pair, default=None, low=1, high=MAX_EXTENT, doc="default: kernel_size")
PADDING = Param("padding", pair, default=0, low=0, high=MAX_EXTENT)
CEIL_MODE = Param("ceil_mode", bool, default=False, doc="round the output size up")


@register
class MaxPool2d(SlidingPool2d):
    """Max pooling; overlapping when ``stride < kernel_size`` (AlexNet).

    With ``return_indices: true`` it has a second output, ``indices``, that a
    ``max_unpool2d`` later consumes (ENet, SegNet).
    """

    name = "max_pool2d"
    params = (
        KERNEL_SIZE,
        POOL_STRIDE,
        PADDING,
        Param("dilation", pair, default=1, low=1, high=MAX_EXTENT),
        CEIL_MODE,
        Param("return_indices", bool, default=False),
    )
    outputs = ("out", "indices")
    examples = (
        Example({"kernel_size": 3, "stride": 2}, ((3, 9, 9),)),
        Example({"kernel_size": 3, "stride": 2, "ceil_mode": True, "padding": 1}, ((2, 10, 10),)),
        Example({"kernel_size": 2, "return_indices": True}, ((2, 6, 6),)),
    )

    def output_names(self, p: Params) -> tuple[str, ...]:
        return self.outputs if p.return_indices else self.outputs[:1]

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.MaxPool2d(p.kernel_size, p.stride, p.padding, p.dilation, p.return_indices, p.ceil_mode)


@register
class AvgPool2d(SlidingPool2d):
    """Average pooling (LeNet's subsampling without its trainable scale)."""

    name = "avg_pool2d"
    params = (KERNEL_SIZE, POOL_STRIDE, PADDING, CEIL_MODE, Param("count_include_pad", bool, default=True))
    examples = (
        Example({"kernel_size": 2}, ((3, 8, 8),)),
        Example({"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}, ((3, 5, 5),)),
    )

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        return nn.AvgPool2d(p.kernel_size, p.stride, p.padding, p.ceil_mode, p.count_include_pad)


class _Adaptive(Block):
    rank = 3
    keeps_output = False
    params = (Param("output_size", pair, default=1, low=1, high=MAX_EXTENT, doc="1: global pooling"),)
    examples = (Example({}, ((5, 7, 7),)), Example({"output_size": [2, 3]}, ((3, 7, 8),)))
    module: type[nn.Module]
    reduce: str

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        c = ins[0][0]
        return (c, *as_pair(p.output_size))

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        # Output i pools input cells [floor(i*n/o), ceil((i+1)*n/o)).
        sizes = ins[0][1:]
        extent = tuple(
            max(math.ceil((i + 1) * n / o) - (i * n) // o for i in range(o))
            for n, o in zip(sizes, as_pair(p.output_size))
        )
        return Window(extent=extent, stride=tuple(Fraction(n, o) for n, o in zip(sizes, as_pair(p.output_size))))  # type: ignore[arg-type]

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        sizes, outputs = ins[0][1:], as_pair(p.output_size)
        if all(n % o == 0 for n, o in zip(sizes, outputs)):
            return type(self).module(p.output_size)
        # Uneven windows: ONNX's exporter refuses the native operator, so
        # spell out the windows (same values) where the sizes are known.
        return SeparablePool2d(type(self).reduce, sizes, outputs)  # type: ignore[arg-type]


@register
class AdaptiveAvgPool2d(_Adaptive):
    """Average pooling to a fixed output size; size 1 is global average pooling (NiN, GoogLeNet, ResNet)."""

    name = "adaptive_avg_pool2d"
    module = nn.AdaptiveAvgPool2d
    reduce = "mean"


@register
class AdaptiveMaxPool2d(_Adaptive):
    """Max pooling to a fixed output size; size 1 is global max pooling."""

    name = "adaptive_max_pool2d"
    module = nn.AdaptiveMaxPool2d
    reduce = "amax"


class SeparablePool2d(nn.Module):
    """Adaptive pooling of a known input size with its windows spelled out:
    output ``i`` of a side of ``n`` cells pooled to ``o`` reduces cells
    ``[floor(i*n/o), ceil((i+1)*n/o))`` (PyTorch's rule). A mean or a max
    over a rectangle is a reduction over its rows, then over its columns, so
    ``o_h + o_w`` slices do it. Equal to ``nn.AdaptiveAvgPool2d`` /
    ``nn.AdaptiveMaxPool2d``, and, unlike them for sizes that do not divide,
    exportable to ONNX."""

    def __init__(self, reduce: str, sizes: tuple[int, int], outputs: tuple[int, int]) -> None:
        super().__init__()
        self.reduce = reduce
        self.rows, self.cols = (
            [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)] for n, o in zip(sizes, outputs)
        )

    def _pool(self, x: torch.Tensor, windows: list[tuple[int, int]], dim: int) -> torch.Tensor:
        parts = [getattr(x.narrow(dim, a, b - a), self.reduce)(dim, keepdim=True) for a, b in windows]
        return torch.cat(parts, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self._pool(x, self.rows, 2), self.cols, 3)

    def extra_repr(self) -> str:
        return f"{self.reduce}, outputs=({len(self.rows)}, {len(self.cols)})"


@register
class MaxUnpool2d(Block):
    """Inverse of max pooling: scatters its first input to the positions in
    its second input, the ``indices`` output of a ``max_pool2d``."""

    name = "max_unpool2d"
    rank = 3
    params = (KERNEL_SIZE, POOL_STRIDE, PADDING)
    arity = (2, 2)
    examples = (
        Example(
            source="""
inputs: {x: [3, 8, 8]}
nodes:
  pool: {block: max_pool2d, in: x, kernel_size: 2, return_indices: true}
  unpool: {block: max_unpool2d, in: [pool, pool.indices], kernel_size: 2}
outputs: [unpool]
"""
        ),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        x, indices = ins
        c, h, w = x
        if indices != x:
            raise ShapeError(
                f"the indices {indices} must have the shape of input 0, {x}",
                hint="feed the 'indices' output of the matching max_pool2d",
            )
        kernel, stride, padding = as_pair(p.kernel_size), as_pair(p.stride or p.kernel_size), as_pair(p.padding)
        return (c, *((n - 1) * s - 2 * pad + k for n, k, s, pad in zip((h, w), kernel, stride, padding)))

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        sh, sw = as_pair(p.stride or p.kernel_size)
        return Window(stride=(Fraction(1, sh), Fraction(1, sw)))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        _, h, w = self.infer(p, ins)
        return ScatterUnpool2d((h, w))


class ScatterUnpool2d(nn.Module):
    """``max_unpool2d`` to a known output size, written as a scatter into a
    zero plane: the values and gradients of ``nn.MaxUnpool2d`` (its indices
    are positions in each flattened output plane), but, unlike it, traceable
    by ``torch.jit.trace`` and expressible in ONNX (``ScatterElements``), so
    a network that unpools (ENet, SegNet) exports to every format."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        plane = x.new_zeros(n, c, self.size[0] * self.size[1])
        return plane.scatter(2, indices.flatten(2), x.flatten(2)).view(n, c, self.size[0], self.size[1])

    def extra_repr(self) -> str:
        return f"size={self.size}"
