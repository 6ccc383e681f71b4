"""Inception modules, v1 to v3: parallel branches of convolutions and a pooling
path, concatenated along channels.

* ``inception_v1``: GoogLeNet's module with 1x1 bottlenecks (Szegedy et al.,
  "Going Deeper with Convolutions", 2014, Figure 2b).
* ``inception_aux``: GoogLeNet's auxiliary classifier, a training-only
  head (section 5 of the same paper).
* ``inception_bn``: BN-Inception's module, the 5x5 branch replaced by two
  3x3 convolutions, average or max pooling, and a stride-2 variant whose
  pooling path passes the input through (Ioffe & Szegedy, "Batch
  Normalization", 2015, Figure 5).
* ``inception_v3_a`` ... ``inception_v3_e``: Inception v3's modules
  (Szegedy et al., "Rethinking the Inception Architecture for Computer
  Vision", 2015): n x 1 / 1 x n factorisations and grid reductions.

Every convolution is a ``conv_bn_act`` and the branches meet in a ``concat``.
Node names follow torchvision's ``Inception3`` (``branch1x1``,
``branch5x5_1``, ...) and nodes are added in the order torchvision registers
its modules, so the lowered weights line up with the reference's. Widths
default to the values of the first module of their kind in the reference
nets, and every width is a parameter a search can vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.ir.errors import ParamError
from nas.ir.graph import Graph, Ref
from nas.ir.registry import MAX_CHANNELS, MAX_EXTENT, Composite, Example, Param, Params, Shape, register

_TORCHVISION_EPS = Param("eps", float, default=1e-3, low=0.0, high=1.0, doc="batch norm epsilon (torchvision: 0.001)")


def _width(name: str, default: Any, doc: str = "", low: int = 1) -> Param:
    return Param(name, int, default=default, low=low, high=MAX_CHANNELS, doc=doc)


def _odd(p: Params, field: str) -> int:
    """Branches keep the grid size only with odd kernels ("same" padding)."""
    k: int = p[field]
    if k % 2 == 0:
        raise ParamError(
            f"the branches must keep the grid size, which needs an odd kernel, got {k}",
            field=field,
            hint=f"set {field} to {k - 1} or {k + 1}",
        )
    return k


def _chain(g: Graph, x: Ref, prefix: str, convs: Sequence[tuple[int, Any, dict[str, Any]]], **common: Any) -> Ref:
    """A branch: ``conv_bn_act`` nodes ``{prefix}_1``, ``{prefix}_2``, ...,
    each given ``(out_channels, kernel_size, extra parameters)``."""
    for i, (width, kernel, extra) in enumerate(convs, 1):
        x = g.add(f"{prefix}_{i}", "conv_bn_act", x, out_channels=width, kernel_size=kernel, **common, **extra)
    return x


@register
class InceptionV1(Composite):
    """GoogLeNet's Inception module with 1x1 bottlenecks (Inception v1).

    Branches: 1x1; 1x1 reduce then 3x3; 1x1 reduce then "5x5"; 3x3 max
    pooling then a 1x1 projection.

    ``kernel_5x5`` is the kernel of the "5x5" branch: 5 in the paper, 3 in
    torchvision's GoogLeNet (pytorch/vision#906), which this block
    reproduces exactly with ``kernel_5x5: 3``. ``norm: none`` gives the
    paper's convolutions with bias and no batch norm; the default is
    torchvision's ``BasicConv2d`` (batch norm, eps 0.001).
    """

    name = "inception_v1"
    rank = 3
    params = (
        _width("ch1x1", 64, "#1x1"),
        _width("ch3x3red", 96, "#3x3 reduce"),
        _width("ch3x3", 128, "#3x3"),
        _width("ch5x5red", 16, "#5x5 reduce"),
        _width("ch5x5", 32, "#5x5"),
        _width("pool_proj", 32, "1x1 projection after max pooling"),
        Param("kernel_5x5", int, default=5, low=1, high=MAX_EXTENT, doc="kernel of the '5x5' branch (odd)"),
        Param("norm", str, default="batch_norm", choices=("batch_norm", "none")),
        _TORCHVISION_EPS,
    )
    examples = (
        Example({"ch1x1": 4, "ch3x3red": 3, "ch3x3": 5, "ch5x5red": 2, "ch5x5": 3, "pool_proj": 2}, ((6, 7, 7),)),
        Example(
            {"ch1x1": 2, "ch3x3red": 2, "ch3x3": 3, "ch5x5red": 2, "ch5x5": 4, "pool_proj": 3, "kernel_5x5": 3},
            ((4, 5, 6),),
        ),
        Example(
            {"ch1x1": 3, "ch3x3red": 2, "ch3x3": 2, "ch5x5red": 1, "ch5x5": 2, "pool_proj": 1, "norm": "none"},
            ((3, 6, 6),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        k5 = _odd(p, "kernel_5x5")
        conv: dict[str, Any] = {"norm": "none", "bias": True} if p.norm == "none" else {"eps": p.eps}
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        branches = [
            g.add("branch1x1", "conv_bn_act", x, out_channels=p.ch1x1, kernel_size=1, **conv),
            _chain(g, x, "branch3x3", [(p.ch3x3red, 1, {}), (p.ch3x3, 3, {})], **conv),
            _chain(g, x, "branch5x5", [(p.ch5x5red, 1, {}), (p.ch5x5, k5, {})], **conv),
        ]
        pool = g.add("pool", "max_pool2d", x, kernel_size=3, stride=1, padding=1)
        branches.append(g.add("branch_pool", "conv_bn_act", pool, out_channels=p.pool_proj, kernel_size=1, **conv))
        g.set_outputs(g.add("concat", "concat", branches))
        return g


@register
class InceptionAux(Composite):
    """GoogLeNet's auxiliary classifier (Szegedy et al. 2014, section 5), a
    training-only head on modules 4a and 4d whose loss is added with weight
    0.3 and which is removed at inference.

    5x5 average pooling with stride 3, a 1x1 convolution (128 filters) with
    ReLU, a fully connected layer (1024 units) with ReLU, dropout (70%) and
    a linear classifier. ``norm: none`` (the default) is the paper's; with
    ``batch_norm`` the convolution is torchvision's ``BasicConv2d``.
    """

    name = "inception_aux"
    rank = 3
    params = (
        _width("conv_channels", 128, "1x1 convolution after the pooling"),
        _width("hidden", 1024, "units of the fully connected layer"),
        _width("classes", 1000),
        Param("dropout", float, default=0.7, low=0.0, high=0.99),
        Param("norm", str, default="none", choices=("batch_norm", "none")),
    )
    examples = (
        Example({"conv_channels": 4, "hidden": 8, "classes": 3}, ((6, 8, 8),)),
        Example({"conv_channels": 3, "hidden": 5, "classes": 2, "norm": "batch_norm"}, ((4, 14, 14),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        conv: dict[str, Any] = {"norm": "none", "bias": True} if p.norm == "none" else {"eps": 1e-3}
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        y = g.add("pool", "avg_pool2d", x, kernel_size=5, stride=3)
        y = g.add("conv", "conv_bn_act", y, out_channels=p.conv_channels, kernel_size=1, **conv)
        y = g.add("flatten", "flatten", y)
        y = g.add("relu", "relu", g.add("fc1", "linear", y, out_features=p.hidden))
        y = g.add("dropout", "dropout", y, p=p.dropout)
        g.set_outputs(g.add("fc2", "linear", y, out_features=p.classes))
        return g


@register
class InceptionBN(Composite):
    """BN-Inception's module: the 5x5 branch becomes two 3x3 convolutions.

    Branches: 1x1; 1x1 reduce then 3x3; 1x1 reduce then two 3x3 ("double
    3x3"); average or max pooling then a 1x1 projection.

    With ``stride: 2`` the module halves the grid (modules 3c and 4e of the
    paper): the last convolution of each branch and the pooling have stride
    2, and ``pool_proj: 0`` passes the pooled input through unprojected
    ("max + pass through"). ``ch1x1: 0`` drops the 1x1 branch, as those
    modules do. Stride-2 pooling rounds up (``ceil_mode``) like Caffe's, so
    on even grids it matches the stride-2 convolutions and TensorFlow's
    "SAME" pooling.

    ``bias`` adds a bias to every convolution, as the released Caffe model
    has; ``eps`` defaults to Caffe's batch norm epsilon, 1e-5.
    """

    name = "inception_bn"
    rank = 3
    params = (
        _width("ch1x1", 64, "#1x1; 0: no 1x1 branch", low=0),
        _width("ch3x3red", 64, "#3x3 reduce"),
        _width("ch3x3", 64, "#3x3"),
        _width("dbl3x3red", 64, "double #3x3 reduce"),
        _width("dbl3x3", 96, "double #3x3"),
        Param("pool", str, default="avg", choices=("avg", "max")),
        _width("pool_proj", 32, "1x1 projection after pooling; 0: pass through", low=0),
        Param("stride", int, default=1, choices=(1, 2)),
        Param("bias", bool, default=False, doc="bias in the convolutions (the Caffe model has it)"),
        Param("eps", float, default=1e-5, low=0.0, high=1.0, doc="batch norm epsilon"),
    )
    examples = (
        Example({"ch1x1": 4, "ch3x3red": 2, "ch3x3": 3, "dbl3x3red": 2, "dbl3x3": 3, "pool_proj": 2}, ((5, 6, 6),)),
        Example(
            {"ch1x1": 0, "ch3x3red": 3, "ch3x3": 4, "dbl3x3red": 2, "dbl3x3": 3, "pool": "max", "pool_proj": 0},
            ((4, 8, 8),),
        ),
        Example(
            {
                "ch1x1": 0,
                "ch3x3red": 3,
                "ch3x3": 4,
                "dbl3x3red": 2,
                "dbl3x3": 3,
                "pool": "max",
                "pool_proj": 0,
                "stride": 2,
                "bias": True,
            },
            ((4, 8, 8),),
        ),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        conv: dict[str, Any] = {"bias": p.bias, "eps": p.eps}
        last = {"stride": p.stride} if p.stride != 1 else {}
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        branches = []
        if p.ch1x1:
            branches.append(g.add("branch1x1", "conv_bn_act", x, out_channels=p.ch1x1, kernel_size=1, **last, **conv))
        branches.append(_chain(g, x, "branch3x3", [(p.ch3x3red, 1, {}), (p.ch3x3, 3, last)], **conv))
        branches.append(
            _chain(g, x, "branch3x3dbl", [(p.dbl3x3red, 1, {}), (p.dbl3x3, 3, {}), (p.dbl3x3, 3, last)], **conv)
        )
        if p.stride == 1:
            window: dict[str, Any] = {"kernel_size": 3, "stride": 1, "padding": 1}
        else:
            window = {"kernel_size": 3, "stride": p.stride, "ceil_mode": True}
        pool = g.add("pool", f"{p.pool}_pool2d", x, **window)
        if p.pool_proj:
            pool = g.add("branch_pool", "conv_bn_act", pool, out_channels=p.pool_proj, kernel_size=1, **conv)
        branches.append(pool)
        g.set_outputs(g.add("concat", "concat", branches))
        return g


@register
class InceptionV3A(Composite):
    """Inception v3's module on the 35x35 grid (``InceptionA``, Mixed_5b-d).

    Branches: 1x1; 1x1 reduce then 5x5; 1x1 reduce then two 3x3; 3x3
    average pooling then a 1x1 projection (``pool_proj``, torchvision's
    ``pool_features``)."""

    name = "inception_v3_a"
    rank = 3
    params = (
        _width("ch1x1", 64),
        _width("ch5x5red", 48),
        _width("ch5x5", 64),
        _width("dbl3x3red", 64),
        _width("dbl3x3", 96),
        _width("pool_proj", 32, "pool_features"),
        _TORCHVISION_EPS,
    )
    examples = (
        Example({"ch1x1": 3, "ch5x5red": 2, "ch5x5": 4, "dbl3x3red": 2, "dbl3x3": 3, "pool_proj": 2}, ((5, 7, 7),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        branches = [
            g.add("branch1x1", "conv_bn_act", x, out_channels=p.ch1x1, kernel_size=1, eps=p.eps),
            _chain(g, x, "branch5x5", [(p.ch5x5red, 1, {}), (p.ch5x5, 5, {})], eps=p.eps),
            _chain(g, x, "branch3x3dbl", [(p.dbl3x3red, 1, {}), (p.dbl3x3, 3, {}), (p.dbl3x3, 3, {})], eps=p.eps),
        ]
        pool = g.add("pool", "avg_pool2d", x, kernel_size=3, stride=1, padding=1)
        branches.append(g.add("branch_pool", "conv_bn_act", pool, out_channels=p.pool_proj, kernel_size=1, eps=p.eps))
        g.set_outputs(g.add("concat", "concat", branches))
        return g


_VALID = {"stride": 2, "padding": 0}
"""A stride-2 3x3 convolution without padding: v3's grid reductions."""


@register
class InceptionV3B(Composite):
    """Inception v3's grid reduction 35x35 -> 17x17 (``InceptionB``, Mixed_6a).

    Branches: a stride-2 3x3; 1x1 reduce, 3x3, stride-2 3x3; stride-2 max
    pooling. Convolution and pooling in parallel shrink the grid without a
    representational bottleneck (the paper's Figure 10)."""

    name = "inception_v3_b"
    rank = 3
    params = (_width("ch3x3", 384), _width("dbl3x3red", 64), _width("dbl3x3", 96), _TORCHVISION_EPS)
    examples = (Example({"ch3x3": 4, "dbl3x3red": 2, "dbl3x3": 3}, ((3, 9, 9),)),)

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        branches = [
            g.add("branch3x3", "conv_bn_act", x, out_channels=p.ch3x3, kernel_size=3, eps=p.eps, **_VALID),
            _chain(g, x, "branch3x3dbl", [(p.dbl3x3red, 1, {}), (p.dbl3x3, 3, {}), (p.dbl3x3, 3, _VALID)], eps=p.eps),
            g.add("pool", "max_pool2d", x, kernel_size=3, stride=2),
        ]
        g.set_outputs(g.add("concat", "concat", branches))
        return g


@register
class InceptionV3C(Composite):
    """Inception v3's module on the 17x17 grid (``InceptionC``, Mixed_6b-e).

    n x n convolutions factorised into 1 x n and n x 1 (the paper's Figure
    6). Branches: 1x1; reduce, 1 x n, n x 1; reduce, then n x 1, 1 x n,
    n x 1, 1 x n; 3x3 average pooling then a 1x1 projection. ``ch7x7red``
    is torchvision's ``channels_7x7``, the width inside both factorised
    branches; ``n`` is 7 in the paper."""

    name = "inception_v3_c"
    rank = 3
    params = (
        _width("ch1x1", 192),
        _width("ch7x7red", 128, "channels_7x7: the width inside the factorised branches"),
        _width("ch7x7", 192, "output of the 1 x n, n x 1 branch"),
        _width("dbl7x7", 192, "output of the doubly factorised branch"),
        _width("pool_proj", 192),
        Param("n", int, default=7, low=1, high=MAX_EXTENT, doc="the factorised kernel n x n (odd)"),
        _TORCHVISION_EPS,
    )
    examples = (
        Example({"ch1x1": 3, "ch7x7red": 2, "ch7x7": 3, "dbl7x7": 4, "pool_proj": 2}, ((4, 8, 8),)),
        Example({"ch1x1": 2, "ch7x7red": 3, "ch7x7": 2, "dbl7x7": 2, "pool_proj": 3, "n": 3}, ((3, 5, 6),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        n = _odd(p, "n")
        row, col = [1, n], [n, 1]
        c7 = p.ch7x7red
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        branches = [
            g.add("branch1x1", "conv_bn_act", x, out_channels=p.ch1x1, kernel_size=1, eps=p.eps),
            _chain(g, x, "branch7x7", [(c7, 1, {}), (c7, row, {}), (p.ch7x7, col, {})], eps=p.eps),
            _chain(
                g,
                x,
                "branch7x7dbl",
                [(c7, 1, {}), (c7, col, {}), (c7, row, {}), (c7, col, {}), (p.dbl7x7, row, {})],
                eps=p.eps,
            ),
        ]
        pool = g.add("pool", "avg_pool2d", x, kernel_size=3, stride=1, padding=1)
        branches.append(g.add("branch_pool", "conv_bn_act", pool, out_channels=p.pool_proj, kernel_size=1, eps=p.eps))
        g.set_outputs(g.add("concat", "concat", branches))
        return g


@register
class InceptionV3D(Composite):
    """Inception v3's grid reduction 17x17 -> 8x8 (``InceptionD``, Mixed_7a).

    Branches: 1x1 reduce then stride-2 3x3; 1x1 reduce, 1 x n, n x 1,
    stride-2 3x3; stride-2 max pooling."""

    name = "inception_v3_d"
    rank = 3
    params = (
        _width("ch3x3red", 192),
        _width("ch3x3", 320),
        _width("ch7x7x3", 192, "width of every convolution of the factorised branch"),
        Param("n", int, default=7, low=1, high=MAX_EXTENT, doc="the factorised kernel n x n (odd)"),
        _TORCHVISION_EPS,
    )
    examples = (Example({"ch3x3red": 2, "ch3x3": 4, "ch7x7x3": 3}, ((3, 9, 9),)),)

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        n = _odd(p, "n")
        c = p.ch7x7x3
        g = Graph(self.name)
        x = g.add_input("x", ins[0])
        branches = [
            _chain(g, x, "branch3x3", [(p.ch3x3red, 1, {}), (p.ch3x3, 3, _VALID)], eps=p.eps),
            _chain(g, x, "branch7x7x3", [(c, 1, {}), (c, [1, n], {}), (c, [n, 1], {}), (c, 3, _VALID)], eps=p.eps),
            g.add("pool", "max_pool2d", x, kernel_size=3, stride=2),
        ]
        g.set_outputs(g.add("concat", "concat", branches))
        return g


@register
class InceptionV3E(Composite):
    """Inception v3's module on the 8x8 grid (``InceptionE``, Mixed_7b-c).

    The paper's "expanded filter bank" (Figure 7). Branches: 1x1; 1x1 reduce
    then 1x3 and 3x1 side by side; 1x1 reduce, 3x3, then 1x3 and 3x1 side
    by side; 3x3 average pooling then a 1x1 projection.

    The side-by-side pairs are concatenated with the other branches in one
    ``concat``, which gives torchvision's nested concatenation exactly.
    """

    name = "inception_v3_e"
    rank = 3
    params = (
        _width("ch1x1", 320),
        _width("ch3x3red", 384),
        _width("ch3x3", 384, "each of the 1x3 and 3x1 outputs"),
        _width("dbl3x3red", 448),
        _width("dbl3x3", 384, "the 3x3 and each of the 1x3 and 3x1 outputs"),
        _width("pool_proj", 192),
        _TORCHVISION_EPS,
    )
    examples = (
        Example({"ch1x1": 3, "ch3x3red": 2, "ch3x3": 3, "dbl3x3red": 4, "dbl3x3": 2, "pool_proj": 2}, ((5, 6, 6),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        g = Graph(self.name)
        x = g.add_input("x", ins[0])

        def split(name: str, y: Ref, width: int) -> list[Ref]:
            return [
                g.add(f"{name}a", "conv_bn_act", y, out_channels=width, kernel_size=[1, 3], eps=p.eps),
                g.add(f"{name}b", "conv_bn_act", y, out_channels=width, kernel_size=[3, 1], eps=p.eps),
            ]

        branch1x1 = g.add("branch1x1", "conv_bn_act", x, out_channels=p.ch1x1, kernel_size=1, eps=p.eps)
        branch3x3 = split("branch3x3_2", _chain(g, x, "branch3x3", [(p.ch3x3red, 1, {})], eps=p.eps), p.ch3x3)
        dbl = _chain(g, x, "branch3x3dbl", [(p.dbl3x3red, 1, {}), (p.dbl3x3, 3, {})], eps=p.eps)
        branch3x3dbl = split("branch3x3dbl_3", dbl, p.dbl3x3)
        pool = g.add("pool", "avg_pool2d", x, kernel_size=3, stride=1, padding=1)
        branch_pool = g.add("branch_pool", "conv_bn_act", pool, out_channels=p.pool_proj, kernel_size=1, eps=p.eps)
        g.set_outputs(g.add("concat", "concat", [branch1x1, *branch3x3, *branch3x3dbl, branch_pool]))
        return g
