"""Stages: a unit block repeated ``depth`` times, the shape of almost every
CNN since VGG (torchvision's ``layer1`` ... ``layer4``)."""

from __future__ import annotations

from collections.abc import Sequence

from nas.ir.errors import ParamError
from nas.ir.graph import Graph
from nas.ir.registry import (
    MAX_EXTENT,
    Composite,
    Example,
    FrozenMapping,
    Param,
    Params,
    Shape,
    get_block,
    mapping,
    register,
)


@register
class Stage(Composite):
    """``depth`` copies of the block ``unit`` in a chain, each given ``args``;
    the first also gets ``stride`` (when it is not 1), as in ResNet stages.
    Units are named ``b0``, ``b1``, ...

    Depth and the unit's arguments are single parameters, so a search varies
    a stage's depth or width by changing one value.
    """

    name = "stage"
    params = (
        Param("unit", str, doc="the repeated block type, e.g. basic_block"),
        Param("depth", int, low=1, high=100_000),
        Param("stride", int, default=1, low=1, high=MAX_EXTENT, doc="stride of the first unit"),
        Param("args", mapping, default=FrozenMapping(), doc="parameters of every unit"),
    )
    examples = (
        Example({"unit": "basic_block", "depth": 2, "stride": 2, "args": {"out_channels": 8}}, ((4, 8, 8),)),
        Example({"unit": "conv_bn_act", "depth": 3, "args": {"out_channels": 4, "kernel_size": 3}}, ((2, 6, 6),)),
    )

    def expand(self, p: Params, ins: Sequence[Shape]) -> Graph:
        unit = get_block(p.unit)
        if unit.arity != (1, 1):
            raise ParamError(
                f"the unit '{p.unit}' takes {unit.arity} inputs; a stage chains one-input blocks", field="unit"
            )
        if "stride" in p.args:
            raise ParamError(
                "the stride belongs to the stage, not its units", field="args", hint="move it to 'stride:'"
            )
        g = Graph(self.name)
        y = g.add_input("x", ins[0])
        for i in range(p.depth):
            args = dict(p.args)
            if i == 0 and p.stride != 1:
                args["stride"] = p.stride
            y = g.add(f"b{i}", unit, y, **args)
        g.set_outputs(y)
        return g
