"""Element-wise activations, declared as a table: one row per block type."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from nas.registry import Block, Call, Example, Param, Params, Shape, register


class Activation(Block):
    """An element-wise function: the output has the input's shape."""

    fn: Callable[..., Any]
    examples = (Example({}, ((4, 6, 6),)), Example({}, ((7,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(type(self).fn, dict(p))


_TABLE: list[tuple[str, Callable[..., Any], tuple[Param, ...], str]] = [
    ("relu", torch.relu, (), "max(x, 0) (Nair & Hinton 2010; AlexNet)"),
    ("relu6", F.relu6, (), "min(max(x, 0), 6) (MobileNet)"),
    (
        "leaky_relu",
        F.leaky_relu,
        (Param("negative_slope", float, default=0.01, low=0.0, high=1.0),),
        "x for x > 0, slope * x below",
    ),
    (
        "elu",
        F.elu,
        (Param("alpha", float, default=1.0, low=0.0, high=100.0),),
        "exponential linear unit (Clevert et al. 2015)",
    ),
    ("tanh", torch.tanh, (), "hyperbolic tangent"),
    ("sigmoid", torch.sigmoid, (), "logistic function"),
    ("gelu", F.gelu, (), "Gaussian error linear unit"),
    ("silu", F.silu, (), "x * sigmoid(x), a.k.a. swish"),
    ("hardswish", F.hardswish, (), "piecewise-linear swish (MobileNet v3)"),
]

for _name, _fn, _params, _doc in _TABLE:
    register(
        type(
            "".join(w.title() for w in _name.split("_")),
            (Activation,),
            {"name": _name, "fn": staticmethod(_fn), "params": _params, "__doc__": _doc, "__module__": __name__},
        )
    )
