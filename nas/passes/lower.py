"""Lowering: an IR graph becomes a ``torch.fx.GraphModule``.

The generated ``forward`` is straight-line code with one line per node,
named after the node, so ``print(model.code)`` reads like hand-written
PyTorch. Blocks with weights become submodules named after their nodes;
stateless blocks become function calls. A composite block becomes a
submodule of its own (lowered from its expansion) unless ``flatten=True``,
so the module tree mirrors the IR's hierarchy, as torchvision's does::

    def forward(self, x):
        conv1 = self.conv1(x);  x = None
        bn1 = self.bn1(conv1);  conv1 = None
        relu = torch.relu(bn1);  bn1 = None
        ...

:class:`Stepped` is the flat lowering without the code: the same
submodules and calls, run by a loop, for modules built by the thousand and
run a few times each (a supernet's subnets). Both compile one
:class:`~nas.passes.plan.Plan` of the graph (composites inlined from their
analysed expansions, no flat graph built), as :func:`nas.flatten` does, so
the three name and order nodes alike.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import fx

from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.ir.registry import Call
from nas.passes.plan import Plan, Step, Value


def lower(graph: Graph, *, flatten: bool = False, inplace: bool = True) -> fx.GraphModule:
    """Compile ``graph`` to a ``torch.fx.GraphModule``.

    Args:
        graph: a graph; it is validated and analysed first.
        flatten: inline composite blocks instead of nesting them.
        inplace: compute blocks that offer it (``relu``, ``add``) into their
            first input where nothing else reads it, as hand-written networks
            do; saves memory traffic (about 5% of ResNet-18 at batch 32 on a
            CPU). The result is the same either way.

    Returns:
        A module whose ``forward`` takes one tensor per graph input (with a
        batch dimension) and returns the output, or a tuple of outputs.

    Example:
        >>> import nas, torch
        >>> g = nas.build("inputs: {x: [4]}\\nnodes: {fc: {block: linear, out_features: 2}}")
        >>> nas.lower(g)(torch.zeros(1, 4)).shape
        torch.Size([1, 2])
    """
    plan = Plan(graph, flatten=flatten)
    root = torch.nn.Module()
    code = fx.Graph()
    values: dict[Value, fx.Node] = {}
    for step in plan.steps:
        args = [values[v] for v in step.inputs]
        node, name = step.node, step.name
        if node.block.placeholder:
            result = code.placeholder(name)
        elif node.block.composite:
            root.add_module(name, lower(node.meta["expansion"], inplace=inplace))
            result = code.create_node("call_module", name, tuple(args), name=name)
        else:
            lowering = _lowering(plan, step)
            if isinstance(lowering, Call) and lowering.inplace and inplace and _overwritable(plan, step.inputs[0]):
                result = code.create_node(
                    "call_method", lowering.inplace, tuple(args), dict(lowering.kwargs), name=name
                )
            elif isinstance(lowering, Call):
                call_args: tuple[Any, ...] = (args,) if lowering.variadic else tuple(args)
                result = code.create_node("call_function", lowering.fn, call_args, dict(lowering.kwargs), name=name)
            else:
                root.add_module(name, lowering)
                result = code.create_node("call_module", name, tuple(args), name=name)
        names = node.output_names
        if len(names) == 1:
            values[(name, 0)] = result
        else:
            for index in _used_outputs(plan, name):
                item = code.create_node(
                    "call_function", operator.getitem, (result, index), name=f"{name}_{names[index]}"
                )
                values[(name, index)] = item

    outputs = [values[v] for v in plan.outputs]
    code.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    code.lint()
    return fx.GraphModule(root, code, class_name=_class_name(graph.name))


class Stepped(torch.nn.Module):
    """``graph`` lowered flat, run by a loop over its primitive nodes instead
    of generated code: the same submodules (named as ``lower(graph,
    flatten=True)`` names them), the same calls in the same order, so the
    same results, gradients and state dict.

    Quicker to build than a ``GraphModule`` (no code to generate and
    compile; ``examples/bench_subnets.py`` measures both), for modules made
    by the thousand and run a few times each: a supernet's random subnets.
    Export, ``torch.compile`` and reading the code want :func:`lower`.

    Attributes:
        paths: each submodule's name in the nested lowering of ``graph``
            (``layer1_0_conv1`` is ``layer1_0.conv1`` there).
    """

    def __init__(self, graph: Graph, *, inplace: bool = True) -> None:
        super().__init__()
        plan = Plan(graph, flatten=True)
        slots = {v: i for i, v in enumerate(v for step in plan.steps for v in step.made)}
        # Each tensor is dropped after the last step that reads it (at once if none does), as FX's code does.
        dropped: dict[int, list[int]] = {}
        last = plan.last_reads()
        for position, step in enumerate(plan.steps):
            for v in step.made:
                if v not in plan.outputs:
                    dropped.setdefault(last.get(v, position), []).append(slots[v])
        self.paths = {step.name: step.path for step in plan.steps if not step.node.block.placeholder}
        self._inputs = [slots[(step.name, 0)] for step in plan.steps if step.node.block.placeholder]
        self._outputs = [slots[v] for v in plan.outputs]
        self._slots = len(slots)
        self._program: list[_Op] = []
        for position, step in enumerate(plan.steps):
            if step.node.block.placeholder:
                continue
            lowering = _lowering(plan, step)
            variadic, kwargs = False, {}
            if isinstance(lowering, Call) and lowering.inplace and inplace and _overwritable(plan, step.inputs[0]):
                fn, kwargs = getattr(torch.Tensor, lowering.inplace), dict(lowering.kwargs)
            elif isinstance(lowering, Call):
                fn, variadic, kwargs = lowering.fn, lowering.variadic, dict(lowering.kwargs)
            else:
                self.add_module(step.name, lowering)
                fn = lowering
            reads = tuple(slots[v] for v in step.inputs)
            made = tuple(slots[v] for v in step.made)
            self._program.append(_Op(fn, variadic, reads, kwargs, made, tuple(dropped.get(position, ()))))

    def forward(self, *inputs: torch.Tensor) -> Any:
        env: list[Any] = [None] * self._slots
        for slot, x in zip(self._inputs, inputs, strict=True):
            env[slot] = x
        for fn, variadic, reads, kwargs, made, dropped in self._program:
            args = [env[i] for i in reads]
            result = fn(args, **kwargs) if variadic else fn(*args, **kwargs)
            if len(made) == 1:
                env[made[0]] = result
            else:
                for slot, item in zip(made, result, strict=True):
                    env[slot] = item
            for i in dropped:
                env[i] = None
        outputs = [env[i] for i in self._outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class _Op(NamedTuple):
    """One primitive step of a :class:`Stepped`: ``made = fn(*reads, **kwargs)`` over slots of tensors."""

    fn: Callable[..., Any]
    variadic: bool
    reads: tuple[int, ...]
    kwargs: dict[str, Any]
    made: tuple[int, ...]
    dropped: tuple[int, ...]


def _lowering(plan: Plan, step: Step) -> Call | torch.nn.Module:
    """What a primitive step lowers to (its block's ``lower``), errors located at the node."""
    node = step.node
    try:
        return node.block.lower(node.params, step.shapes)
    except NASError as e:
        raise e.located(file=plan.graph.source, line=node.meta.get("line"), node=step.name) from None


def _overwritable(plan: Plan, value: Value) -> bool:
    """Whether a reader may compute its result into tensor ``value`` in place.

    Only when nothing else can see the overwrite: ``value`` is read exactly
    once, it is not a graph output or input (the caller's tensor), and its
    producer's backward pass does not read it (``keeps_output``). Composite
    producers are not looked into; they are simply not overwritten.
    """
    producer = plan.by_name[value[0]].node.block
    if producer.keeps_output or producer.composite or producer.placeholder or value in plan.outputs:
        return False
    return plan.reads.get(value) == 1


def _used_outputs(plan: Plan, name: str) -> list[int]:
    """The outputs of a step with several that are read or are graph outputs."""
    return sorted({i for (n, i) in (*plan.reads, *plan.outputs) if n == name})


def _class_name(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name).split()
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Net"
    return text if text[0].isalpha() else "Net" + text
