"""Lowering to torch.fx: same function as the reference implementation,
readable code, and every execution mode PyTorch users rely on."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from hypothesis import given, settings

import nas
from nas.passes.lower import Stepped
from tests.test_graph import SHAPE, Spec, dags
from tests.test_graph import build as build_dag

RESNET18 = "examples/resnet18.yaml"


def torchvision_key(key: str) -> str:
    """Our state-dict key -> torchvision's (layer1_0.conv_down -> layer1.0.downsample.0)."""
    key = re.sub(r"^layer(\d)_(\d+)\.", r"layer\1.\2.", key)
    return key.replace("conv_down", "downsample.0").replace("bn_down", "downsample.1")


@pytest.fixture(scope="module")
def resnet18() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    # Random running statistics, so that batch norm is not the identity.
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = nas.lower(nas.build(RESNET18)).eval()
    ours.load_state_dict({k: reference.state_dict()[torchvision_key(k)] for k in ours.state_dict()})
    return ours, reference


def test_resnet18_computes_what_torchvision_computes(resnet18: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    ours, reference = resnet18
    assert {torchvision_key(k) for k in ours.state_dict()} == set(reference.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)


def test_generated_code_is_straight_line_and_named_after_nodes() -> None:
    graph = nas.build(RESNET18)
    code = nas.lower(graph).code
    assert not re.search(r"\b(for|while|if)\b", code)
    for node in graph:
        if node.block.name != "input":
            assert re.search(rf"^\s+{node.name} = ", code, re.M), node.name
    assert "self.layer1_0(maxpool)" in code
    assert "torch.flatten(avgpool, start_dim = 1)" in code
    block_code = nas.lower(graph).layer2_0.code
    assert "bn2.add_(bn_down)" in block_code


def test_training_mode_updates_batch_norm_and_backpropagates() -> None:
    g = nas.build(RESNET18)
    m = nas.lower(g).train()
    m(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    assert int(m.bn1.num_batches_tracked) == 1


def test_several_outputs_and_pooling_indices() -> None:
    g = nas.build(
        """
inputs: {x: [2, 8, 8]}
nodes:
  pool: {block: max_pool2d, in: x, kernel_size: 2, return_indices: true}
  conv: {block: conv2d, in: pool, out_channels: 2, kernel_size: 3, padding: 1}
  unpool: {block: max_unpool2d, in: [conv, pool.indices], kernel_size: 2}
outputs: [unpool, pool.indices]
"""
    )
    m = nas.lower(g)
    x = torch.randn(1, 2, 8, 8)
    up, indices = m(x)
    _, expected = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(indices, expected)
    assert up.shape == (1, 2, 8, 8)
    # Unpooling writes each value where its maximum was, zeros elsewhere.
    assert ((up != 0).sum(dim=(2, 3)) <= 16).all()


def test_torch_export_round_trip() -> None:
    g = nas.build(RESNET18)
    m = nas.lower(g).eval()
    x = torch.randn(1, 3, 64, 64)
    exported = torch.export.export(m, (x,))
    torch.testing.assert_close(exported.module()(x), m(x))


@pytest.mark.slow
def test_torch_compile() -> None:
    g = nas.build(
        """
inputs: {x: [3, 16, 16]}
nodes:
  conv: {block: conv2d, in: x, out_channels: 8, kernel_size: 3, padding: 1}
  block: {block: basic_block, in: conv, out_channels: 16, stride: 2}
  pool: {block: adaptive_avg_pool2d, in: block}
  flat: {block: flatten, in: pool}
  fc: {block: linear, in: flat, out_features: 4}
"""
    )
    m = nas.lower(g).eval()
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(m)
    torch.testing.assert_close(compiled(x), m(x), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda(resnet18: tuple[torch.nn.Module, torch.nn.Module], monkeypatch: pytest.MonkeyPatch) -> None:
    # Convolutions default to TF32 on Ampere and later (a 10-bit mantissa, errors
    # of ~3e-3 on ResNet-18's scores): the check is of the lowering in fp32.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    ours, _ = resnet18
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(ours.cuda()(x.cuda()).cpu(), ours.cpu()(x), rtol=1e-3, atol=1e-3)


def test_flattened_lowering_has_one_module_per_primitive() -> None:
    g = nas.build(RESNET18)
    flat = nas.lower(g, flatten=True)
    assert "layer2_0_conv_down" in dict(flat.named_children())
    assert sum(p.numel() for p in flat.parameters()) == g.params


def train_both(*modules: torch.nn.Module) -> list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """Each module's outputs on one random batch (a tuple, however many) and
    the input's gradient of the sum of their squares, the backward pass run."""
    x = torch.randn(2, *SHAPE)
    results = []
    for module in modules:
        xi = x.clone().requires_grad_()
        out = module(xi)
        out = out if isinstance(out, tuple) else (out,)
        sum(o.pow(2).sum() for o in out).backward()
        assert xi.grad is not None
        results.append((out, xi.grad))
    return results


@settings(max_examples=40, deadline=None)
@given(dags())
def test_a_stepped_module_trains_as_the_flat_graph_module_does(spec: Spec) -> None:
    g = build_dag(spec)
    reference, stepped = nas.lower(g, flatten=True).train(), Stepped(g).train()
    assert list(stepped.state_dict()) == list(reference.state_dict())
    stepped.load_state_dict(reference.state_dict())
    (out1, grad1), (out2, grad2) = train_both(reference, stepped)
    for a, b in zip(out1, out2, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(grad1, grad2)
    for (name, p), q in zip(reference.named_parameters(), stepped.parameters()):
        assert torch.equal(p.grad, q.grad), name
    for (name, b), c in zip(reference.named_buffers(), stepped.buffers()):
        assert torch.equal(b, c), name  # batch-norm statistics updated alike


def test_flatten_lower_and_stepped_name_an_inlined_node_alike_where_its_name_is_taken() -> None:
    g = nas.build(
        "inputs: {x: [3, 8, 8]}\n"
        "nodes:\n"
        "  a_conv: {block: conv2d, out_channels: 4, kernel_size: 3, padding: 1}\n"
        "  a: {block: conv_bn_act, out_channels: 4, kernel_size: 3}\n"
    )
    flat = nas.flatten(g)
    assert [(n.name, n.meta["path"]) for n in flat][1:3] == [("a_conv", "a_conv"), ("a_conv_2", "a.conv")]
    modules = {name for name, _ in nas.lower(g, flatten=True).named_children()}
    assert modules == {name for name, _ in Stepped(g).named_children()} == {n.name for n in flat} - {"x", "a_act"}
    assert Stepped(g).paths["a_conv_2"] == "a.conv"


@pytest.mark.parametrize("name", ["enet", "googlenet", "fractalnet", "squeezenet1_1"])
def test_a_stepped_zoo_net_computes_what_its_flat_graph_module_computes(name: str) -> None:
    """Composites inlined at several depths, several outputs (ENet's pooling
    indices), concatenations and in-place additions, each named as the flat
    lowering names them, and each submodule's nested path."""
    g = nas.zoo.load(name)
    torch.manual_seed(0)
    reference = nas.lower(g, flatten=True).eval()
    stepped = Stepped(g).eval()
    stepped.load_state_dict(reference.state_dict())  # strict: the same names
    nested = nas.lower(g).state_dict()
    assert {stepped.paths[k.partition(".")[0]] + "." + k.partition(".")[2] for k in stepped.state_dict()} == set(nested)
    x = torch.randn(1, *next(iter(g.summary.inputs.values())))
    with torch.no_grad():
        assert torch.equal(stepped(x), reference(x))


@settings(max_examples=60, deadline=None)
@given(dags())
def test_inplace_lowering_computes_the_same_values_and_gradients(spec: Spec) -> None:
    g = build_dag(spec)
    fast, plain = nas.lower(g).train(), nas.lower(g, inplace=False).train()
    plain.load_state_dict(fast.state_dict())
    (out1, grad1), (out2, grad2) = train_both(fast, plain)
    for a, b in zip(out1, out2, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(grad1, grad2)
    for (name, p), q in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_inplace_is_used_where_it_is_safe_only() -> None:
    code = nas.lower(nas.build(RESNET18)).layer1_0.code
    assert "bn1.relu_()" in code and "bn2.add_(x)" in code and "add.relu_()" in code
    code = nas.lower(nas.build(RESNET18), inplace=False).layer1_0.code
    assert "relu_" not in code and "add_" not in code
    # The input of the block is read by the shortcut too: never overwritten.
    g = nas.build("inputs: {x: [4]}\nnodes: {a: {block: relu, in: x}, b: {block: relu, in: a}}\n")
    assert "relu_" not in nas.lower(g).code  # x is the caller's; a is read by relu, whose backward needs it
