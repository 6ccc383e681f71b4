"""What a search stores on each trial, as one typed record.

A trial's facts live in its Optuna user attributes (``yaml``, ``weights``,
``latency_ms`` ...) and a few system attributes (the evolutionary sampler's
child and parent, the worker that runs it, Optuna's retry history). They are
written while the trial runs, one at a time, so that a trial that dies
half-way leaves what it had found; :class:`TrialRecord` names them all in one
place: :meth:`TrialRecord.of` reads a trial's record, :meth:`TrialRecord.store`
writes some of its fields. Field names are the stored attribute names, so
studies written before this module read unchanged.

Example:
    >>> record = TrialRecord.of(study.trials[0])                       # doctest: +SKIP
    >>> record.latency_ms, record.within_budget                        # doctest: +SKIP
    (0.41, True)
    >>> TrialRecord.store(trial, accuracy=0.93, train_s=4.2)           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

ASSIGNMENT_ATTR = "nas:assignment"
"""System attribute where the evolutionary sampler leaves a trial's child."""
PARENT_ATTR = "nas:parent"
"""System attribute: the number of the trial the child was mutated from (``None``: drawn at random)."""
WORKER_ATTR = "nas:worker"
"""System attribute that records which process runs a trial."""
RETRY_HISTORY = "retry_history"
"""Optuna's system attribute: the numbers of the failed trials a retry replaces."""
FIXED_PARAMS = "fixed_params"
"""Optuna's system attribute of an enqueued trial (its parameters are given)."""
NATIVE_CONSTRAINT_PREFIX = "constraints:"
"""Optuna 5's system attributes of a trial's own constraints (``Trial.set_constraint``)."""
FINETUNED_ATTR = "finetuned"
"""Study attribute that records a supernet search's fine-tuning: the
settings, the leaders screened, the trial kept, its accuracy and the folder
it went to (:func:`nas.search.finalists.finetune_once`)."""

_SYSTEM = {
    "child": ASSIGNMENT_ATTR,
    "parent": PARENT_ATTR,
    "worker": WORKER_ATTR,
    "retry_history": RETRY_HISTORY,
}
"""The record's fields kept as system attributes, and their stored names."""

Target = optuna.Trial | tuple[optuna.storages.BaseStorage, int]
"""Where :meth:`TrialRecord.store` writes: a running trial, or a storage and a trial id."""


@dataclass
class TrialRecord:
    """Everything a search stores on a trial; ``None`` where it is not (yet) stored."""

    # What was searched, and by whom (each worker records its own settings).
    space: str | None = None
    objective: str | None = None
    sampler: str | None = None
    epochs: int | None = None
    seed: int | None = None
    threads: int | None = None
    origin: str | None = None
    """``zoo:NAME``, ``random``, ``mutation of trial N``, or the sampler's name."""
    assignment: dict[str, Any] | None = None
    """The space's decisions, as plain JSON values."""
    # The network.
    hash: str | None = None
    params: int | None = None
    macs: int | None = None
    yaml: str | None = None
    # Its latency, and the budget.
    latency_ms: float | None = None
    latency_source: str | None = None
    constraint: list[float] | None = None
    """``latency - budget`` (feasible when every value is <= 0)."""
    # Its evaluation.
    evaluated: bool = False
    accuracy: float | None = None
    score: float | None = None
    curve: list[float] | None = None
    """Validation accuracy after each epoch."""
    train_s: float | None = None
    inherited: bool = False
    """Whether the accuracy is a supernet's, with inherited weights (no training)."""
    eval_s: float | None = None
    """Seconds of the inherited evaluation (recalibration and validation)."""
    recipe: dict[str, Any] | None = None
    """How it was trained: the recipe's fields, the epochs, augmentation and precision."""
    weights: str | None = None
    """The absolute path of its ``.safetensors`` weights."""
    skipped: str | None = None
    pruned: str | None = None
    failure: str | None = None
    duplicate_of: int | None = None
    # System attributes.
    child: dict[str, Any] | None = None
    parent: int | None = None
    worker: dict[str, Any] | None = None
    retry_history: list[int] = field(default_factory=list)
    enqueued: bool = False
    """Whether its parameters were given (``study.enqueue_trial``)."""
    stored: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """The names of the user attributes the trial has (a stored ``None`` included)."""

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """The record of ``trial``, finished or running. Attributes the record
        does not know are ignored."""
        if isinstance(trial, optuna.Trial):
            user, system = trial.user_attrs, trial.storage.get_trial_system_attrs(trial._trial_id)
        else:
            user, system = trial.user_attrs, trial.system_attrs
        users = {k: v for k, v in user.items() if k in USER_ATTRS}
        systems = {name: system[key] for name, key in _SYSTEM.items() if key in system}
        record = cls(**users, **systems, enqueued=FIXED_PARAMS in system)
        record.stored = frozenset(users)
        return record

    @staticmethod
    def store(target: Target, **values: Any) -> None:
        """Write the fields ``values`` names onto a trial, each as its own
        attribute (user or system), in the order given.

        Raises:
            TypeError: a name that is not a stored field of the record.
        """
        if isinstance(target, optuna.Trial):
            storage, trial_id = target.storage, target._trial_id
        else:
            storage, trial_id = target
        for name, value in values.items():
            if name in _SYSTEM:
                storage.set_trial_system_attr(trial_id, _SYSTEM[name], value)
            elif name not in USER_ATTRS:
                raise TypeError(f"TrialRecord has no stored field '{name}'")
            elif isinstance(target, optuna.Trial):
                target.set_user_attr(name, value)  # keeps the trial's own copy of its attributes current
            else:
                storage.set_trial_user_attr(trial_id, name, value)

    def present(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The user attributes among ``names`` that the trial has, with their values."""
        return {name: getattr(self, name) for name in names if name in self.stored}

    @property
    def within_budget(self) -> bool:
        """A latency within the budget was recorded (every constraint value <= 0)."""
        return self.constraint is not None and all(c <= 0 for c in self.constraint)

    @property
    def lost_weights(self) -> bool:
        """A failure after the network was evaluated (its accuracy or score
        recorded) whose weights were not written: the machine's fault (a full
        disk), not the network's."""
        evaluated = self.accuracy is not None or self.score is not None
        return self.failure is not None and evaluated and self.weights is None

    @property
    def violation(self) -> float:
        """How far the trial is over its constraints (0 within, infinity when unknown)."""
        return float("inf") if self.constraint is None else sum(max(0.0, float(c)) for c in self.constraint)


USER_ATTRS = frozenset(
    f.name for f in dataclasses.fields(TrialRecord) if f.name not in _SYSTEM and f.name not in ("enqueued", "stored")
)
"""The record's fields that are stored as user attributes, under their own names."""

REUSED = ("latency_ms", "latency_source", "accuracy", "score", "curve", "weights", "skipped")
"""What a trial of an already evaluated network takes over from the trial that evaluated it."""


__all__ = [
    "ASSIGNMENT_ATTR",
    "FIXED_PARAMS",
    "NATIVE_CONSTRAINT_PREFIX",
    "PARENT_ATTR",
    "RETRY_HISTORY",
    "REUSED",
    "USER_ATTRS",
    "WORKER_ATTR",
    "TrialRecord",
]
