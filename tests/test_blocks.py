"""Contract tests run on every registered block type (timm's test_models
pattern): a new block is tested by declaring its ``examples``.

For each example: the lowered module's output shapes equal the inferred
ones, ``sum(p.numel())`` equals the analytic parameter count,
``FlopCounterMode`` equals the analytic MACs, every parameter gets a
gradient, and the YAML round trip and flattening keep the hash.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.ir.errors import ParamError, UnknownBlockError
from nas.ir.registry import Block, Example
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
        ({"kernel_size": 3}, "needs this parameter"),
    ],
)
def test_parameters_are_checked(params: dict[str, object], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        nas.get_block("conv2d").check_params(params)


def test_equal_pairs_are_canonicalised() -> None:
    block = nas.get_block("conv2d")
    assert block.check_params({"out_channels": 8, "kernel_size": [3, 3]}) == block.check_params(
        {"out_channels": 8, "kernel_size": 3}
    )
    assert block.check_params({"out_channels": 8, "kernel_size": [1, 7]})["kernel_size"] == (1, 7)
