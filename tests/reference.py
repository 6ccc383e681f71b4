"""Checking zoo nets against reference implementations (torchvision, timm).

The lowered graph registers its weights in the order its nodes run; the zoo
files order their nodes so that this is also the order in which the
reference registers its modules. ``copy_weights`` pairs the two state dicts by
position, insisting that every pair has the same shape, and the output
comparison then proves that the pairing (and the network) is right.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def randomize_batch_norm(model: nn.Module) -> None:
    """Give batch norms random statistics and affine parameters, so that a
    wrong pairing cannot hide behind identity normalisation."""
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.data.copy_(torch.rand(m.bias.shape, generator=generator) * 0.2 - 0.1)


def copy_weights(reference: nn.Module, ours: nn.Module, skip: Callable[[str], bool] = lambda key: False) -> None:
    """Load ``reference``'s state dict into ``ours``, pairing tensors by position.

    ``skip`` drops reference keys that have no counterpart (an auxiliary
    classifier left out of the inference graph).
    """
    theirs = [(k, v) for k, v in reference.state_dict().items() if not skip(k)]
    mine = list(ours.state_dict().items())
    assert len(theirs) == len(mine), f"{len(theirs)} reference tensors, {len(mine)} of ours"
    state = {}
    for (their_key, value), (my_key, mine_value) in zip(theirs, mine):
        assert value.shape == mine_value.shape, (
            f"{their_key} {tuple(value.shape)} vs {my_key} {tuple(mine_value.shape)}"
        )
        state[my_key] = value
    ours.load_state_dict(state)


def reference_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """MACs of one forward pass at batch 1, by PyTorch's FLOP counter."""
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *shape))
    return counter.get_total_flops() // 2


def assert_same_function(
    ours: nn.Module, reference: nn.Module, shape: tuple[int, ...], *, atol: float = 1e-5, batch: int = 2
) -> None:
    """Same weights in, same outputs out (eval mode)."""
    reference.eval()
    ours.eval()
    x = torch.randn(batch, *shape)
    with torch.inference_mode():
        expected, actual = reference(x), ours(x)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-4)
