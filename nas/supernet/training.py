"""Training a supernet: subnets sampled per step, one optimiser over the bank.

Two rules choose the subnets of a step:

* ``uniform``: one subnet drawn uniformly (single-path, Guo et al. 2020);
* ``sandwich``: the largest, the smallest and ``random`` drawn subnets (Yu
  et al. 2019, "Universally Slimmable Networks"), the largest trained on
  the labels and the others on its predictions (in-place distillation),
  their gradients summed into one step.

With ``progressive`` epochs (Once-for-All's progressive shrinking, Cai et
al. 2020, made generic by :func:`nas.space.near`), the subnets drawn in
the first epochs stay near the largest network: in epoch ``e`` each
numeric or optional decision is drawn from the ``(e + 1) / (progressive +
1)`` of its domain nearest the largest network's value, so that small
subnets start from weights the large ones have shaped.

The recipe is a training recipe as for one network (:mod:`nas.train.recipes`):
its optimiser over the bank, its schedule over all steps. After each epoch
the largest and the smallest subnets are evaluated (statistics recalibrated)
and the run's state is checkpointed: an interrupted run resumes where it
stopped, with the bank, the optimiser's state and the schedule, and a run
given more epochs than it was planned for goes on to them, its schedule
stretched over the new total.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import torch
import torch.nn.functional as F

from nas.data import DataSet, Loader, loader
from nas.ir.errors import NASError, WriteError, one_line
from nas.ir.graph import Graph
from nas.space import Assignment, Space, end, near
from nas.supernet.net import Started, Subnet, Supernet
from nas.train import EvaluationFailed, Precision, Recipe, choose_recipe, precision_for
from nas.train.checkpoint import RunState

RULES = ("sandwich", "uniform")
CHECKPOINT = "checkpoint.safetensors"
LOG = "log.json"
EVAL_BATCH = 256


@dataclass
class EpochLog:
    """One epoch of supernet training: mean loss, the extremes' validation accuracy, time."""

    epoch: int
    loss: float
    largest: float
    smallest: float
    seconds: float


def feeds(
    supernet: Supernet,
    data: DataSet,
    recipe: Recipe,
    augment: bool | str | None,
    precision: Precision | None = None,
    workers: int | None = None,
) -> dict[str, Loader]:
    """The training and validation batches at the supernet's input shape, in
    the memory format of ``precision`` (default: how a network trains on the
    supernet's device, :func:`nas.train.precision_for`), images on disk
    decoded by ``workers`` processes (default: :func:`nas.data.default_workers`)."""
    shape = next(iter(supernet.network(supernet.smallest()).summary.inputs.values()))
    augmentation = recipe.augment if augment is None else augment
    layout = (precision if precision is not None else precision_for(supernet.device)).channels_last
    common = {"device": supernet.device, "channels_last": layout, "workers": workers}
    return {
        "train": loader(data, "train", shape, batch_size=recipe.batch_size, augment=augmentation, **common),
        "val": loader(data, "val", shape, batch_size=EVAL_BATCH, **common),
        "calibrate": loader(data, "train", shape, batch_size=recipe.batch_size, augment=False, **common),
    }


def step_rng(seed: int, epoch: int, step: int) -> random.Random:
    return random.Random(f"{seed}:{epoch}:{step}")


RANGE_TRIES = 500
"""Draws a run with a cost range makes for one network in it before it gives up (Guo et al.'s bound)."""
RANGE_ENDS = 64
"""Networks of a cost range drawn to choose its ends: the one of the most MACs teaches, of the fewest anchors."""


@dataclass(frozen=True)
class CostRange:
    """The networks a run trains when the budgets it must serve are known:
    those whose ``cost`` (a latency predicted from a table, say) lies in
    ``[low, high]``, ``source`` naming what measures it.

    Single-path one-shot (Guo et al. 2020) trains only the networks of its
    FLOPs range: the steps go to the networks a search under those budgets
    will compare, and none to the largest networks, the costliest to run.
    Networks outside the range inherit weights that were not trained for them.

    Raises:
        NASError: an empty range.
    """

    cost: Callable[[Graph], float]
    low: float
    high: float
    source: str
    unit: str = "ms"

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high or self.high <= 0:
            raise NASError(
                f"the cost range {self.describe()} is empty",
                field="range",
                hint="give LOW:HIGH with 0 <= LOW <= HIGH and HIGH > 0, e.g. 0:0.7",
            )

    def __contains__(self, graph: Graph) -> bool:
        return self.low <= self.cost(graph) <= self.high

    def describe(self) -> str:
        return f"{self.low:g} to {self.high:g} {self.unit}"

    def plain(self) -> dict[str, Any]:
        """The range as a run's settings and a supernet's record hold it."""
        return {"low": self.low, "high": self.high, "unit": self.unit, "source": self.source}


class SupernetRun:
    """A supernet, its optimiser and schedule, and its training steps.

    ``initial`` is a trained network of the space (its assignment and state
    dict) that a new run's bank starts from (:meth:`Supernet.start_from`;
    what it took is ``started`` once training begins).

    ``distill=False`` trains the sandwich's other subnets on the labels
    too, instead of on the teacher's predictions.

    ``within`` restricts the subnets trained to a cost range
    (:class:`CostRange`); the sandwich's ends are then the networks of the
    most and the fewest MACs drawn in it.

    ``precision`` is how steps compute (default: :func:`nas.train.precision_for`
    the supernet's device, mixed precision on a GPU as for any training):
    under fp16 the subnets' gradients are scaled, summed, and unscaled
    before clipping and the step; the bank itself stays float32.
    """

    def __init__(
        self,
        supernet: Supernet,
        data: DataSet,
        *,
        recipe: str | Recipe | None = None,
        epochs: int = 10,
        rule: str = "sandwich",
        random_subnets: int = 2,
        augment: bool | str | None = None,
        progressive: int = 0,
        seed: int = 0,
        precision: Precision | None = None,
        workers: int | None = None,
        initial: tuple[Assignment, Mapping[str, torch.Tensor]] | None = None,
        within: CostRange | None = None,
        distill: bool = True,
    ) -> None:
        if rule not in RULES:
            raise NASError(f"unknown sampling rule '{rule}'", field="rule", hint=f"use {' or '.join(RULES)}")
        if not 0 <= progressive < max(1, epochs):
            raise NASError(
                f"progressive epochs must be fewer than the epochs ({epochs}), got {progressive}",
                field="progressive",
                hint=f"give 0 (off) to {max(0, epochs - 1)}, e.g. half the epochs",
            )
        if progressive and within is not None:
            raise NASError(
                "progressive shrinking widens from the largest network, which a cost range leaves out",
                field="progressive",
                hint="give one of them: --progressive 0, or no cost range",
            )
        self.supernet = supernet
        self.recipe = choose_recipe(data, recipe)
        self.epochs = epochs
        self.rule = rule
        self.random_subnets = random_subnets
        self.progressive = progressive
        self.seed = seed
        self.precision = precision if precision is not None else precision_for(supernet.device)
        self.initial = initial
        self.within = within
        self.distill = distill
        self._ends: tuple[Assignment, Assignment] | None = None
        self.started: Started | None = None
        self._phases: dict[float, tuple[Space, Assignment]] = {}
        self.feeds = feeds(supernet, data, self.recipe, augment, self.precision, workers)
        self.steps = len(self.feeds["train"])
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=self.recipe.label_smoothing)
        scaler = torch.amp.GradScaler(supernet.device.type) if self.precision.scaled else None
        self.state = RunState(supernet.bank, None, None, scaler)
        self.log: list[EpochLog] = []

    def settings(self, data: DataSet) -> dict[str, Any]:
        """What a resumed run must agree on (``progressive`` only where set, so that older runs resume)."""
        settings = {
            "space": self.supernet.space.name,
            "data": data.name,
            "recipe": self.recipe.plain(),
            "epochs": self.epochs,
            "rule": self.rule,
            "random_subnets": self.random_subnets,
            "seed": self.seed,
        }
        settings |= {"progressive": self.progressive} if self.progressive else {}
        if self.initial is not None:
            settings["initial"] = self.supernet.network(self.initial[0]).hash
        if self.within is not None:
            settings["within"] = self.within.plain()
        settings |= {"distill": False} if not self.distill else {}
        return settings | ({"amp": self.precision.plain()["amp"]} if self.precision.dtype is not None else {})

    def optimise(self, step: int = 0) -> None:
        """A new optimiser and schedule over the bank as it is now, the schedule at ``step``."""
        optimizer = self.recipe.optimizer_for(self.supernet.bank)
        assert optimizer is not None  # a bank has parameters
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        factor = self.recipe.factor
        total, per_epoch = self.steps * self.epochs, self.steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: factor(s, total, per_epoch), last_epoch=step - 1
        )
        self.state.optimizer, self.state.scheduler = optimizer, scheduler

    def schedule_at(self, step: int) -> None:
        """Set the learning rates to the schedule's at ``step`` of this run's
        epochs: what they are after ``step`` steps anyway, unless the run was
        planned for fewer epochs before (a warm restart, as timm's resume
        with more epochs: the rate rises to where the longer schedule is)."""
        optimizer, scheduler = self.state.optimizer, self.state.scheduler
        assert optimizer is not None and isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
        factor = self.recipe.factor(step, self.steps * self.epochs, self.steps)
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base * factor

    def fraction(self, epoch: int) -> float:
        """The share of each domain that epoch ``epoch`` draws from (1 once the progressive epochs are over)."""
        return 1.0 if epoch >= self.progressive else (epoch + 1) / (self.progressive + 1)

    def phase(self, epoch: int) -> tuple[Space, Assignment]:
        """The space that epoch ``epoch`` draws from and its smallest network."""
        fraction = self.fraction(epoch)
        if fraction not in self._phases:
            space = near(self.supernet.space, self.supernet.largest(), fraction)
            self._phases[fraction] = space, end(space, largest=False)
        return self._phases[fraction]

    def draw(self, rng: random.Random, space: Space) -> Assignment:
        """A random network of ``space``, in the run's cost range where it has one.

        Raises:
            NASError: no network in the range in :data:`RANGE_TRIES` draws.
        """
        net, within = self.supernet, self.within
        if within is None:
            return net.sample(rng, space)
        for _ in range(RANGE_TRIES):
            assignment = net.sample(rng, space)
            if net.network(assignment) in within:
                return assignment
        ends = [within.cost(net.network(a)) for a in (net.smallest(), net.largest())]
        raise NASError(
            f"no network of the space costs {within.describe()} in {RANGE_TRIES} draws",
            field="range",
            hint=f"widen it: the space's smallest network costs {ends[0]:.3g} {within.unit}, its largest {ends[1]:.3g}",
        )

    def ends(self) -> tuple[Assignment, Assignment]:
        """The sandwich's ends: the largest and smallest networks, or in a
        cost range the networks of the most and the fewest MACs among the
        space's ends and :data:`RANGE_ENDS` drawn in it.

        The teacher is the most capable network the range holds, not its
        costliest: a range's latency can peak at a deep, narrow network
        (many small layers) that learns slowly and teaches its students
        little."""
        net, within = self.supernet, self.within
        if within is None:
            return net.largest(), net.smallest()
        if self._ends is None:
            rng = random.Random(f"{self.seed}:ends")
            drawn = [self.draw(rng, net.space) for _ in range(RANGE_ENDS)]
            drawn += [a for a in (net.largest(), net.smallest()) if net.network(a) in within]
            macs = [net.network(a).macs for a in drawn]
            self._ends = drawn[macs.index(max(macs))], drawn[macs.index(min(macs))]
        return dict(self._ends[0]), dict(self._ends[1])

    def subnets(self, rng: random.Random, epoch: int = 0) -> list[Subnet]:
        """The subnets of one step, the teacher (the largest, or the cost range's of the most MACs) first
        under the sandwich rule."""
        net = self.supernet
        space, smallest = self.phase(epoch)
        if self.rule == "uniform":
            chosen = [self.draw(rng, space)]
        elif self.within is not None:
            chosen = [*self.ends(), *(self.draw(rng, space) for _ in range(self.random_subnets))]
        else:
            chosen = [net.largest(), smallest, *(net.sample(rng, space) for _ in range(self.random_subnets))]
        return [net.subnet(a) for a in chosen]

    def step(self, x: torch.Tensor, y: torch.Tensor, rng: random.Random, done: int) -> float:
        """One optimiser step over this batch's subnets; their mean loss."""
        subnets = self.subnets(rng, done // self.steps)
        for s in subnets:  # a drawn subnet larger than the census saw grows the bank
            if self.supernet.bank.grow(s.graph, s.parameters()):
                self.optimise(done)
        optimizer, scaler = self.state.optimizer, self.state.scaler
        assert optimizer is not None
        optimizer.zero_grad(set_to_none=True)
        losses = []
        teacher: torch.Tensor | None = None
        for i, s in enumerate(subnets):
            s.module.train()
            with self.precision.autocast(self.supernet.device):
                out = self.supernet.forward(s, x).float()
            if self.rule == "sandwich" and self.distill and i > 0:
                assert teacher is not None
                loss = F.kl_div(F.log_softmax(out, 1), F.softmax(teacher, 1), reduction="batchmean")
            else:
                loss = self.loss(out, y)
                teacher = out.detach()
            (loss if scaler is None else scaler.scale(loss)).backward()
            losses.append(float(loss.detach()))
        value = sum(losses) / len(losses)
        if not math.isfinite(value):
            raise EvaluationFailed(f"the supernet's loss is {value} at step {done + 1}")
        if scaler is None:
            self.recipe.clip(self.supernet.bank.parameters())
            optimizer.step()
        else:  # fp16: the summed gradients unscaled before clipping; a step with overflowed ones skipped
            if self.recipe.clip_grad is not None:
                scaler.unscale_(optimizer)
                self.recipe.clip(self.supernet.bank.parameters())
            scaler.step(optimizer)
            scaler.update()
        assert self.state.scheduler is not None
        self.state.scheduler.step()
        return value

    def evaluate(self, assignment: dict[str, Any]) -> float:
        """An assignment's validation accuracy with inherited weights, statistics recalibrated."""
        net = self.supernet.subnet(assignment)
        self.supernet.recalibrate(net, self.feeds["calibrate"])
        return self.supernet.accuracy(net, self.feeds["val"])


@contextlib.contextmanager
def _settled_heap() -> Iterator[None]:
    """Keep the objects alive at the start (the modules imported, the bank,
    the data) out of the cyclic garbage collector's scans until the end.

    Each step lowers new subnets and drops old ones; the objects they leave
    in the oldest generation make Python scan the whole heap (torch,
    networkx and Optuna's objects included) every few steps. Nothing is
    frozen where the caller froze objects already (:func:`gc.freeze` is
    theirs to manage).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_settled_heap()
def train_supernet(
    run: SupernetRun,
    data: DataSet,
    *,
    directory: Path | None = None,
    timeout_s: float | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> list[EpochLog]:
    """Train ``run``'s supernet for its epochs; with a ``directory``, checkpoint
    after every epoch there (``checkpoint.safetensors``, ``log.json``) and
    resume from what it holds.

    Raises:
        EvaluationFailed: a non-finite loss, the time limit, or an error of a subnet.
        NASError: the checkpoint is of another run.
        WriteError: the checkpoint could not be written.
    """
    settings = run.settings(data)
    first = 0
    checkpoint = None if directory is None else directory / CHECKPOINT
    if checkpoint is not None and checkpoint.is_file():
        run.supernet.bank.load({name: torch.zeros(shape) for name, shape in _bank_shapes(checkpoint).items()})
        run.supernet.bank.to(run.supernet.device)
        run.optimise()
        first, _ = run.state.resume(checkpoint, settings, extend=True)
        run.schedule_at(first * run.steps)  # a run extended to more epochs: its schedule stretched to them
        run.log = [EpochLog(**e) for e in json.loads((directory / LOG).read_text())][:first]
    else:
        run.supernet.census(random.Random(run.seed))
        if run.initial is not None:
            run.started = run.supernet.start_from(*run.initial)
        run.optimise()
    started = time.perf_counter()
    try:
        for epoch in range(first, run.epochs):
            begun = time.perf_counter()
            losses = []
            for step, (x, y) in enumerate(run.feeds["train"].epoch(epoch, seed=run.seed)):
                done = epoch * run.steps + step
                losses.append(run.step(x, y, step_rng(run.seed, epoch, step), done))
                if on_step is not None:
                    on_step(epoch, step, losses[-1])
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    raise EvaluationFailed(f"timed out in epoch {epoch + 1} of {run.epochs}")
            top, bottom = run.ends()
            entry = EpochLog(
                epoch + 1,
                sum(losses) / max(1, len(losses)),
                run.evaluate(top),
                run.evaluate(bottom),
                round(time.perf_counter() - begun, 3),
            )
            run.log.append(entry)
            if directory is not None:
                write_text(
                    directory / LOG, json.dumps([vars(e) for e in run.log], indent=1) + "\n", what="the training log"
                )
                run.state.save(directory / CHECKPOINT, settings, epoch + 1, [e.largest for e in run.log])
            if on_epoch is not None:
                on_epoch(entry)
    except (EvaluationFailed, NASError):
        raise
    except (RuntimeError, ValueError, MemoryError) as e:
        raise EvaluationFailed(f"supernet training failed: {type(e).__name__}: {one_line(e)}") from e
    return run.log


def _bank_shapes(path: Path) -> dict[str, list[int]]:
    prefix = "model.entries."
    with safetensors.safe_open(str(path), framework="pt") as f:
        return {
            k.removeprefix(prefix).replace(":", "."): list(f.get_slice(k).get_shape())
            for k in f.keys()  # noqa: SIM118 (safe_open is not a mapping)
            if k.startswith(prefix)
        }


def write_text(path: Path, text: str, *, what: str) -> None:
    """Write ``text`` to ``path`` atomically (a file beside it, then a rename).

    Raises:
        WriteError: the file could not be written.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise WriteError.of(path, e, what=what) from None


class Inheritance:
    """Accuracy with inherited weights: a trained supernet's evaluation of any of its networks.

    A search calls it in place of training: the network's statistics are
    recalibrated on training batches, its accuracy measured on the
    validation part, and its own weights returned for export.
    """

    def __init__(
        self, supernet: Supernet, data: DataSet, recipe: str | Recipe | None = None, *, workers: int | None = None
    ) -> None:
        self.supernet = supernet
        self.data = data
        self.recipe = choose_recipe(data, recipe)
        self.workers = workers
        self.feeds = feeds(supernet, data, self.recipe, False, workers=workers)

    def to(self, device: torch.device) -> Inheritance:
        """Evaluate on ``device``: the bank moved there, the batches fed there."""
        if device != self.supernet.device:
            self.supernet.to(device)
            self.feeds = feeds(self.supernet, self.data, self.recipe, False, workers=self.workers)
        return self

    def __call__(self, graph: Graph) -> tuple[float, dict[str, torch.Tensor]]:
        """The network's accuracy and weights.

        Raises:
            NASError: a network with a parameter larger than the bank holds
                (not a network of the supernet's space).
        """
        net = self.supernet.of_graph(graph)
        try:
            self.supernet.bank.views(graph, net.parameters())
        except KeyError as e:
            raise NASError(f"the network is not in the supernet: {e}", hint="search the supernet's own space") from None
        self.supernet.recalibrate(net, self.feeds["calibrate"])
        return self.supernet.accuracy(net, self.feeds["val"]), self.supernet.weights(net)
