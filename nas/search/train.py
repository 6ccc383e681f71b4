"""A short training run: the accuracy objective of a search.

:func:`train` lowers a graph, trains it with Adam for a few epochs on the
training images and reports validation accuracy after each epoch to a
callback (which may stop it: pruning). Whatever goes wrong inside (a NaN
loss, the time limit, an exception of the network) is an
:class:`EvaluationFailed` with a one-line reason, so the searcher records
the trial as failed and goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nas.graph import Graph
from nas.lower import lower
from nas.search.data import Images, Split


class EvaluationFailed(Exception):
    """A candidate that could not be evaluated; ``str(e)`` is the one-line reason."""


@dataclass
class TrainResult:
    """What a training run gave: validation accuracy after each epoch
    (``curve``), the final one, the time it took and the trained weights."""

    accuracy: float
    curve: list[float]
    seconds: float
    state: dict[str, torch.Tensor] = field(repr=False)


def logits(graph: Graph, output: torch.Tensor) -> torch.Tensor:
    """Class scores from a network's output (negated for penalty outputs)."""
    return -output if graph.node(graph.outputs[0].node).block.penalty else output


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state dict that ``safetensors`` can save (on
    the CPU, contiguous, no shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def accuracy(graph: Graph, model: torch.nn.Module, images: Images, device: torch.device, batch: int = 256) -> float:
    """The fraction of ``images`` that ``model`` classifies right (eval mode)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = images.x[start : start + batch].to(device)
            y = images.y[start : start + batch].to(device)
            correct += int((logits(graph, model(x)).argmax(1) == y).sum())
    return correct / max(1, len(images))


def train(
    graph: Graph,
    data: Split,
    *,
    epochs: int = 2,
    timeout_s: float | None = None,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 2e-3,
    device: torch.device | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``graph`` on ``data`` (resized to its input) and measure validation accuracy.

    Args:
        epochs: passes over the training images.
        timeout_s: wall-clock limit of the whole run.
        seed: seeds the weights and the order of the batches.
        on_epoch: called with ``(epoch, accuracy)`` after each epoch; it may
            raise (``optuna.TrialPruned``) to stop the run.

    Raises:
        EvaluationFailed: a non-finite loss, the time limit, or an error
            raised by the network (out of memory ...).
    """
    device = device or default_device()
    started = time.perf_counter()
    torch.manual_seed(seed)
    shape = next(iter(graph.summary.inputs.values()))
    train_images, val_images = data.fit(shape)
    curve: list[float] = []
    try:
        model = lower(graph).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr) if any(True for _ in model.parameters()) else None
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train_images), generator=generator)
            for step, start in enumerate(range(0, len(order), batch_size)):
                index = order[start : start + batch_size]
                x, y = train_images.x[index].to(device), train_images.y[index].to(device)
                loss = F.cross_entropy(logits(graph, model(x)), y)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise EvaluationFailed(f"the loss is {value} in epoch {epoch + 1}, step {step + 1}")
                if optimizer is not None:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    raise EvaluationFailed(f"timed out after {timeout_s:g} s, in epoch {epoch + 1} of {epochs}")
            curve.append(accuracy(graph, model, val_images, device))
            if on_epoch is not None:
                on_epoch(epoch, curve[-1])
    except EvaluationFailed:
        raise
    except (RuntimeError, ValueError, MemoryError) as e:
        reason = " ".join(str(e).split())[:300]
        raise EvaluationFailed(f"training failed: {type(e).__name__}: {reason}") from e
    return TrainResult(curve[-1] if curve else 0.0, curve, time.perf_counter() - started, state_of(model))
