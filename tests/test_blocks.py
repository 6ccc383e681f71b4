"""Contract tests run on every registered block type (timm's test_models
pattern): a new block is tested by declaring its ``examples``.

For each example: the lowered module's output shapes equal the inferred
ones, ``sum(p.numel())`` equals the analytic parameter count,
``FlopCounterMode`` equals the analytic MACs, every parameter gets a
gradient, and the YAML round trip and flattening keep the hash.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import nas
import nas.passes.draw
import nas.passes.fusion
from nas.ir import registry
from nas.ir.errors import ParamError, UnknownBlockError
from nas.ir.registry import Block, Call, Example, Params, Shape
from tests.block_cases import block_examples, example_graph, random_inputs

CASES = block_examples()


def test_every_block_declares_examples() -> None:
    missing = [n for n in nas.list_blocks() if n != "input" and not nas.get_block(n).examples]
    assert missing == []


def _outputs(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize(("block", "example"), CASES)
def test_shapes_match_torch(block: Block, example: Example) -> None:
    graph = example_graph(block, example)
    module = nas.lower(graph).eval()
    outputs = _outputs(module(*random_inputs(graph, batch=3)))
    assert [tuple(t.shape[1:]) for t in outputs] == [tuple(s) for s in graph.summary.outputs]


@pytest.mark.parametrize(("block", "example"), CASES)
def test_params_match_numel(block: Block, example: Example) -> None:
    graph = example_graph(block, example)
    module = nas.lower(graph)
    assert graph.params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("block", "example"), CASES)
def test_macs_match_flop_counter(block: Block, example: Example) -> None:
    graph = example_graph(block, example)
    module = nas.lower(graph).eval()
    with FlopCounterMode(display=False) as counter:
        module(*random_inputs(graph, batch=1))
    assert 2 * graph.macs == counter.get_total_flops()


@pytest.mark.parametrize(("block", "example"), CASES)
def test_every_parameter_gets_a_gradient(block: Block, example: Example) -> None:
    graph = example_graph(block, example)
    module = nas.lower(graph).train()
    inputs = [x.requires_grad_() for x in random_inputs(graph)]
    loss = sum(t.float().pow(2).sum() for t in _outputs(module(*inputs)) if t.is_floating_point())
    loss.backward()  # type: ignore[union-attr]
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(("block", "example"), CASES)
def test_buffers_do_not_depend_on_the_global_generator(block: Block, example: Example) -> None:
    """A network lowered twice holds the same buffers whatever the global seed:
    a supernet lowers every subnet anew and shares only parameters, so a
    buffer drawn at random (a fixed code, a mask) would change under it."""
    graph = example_graph(block, example)
    torch.manual_seed(1)
    first = nas.lower(graph)
    torch.manual_seed(2)
    second = nas.lower(graph)
    ours, theirs = dict(first.named_buffers()), dict(second.named_buffers())
    assert ours.keys() == theirs.keys()
    for name, buffer in ours.items():
        assert torch.equal(buffer, theirs[name]), name


@pytest.mark.parametrize(("block", "example"), CASES)
def test_yaml_round_trip_and_flatten_keep_the_hash(block: Block, example: Example) -> None:
    graph = example_graph(block, example)
    text = graph.to_yaml()
    again = nas.build(text)
    assert again.to_yaml() == text
    assert again.hash == graph.hash == nas.flatten(graph).hash


@pytest.mark.parametrize(("block", "example"), [c for c in CASES if c.values[0].composite])
def test_composite_lowers_like_its_flattened_form(block: Block, example: Example) -> None:
    graph = example_graph(block, example)
    nested, flat = nas.lower(graph).eval(), nas.lower(graph, flatten=True).eval()
    # Nested names read node.inner.weight; flattened ones node_inner.weight.
    state = {
        k.rsplit(".", 1)[0].replace(".", "_") + "." + k.rsplit(".", 1)[1]: v for k, v in nested.state_dict().items()
    }
    flat.load_state_dict(state)
    inputs = random_inputs(graph)
    for a, b in zip(_outputs(nested(*inputs)), _outputs(flat(*inputs))):
        torch.testing.assert_close(a, b)
    assert nas.flatten(graph).params == graph.params and nas.flatten(graph).macs == graph.macs


def test_unknown_block_suggests_the_nearest_names() -> None:
    with pytest.raises(UnknownBlockError, match="did you mean 'conv2d'"):
        nas.get_block("conv2")


def test_list_blocks_filters_by_pattern() -> None:
    pools = nas.list_blocks("*pool2d")
    assert {"adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "max_unpool2d"} <= set(pools)
    assert all(name.endswith("pool2d") for name in pools) and pools == sorted(pools)
    assert "conv2d" not in pools


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"out_channels": 8, "kernel_size": 3, "bias": 1}, "expected true or false"),
        ({"out_channels": True, "kernel_size": 3}, "expected an integer"),
        ({"out_channels": 8.0, "kernel_size": 3}, "expected an integer"),
        ({"out_channels": 0, "kernel_size": 3}, "must be >= 1"),
        ({"out_channels": 8, "kernel_size": [3, 3, 3]}, "pair"),
        ({"out_channels": 8, "kernel_size": 3, "strides": 2}, "did you mean 'stride'"),
        ({"kernel_size": 3}, r"needs this parameter .*add 'out_channels: \.\.\.' \(an integer\)"),
        ({"out_channels": 8}, r"add 'kernel_size: \.\.\.' \(k or \[kh, kw\]\)"),
    ],
)
def test_parameters_are_checked(params: dict[str, object], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        nas.get_block("conv2d").check_params(params)


def test_a_missing_parameter_without_a_doc_is_named_by_its_kind() -> None:
    with pytest.raises(ParamError, match=r"add 'kernel_size: \.\.\.' \(an int or a \[height, width\] pair\)\)$"):
        nas.get_block("conv_bn_act").check_params({"out_channels": 8})


def test_equal_pairs_are_canonicalised() -> None:
    block = nas.get_block("conv2d")
    assert block.check_params({"out_channels": 8, "kernel_size": [3, 3]}) == block.check_params(
        {"out_channels": 8, "kernel_size": 3}
    )
    assert block.check_params({"out_channels": 8, "kernel_size": [1, 7]})["kernel_size"] == (1, 7)


# -- fusion roles: what torch says a lowering is, independently of the block ---

_HEAD_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
_HEAD_FUNCTIONS = {F.conv1d, F.conv2d, F.conv3d, F.conv_transpose2d, F.linear}
_NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ACTIVATION_MODULES = (
    *(nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.PReLU, nn.GELU, nn.SiLU, nn.Mish),
    *(nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus),
)
_ACTIVATION_FUNCTIONS = {
    *(torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.prelu, F.gelu, F.silu, F.mish),
    *(torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardswish, F.hardsigmoid, F.hardtanh, F.softplus),
}


def _torch_role(lowered: Any) -> str | None:
    """The fusion role of a lowering by what torch calls it, or None when torch does not say."""
    fn = lowered.fn if isinstance(lowered, Call) else None
    if isinstance(lowered, _HEAD_MODULES) or fn in _HEAD_FUNCTIONS:
        return "head"
    if isinstance(lowered, _NORM_MODULES):
        return "norm"
    if isinstance(lowered, _ACTIVATION_MODULES) or fn in _ACTIVATION_FUNCTIONS:
        return "activation"
    return None


def _primitives(graph: nas.Graph) -> list[tuple[Block, Params, list[Shape]]]:
    """Each primitive node of ``graph`` with its parameters and input shapes."""
    found = []
    for node in graph:
        if not node.block.composite and not node.block.placeholder:
            ins = [graph.node(ref.node).meta["shapes"][ref.output] for ref in graph.inputs(node.name)]
            found.append((node.block, node.params, ins))
    return found


@pytest.mark.parametrize(("block", "example"), CASES)
def test_fusion_role_matches_the_lowering(block: Block, example: Example) -> None:
    """A block lowered to a torch convolution, batch norm or activation declares
    that role, so that latency prediction fuses it as a runtime would."""
    for primitive, params, ins in _primitives(example_graph(block, example)):
        expected = _torch_role(primitive.lower(params, ins))
        if expected is not None:
            assert primitive.fusion == expected, primitive.name


@pytest.mark.parametrize(("block", "example"), [c for c in CASES if c.values[0].fusion in ("norm", "activation")])
def test_fused_norms_and_activations_are_element_wise(block: Block, example: Example) -> None:
    """What follows a head in a fused chain reads one tensor and keeps its shape."""
    assert block.arity == (1, 1)
    for primitive, params, ins in _primitives(example_graph(block, example)):
        if primitive is block:
            assert block.infer(params, ins) == ins[0]


def test_fusion_roles_in_the_library() -> None:
    roles = {name: nas.get_block(name).fusion for name in nas.list_blocks()}
    assert {n for n, r in roles.items() if r == "head"} == {"conv2d", "partial_conv2d", "conv_transpose2d", "linear"}
    assert {n for n, r in roles.items() if r == "norm"} == {"batch_norm"}
    assert {"relu", "prelu", "scaled_tanh", "hardswish"} <= {n for n, r in roles.items() if r == "activation"}
    assert [n for n in nas.list_blocks() if nas.get_block(n).placeholder] == ["input"]


@pytest.mark.parametrize(("fusion", "base"), [("activaton", Block), ("activation", registry.Composite)])
def test_register_refuses_a_misspelt_or_composite_fusion_role(
    monkeypatch: pytest.MonkeyPatch, fusion: str, base: type[Block]
) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="fusion must be one of"):
        registry.register(type("Odd", (base,), {"name": "odd_role", "fusion": fusion}))
    assert "odd_role" not in nas.list_blocks()


@pytest.mark.parametrize("module", [nas.passes.fusion, nas.passes.draw])
def test_passes_name_no_block_type(module: Any) -> None:
    """Block roles come from block attributes: a pass that compared names would
    miss a newly registered block (docstrings may still give examples)."""
    tree = ast.parse(inspect.getsource(module))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body and isinstance(n.body[0], ast.Expr)
    }
    docstrings |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docstrings}
    assert strings.isdisjoint(nas.list_blocks())
