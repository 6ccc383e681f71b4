"""Latency units follow the fusion roles that blocks declare
(:attr:`nas.ir.registry.Block.fusion`), not a list of names in the pass."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import torch.nn.functional as F

import nas
from nas.ir import registry
from nas.ir.registry import Block, Call, Params, Shape, register
from nas.passes.fusion import units


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Blocks registered in the test are gone after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    yield


def _register_softsign(role: str | None) -> str:
    @register
    class Softsign(Block):
        """``x / (1 + |x|)``: an activation the library does not ship."""

        name = "test_softsign"
        fusion = role

        def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
            return ins[0]

        def lower(self, p: Params, ins: Sequence[Shape]) -> Call:
            return Call(F.softsign)

    return Softsign.name


def _conv_then(*blocks: str) -> nas.Graph:
    g = nas.Graph("chain")
    last = g.add("conv", "conv2d", g.add_input("x", (3, 8, 8)), out_channels=4, kernel_size=3)
    for i, block in enumerate(blocks):
        last = g.add(f"n{i}", block, last)
    g.set_outputs(last)
    return nas.build(g)


@pytest.mark.usefixtures("scratch_registry")
@pytest.mark.parametrize("norm", [(), ("batch_norm",)])
def test_a_newly_registered_activation_fuses_into_the_convolution(norm: tuple[str, ...]) -> None:
    name = _register_softsign("activation")
    found = units(_conv_then(*norm, name))
    assert [u.kind for u in found] == ["+".join(("conv2d", *norm, name))]
    assert [block for block, _ in found[0].members] == ["conv2d", *norm, name]
    # The fused unit stands alone as a network, for timing.
    assert found[0].graph().summary.outputs == [(4, 6, 6)]


@pytest.mark.usefixtures("scratch_registry")
def test_a_block_without_a_role_runs_on_its_own() -> None:
    name = _register_softsign(None)
    assert [u.kind for u in units(_conv_then("batch_norm", name))] == ["conv2d+batch_norm", name]


def test_the_test_block_is_gone_after_the_test() -> None:
    assert "test_softsign" not in nas.list_blocks()


@pytest.mark.parametrize(
    ("blocks", "kinds"),
    [
        (("relu", "batch_norm"), ["conv2d+relu", "batch_norm"]),  # a norm after the activation is not folded
        (("relu", "relu"), ["conv2d+relu", "relu"]),  # one activation per chain
        (("batch_norm", "batch_norm"), ["conv2d+batch_norm", "batch_norm"]),
        (("flatten", "relu"), ["conv2d", "flatten", "relu"]),
    ],
)
def test_a_chain_is_head_then_norm_then_activation(blocks: tuple[str, ...], kinds: list[str]) -> None:
    assert [u.kind for u in units(_conv_then(*blocks))] == kinds
