"""A short training run: the accuracy objective of a search.

:func:`train` lowers a graph, trains it with Adam for a few epochs on the
training images and reports validation accuracy after each epoch to a
callback (which may stop it: pruning). Whatever goes wrong inside (a NaN
loss, the time limit, an exception of the network) is an
:class:`EvaluationFailed` with a one-line reason, so the searcher records
the trial as failed and goes on.

With a ``checkpoint`` file, the run saves its whole state (weights, Adam's
moments, the batch-order generator, the accuracy curve) after every epoch,
atomically and as safetensors, and a later run with the same settings
resumes from it: an interrupted ``nas train`` loses at most one epoch, and
the resumed run gives the weights an uninterrupted one would have.

Before anything is allocated, a run that cannot fit in the device's memory
is refused in one line (:func:`nas.latency.memory.check_fits`), and weights
are written atomically (:func:`save_tensors`): a full disk is a one-line
:class:`WriteError` naming the file, and never leaves a truncated file that a
resume or an export would read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F

from nas.ir.errors import NASError, WriteError, one_line
from nas.ir.graph import Graph
from nas.latency.memory import check_fits
from nas.passes.lower import lower
from nas.search.data import Images, Split


class EvaluationFailed(Exception):
    """A candidate that could not be evaluated; ``str(e)`` is the one-line reason."""


def save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, *, what: str, metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to ``path`` as safetensors, atomically: to a file next
    to it, then a rename, so that a failure (a full disk) leaves the previous
    file whole, or none, and never a truncated one.

    Raises:
        WriteError: the folder or the file could not be written (naming
            ``what`` it is, the file and the cause).
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)  # frees what the failed write took
        raise WriteError.of(path, e, what=what) from None


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
    on_step: Callable[[int, int, float], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train ``graph`` on ``data`` (resized to its input) and measure validation accuracy.

    Args:
        epochs: passes over the training images.
        timeout_s: wall-clock limit of the whole run.
        seed: seeds the weights and the order of the batches.
        on_epoch: called with ``(epoch, accuracy)`` after each epoch; it may
            raise (``optuna.TrialPruned``) to stop the run.
        on_step: called with ``(epoch, step, loss)`` after each batch (progress).
        checkpoint: a file to resume from if it exists, and to save the
            run's state to after every epoch.

    Raises:
        EvaluationFailed: a non-finite loss, the time limit, or an error
            raised by the network (out of memory ...).
        NASError: the run needs more memory than the device has free; the
            checkpoint belongs to another network or other settings.
        WriteError: the checkpoint could not be written (a full disk).
    """
    device = device or default_device()
    check_fits(graph, batch=batch_size, device=device, training=True, what="training")
    started = time.perf_counter()
    torch.manual_seed(seed)
    shape = next(iter(graph.summary.inputs.values()))
    train_images, val_images = data.fit(shape)
    curve: list[float] = []
    try:
        model = lower(graph).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr) if any(True for _ in model.parameters()) else None
        generator = torch.Generator().manual_seed(seed)
        settings = {"graph": graph.hash, "data": data.name, "seed": seed, "batch_size": batch_size, "lr": lr}
        first = 0
        if checkpoint is not None and Path(checkpoint).is_file():
            first, curve = _resume(Path(checkpoint), settings, model, optimizer, generator)
        for epoch in range(first, epochs):
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
                if on_step is not None:
                    on_step(epoch, step, value)
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    raise EvaluationFailed(f"timed out after {timeout_s:g} s, in epoch {epoch + 1} of {epochs}")
            curve.append(accuracy(graph, model, val_images, device))
            if checkpoint is not None:
                _save(Path(checkpoint), settings, epoch + 1, curve, model, optimizer, generator)
            if on_epoch is not None:
                on_epoch(epoch, curve[-1])
    except EvaluationFailed:
        raise
    except (RuntimeError, ValueError, MemoryError) as e:
        raise EvaluationFailed(f"training failed: {type(e).__name__}: {one_line(e)}") from e
    return TrainResult(curve[-1] if curve else 0.0, curve, time.perf_counter() - started, state_of(model))


# -- checkpoints ------------------------------------------------------------------


def _save(
    path: Path,
    settings: dict[str, Any],
    epochs_done: int,
    curve: list[float],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    generator: torch.Generator,
) -> None:
    """Write the run's state after ``epochs_done`` epochs to ``path``, atomically
    (:func:`save_tensors`): an interruption or a full disk leaves the previous
    checkpoint whole."""
    tensors = {f"model.{k}": v for k, v in state_of(model).items()}
    tensors["rng.generator"] = generator.get_state()
    groups: list[dict[str, Any]] = []
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for key, value in values.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous().clone()
        groups = state["param_groups"]
    meta = {"settings": settings, "epochs_done": epochs_done, "curve": curve, "param_groups": groups}
    save_tensors(tensors, path, what="the training checkpoint", metadata={"nas_checkpoint": json.dumps(meta)})


def _resume(
    path: Path,
    settings: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    generator: torch.Generator,
) -> tuple[int, list[float]]:
    """Restore a run from the checkpoint at ``path``; the epochs it had done and its curve."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["nas_checkpoint"])
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except (OSError, KeyError, ValueError, safetensors.SafetensorError) as e:
        raise NASError(f"not a nas training checkpoint ({e})", file=str(path), hint="delete it to start over") from e
    if meta["settings"] != settings:
        differ = sorted(k for k in settings if meta["settings"].get(k) != settings[k])
        raise NASError(
            f"the checkpoint is of another run (its {', '.join(differ)} differ)",
            file=str(path),
            hint="give the settings it was made with, another --checkpoint, or delete it to start over",
        )
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    generator.set_state(tensors["rng.generator"])
    if optimizer is not None and meta["param_groups"]:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["epochs_done"]), [float(a) for a in meta["curve"]]
