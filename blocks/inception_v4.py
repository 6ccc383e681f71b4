"""Inception-v4 and Inception-ResNet modules (Szegedy, Ioffe, Vanhoucke, Alemi,
"Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning", arXiv:1602.07261, 2016).

Every convolution is TF-slim's ``BasicConv2d`` (convolution without bias,
batch norm with epsilon 0.001, ReLU), i.e. a ``conv_bn_act``. Branch widths
are parameters, written as the widths of a branch's convolutions in the
order they run, so a search can widen or narrow one branch by changing one
value; the defaults are the paper's widths as timm builds them.

Names follow the paper's figures: ``inception_v4_a`` / ``_b`` / ``_c`` (Figures
4 to 6), ``inception_v4_reduction_a`` (Figure 7, with Table 1's k, l, m, n)
and ``_reduction_b`` (Figure 8), the stem pieces of Figure 3, and the
residual ``inception_resnet_a`` / ``_b`` / ``_c`` (Figures 16, 17, 19) with
``inception_resnet_reduction_b`` (Figure 18).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from nas.ir.graph import Graph, Ref
from nas.ir.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Block,
    Call,
    Composite,
    Example,
    Param,
    Params,
    Shape,
    get_block,
    register,
)

EPS = 1e-3
"""Batch norm epsilon of TF-slim, where these nets and their weights come from."""


def branch_widths(count: int) -> Callable[[Any], tuple[int, ...]]:
    """A parameter kind: the widths of a branch's ``count`` convolutions, in order."""

    def check(value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or len(value) != count:
            raise TypeError(f"a list of {count} widths")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise TypeError(f"a list of {count} integer widths")
        return tuple(value)

    return check


def _widths(name: str, default: tuple[int, ...], doc: str) -> Param:
    return Param(
        name, branch_widths(len(default)), default=default, low=1, high=MAX_CHANNELS, doc=f"widths of the {doc}"
    )


def _width(name: str, default: int, doc: str) -> Param:
    return Param(name, int, default=default, low=1, high=MAX_CHANNELS, doc=doc)


def odd_kernel(value: Any) -> int:
    """A parameter kind: an odd kernel size, so that "same" padding keeps the
    grid and the branches can be concatenated (or added to the input)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an odd integer")
    if value % 2 == 0:
        raise ValueError(f"an odd kernel size, so that the branches keep the grid size, got {value}")
    return value


def _kernel(default: int, doc: str) -> Param:
    return Param("kernel_size", odd_kernel, default=default, low=1, high=MAX_EXTENT, doc=doc)


def _unit(
    g: Graph,
    name: str,
    x: Ref,
    out_channels: int,
    kernel: int | tuple[int, int],
    stride: int = 1,
    padding: int | None = None,
) -> Ref:
    """A ``BasicConv2d``; ``padding`` None means "same" (half the kernel), 0 "valid"."""
    extra = {} if padding is None else {"padding": padding}
    return g.add(name, "conv_bn_act", x, out_channels=out_channels, kernel_size=kernel, stride=stride, eps=EPS, **extra)


def _chain(g: Graph, prefix: str, x: Ref, widths: Sequence[int], kernels: Sequence[int | tuple[int, int]]) -> Ref:
    """Stride-1 "same" units one after another, named ``prefix_0``, ``prefix_1`` ..."""
    for i, (width, kernel) in enumerate(zip(widths, kernels)):
        x = _unit(g, f"{prefix}_{i}", x, width, kernel)
    return x


def _pool_proj(g: Graph, x: Ref, width: int) -> Ref:
    """3x3 average pooling (padding not counted, as TF-slim) then a 1x1 unit."""
    pool = g.add("branch3_pool", "avg_pool2d", x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    return _unit(g, "branch3", pool, width, 1)


def _max_pool(g: Graph, name: str, x: Ref) -> Ref:
    return g.add(name, "max_pool2d", x, kernel_size=3, stride=2)


def _factorized(k: int, pattern: str) -> list[tuple[int, int]]:
    """Kernels of a factorized branch: ``"r"`` is 1 x k, ``"c"`` is k x 1."""
    return [(1, k) if step == "r" else (k, 1) for step in pattern]


def _concat(g: Graph, branches: Sequence[Ref]) -> None:
    g.set_outputs(g.add("concat", "concat", list(branches)))


def _check_act(act: str) -> None:
    if act != "none":
        get_block(act)  # an unknown name fails here, with suggestions


# --------------------------------------------------------------------------
# Residual scaling.


@register
class Scale(Block):
    """Multiplication by a constant ``factor``. Inception-ResNet scales each
    residual by 0.1 to 0.3 before adding it (Section 3.3), which the paper
    found necessary to keep nets with over 1000 filters from dying early in
    training. Element-wise, so it costs no MACs."""

    name = "scale"
    keeps_output = False
    params = (Param("factor", float, low=-1e6, high=1e6, doc="the constant multiplier"),)
    examples = (Example({"factor": 0.17}, ((4, 5, 5),)), Example({"factor": -2}, ((6,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(torch.mul, {"other": p.factor}, inplace="mul_")


# --------------------------------------------------------------------------
# The stem (Figure 3).


@register
class InceptionV4StemReduction(Composite):
    """Grid reduction of the stem: 3x3 max pooling and a 3x3 convolution, both
    stride 2 and unpadded, concatenated (timm's ``Mixed3a`` with the pool
    first, ``Mixed5a`` with the convolution first). Halving the grid this way
    avoids both a representational bottleneck and the cost of convolving
    before pooling (Szegedy et al. 2015, Inception-v3, Section 5)."""

    name = "inception_v4_stem_reduction"
    rank = 3
    params = (
        Param("out_channels", int, low=1, high=MAX_CHANNELS, doc="width of the convolution branch"),
        Param("pool_first", bool, default=False, doc="concatenate the pooled branch first"),
    )
    examples = (
        Example({"out_channels": 6}, ((4, 9, 9),)),
        Example({"out_channels": 5, "pool_first": True}, ((3, 8, 8),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        if p.pool_first:
            branches = [_max_pool(g, "maxpool", x), _unit(g, "conv", x, p.out_channels, 3, 2, 0)]
        else:
            branches = [_unit(g, "conv", x, p.out_channels, 3, 2, 0), _max_pool(g, "maxpool", x)]
        _concat(g, branches)
        return g


@register
class InceptionV4StemBranches(Composite):
    """The stem's two-branch module (timm's ``Mixed4a``): a 1x1 then an
    unpadded 3x3, beside a 1x1, a factorized k x k (1 x k then k x 1) and an
    unpadded 3x3; the grid shrinks by 2."""

    name = "inception_v4_stem_branches"
    rank = 3
    params = (
        _widths("branch_single", (64, 96), "1x1, 3x3"),
        _widths("branch_factorized", (64, 64, 64, 96), "1x1, 1xk, kx1, 3x3"),
        _kernel(7, "k of the factorized branch"),
    )
    examples = (Example({"branch_single": [4, 6], "branch_factorized": [4, 3, 5, 6], "kernel_size": 3}, ((5, 7, 7),)),)

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        s, f = p.branch_single, p.branch_factorized
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0_1", _unit(g, "branch0_0", x, s[0], 1), s[1], 3, padding=0)
        b1 = _chain(g, "branch1", x, f[:3], [1, *_factorized(p.kernel_size, "rc")])
        b1 = _unit(g, "branch1_3", b1, f[3], 3, padding=0)
        _concat(g, [b0, b1])
        return g


# --------------------------------------------------------------------------
# Inception-v4 modules (Figures 4 to 8).


@register
class InceptionV4A(Composite):
    """Inception-A, the 35x35 module (Figure 4): a 1x1; a 1x1 then a k x k;
    a 1x1 then two 3x3; 3x3 average pooling then a 1x1. With
    ``kernel_size: 5`` and other widths it is Inception-ResNet-v2's
    ``Mixed_5b`` (TF-slim)."""

    name = "inception_v4_a"
    rank = 3
    params = (
        _width("out_1x1", 96, "width of the 1x1 branch"),
        _widths("branch_single", (64, 96), "1x1, kxk"),
        _widths("branch_double", (64, 96, 96), "1x1, 3x3, 3x3"),
        _width("pool_proj", 96, "width of the 1x1 after average pooling"),
        _kernel(3, "k of branch_single's second convolution"),
    )
    examples = (
        Example({"out_1x1": 4, "branch_single": [3, 4], "branch_double": [3, 4, 5], "pool_proj": 2}, ((6, 5, 5),)),
        Example(
            {"out_1x1": 2, "branch_single": [2, 3], "branch_double": [2, 3, 3], "pool_proj": 2, "kernel_size": 5},
            ((4, 6, 6),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0", x, p.out_1x1, 1)
        b1 = _chain(g, "branch1", x, p.branch_single, [1, p.kernel_size])
        b2 = _chain(g, "branch2", x, p.branch_double, [1, 3, 3])
        _concat(g, [b0, b1, b2, _pool_proj(g, x, p.pool_proj)])
        return g


@register
class InceptionV4B(Composite):
    """Inception-B, the 17x17 module (Figure 5): a 1x1; a 1x1 then a
    factorized k x k (1 x k, k x 1); a 1x1 then two factorized k x k (k x 1,
    1 x k, k x 1, 1 x k); 3x3 average pooling then a 1x1."""

    name = "inception_v4_b"
    rank = 3
    params = (
        _width("out_1x1", 384, "width of the 1x1 branch"),
        _widths("branch_single", (192, 224, 256), "1x1, 1xk, kx1"),
        _widths("branch_double", (192, 192, 224, 224, 256), "1x1, kx1, 1xk, kx1, 1xk"),
        _width("pool_proj", 128, "width of the 1x1 after average pooling"),
        _kernel(7, "k of the factorized convolutions"),
    )
    examples = (
        Example(
            {
                "out_1x1": 4,
                "branch_single": [3, 4, 5],
                "branch_double": [3, 3, 4, 4, 5],
                "pool_proj": 2,
                "kernel_size": 3,
            },
            ((6, 5, 5),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        k = p.kernel_size
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0", x, p.out_1x1, 1)
        b1 = _chain(g, "branch1", x, p.branch_single, [1, *_factorized(k, "rc")])
        b2 = _chain(g, "branch2", x, p.branch_double, [1, *_factorized(k, "crcr")])
        _concat(g, [b0, b1, b2, _pool_proj(g, x, p.pool_proj)])
        return g


@register
class InceptionV4C(Composite):
    """Inception-C, the 8x8 module (Figure 6), whose expanded filter banks
    split into 1 x k and k x 1 side by side: a 1x1; a 1x1 then the split; a
    1x1, k x 1, 1 x k then the split; 3x3 average pooling then a 1x1. Each
    split gives its last width twice."""

    name = "inception_v4_c"
    rank = 3
    params = (
        _width("out_1x1", 256, "width of the 1x1 branch"),
        _widths("branch_single", (384, 256), "1x1, then 1xk and kx1 side by side"),
        _widths("branch_double", (384, 448, 512, 256), "1x1, kx1, 1xk, then 1xk and kx1 side by side"),
        _width("pool_proj", 256, "width of the 1x1 after average pooling"),
        _kernel(3, "k of the factorized convolutions"),
    )
    examples = (
        Example({"out_1x1": 4, "branch_single": [3, 2], "branch_double": [3, 4, 5, 2], "pool_proj": 2}, ((6, 4, 4),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        row, column = _factorized(p.kernel_size, "rc")
        s, d = p.branch_single, p.branch_double
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0", x, p.out_1x1, 1)
        b1 = _unit(g, "branch1_0", x, s[0], 1)
        b1a, b1b = _unit(g, "branch1_1a", b1, s[1], row), _unit(g, "branch1_1b", b1, s[1], column)
        b2 = _chain(g, "branch2", x, d[:3], [1, column, row])
        b2a, b2b = _unit(g, "branch2_3a", b2, d[3], row), _unit(g, "branch2_3b", b2, d[3], column)
        # One concatenation of all six tensors equals the reference's nested ones.
        _concat(g, [b0, b1a, b1b, b2a, b2b, _pool_proj(g, x, p.pool_proj)])
        return g


@register
class InceptionV4ReductionA(Composite):
    """Reduction-A, 35x35 to 17x17 (Figure 7): an unpadded stride-2 3x3 of
    width n; a 1x1 (k), a 3x3 (l) and an unpadded stride-2 3x3 (m); 3x3
    stride-2 max pooling. Table 1 gives (k, l, m, n) per net: (192, 224,
    256, 384) for Inception-v4, (256, 256, 384, 384) for
    Inception-ResNet-v2."""

    name = "inception_v4_reduction_a"
    rank = 3
    params = (
        _width("out_3x3", 384, "n: width of the single 3x3 branch"),
        _widths("branch_double", (192, 224, 256), "k, l, m: 1x1, 3x3, stride-2 3x3"),
    )
    examples = (Example({"out_3x3": 4, "branch_double": [2, 3, 5]}, ((6, 9, 9),)),)

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        d = p.branch_double
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0", x, p.out_3x3, 3, 2, 0)
        b1 = _unit(g, "branch1_2", _chain(g, "branch1", x, d[:2], [1, 3]), d[2], 3, 2, 0)
        _concat(g, [b0, b1, _max_pool(g, "branch2", x)])
        return g


@register
class InceptionV4ReductionB(Composite):
    """Reduction-B of Inception-v4, 17x17 to 8x8 (Figure 8): a 1x1 then an
    unpadded stride-2 3x3; a 1x1, a factorized k x k (1 x k, k x 1) and an
    unpadded stride-2 3x3; 3x3 stride-2 max pooling."""

    name = "inception_v4_reduction_b"
    rank = 3
    params = (
        _widths("branch_single", (192, 192), "1x1, stride-2 3x3"),
        _widths("branch_factorized", (256, 256, 320, 320), "1x1, 1xk, kx1, stride-2 3x3"),
        _kernel(7, "k of the factorized convolutions"),
    )
    examples = (Example({"branch_single": [3, 4], "branch_factorized": [3, 3, 4, 5], "kernel_size": 3}, ((6, 9, 9),)),)

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        s, f = p.branch_single, p.branch_factorized
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0_1", _unit(g, "branch0_0", x, s[0], 1), s[1], 3, 2, 0)
        b1 = _chain(g, "branch1", x, f[:3], [1, *_factorized(p.kernel_size, "rc")])
        b1 = _unit(g, "branch1_3", b1, f[3], 3, 2, 0)
        _concat(g, [b0, b1, _max_pool(g, "branch2", x)])
        return g


# --------------------------------------------------------------------------
# Inception-ResNet modules (Figures 16 to 19).


_SCALE_DOC = "residual scaling factor (Section 3.3)"
_ACT = Param("act", str, default="relu", doc="activation after the sum (relu, ..., none)")


def _residual(g: Graph, x: Ref, branches: Sequence[Ref], channels: int, p: Params) -> None:
    """Concatenate, project back to ``channels`` with a linear 1x1 (with bias,
    no batch norm), scale, add the input and activate."""
    up = g.add("conv2d", "conv2d", g.add("concat", "concat", list(branches)), out_channels=channels, kernel_size=1)
    y = g.add("add", "add", [g.add("scale", "scale", up, factor=p.scale), x])
    g.set_outputs(g.add("act", p.act, y) if p.act != "none" else y)


@register
class InceptionResNetA(Composite):
    """Inception-ResNet-A, the 35x35 residual module (Figure 16): a 1x1; a
    1x1 then a 3x3; a 1x1 then two 3x3; concatenated, projected back to the
    input width by a linear 1x1, scaled and added to the input."""

    name = "inception_resnet_a"
    rank = 3
    params = (
        _width("out_1x1", 32, "width of the 1x1 branch"),
        _widths("branch_single", (32, 32), "1x1, 3x3"),
        _widths("branch_double", (32, 48, 64), "1x1, 3x3, 3x3"),
        Param("scale", float, default=0.17, low=0.0, high=1.0, doc=_SCALE_DOC),
        _ACT,
    )
    examples = (
        Example({"out_1x1": 2, "branch_single": [2, 3], "branch_double": [2, 3, 4]}, ((6, 5, 5),)),
        Example(
            {"out_1x1": 2, "branch_single": [2, 2], "branch_double": [2, 2, 2], "scale": 1.0, "act": "none"},
            ((3, 4, 4),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        _check_act(p.act)
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0", x, p.out_1x1, 1)
        b1 = _chain(g, "branch1", x, p.branch_single, [1, 3])
        b2 = _chain(g, "branch2", x, p.branch_double, [1, 3, 3])
        _residual(g, x, [b0, b1, b2], ins[0][0], p)
        return g


class _FactorizedResidual(Composite):
    """A 1x1 beside a 1x1 and a factorized k x k (1 x k then k x 1), as a
    residual: Inception-ResNet-B (k = 7) and -C (k = 3) differ only in
    widths, kernel and scale."""

    rank = 3

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        _check_act(p.act)
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0", x, p.out_1x1, 1)
        b1 = _chain(g, "branch1", x, p.branch_factorized, [1, *_factorized(p.kernel_size, "rc")])
        _residual(g, x, [b0, b1], ins[0][0], p)
        return g


@register
class InceptionResNetB(_FactorizedResidual):
    """Inception-ResNet-B, the 17x17 residual module (Figure 17; timm's
    ``Block17``)."""

    name = "inception_resnet_b"
    params = (
        _width("out_1x1", 192, "width of the 1x1 branch"),
        _widths("branch_factorized", (128, 160, 192), "1x1, 1xk, kx1"),
        _kernel(7, "k of the factorized convolutions"),
        Param("scale", float, default=0.1, low=0.0, high=1.0, doc=_SCALE_DOC),
        _ACT,
    )
    examples = (Example({"out_1x1": 3, "branch_factorized": [2, 3, 4], "kernel_size": 3}, ((5, 5, 5),)),)


@register
class InceptionResNetC(_FactorizedResidual):
    """Inception-ResNet-C, the 8x8 residual module (Figure 19; timm's
    ``Block8``). The last one of Inception-ResNet-v2 has scale 1 and no
    activation (``act: none``), as in TF-slim."""

    name = "inception_resnet_c"
    params = (
        _width("out_1x1", 192, "width of the 1x1 branch"),
        _widths("branch_factorized", (192, 224, 256), "1x1, 1xk, kx1"),
        _kernel(3, "k of the factorized convolutions"),
        Param("scale", float, default=0.2, low=0.0, high=1.0, doc=_SCALE_DOC),
        _ACT,
    )
    examples = (
        Example({"out_1x1": 3, "branch_factorized": [2, 3, 4]}, ((5, 4, 4),)),
        Example({"out_1x1": 2, "branch_factorized": [2, 2, 3], "scale": 1.0, "act": "none"}, ((4, 3, 3),)),
    )


@register
class InceptionResNetReductionB(Composite):
    """Reduction-B of Inception-ResNet, 17x17 to 8x8 (Figure 18): three
    branches ending in an unpadded stride-2 3x3 (a 1x1 before it; a 1x1
    before it; a 1x1 and a 3x3 before it) beside 3x3 stride-2 max pooling."""

    name = "inception_resnet_reduction_b"
    rank = 3
    params = (
        _widths("branch_3x3_a", (256, 384), "1x1, stride-2 3x3"),
        _widths("branch_3x3_b", (256, 288), "1x1, stride-2 3x3"),
        _widths("branch_double", (256, 288, 320), "1x1, 3x3, stride-2 3x3"),
    )
    examples = (Example({"branch_3x3_a": [2, 3], "branch_3x3_b": [2, 4], "branch_double": [2, 3, 5]}, ((6, 9, 9),)),)

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        a, b, d = p.branch_3x3_a, p.branch_3x3_b, p.branch_double
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        b0 = _unit(g, "branch0_1", _unit(g, "branch0_0", x, a[0], 1), a[1], 3, 2, 0)
        b1 = _unit(g, "branch1_1", _unit(g, "branch1_0", x, b[0], 1), b[1], 3, 2, 0)
        b2 = _unit(g, "branch2_2", _chain(g, "branch2", x, d[:2], [1, 3]), d[2], 3, 2, 0)
        _concat(g, [b0, b1, b2, _max_pool(g, "branch3", x)])
        return g
