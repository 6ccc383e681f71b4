"""Search-space decisions as Optuna parameters, and an evolutionary sampler.

Every active decision of a space is one Optuna parameter named by its label
(labels are distinct per condition, so no parameter ever changes its
distribution, the pitfall of optuna/optuna#2564). :func:`suggest` walks the
decisions in order, asking the trial for those whose conditions hold, so
that any Optuna sampler (TPE, NSGA-II, random) searches the space; values
that Optuna cannot hold as categorical choices (shapes, connection tables)
travel as their JSON text.

:class:`EvolutionSampler` is regularised (aging) evolution (Real et al.
2019) with multi-objective parent selection: before each trial it picks a
parent by tournament among the most recent finished trials (feasible
before infeasible, then the lower non-dominated rank, then the larger
crowding distance, as NSGA-II) and mutates one or a few of its decisions
with :func:`nas.space.mutate`, or, with probability ``explore``, draws a
fresh child at random; the trial's parameters are then answered from that
child.

Example:
    >>> import optuna, nas.space as S
    >>> space = S.load_space("early")
    >>> study = optuna.create_study(directions=["maximize", "minimize"], sampler=EvolutionSampler(space, seed=0))
    >>> study.optimize(lambda t: (len(suggest(t, space)), 1.0), n_trials=3)
    >>> len(study.trials)
    3
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.samplers._base import _process_constraints_after_trial
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.ir.errors import NASError
from nas.ir.values import plain, same
from nas.search.record import TrialRecord
from nas.space import Assignment, Space, assignment_from_plain, from_plain, mutate, sample

_PRIMITIVE = (type(None), bool, int, float, str)


def to_param(value: Any) -> Any:
    """A decision value as an Optuna parameter value."""
    return value if isinstance(value, _PRIMITIVE) else json.dumps(plain(value), sort_keys=True)


def params_of(assignment: Mapping[str, Any]) -> dict[str, Any]:
    """An assignment as Optuna parameters (for ``study.enqueue_trial``)."""
    return {label: to_param(v) for label, v in assignment.items()}


def suggest(trial: optuna.Trial, space: Space) -> Assignment:
    """Ask ``trial`` for every decision that exists (its conditions hold), in order.

    Choices and booleans are categorical parameters, ranges ``suggest_int``
    or ``suggest_float`` with their step. A decision with one value (fixed
    by ``--fix`` or :func:`nas.space.restrict`) takes it without asking:
    Optuna would store it as a parameter of every trial, one write each,
    and a supernet's trial is cheap enough for those writes to count. The
    trial's ``assignment`` attribute holds every decision.
    """
    assignment: Assignment = {}
    for d in space.decisions:
        if not all(same(assignment.get(label), value) for label, value in d.when):
            continue
        if d.size == 1:
            assignment[d.label] = d.value(0)
        elif d.kind == "choice":
            picked = trial.suggest_categorical(d.label, [to_param(c) for c in d.choices])
            assignment[d.label] = from_plain(d, picked)
        elif d.kind == "bool":
            assignment[d.label] = bool(trial.suggest_categorical(d.label, [False, True]))
        elif d.kind == "int":
            assignment[d.label] = trial.suggest_int(d.label, int(d.low), int(d.high), step=int(d.step))
        else:
            assignment[d.label] = trial.suggest_float(d.label, d.low, d.high, step=d.step)
    return assignment


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def nondominated_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """The non-dominated rank of each point (0: on the front), all objectives minimised."""
    ranks = [-1] * len(points)
    rank, left = 0, set(range(len(points)))
    while left:
        front = {i for i in left if not any(_dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def crowding(points: Sequence[Sequence[float]], ranks: Sequence[int]) -> list[float]:
    """NSGA-II's crowding distance of each point within its rank: the sum
    over objectives of the gap between its neighbours, normalised by the
    rank's range; the extremes of each objective get infinity. Larger means
    a lonelier point, whose mutants explore a part of the front others do not."""
    distance = [0.0] * len(points)
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for k in range(len(points[0]) if points else 0):
            ordered = sorted(members, key=lambda i: points[i][k])
            low, high = points[ordered[0]][k], points[ordered[-1]][k]
            distance[ordered[0]] = distance[ordered[-1]] = math.inf
            if high <= low:
                continue
            for before, i, after in zip(ordered, ordered[1:], ordered[2:]):
                distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def violation(trial: FrozenTrial) -> float:
    """How far a trial is over its constraints (0 when feasible)."""
    return TrialRecord.of(trial).violation


class EvolutionSampler(BaseSampler):
    """Aging evolution over a :class:`~nas.space.Space`, as an Optuna sampler.

    Args:
        space: the space the study's objective :func:`suggest`s from.
        seed: seeds the draws.
        population: how many of the most recent finished trials parents are
            taken from (older ones age out).
        tournament: how many of those compete to be the parent: the one
            with the least constraint violation, then the best
            non-dominated rank, then the largest crowding distance.
        mutations: how many decisions a child changes, drawn from these.
        startup_trials: trials drawn at random (enqueued ones count) before
            mutation starts.
        explore: the chance that a later child is a fresh random draw
            instead of a mutant (random immigrants: the search keeps
            reaching parts of the space far from its starting points).
        constraints_func: as for Optuna's NSGA-II; its values are stored as
            the trial's ``constraints`` system attribute.
        seen: given an assignment, a key (the canonical hash) to avoid
            children already evaluated; a few redraws are made.

    The child is made in :meth:`before_trial` and kept as the system
    attribute ``nas:assignment`` (with the parent's number in
    ``nas:parent``); :meth:`sample_independent` answers each parameter
    from it, and falls back to random sampling for anything else.
    """

    def __init__(
        self,
        space: Space,
        *,
        seed: int | None = None,
        population: int = 16,
        tournament: int = 4,
        mutations: Sequence[int] = (1, 1, 2),
        startup_trials: int = 4,
        explore: float = 0.0,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        seen: Callable[[Assignment], str] | None = None,
    ) -> None:
        self.space = space
        self.population = population
        self.tournament = tournament
        self.mutations = tuple(mutations)
        self.startup_trials = startup_trials
        self.explore = explore
        self.constraints_func = constraints_func
        self.seen = seen
        self._rng = random.Random(seed)
        self._random = RandomSampler(seed=seed)
        self._children: dict[int, Assignment] = {}

    def reseed_rng(self) -> None:
        self._rng = random.Random()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if TrialRecord.of(trial).enqueued:
            return  # an enqueued trial (a zoo net): its parameters are given
        trials = study.get_trials(deepcopy=False)  # one read of the storage serves all below
        finished = [
            (t, record.assignment)
            for t in trials
            if t.state == TrialState.COMPLETE and isinstance((record := TrialRecord.of(t)).assignment, dict)
        ]
        started = sum(1 for t in trials if t.number < trial.number)
        if started < self.startup_trials or not finished or self._rng.random() < self.explore:
            child, parent = sample(self.space, self._rng), None
        else:
            parent, assignment = self._select(study, finished[-self.population :])
            child = self._mutate(trials, assignment_from_plain(self.space, assignment))
        self._children[trial._trial_id] = child
        target = (study._storage, trial._trial_id)
        TrialRecord.store(target, child=plain(child), parent=None if parent is None else parent.number)

    def _select(
        self, study: Study, population: list[tuple[FrozenTrial, dict[str, Any]]]
    ) -> tuple[FrozenTrial, dict[str, Any]]:
        signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions]
        points = [[s * v for s, v in zip(signs, t.values)] for t, _ in population]
        ranks = nondominated_ranks(points)
        spread = crowding(points, ranks)
        contestants = self._rng.sample(range(len(population)), min(self.tournament, len(population)))
        best = min(contestants, key=lambda i: (violation(population[i][0]), ranks[i], -spread[i], self._rng.random()))
        return population[best]

    def _mutate(self, trials: Sequence[FrozenTrial], parent: Assignment) -> Assignment:
        known = set()
        if self.seen is not None:
            known = {TrialRecord.of(t).hash for t in trials}
        child = parent
        for _ in range(10):
            child = mutate(self.space, parent, self._rng, k=self._rng.choice(self.mutations))
            if self.seen is None:
                break
            try:
                if self.seen(child) not in known:
                    break
            except NASError:
                continue
        return child

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        child = self._children.get(trial._trial_id)
        if child is None:
            stored = TrialRecord.of(trial).child
            child = None if stored is None else assignment_from_plain(self.space, stored)
        if child is not None and param_name in child:
            value = to_param(child[param_name])
            if param_distribution._contains(param_distribution.to_internal_repr(value)):
                return value
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._children.pop(trial._trial_id, None)
        if self.constraints_func is not None:
            _process_constraints_after_trial(self.constraints_func, study, trial, state)
