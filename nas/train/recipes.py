"""Training recipes as data: an optimiser, a schedule and a loss, chosen by name.

A :class:`Recipe` is a frozen record; the shipped ones are rows of
:data:`RECIPES`, and a user's own is a YAML file of the same fields
(``--recipe my.yaml``), read with the safe loader. A recipe is stored with
each trial and in each model card, so that an exported model says how it
was trained.

Each row follows a published reference rather than a tuning of our own:

* ``adam``: the toolkit's first recipe (Adam at a fixed rate, no
  augmentation), kept to compare with;
* ``cifar``: SGD with Nesterov momentum, weight decay on weights only (not
  on norms and biases), label smoothing, a linear warm-up then a cosine
  decay to zero, as in He et al. 2019, "Bag of Tricks for Image
  Classification with Convolutional Neural Networks";
* ``digits``: the same schedule, smoothing and exemptions with AdamW
  (Loshchilov & Hutter 2019), for the few hundred steps of a search's trial
  on small glyph data sets, where SGD with momentum has not left chance
  accuracy yet (the ranking benchmark, ``examples/bench_recipes.py``, shows both);
* ``imagenet``: the same with ImageNet's weight decay and batch (Goyal et
  al. 2017: 0.1 per 256 images, 5 epochs of warm-up; the warm-up is capped
  at a fraction of a short run).

Example:
    >>> recipe("cifar").lr_at(batch_size=256)
    0.2
    >>> recipe("cifar", batch_size=64).lr
    0.05
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from nas.ir.errors import NASError, SourceError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Recipe:
    """How a network is trained.

    Attributes:
        name: the recipe's name (a row of :data:`RECIPES`, or a file's stem).
        optimizer: ``sgd`` (with ``momentum`` and ``nesterov``), ``adam`` or ``adamw``.
        lr: the peak learning rate at ``batch_size`` images per step; scaled
            linearly for another batch size (Goyal et al. 2017).
        batch_size: images per step.
        weight_decay: L2 penalty on weights; norms' scales and all biases
            are exempt when ``decay_norms_and_biases`` is false.
        schedule: ``constant`` or ``cosine`` (to zero at the last step).
        warmup: the fraction of all steps with a linear warm-up from zero,
            at most ``warmup_epochs`` epochs.
        label_smoothing: the cross-entropy's smoothing (Szegedy et al. 2016).
        augment: train with the data set's augmentation.
        norm_momentum: every batch norm's momentum while training, in place
            of the network's own (``None``: its own). Short runs want
            PyTorch's 0.1: an imported MobileNet v3 keeps torchvision's 0.01,
            whose running statistics hardly move in a search trial, and
            validates as a network with untrained statistics.
        clip_grad: the largest norm of all gradients together, rescaled to
            it before each step (``None``: not clipped). A supernet step sums
            the gradients of several subnets, and in a space without
            normalisation (``early``) they can grow until training diverges.
    """

    name: str
    optimizer: str = "sgd"
    lr: float = 0.1
    batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    decay_norms_and_biases: bool = False
    schedule: str = "cosine"
    warmup: float = 0.1
    warmup_epochs: float = 5.0
    label_smoothing: float = 0.1
    augment: bool = True
    norm_momentum: float | None = None
    clip_grad: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise NASError(
                f"unknown optimizer '{self.optimizer}'", field="optimizer", hint=f"use {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise NASError(f"unknown schedule '{self.schedule}'", field="schedule", hint=f"use {', '.join(SCHEDULES)}")
        if not self.lr > 0 or self.batch_size < 1:
            raise NASError("a recipe's lr must be above 0 and its batch size at least 1", field="lr")
        if not 0 <= self.warmup < 1 or not 0 <= self.label_smoothing < 1 or self.weight_decay < 0:
            raise NASError("warmup and label_smoothing are fractions in [0, 1), weight_decay 0 or more", field="warmup")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise NASError("clip_grad is a gradient norm above 0, or null for none", field="clip_grad")
        if self.norm_momentum is not None and not 0 < self.norm_momentum <= 1:
            raise NASError(
                "norm_momentum is a fraction in (0, 1], or null for the network's own", field="norm_momentum"
            )

    def lr_at(self, batch_size: int) -> float:
        """The peak learning rate for ``batch_size`` images per step (linear scaling)."""
        return self.lr * batch_size / self.batch_size

    def with_changes(self, **changes: Any) -> Recipe:
        """This recipe with ``changes`` (``None`` values ignored); a new batch
        size without a new ``lr`` scales the rate linearly.

        Raises:
            NASError: a field that recipes do not have.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(Recipe)})
        if unknown:
            raise NASError(f"a recipe has no field {', '.join(unknown)}", field="recipe")
        if "batch_size" in changes and "lr" not in changes:
            changes["lr"] = self.lr_at(changes["batch_size"])
        return dataclasses.replace(self, **changes) if changes else self

    def plain(self) -> dict[str, Any]:
        """The recipe as plain data (for trial attributes, checkpoints and model
        cards); ``clip_grad`` only where set, so that runs stored before it resume."""
        plain = dataclasses.asdict(self)
        if self.clip_grad is None:
            del plain["clip_grad"]
        return plain

    def clip(self, parameters: Iterable[torch.Tensor]) -> None:
        """Rescale the gradients of ``parameters`` to a norm of at most ``clip_grad`` (if set)."""
        if self.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], self.clip_grad)

    def optimizer_for(self, model: torch.nn.Module) -> torch.optim.Optimizer | None:
        """The optimiser over ``model``'s parameters, with norms and biases in a
        group without weight decay (unless the recipe decays them); ``None``
        for a model without parameters."""
        decay, exempt = [], []
        for parameter in model.parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim > 1 or self.decay_norms_and_biases else exempt).append(parameter)
        if not decay and not exempt:
            return None
        groups = [g for g in ({"params": decay}, {"params": exempt, "weight_decay": 0.0}) if g["params"]]
        lr = self.lr
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                groups, lr=lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay
            )
        kind = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return kind(groups, lr=lr, weight_decay=self.weight_decay)

    def factor(self, step: int, total: int, steps_per_epoch: int) -> float:
        """The learning rate at ``step`` (0-based) of ``total``, as a fraction of the peak."""
        warm = min(round(self.warmup * total), round(self.warmup_epochs * steps_per_epoch))
        if step < warm:
            return (step + 1) / (warm + 1)
        if self.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def scheduler(
        self, optimizer: torch.optim.Optimizer, *, total: int, steps_per_epoch: int
    ) -> torch.optim.lr_scheduler.LambdaLR:
        """A per-step scheduler of :meth:`factor` (its state goes into checkpoints)."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.factor(step, total, steps_per_epoch))


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "adam",
            optimizer="adam",
            lr=2e-3,
            batch_size=32,
            weight_decay=0.0,
            decay_norms_and_biases=True,
            schedule="constant",
            warmup=0.0,
            label_smoothing=0.0,
            augment=False,
            norm_momentum=0.1,
        ),
        Recipe(
            "digits", optimizer="adamw", lr=4e-3, batch_size=32, weight_decay=0.05, augment=False, norm_momentum=0.1
        ),
        Recipe("cifar", lr=0.1, batch_size=128, weight_decay=5e-4),
        Recipe("imagenet", lr=0.1, batch_size=256, weight_decay=1e-4),
    )
}
"""The shipped recipes by name."""


def default_recipe(kind: str, augmentation: str) -> str:
    """The recipe that suits a data set of ``kind`` augmented with ``augmentation``:
    ``digits`` for glyphs, ``imagenet`` for photographs large enough for
    resized crops, ``cifar`` for small ones."""
    if kind == "digits":
        return "digits"
    return "imagenet" if augmentation == "resized-crop-flip" else "cifar"


def recipe(name: str | Path, **overrides: Any) -> Recipe:
    """A shipped recipe by name, or a recipe file (YAML of :class:`Recipe`'s
    fields), with ``overrides`` (``None`` values are ignored) applied.

    Raises:
        NASError: an unknown name, an unknown or invalid field, or a file
            that cannot be read.
    """
    text = str(name)
    if text in RECIPES:
        base = RECIPES[text]
    elif text.endswith((".yaml", ".yml")):
        base = _from_file(Path(text))
    else:
        raise NASError(
            f"unknown recipe '{text}'", field="recipe", hint=f"use {', '.join(RECIPES)} or a recipe .yaml file"
        )
    return base.with_changes(**overrides)


def _from_file(path: Path) -> Recipe:
    try:
        fields = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SourceError(f"cannot read the recipe: {e.strerror or e}", file=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SourceError(
            f"malformed YAML: {getattr(e, 'problem', e)}", file=str(path), line=mark.line + 1 if mark else None
        ) from None
    if not isinstance(fields, dict):
        raise SourceError("a recipe file is a mapping of Recipe fields (optimizer: sgd, lr: 0.1, ...)", file=str(path))
    known = {f.name: f for f in dataclasses.fields(Recipe)}
    for key, value in fields.items():
        if key not in known:
            raise SourceError(
                f"unknown recipe field '{key}'", file=str(path), field=str(key), hint=f"use {', '.join(known)}"
            )
        want = {"str": str, "float": (int, float), "int": int, "bool": bool}[str(known[key].type)]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise SourceError(
                f"recipe field '{key}' is {value!r}", file=str(path), field=str(key), hint=f"give a {known[key].type}"
            )
    fields.setdefault("name", path.stem)
    try:
        return Recipe(**fields)
    except NASError as e:
        raise SourceError(str(e.args[0]) if e.args else str(e), file=str(path), field=e.field, hint=e.hint) from None
