"""A training run: the accuracy objective of a search, and ``nas train``.

:func:`train` lowers a graph, trains it with a :class:`~nas.train.recipes.Recipe`
on a data set's training part (batches at the network's own input shape,
augmented as the data set's kind wants) and reports validation accuracy
after each epoch to a callback, which may stop it (pruning). Whatever goes
wrong inside (a non-finite loss, the time limit, an exception of the
network) is an :class:`EvaluationFailed` with a one-line reason, so that a
search records the trial as failed and goes on.

With a ``checkpoint`` file the run saves its whole state after every epoch
(:mod:`nas.train.checkpoint`) and a later run with the same settings resumes
from it: an interrupted ``nas train`` loses at most one epoch, and the
resumed run gives the weights an uninterrupted one would have.

Before anything is allocated, a run that cannot fit in the device's memory
is refused in one line (:func:`nas.latency.memory.check_fits`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.data import DataSet, Loader, loader
from nas.ir.errors import one_line
from nas.ir.graph import Graph
from nas.latency.memory import check_fits
from nas.passes.lower import lower
from nas.train.checkpoint import RunState, digest, state_of
from nas.train.device import Precision, precision_for, resolve_device
from nas.train.recipes import Recipe, default_recipe
from nas.train.recipes import recipe as recipe_named

EVAL_BATCH = 256


class EvaluationFailed(Exception):
    """A candidate that could not be evaluated; ``str(e)`` is the one-line reason."""


@dataclass
class TrainResult:
    """What a training run gave: validation accuracy after each epoch
    (``curve``), the final one, the time it took, the trained weights, and
    how it was trained (``recipe``: the recipe's fields, the epochs, the
    augmentation and the precision)."""

    accuracy: float
    curve: list[float]
    seconds: float
    state: dict[str, torch.Tensor] = field(repr=False)
    recipe: dict[str, Any] = field(default_factory=dict)


def logits(graph: Graph, output: torch.Tensor) -> torch.Tensor:
    """Class scores from a network's output (negated for penalty outputs)."""
    return -output if graph.node(graph.outputs[0].node).block.penalty else output


def input_shape(graph: Graph) -> tuple[int, ...]:
    """The shape of a network's (first) input, without the batch."""
    return tuple(next(iter(graph.summary.inputs.values())))


def choose_recipe(data: DataSet, name: str | Recipe | None = None, **overrides: Any) -> Recipe:
    """``name`` (a recipe, its name or a recipe file), or the one that suits ``data``, with ``overrides``."""
    if isinstance(name, Recipe):
        return name.with_changes(**overrides)
    return recipe_named(name or default_recipe(data.kind, data.augmentation), **overrides)


def accuracy(graph: Graph, model: torch.nn.Module, feed: Loader, *, precision: Precision | None = None) -> float:
    """The fraction of ``feed``'s images that ``model`` classifies right (eval mode)."""
    model.eval()
    correct = total = 0
    with torch.no_grad(), (precision or Precision(None, False)).autocast(feed.device):
        for x, y in feed.epoch():
            correct += int((logits(graph, model(x)).argmax(1) == y).sum())
            total += len(y)
    return correct / max(1, total)


def train(
    graph: Graph,
    data: DataSet,
    *,
    recipe: str | Recipe | None = None,
    epochs: int = 2,
    batch_size: int | None = None,
    lr: float | None = None,
    augment: bool | str | None = None,
    timeout_s: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    workers: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``graph`` on ``data`` (at its own input shape) and measure validation accuracy.

    Args:
        recipe: a :class:`Recipe`, a shipped recipe's name or a recipe file
            (default: the one that suits the data); ``batch_size``, ``lr``
            and ``augment`` override its fields.
        epochs: passes over the training images.
        timeout_s: wall-clock limit of the whole run.
        seed: seeds the weights, the order of the batches and the augmentation.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (default: the first GPU, else the CPU).
        amp, channels_last: mixed precision and channels-last batches
            (default: on a GPU, on; on the CPU, off).
        workers: decoding processes for images on disk.
        on_epoch: called with ``(epoch, accuracy)`` after each epoch; it may
            raise (``optuna.TrialPruned``) to stop the run.
        on_step: called with ``(epoch, step, loss)`` after each batch (progress).
        checkpoint: a file to resume from if it exists, and to save the
            run's state to after every epoch.
        weights: a state dict to start from (fine-tuning) instead of a new initialisation.

    Raises:
        EvaluationFailed: a non-finite loss, the time limit, or an error
            raised by the network (out of memory ...).
        NASError: the run needs more memory than the device has free; the
            checkpoint belongs to another network or other settings; an
            unknown recipe, device or augmentation.
        WriteError: the checkpoint could not be written (a full disk).
    """
    chosen = choose_recipe(data, recipe, batch_size=batch_size, lr=lr)
    where = resolve_device(device)
    precision = precision_for(where, amp=amp, channels_last=channels_last)
    augmentation = chosen.augment if augment is None else augment
    check_fits(graph, batch=chosen.batch_size, device=where, training=True, what="training")
    shape = input_shape(graph)
    feeds = {
        part: loader(
            data,
            part,
            shape,
            batch_size=chosen.batch_size if part == "train" else EVAL_BATCH,
            augment=augmentation,
            device=where,
            workers=workers,
            channels_last=precision.channels_last,
        )
        for part in ("train", "val")
    }
    how = {**chosen.plain(), "epochs": epochs, "augmentation": feeds["train"].augmentation, **precision.plain()}
    settings = {"graph": graph.hash, "data": data.name, "seed": seed, "recipe": how}
    if weights is not None and checkpoint is not None:  # what a checkpoint's run started from
        settings["weights"] = digest(weights)
    started = time.perf_counter()
    torch.manual_seed(seed)
    run = _Run(graph, chosen, feeds, where, precision, epochs, weights)
    try:
        first, curve = 0, []
        if checkpoint is not None and Path(checkpoint).is_file():
            first, curve = run.state.resume(Path(checkpoint), settings)
        for epoch in range(first, epochs):
            run.epoch(epoch, seed, on_step, deadline=None if timeout_s is None else started + timeout_s)
            curve.append(accuracy(graph, run.model, feeds["val"], precision=precision))
            if checkpoint is not None:
                run.state.save(Path(checkpoint), settings, epoch + 1, curve)
            if on_epoch is not None:
                on_epoch(epoch, curve[-1])
    except EvaluationFailed:
        raise
    except (RuntimeError, ValueError, MemoryError) as e:
        raise EvaluationFailed(f"training failed: {type(e).__name__}: {one_line(e)}") from e
    return TrainResult(curve[-1] if curve else 0.0, curve, time.perf_counter() - started, state_of(run.model), how)


class _Run:
    """A model, its optimiser, scheduler and scaler, and one epoch of steps."""

    def __init__(
        self,
        graph: Graph,
        recipe: Recipe,
        feeds: dict[str, Loader],
        device: torch.device,
        precision: Precision,
        epochs: int,
        weights: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.graph = graph
        self.recipe = recipe
        self.feed = feeds["train"]
        self.device = device
        self.precision = precision
        model = lower(graph)
        if weights is not None:
            model.load_state_dict(weights)
        if recipe.norm_momentum is not None:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = recipe.norm_momentum
        model = model.to(device)
        if precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        optimizer = recipe.optimizer_for(model)
        steps = len(self.feed)
        scheduler = (
            None if optimizer is None else recipe.scheduler(optimizer, total=steps * epochs, steps_per_epoch=steps)
        )
        scaler = torch.amp.GradScaler(device.type) if precision.scaled else None
        self.state = RunState(model, optimizer, scheduler, scaler)
        self.epochs = epochs
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def epoch(
        self, epoch: int, seed: int, on_step: Callable[[int, int, float], None] | None, *, deadline: float | None
    ) -> None:
        """One pass over the training batches; past ``deadline`` (``perf_counter`` time) the run fails."""
        self.model.train()
        optimizer, scheduler, scaler = self.state.optimizer, self.state.scheduler, self.state.scaler
        for step, (x, y) in enumerate(self.feed.epoch(epoch, seed=seed)):
            with self.precision.autocast(self.device):
                loss = self.loss(logits(self.graph, self.model(x)).float(), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise EvaluationFailed(f"the loss is {value} in epoch {epoch + 1}, step {step + 1}")
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if self.recipe.clip_grad is not None:
                        scaler.unscale_(optimizer)
                        self.recipe.clip(self.model.parameters())
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    self.recipe.clip(self.model.parameters())
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            if on_step is not None:
                on_step(epoch, step, value)
            if deadline is not None and time.perf_counter() > deadline:
                raise EvaluationFailed(f"timed out after the time limit, in epoch {epoch + 1} of {self.epochs}")
