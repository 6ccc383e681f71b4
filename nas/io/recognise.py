"""Recognising the composite blocks a module is made of, so that an imported
network reads like the zoo's YAML: torchvision's ``BasicBlock`` becomes one
``basic_block`` node and ``layer1`` a ``stage`` of them.

A recogniser (:data:`RECOGNISERS`, by the submodule's class) reads a
block's parameters off the submodule's attributes. That reading is a guess,
which two checks turn into a fact: the submodule imported call by call
(:mod:`nas.io.trace`) must have the canonical hash of the proposed block
(the same primitives, parameters and edges), and the block lowered with the
submodule's weights must compute its outputs. A submodule that fails either
is imported call by call, so recognition never changes what is computed.
A ``Sequential`` of recognised units of one block type, alike but for the
first one's stride, becomes a ``stage``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from nas.blocks.mobile import make_divisible
from nas.io.torch_table import ACTIVATIONS
from nas.io.trace import Match, import_traced, trace
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.ir.registry import Shape, get_block
from nas.passes.lower import lower

Proposal = tuple[str, dict[str, Any]]
"""A block name and the parameters read off a submodule."""


def _activation(module: nn.Module | None) -> str:
    return "none" if module is None else ACTIVATIONS[type(module)]


def _conv_norm_act(m: nn.Module) -> Proposal | None:
    """``conv_bn_act`` from a convolution, an optional batch norm and an optional activation
    (torchvision's ``Conv2dNormActivation``, GoogLeNet's ``BasicConv2d``)."""
    parts = list(m.children())
    conv = parts[0] if parts and isinstance(parts[0], nn.Conv2d) else None
    norm = next((p for p in parts[1:] if isinstance(p, nn.BatchNorm2d)), None)
    acts = [p for p in parts[1:] if type(p) in ACTIVATIONS]
    if conv is None or len(parts) != 1 + (norm is not None) + len(acts) or len(acts) > 1:
        return None
    if norm is not None and norm.momentum is None:
        return None  # a cumulative average: no block keeps one
    act = _activation(acts[0]) if acts else ("relu" if type(m).__name__ == "BasicConv2d" else "none")
    return "conv_bn_act", {
        "out_channels": conv.out_channels,
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "bias": conv.bias is not None,
        "norm": "batch_norm" if norm is not None else "none",
        "eps": norm.eps if norm is not None else 1e-5,
        "momentum": norm.momentum if norm is not None else 0.1,
        "act": act,
    }


def _basic_block(m: nn.Module) -> Proposal:
    return "basic_block", {"out_channels": m.conv2.out_channels, "stride": m.conv1.stride[0]}


def _bottleneck(m: nn.Module) -> Proposal:
    out, width = m.conv3.out_channels, m.conv1.out_channels
    params = {"out_channels": out, "stride": m.conv2.stride[0], "groups": m.conv2.groups}
    return "bottleneck", params | ({} if width == out // 4 else {"width": width})


def _squeeze_excitation(m: nn.Module) -> Proposal:
    return "squeeze_excitation", {
        "squeeze_channels": m.fc1.out_channels,
        "act": _activation(m.activation),
        "gate": _activation(m.scale_activation),
    }


def _fire(m: nn.Module) -> Proposal:
    return "fire", {
        "squeeze_channels": m.squeeze.out_channels,
        "expand1x1_channels": m.expand1x1.out_channels,
        "expand3x3_channels": m.expand3x3.out_channels,
    }


def _inverted_residual(m: nn.Module) -> Proposal | None:
    """MobileNet v2/v3's inverted residual and EfficientNet's MBConv, read off their layers."""
    se = next((s for s in m.modules() if type(s).__name__ == "SqueezeExcitation"), None)
    inside_se = set(se.modules()) if se is not None else set()
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c not in inside_se]
    depthwise = [c for c in convs if c.groups > 1 and c.groups == c.in_channels]
    norms = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    acts = [a for a in m.modules() if type(a) in ACTIVATIONS and a not in inside_se]
    if len(depthwise) != 1 or not norms or not acts or norms[0].momentum is None:
        return None
    dw, width = depthwise[0], convs[0].in_channels
    params: dict[str, Any] = {
        "out_channels": convs[-1].out_channels,
        "stride": dw.stride[0],
        "kernel_size": dw.kernel_size[0],
        "dilation": dw.dilation[0],
        "act": _activation(acts[0]),
        "eps": norms[0].eps,
        "momentum": norms[0].momentum,
    }
    ratio = dw.out_channels / width
    params |= (
        {"expansion": ratio} if round(ratio * width) == dw.out_channels else {"expanded_channels": dw.out_channels}
    )
    if se is not None:
        squeeze = se.fc1.out_channels
        # EfficientNet squeezes a share of the input; MobileNet v3 of the expanded width, rounded to 8.
        for base, divisor in (("input", 1), ("expanded", 8)):
            if make_divisible((width if base == "input" else dw.out_channels) * 0.25, divisor) == squeeze:
                params |= {"se_ratio": 0.25, "se_from": base, "se_divisor": divisor}
        params |= {"se_act": _activation(se.activation), "se_gate": _activation(se.scale_activation)}
    depth = getattr(m, "stochastic_depth", None)
    if depth is not None:
        params["drop_path"] = depth.p
    return "inverted_residual", params


RECOGNISERS: dict[str, Callable[[nn.Module], Proposal | None]] = {
    "torchvision.models.resnet.BasicBlock": _basic_block,
    "torchvision.models.resnet.Bottleneck": _bottleneck,
    "torchvision.ops.misc.Conv2dNormActivation": _conv_norm_act,
    "torchvision.models.googlenet.BasicConv2d": _conv_norm_act,
    "torchvision.ops.misc.SqueezeExcitation": _squeeze_excitation,
    "torchvision.models.squeezenet.Fire": _fire,
    "torchvision.models.mobilenetv2.InvertedResidual": _inverted_residual,
    "torchvision.models.mobilenetv3.InvertedResidual": _inverted_residual,
    "torchvision.models.efficientnet.MBConv": _inverted_residual,
}
"""Qualified class name of a submodule -> what reads a block off it."""


def recognise(module: nn.Module, x: torch.Tensor) -> dict[str, Match]:
    """The submodules of ``module`` (in eval mode) that are exactly a composite
    block, by dotted path, outermost first; ``x`` is the example input."""
    shapes = _input_shapes(module, x)
    matches: dict[str, Match] = {}
    for name, child in module.named_children():
        _visit(child, name, shapes, matches)
    return matches


def _visit(m: nn.Module, path: str, shapes: Mapping[str, Shape], matches: dict[str, Match]) -> Match | None:
    recogniser = RECOGNISERS.get(f"{type(m).__module__}.{type(m).__qualname__}")
    proposal = recogniser(m) if recogniser is not None and path in shapes else None
    if proposal is not None:
        match = _checked(m, shapes[path], *proposal)
        if match is not None:
            matches[path] = match
            return match
    units = [_visit(child, f"{path}.{name}", shapes, matches) for name, child in m.named_children()]
    if isinstance(m, nn.Sequential) and path in shapes and len(units) > 1 and all(units):
        stage = _stage([u for u in units if u is not None])
        if stage is not None:
            for name, _ in m.named_children():
                del matches[f"{path}.{name}"]
            matches[path] = stage
            return stage
    return None


def _input_shapes(module: nn.Module, x: torch.Tensor) -> dict[str, Shape]:
    """Input shape (without batch) of each submodule called once with one tensor in a forward pass."""
    calls: dict[str, list[Any]] = {}
    handles = []
    for path, sub in module.named_modules():
        if path:
            handles.append(
                sub.register_forward_pre_hook(lambda _, args, path=path: calls.setdefault(path, []).append(args))
            )
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return {
        path: tuple(args[0][0].shape[1:])
        for path, args in calls.items()
        if len(args) == 1 and len(args[0]) == 1 and isinstance(args[0][0], torch.Tensor)
    }


def _checked(m: nn.Module, shape: Shape, block: str, params: dict[str, Any]) -> Match | None:
    """The match, if the proposed block is exactly the submodule; else ``None``."""
    x = torch.randn(2, *shape)
    try:
        candidate = Graph(block)
        candidate.set_outputs(candidate.add("unit", block, candidate.add_input("x", shape), **params))
        flat, _ = import_traced(trace(m), (x,), block)
        if flat.hash != candidate.hash:
            return None
    except NASError:
        return None
    lowered = lower(candidate).eval()
    ours, theirs = lowered.state_dict(), list(m.state_dict().values())
    if len(ours) != len(theirs) or any(a.shape != b.shape for a, b in zip(ours.values(), theirs)):
        return None
    lowered.load_state_dict(dict(zip(ours, theirs)))
    with torch.no_grad():
        expected, got = m(x), lowered(x)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, float(expected.abs().max()))):
        return None
    explicit = get_block(block).explicit_params(candidate.node("unit").params)
    weights = {key.removeprefix("unit."): tensor.detach().clone() for key, tensor in zip(ours, theirs)}
    return Match(block, explicit, weights)


def _stage(units: list[Match]) -> Match | None:
    """A ``stage`` of units of one block type, alike but for the first one's stride."""
    first = dict(units[0].params)
    stride = first.pop("stride", 1)
    for unit in units[1:]:
        rest = dict(unit.params)
        if unit.block != units[0].block or rest.pop("stride", 1) != 1 or rest != first:
            return None
    if not isinstance(stride, int):
        return None
    params = {"unit": units[0].block, "depth": len(units), "args": first} | ({"stride": stride} if stride != 1 else {})
    weights = {f"b{i}.{key}": tensor for i, unit in enumerate(units) for key, tensor in unit.weights.items()}
    return Match("stage", params, weights)


__all__ = ["RECOGNISERS", "recognise"]
