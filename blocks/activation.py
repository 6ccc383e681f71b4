"""Element-wise activations, declared as a table: one row per block type."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from nas.ir.registry import Block, Call, Example, Param, Params, Shape, register


class Activation(Block):
    """An element-wise function: the output has the input's shape."""

    fn: Callable[..., Any]
    fusion = "activation"
    examples = (Example({}, ((4, 6, 6),)), Example({}, ((7,),)))

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    inplace: ClassVar[str | None] = None

    def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
        return Call(type(self).fn, dict(p), inplace=self.inplace)


_TABLE: list[tuple[str, Callable[..., Any], tuple[Param, ...], str, str | None]] = [
    ("relu", torch.relu, (), "max(x, 0) (Nair & Hinton 2010; AlexNet)", "relu_"),
    ("relu6", F.relu6, (), "min(max(x, 0), 6) (MobileNet)", None),
    (
        "leaky_relu",
        F.leaky_relu,
        (Param("negative_slope", float, default=0.01, low=0.0, high=1.0),),
        "x for x > 0, slope * x below",
        None,
    ),
    (
        "elu",
        F.elu,
        (Param("alpha", float, default=1.0, low=0.0, high=100.0),),
        "exponential linear unit (Clevert et al. 2015)",
        None,
    ),
    ("tanh", torch.tanh, (), "hyperbolic tangent", None),
    ("sigmoid", torch.sigmoid, (), "logistic function", None),
    ("gelu", F.gelu, (), "Gaussian error linear unit", None),
    ("silu", F.silu, (), "x * sigmoid(x), a.k.a. swish", None),
    ("hardswish", F.hardswish, (), "piecewise-linear swish (MobileNet v3)", None),
    ("hardsigmoid", F.hardsigmoid, (), "relu6(x + 3) / 6, piecewise-linear sigmoid (MobileNet v3's gate)", None),
]

for _name, _fn, _params, _doc, _inplace in _TABLE:
    register(
        type(
            "".join(w.title() for w in _name.split("_")),
            (Activation,),
            {
                "name": _name,
                "fn": staticmethod(_fn),
                "params": _params,
                "inplace": _inplace,
                "__doc__": _doc,
                "__module__": __name__,
            },
        )
    )
