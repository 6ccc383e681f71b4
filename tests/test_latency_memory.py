"""Refusing, before allocating, a measurement or a training run that cannot fit in memory."""

from __future__ import annotations

import time

import pytest
import torch

import nas
import nas.latency.measurement as measurement
import nas.latency.memory as memory
from nas.cli import main

MLP = """
inputs: {x: [1000]}
nodes:
  fc1: {block: linear, out_features: 2000}
  act: {block: relu}
  fc2: {block: linear, out_features: 10}
"""


def test_needed_bytes_by_hand() -> None:
    g = nas.build(MLP)
    params = 1000 * 2000 + 2000 + 2000 * 10 + 10
    assert g.params == params
    # Inference at batch 8: the weights, and at the peak fc1's output and the
    # relu's (8 kB each per sample, float32) alive at once.
    assert memory.needed_bytes(g, batch=8) == 4 * params + 8 * 4 * (2000 + 2000)
    # Training: the gradients of the weights too.
    assert memory.needed_bytes(g, batch=8, training=True) == 8 * params + 8 * 4 * (2000 + 2000)
    assert memory.needed_bytes(g, batch=8, precision="bf16") == 4 * params + 8 * 2 * (2000 + 2000)


def test_the_estimate_is_a_lower_bound_of_what_torch_holds() -> None:
    # The tensors a forward pass returns and keeps for backward, counted by torch itself.
    g = nas.build("resnet20")
    module = nas.lower(g)
    x = torch.randn(4, 3, 32, 32)
    kept: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    weights = sum(p.numel() * p.element_size() for p in module.parameters())
    held = 2 * weights + sum(kept)  # weights, gradients and the saved tensors (shared ones counted once or more)
    assert memory.needed_bytes(g, batch=4) <= memory.needed_bytes(g, batch=4, training=True) <= held


def test_available_memory_is_read_on_this_machine() -> None:
    free = memory.available_bytes("cpu")
    assert free is not None and free > 0


def test_a_network_too_big_is_refused_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 30)
    ran: list[object] = []
    monkeypatch.setattr(measurement, "_run", lambda *a, **k: ran.append(a))
    with pytest.raises(nas.NASError) as info:
        measurement.measure("resnet18", "torch", input_shape="3x2048x2048", batch=4, cache=False)
    message = str(info.value)
    assert "\n" not in message and ran == []
    assert "needs at least" in message and "1.0 GiB free" in message and "3x2048x2048, batch 4" in message


def test_a_network_that_fits_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 30)
    m = nas.latency.measure("lenet5", "torch", threads=1, cache=False, policy=nas.latency.TimingPolicy.quick())
    assert m.ok


def test_the_cli_refuses_a_huge_input_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    # 3x20000x20000 through resnet18 needs tens of GB: refused in seconds, not after a minute of swapping.
    started = time.perf_counter()
    code = main(["latency", "resnet18", "--input", "3x20000x20000", "--backend", "torch"])
    assert time.perf_counter() - started < 60
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "GiB" in err and "3x20000x20000" in err
