"""The search: one Optuna study over a space, under a hard latency budget.

Each trial:

1. takes an assignment from the sampler (:func:`~nas.search.sampler.suggest`),
   decodes it and fits it to the data (:func:`~nas.search.adapt.adapt`:
   the classifier gets the data's number of classes);
2. reuses an earlier trial's outcome if that trial evaluated the same
   network (canonical hash): nothing is trained twice;
3. measures its latency (:func:`nas.latency.measure`, cached) or predicts
   it from a latency table, and stores ``constraint = latency - budget``
   as a user attribute and as Optuna's constraint (``Trial.set_constraint``
   from Optuna 5, a ``constraints_func`` before), which the samplers read:
   a trial over the budget is infeasible and is not trained;
4. evaluates it: a short training run (validation accuracy) or a
   zero-cost proxy; saves its weights under ``runs/<study>/trials/``.

Objectives are (accuracy or proxy score: maximise, latency: minimise).
Optuna prunes single-objective studies only, so the accuracy run applies a
median stopping rule itself (Golovin et al. 2017, as Optuna's
``MedianPruner``), made Pareto-aware (:func:`stop_reason`): after each
epoch but the last, a trial below the median accuracy that at least
:data:`PRUNE_AFTER` earlier feasible trials *no slower than it* had at that
epoch stops and is recorded as pruned.

The storage is the single source of truth: the same ``--storage`` and
``--study`` resume a search, and several processes may work on one study;
they claim trials under a lock (:mod:`nas.search.workers`), so that the study
ends with exactly its number of trials.

Example:
    >>> config = SearchConfig(space="early", trials=6, objective="proxy:naswot", storage="sqlite:///runs/x.db")
    >>> result = run_search(config)                              # doctest: +SKIP
    >>> result.tally.feasible > 0                                # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

import nas.space as S
from nas.data import DataSet, augmentation_of, load_data, loader
from nas.io import zoo
from nas.io.build import build
from nas.ir.errors import NASError, one_line
from nas.ir.graph import Graph
from nas.latency import TimingPolicy, get_backend, measure
from nas.latency.memory import check_fits
from nas.passes.lower import lower
from nas.predict import Predictor, load_table
from nas.search.proxies import BATCH, DEGENERATE, PROXIES, score
from nas.search.record import REUSED, TrialRecord
from nas.search.results import Tally, export_best, run_dir, tally
from nas.search.sampler import EvolutionSampler, params_of, plain, suggest
from nas.search.storage import open_storage, quiet_optuna, storage_errors
from nas.search.workers import StudyLock, fail_dead, held, mark, retried
from nas.supernet import Inheritance, load_supernet
from nas.train import EvaluationFailed, choose_recipe, input_shape, resolve_device, save_tensors, state_of, train

SAMPLERS = ("evolution", "tpe", "nsga2", "random")
OBJECTIVES = ("accuracy", *(f"proxy:{name}" for name in PROXIES))
DEFAULT_STORAGE = "sqlite:///runs/nas.db"
PRUNE_AFTER = 3
"""Earlier trials an epoch needs before the median stopping rule applies."""
SCREEN_SAMPLES = 8
"""Random architectures tried when no zoo net meets the budget, before giving up."""
RECENT_NETWORKS = 8
"""Networks a search keeps built, the latest (a sampler's child is asked for again by its trial)."""
NATIVE_CONSTRAINTS = hasattr(optuna.Trial, "set_constraint")
"""Optuna 5 records constraints on the trial; older versions take a ``constraints_func``."""
SETTINGS = (
    "space",
    "fix",
    "data",
    "objective",
    "latency_budget_ms",
    "backend",
    "batch",
    "precision",
    "latency_table",
    "recipe",
    "augment",
    "supernet",
)
"""What a resumed study must agree on with the run that made it (``recipe``
and ``augment`` as resolved: the recipe's name and the augmentation)."""
FILE_SETTINGS = ("space", "latency_table", "supernet")
"""Settings that name files: a new study records them in full and a resumed
one compares them as files, so that the same search resumes from any folder."""
LEGACY_TRAINING = {"recipe": "adam", "augment": "none"}
"""How studies made before recipes trained their trials."""
PER_WORKER = ("sampler", "epochs", "seed", "threads")
"""Settings the workers of one study may each choose: recorded on each trial."""


@dataclass
class SearchConfig:
    """Everything ``nas search`` takes; the defaults run a small search on
    the built-in digits in a few minutes on a CPU."""

    space: str = "early"
    fix: tuple[str, ...] = ()
    """``LABEL=VALUE`` texts narrowing the space (:func:`nas.space.narrowed`), as ``--fix`` gives them."""
    data: str = "digits"
    trials: int = 16
    latency_budget_ms: float = 1.0
    backend: str = "torch"
    batch: int | None = None
    """Batch of the latency measurement (default: the latency table's, else 1)."""
    precision: str | None = None
    """Precision of the latency measurement (default: the latency table's, else fp32)."""
    threads: int | None = 1
    latency_table: str | None = None
    objective: str = "accuracy"
    sampler: str = "evolution"
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    seed: int = 0
    trial_timeout: float = 120.0
    epochs: int = 2
    runs: str = "runs"
    prune: bool = True
    recipe: str | None = None
    """A recipe's name or file (default: the one that suits the data)."""
    augment: bool | str | None = None
    """The data's own augmentation (``True``), none (``False``), one by name,
    or as the recipe says (``None``)."""
    device: str | None = None
    """Where trials train (over a supernet: where its networks are evaluated): ``cpu``, ``cuda:N``, ``auto``
    (a GPU no other worker claimed); default: the first GPU."""
    amp: bool | None = None
    channels_last: bool | None = None
    data_workers: int | None = None
    """Decoding processes for images on disk (default: one per CPU, at most 8)."""
    supernet: str | None = None
    """A trained supernet's directory: trials inherit its weights instead of
    training (its space and data are searched; ``space`` and ``data`` are ignored)."""
    timing: TimingPolicy | None = field(default=None, repr=False)
    """How latencies are timed (``None``: the backend's default policy)."""

    def study_name(self, data: DataSet) -> str:
        if self.study:
            return self.study
        if self.supernet is not None:
            return f"{Path(self.supernet).resolve().name}-{self.latency_budget_ms:g}ms"
        return f"{Path(self.space).stem}-{data.stem}"


@dataclass
class SearchResult:
    """Where a search's results are, and how it went."""

    study: str
    storage: str
    runs: Path
    tally: Tally
    ran: int
    best: FrozenTrial | None = None
    best_dir: Path | None = None
    best_error: str | None = None


# -- storage --------------------------------------------------------------------


# -- latency ----------------------------------------------------------------------


LatencyFn = Callable[[Graph], tuple[float, str]]
MEASURED = {"batch": 1, "precision": "fp32"}
"""The conditions of a latency where neither the user nor a latency table gives them."""


def with_conditions(config: SearchConfig) -> SearchConfig:
    """``config`` with the batch and precision of its latencies where it left
    them out: its latency table's own (a table of another device, measured
    at batch 8 in fp16, is taken as it is), else batch 1 in fp32.

    Raises:
        NASError: a latency table that cannot be read.
    """
    missing = [key for key in MEASURED if getattr(config, key) is None]
    if not missing:
        return config
    held = load_table(config.latency_table).conditions if config.latency_table is not None else MEASURED
    return replace(config, **{key: held[key] for key in missing})


def latency_function(config: SearchConfig) -> LatencyFn:
    """``graph -> (milliseconds, how it was obtained)``: measured on the
    backend (cached by hash and conditions), or predicted from a table.

    A table answers only for the conditions it was measured in: the
    search's batch and precision (which its results record) must be the
    table's, and so must its backend where the user chose one. Left out,
    they are the table's (:func:`with_conditions`); the default backend
    (``SearchConfig.backend``) or ``auto`` is no choice either: without
    ``--backend`` the table's own backend is used.

    Raises:
        NASError: an unknown or missing backend, a bad latency table, or one
            measured at another batch, precision or chosen backend.
    """
    config = with_conditions(config)
    if config.latency_table is not None:
        predictor = Predictor(config.latency_table)  # a bad table fails now, in one line
        chosen = config.backend not in ("auto", SearchConfig.backend)
        predictor.check(backend=config.backend if chosen else None, batch=config.batch, precision=config.precision)
        c = predictor.table.conditions
        source = (
            f"predicted from {config.latency_table} "
            f"({c['backend']} on {c['device']}, batch {c['batch']}, {c['precision']})"
        )

        def predicted(graph: Graph) -> tuple[float, str]:
            return predictor.predict(graph), source

        return predicted

    get_backend(config.backend)  # a missing backend fails now, listing the available ones

    def measured(graph: Graph) -> tuple[float, str]:
        m = measure(
            graph,
            config.backend,
            batch=config.batch,
            precision=config.precision,
            threads=config.threads,
            policy=config.timing,
        )
        if not m.ok or m.median_ms is None:
            raise EvaluationFailed(f"latency measurement failed: {m.reason}")
        c = m.conditions
        threads = "" if c.threads is None else f", {c.threads} threads"
        where = f"{c.backend} ({c.mode}), {c.device}, batch {c.batch}, {c.precision}{threads}"
        return float(m.median_ms), f"measured on {where}"

    return measured


# -- the search -------------------------------------------------------------------


def stop_reason(
    epoch: int, accuracy: float, latency_ms: float, earlier: list[tuple[float, float]], *, after: int = PRUNE_AFTER
) -> str | None:
    """The median stopping rule made Pareto-aware: why a trial at ``accuracy``
    after ``epoch`` (0-based) should stop, or ``None`` to go on.

    ``earlier`` holds ``(latency_ms, accuracy at this epoch)`` of earlier
    trials. Only those at least as fast as this one count: a slower net
    that learns faster says nothing against a faster one, which may still
    reach the Pareto front with less accuracy (the plain median rule pruned
    exactly the fast, small nets a latency-bound search is after). The
    trial stops when ``after`` or more of them exist and it is below their
    median.
    """
    rivals = [acc for lat, acc in earlier if lat <= latency_ms]
    if len(rivals) < after:
        return None
    median = statistics.median(rivals)
    if accuracy >= median:
        return None
    return (
        f"epoch {epoch + 1}: accuracy {accuracy:.4f} below the median {median:.4f} "
        f"of {len(rivals)} earlier trials no slower than its {latency_ms:.3g} ms"
    )


class _Search:
    """The objective and its context: space, data, budget, latency, storage of weights."""

    def __init__(
        self,
        config: SearchConfig,
        space: S.Space,
        data: DataSet,
        latency: LatencyFn,
        folder: Path,
        inherit: Inheritance | None = None,
    ) -> None:
        self.config = config
        self.space = space
        self.data = data
        self.latency = latency
        self.folder = folder
        self.device = resolve_device(config.device, claims=folder.parent / ".gpus")
        self.recipe = choose_recipe(data, config.recipe)
        self.augmentation = augmentation_of(data, self.recipe.augment if config.augment is None else config.augment)
        self.inherit = None if inherit is None else inherit.to(self.device)  # a supernet evaluates where trials train
        self._recent: S.Latest[Graph] = S.Latest(RECENT_NETWORKS)

    def network(self, assignment: S.Assignment) -> Graph:
        """The assignment's network, fitted to the data's classes. The latest
        few are kept: the evolutionary sampler builds a child (to hash it)
        just before its trial builds it again."""
        graph = self._recent.get(
            S.assignment_key(assignment), lambda: build(S.decode(self.space, assignment), classes=self.data.classes)
        )
        for key, bound in self.space.limits.items():
            if getattr(graph, key) > bound:
                raise NASError(f"{key} {getattr(graph, key):,} exceed the space's limit of {bound:,.0f}")
        return graph

    def key(self, assignment: S.Assignment) -> str:
        return self.network(assignment).hash

    def constrain(self, trial: optuna.Trial, constraint: list[float]) -> None:
        """Record ``latency - budget`` (feasible when <= 0): as the user
        attribute ``constraint``, and where Optuna has it (5.0 on) as the
        trial's own constraint, which its samplers read in place of a
        ``constraints_func``."""
        TrialRecord.store(trial, constraint=constraint)
        if NATIVE_CONSTRAINTS:
            trial.set_constraint("latency", constraint[0])

    # The objective --------------------------------------------------------

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        assignment = suggest(trial, self.space)
        self.describe(trial, assignment)
        try:
            graph = self.network(assignment)
        except NASError as e:
            raise self.fail(trial, f"invalid architecture: {e}") from None
        TrialRecord.store(trial, hash=graph.hash, params=graph.params, macs=graph.macs, yaml=graph.to_yaml())
        earlier = self.earlier(trial, graph.hash)
        if earlier is not None:
            return self.reuse(trial, earlier)
        try:
            latency_ms, source = self.latency(graph)
        except (EvaluationFailed, NASError) as e:  # this network only: a runtime that cannot build it
            raise self.fail(trial, str(e)) from None
        TrialRecord.store(trial, latency_ms=latency_ms, latency_source=source)
        self.constrain(trial, [latency_ms - self.config.latency_budget_ms])
        try:
            value = self.evaluate(trial, graph, latency_ms)
        except (EvaluationFailed, NASError) as e:
            # This trial only: a failed run, more memory than the device has,
            # or weights that a full disk could not take; the search goes on.
            raise self.fail(trial, str(e)) from None
        TrialRecord.store(trial, evaluated=True)
        return value, latency_ms

    def describe(self, trial: optuna.Trial, assignment: S.Assignment) -> None:
        """Record what the trial searches, with which settings, and where its
        architecture came from (an enqueued trial brings its own origin)."""
        config = self.config
        settings = {key: getattr(config, key) for key in PER_WORKER}
        TrialRecord.store(trial, space=self.space.name, objective=config.objective, **settings)
        TrialRecord.store(trial, assignment=plain(assignment))
        record = TrialRecord.of(trial)
        if "origin" not in record.stored:
            parent = record.parent
            origin = f"mutation of trial {parent}" if parent is not None else config.sampler
            if config.sampler == "evolution" and parent is None:
                origin = "random"
            TrialRecord.store(trial, origin=origin)

    def evaluate(self, trial: optuna.Trial, graph: Graph, latency_ms: float) -> float:
        """The trial's objective value: a proxy score, or the validation
        accuracy of a short training run (a network over the budget is not
        trained: 0), or its accuracy with a supernet's weights (over the
        budget too).

        Raises:
            EvaluationFailed: the proxy or the training failed.
            NASError: the run needs more memory than the device has free, or
                the weights could not be written.
        """
        objective = self.config.objective
        if objective.startswith("proxy:"):
            return self.proxy_score(trial, graph, objective.removeprefix("proxy:"))
        if self.inherit is None and latency_ms > self.config.latency_budget_ms:
            TrialRecord.store(trial, accuracy=None, skipped="over the latency budget: not trained")
            return 0.0
        if self.inherit is not None:  # over the budget too: cheap, and the constraint keeps it off the front
            started = time.perf_counter()
            accuracy, weights = self.inherit(graph)
            TrialRecord.store(trial, accuracy=accuracy, inherited=True, eval_s=round(time.perf_counter() - started, 3))
            self.save(trial, weights)
            return accuracy
        curve: list[float] = []

        def on_epoch(epoch: int, accuracy: float) -> None:
            curve.append(accuracy)
            TrialRecord.store(trial, curve=curve)
            reason = self.prune_reason(trial, epoch, accuracy, latency_ms)
            if reason is not None:
                TrialRecord.store(trial, pruned=reason)
                raise optuna.TrialPruned(reason)

        config = self.config
        result = train(
            graph,
            self.data,
            recipe=self.recipe,
            epochs=config.epochs,
            augment=self.augmentation,
            timeout_s=config.trial_timeout,
            seed=config.seed,
            device=self.device,
            amp=config.amp,
            channels_last=config.channels_last,
            workers=config.data_workers,
            on_epoch=on_epoch,
        )
        TrialRecord.store(trial, accuracy=result.accuracy, train_s=round(result.seconds, 3), recipe=result.recipe)
        self.save(trial, result.state)
        return result.accuracy

    def proxy_score(self, trial: optuna.Trial, graph: Graph, proxy: str) -> float:
        """A zero-cost proxy's score of the untrained network (one batch, on the CPU)."""
        # The proxies take gradients: refuse, in one line, a batch that cannot fit.
        check_fits(graph, batch=BATCH, device="cpu", training=True, what=f"scoring ({proxy})")
        torch.manual_seed(self.config.seed)
        model = lower(graph)
        first = loader(self.data, "train", input_shape(graph), batch_size=BATCH, augment=False, shuffle=False)
        x, y = next(iter(first.epoch()))  # the first training images, as every trial sees them
        try:
            value = score(proxy, graph, x, y, model=model)
        except (RuntimeError, ValueError) as e:
            raise EvaluationFailed(f"proxy:{proxy} failed: {one_line(e, 200)}") from e
        if not math.isfinite(value):
            meaning = DEGENERATE.get(proxy) if value < 0 else None
            raise EvaluationFailed(f"proxy:{proxy} score is {value}" + (f": {meaning}" if meaning else ""))
        TrialRecord.store(trial, score=value, accuracy=None)
        self.save(trial, state_of(model))
        return value

    def prune_reason(self, trial: optuna.Trial, epoch: int, accuracy: float, latency_ms: float) -> str | None:
        """:func:`stop_reason` against the earlier complete trials' accuracy at this epoch."""
        if not self.config.prune or epoch >= self.config.epochs - 1:
            return None
        earlier = []
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.of(t)
            curve = record.curve or ()
            if t.number < trial.number and len(curve) > epoch and record.duplicate_of is None:
                assert record.latency_ms is not None  # a complete trial measured its latency
                earlier.append((record.latency_ms, curve[epoch]))
        return stop_reason(epoch, accuracy, latency_ms, earlier)

    def save(self, trial: optuna.Trial, state: dict[str, torch.Tensor]) -> None:
        """Write the trial's weights (atomically) and record where they are.

        Raises:
            WriteError: the file could not be written (a full disk).
        """
        path = self.folder / "trials" / f"{trial.number}.safetensors"
        save_tensors(state, path, what=f"the weights of trial {trial.number}")
        TrialRecord.store(trial, weights=str(path.resolve()))

    def fail(self, trial: optuna.Trial, reason: str) -> EvaluationFailed:
        TrialRecord.store(trial, failure=reason)
        return EvaluationFailed(reason)

    # Duplicates -----------------------------------------------------------

    def earlier(self, trial: optuna.Trial, graph_hash: str) -> FrozenTrial | None:
        """The first finished trial that evaluated this network (a failure
        that was retried, its worker having died, evaluated nothing)."""
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        trials = trial.study.get_trials(deepcopy=False)
        again = retried(trials)
        for t in trials:
            if t.state not in finished or t.number in again or t.number >= trial.number:
                continue
            record = TrialRecord.of(t)
            # A failure before the latency (a broken measurement), or after the
            # evaluation (weights a full disk could not take), says nothing of the network.
            if (
                record.hash == graph_hash
                and record.duplicate_of is None
                and (t.state != TrialState.FAIL or (record.latency_ms is not None and not record.lost_weights))
            ):
                return t
        return None

    def reuse(self, trial: optuna.Trial, earlier: FrozenTrial) -> tuple[float, float]:
        first = TrialRecord.of(earlier)
        TrialRecord.store(trial, duplicate_of=earlier.number, **first.present(REUSED))
        if first.constraint is not None:
            self.constrain(trial, list(first.constraint))
        if earlier.state == TrialState.PRUNED:
            reason = f"as trial {earlier.number}: {first.pruned or 'pruned'}"
            TrialRecord.store(trial, pruned=reason)
            raise optuna.TrialPruned(reason)
        if earlier.state == TrialState.FAIL:
            raise self.fail(trial, f"as trial {earlier.number}: {first.failure or 'failed'}")
        assert earlier.values is not None
        TrialRecord.store(trial, evaluated=True)
        return earlier.values[0], earlier.values[1]


def starting_points(search: _Search, rng: random.Random) -> list[tuple[str, S.Assignment, float]]:
    """The zoo nets that are fixed points of the space, and the network it
    was written around, that meet the budget, as ``(origin, assignment,
    latency)``; if none does, a random architecture that does (up to
    :data:`SCREEN_SAMPLES` tried), else the space's smallest if it does.

    Zoo nets are measured from the smallest (MACs) up, and the rest are
    taken to miss the budget once one needs three times it. Over a supernet,
    whose evaluation costs a fraction of a second, every fixed point is
    returned, those over the budget after the others: each gets its
    inherited accuracy, so the results picture places the classic nets
    beside the networks the search finds.

    Raises:
        NASError: nothing tried meets the budget (naming the fastest).
    """
    budget = search.config.latency_budget_ms
    cheap = search.inherit is not None  # a supernet's evaluation: the classic nets over the budget are shown too
    candidates = []
    for name in S.fixed_points(search.space):
        assignment = S.encode(search.space, zoo.load(name))
        with contextlib.suppress(NASError):
            candidates.append((f"zoo:{name}", assignment, search.network(assignment)))
    own = S.around_point(search.space)
    if own is not None:  # a space written around a network (nas space --around): that network
        with contextlib.suppress(NASError):
            candidates.append((f"around:{search.space.meta.get('around', '?')}", own, search.network(own)))
    candidates.sort(key=lambda c: c[2].macs)
    fitting, beyond, tried = [], [], []
    for origin, assignment, graph in candidates:
        with contextlib.suppress(EvaluationFailed):
            ms, _ = search.latency(graph)
            tried.append((ms, origin))
            if ms <= budget:
                fitting.append((origin, assignment, ms))
            elif cheap:
                beyond.append((origin, assignment, ms))
            elif ms > 3 * budget:
                break
    if fitting:
        return fitting + beyond
    for _ in range(SCREEN_SAMPLES):
        assignment = S.sample(search.space, rng)
        with contextlib.suppress(NASError, EvaluationFailed):
            ms, _ = search.latency(search.network(assignment))
            tried.append((ms, "a random architecture"))
            if ms <= budget:
                return [("random", assignment, ms), *beyond]
    with contextlib.suppress(NASError, EvaluationFailed):  # a tight budget: the fewest MACs the space has
        assignment = S.end(search.space, largest=False)
        ms, _ = search.latency(search.network(assignment))
        tried.append((ms, "the smallest architecture"))
        if ms <= budget:
            return [("smallest", assignment, ms), *beyond]
    if not tried:
        raise NASError(f"no architecture of space '{search.space.name}' could be measured", field="backend")
    fastest, what = min(tried)
    raise NASError(
        f"no architecture of space '{search.space.name}' meets the latency budget of {budget:g} ms on "
        f"{search.config.backend}: the fastest of the {len(tried)} tried ({what}) takes {fastest:.3g} ms",
        field="latency-budget-ms",
        hint=f"raise --latency-budget-ms above {fastest:.3g}, or search a space of smaller networks",
    )


EXPLORE = 0.25
"""The share of the evolutionary search's children drawn fresh at random."""


def make_sampler(config: SearchConfig, search: _Search) -> optuna.samplers.BaseSampler:
    """The Optuna sampler ``config.sampler`` names, with the latency constraint."""

    def from_attrs(trial: FrozenTrial) -> list[float]:
        constraint = TrialRecord.of(trial).constraint
        return [math.inf] if constraint is None else list(constraint)

    constraints = None if NATIVE_CONSTRAINTS else from_attrs
    if config.sampler == "evolution":
        return EvolutionSampler(
            search.space, seed=config.seed, explore=EXPLORE, constraints_func=constraints, seen=search.key
        )
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed, constraints_func=constraints)
    if config.sampler == "nsga2":
        size = max(4, min(16, config.trials // 3))
        return optuna.samplers.NSGAIISampler(seed=config.seed, constraints_func=constraints, population_size=size)
    # Random search draws valid architectures of the space (redrawn until
    # they decode within its limits), as NAS baselines do; Optuna's
    # RandomSampler would spend trials on draws that break the limits.
    return EvolutionSampler(search.space, seed=config.seed, constraints_func=constraints, startup_trials=sys.maxsize)


def _check(config: SearchConfig) -> None:
    if config.sampler not in SAMPLERS:
        raise NASError(f"unknown sampler '{config.sampler}'", field="sampler", hint=f"use one of {', '.join(SAMPLERS)}")
    if config.objective not in OBJECTIVES:
        raise NASError(
            f"unknown objective '{config.objective}'", field="objective", hint=f"use one of {', '.join(OBJECTIVES)}"
        )
    if config.supernet is not None and config.objective != "accuracy":
        raise NASError(
            f"a supernet's networks are ranked by their inherited accuracy, not {config.objective}",
            field="objective",
            hint="give --objective accuracy, or score untrained networks with 'nas search --objective proxy:NAME'",
        )
    for name, value, low in (("trials", config.trials, 1), ("epochs", config.epochs, 1), ("batch", config.batch, 1)):
        if value < low:
            raise NASError(f"--{name} must be at least {low}, got {value}", field=name)
    if not config.latency_budget_ms > 0:
        raise NASError(
            f"the latency budget must be positive, got {config.latency_budget_ms}", field="latency-budget-ms"
        )
    if not config.trial_timeout > 0:
        raise NASError(f"--trial-timeout must be positive, got {config.trial_timeout}", field="trial-timeout")


def run_search(
    config: SearchConfig,
    *,
    data: DataSet | None = None,
    on_start: Callable[[optuna.Study, SearchConfig], None] | None = None,
    on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> SearchResult:
    """Run (or resume) the search ``config`` describes until its study has
    ``config.trials`` trials, finished (complete, pruned or failed, not
    counting failures that were retried) or running in other workers.
    Each trial is claimed under the study's lock only while the study has
    fewer (:mod:`nas.search.workers`), so that any number of workers end
    with exactly ``config.trials``.

    A trial that fails (its training, more memory than the device has, a
    full disk under its weights) is recorded as failed with its reason, and
    the search goes on; a storage that cannot be written stops it.

    Args:
        data: the data ``config`` names (over a supernet: the data it was
            trained on), loaded already; by default it is loaded here. A
            caller that searches several budgets loads it once.
        on_start: called once the study is open (a progress display starts here).
        on_trial: called after each trial of this process.

    Raises:
        NASError: an unknown space, data, backend, sampler or objective; a bad
            storage URL; a budget that no zoo net and no sampled
            architecture meets; a study made with other settings; a storage
            that cannot be written (a full disk: the trials stored are kept).
    """
    config = with_conditions(config)
    _check(config)
    inherit = None
    if config.supernet is not None:
        supernet, info = load_supernet(Path(config.supernet))
        config = replace(config, space=str(Path(config.supernet) / "space.yaml"), data=info.data)
        space = supernet.space
        data = data if data is not None else load_data(config.data)
        inherit = Inheritance(supernet, data, info.training.get("recipe"), workers=config.data_workers)
    else:
        space = S.narrowed(S.load_space(config.space), config.fix)
        data = data if data is not None else load_data(config.data)
    name = config.study_name(data)
    storage = open_storage(config.storage)
    folder = run_dir(config.runs, name)
    search = _Search(config, space, data, latency_function(config), folder, inherit)
    with quiet_optuna(), storage_errors(config.storage):
        study = _open_study(config, search, storage, name)
        lock = StudyLock.of(storage, config.storage, name)
        if not any(is_done(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))):
            # Not the sampler's own seed: its first draw would be the screened architecture again.
            points = starting_points(search, random.Random(f"starting points {config.seed}"))
            with lock:  # so that workers starting together queue each once
                for origin, assignment, _ in points:
                    study.enqueue_trial(params_of(assignment), user_attrs={"origin": origin}, skip_if_exists=True)
        if on_start is not None:
            on_start(study, config)
        ran = _work(study, search, lock, on_trial)
    result = SearchResult(name, config.storage, folder, tally(study), ran)
    try:
        result.best_dir, result.best = export_best(study, config.runs, storage=config.storage)
    except NASError as e:
        result.best_error = str(e)
    except OSError as e:  # the export's files: a full disk (the study and the trials' weights are whole)
        result.best_error = f"cannot write the best model to {e.filename or folder}: {e.strerror or e}"
    return result


def _open_study(config: SearchConfig, search: _Search, storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Create the study, or open it to resume, checking that it was made
    with the same :data:`SETTINGS` (which a new study records).

    Raises:
        NASError: a study made with other settings.
    """
    settings = {key: value for key, value in asdict(config).items() if key in SETTINGS}
    for key in FILE_SETTINGS:  # a shipped space goes by its name
        if settings[key] is not None and Path(settings[key]).exists():
            settings[key] = str(Path(settings[key]).resolve())
    # Studies made before recorded a space file in the folder they ran from by the space's name.
    legacy = search.space.name if Path(config.space).name == config.space else None
    settings["fix"] = list(config.fix)  # as the storage gives it back
    settings["data"] = search.data.name
    settings["recipe"] = search.recipe.name
    settings["augment"] = search.augmentation
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=["maximize", "minimize"],
        sampler=make_sampler(config, search),
        load_if_exists=True,
    )
    stored = study.user_attrs
    if study.trials and "recipe" not in stored:
        stored = {**stored, **LEGACY_TRAINING}
    clash = [
        k
        for k in SETTINGS
        if k in stored and not _agree(k, stored[k], settings[k]) and not (k == "space" and stored[k] == legacy)
    ]
    if clash:
        key = clash[0]
        raise NASError(
            f"study '{name}' was made with {key} {stored[key]!r}, not {settings[key]!r}",
            field=key.replace("_", "-"),
            hint="give the same settings to resume it, or another --study",
        )
    for key, value in settings.items():
        if key not in stored:
            study.set_user_attr(key, value)
    return study


def _agree(key: str, stored: object, given: object) -> bool:
    """Whether a resumed study's setting is the one it was made with: files
    the same file (a study made before :data:`FILE_SETTINGS` were recorded in
    full names them relative to the folder it ran from)."""
    if stored == given:
        return True
    files = key in FILE_SETTINGS and isinstance(stored, str) and isinstance(given, str)
    return files and Path(stored).resolve() == Path(given).resolve()


def _work(
    study: optuna.Study,
    search: _Search,
    lock: StudyLock,
    on_trial: Callable[[optuna.Study, FrozenTrial], None] | None,
) -> int:
    """Claim and run trials until the study holds ``config.trials``; how many this process ran."""
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [] if on_trial is None else [on_trial]
    ran = 0

    def claimed(trial: optuna.Trial) -> tuple[float, float]:
        nonlocal ran
        mark(trial)
        lock.release()  # the trial holds its slot now: other workers may count and claim
        ran += 1
        return search(trial)

    while True:
        with lock:  # from counting the slots until the trial is claimed (in study.optimize)
            fail_dead(study)
            if held(study.get_trials(deepcopy=False)) >= search.config.trials:
                break
            study.optimize(claimed, n_trials=1, callbacks=callbacks, catch=(EvaluationFailed,))
        # study.stop() from a callback ends Optuna's own loop; it must end
        # this one too (Optuna keeps the flag set until the next optimize).
        if study._stop_flag:
            break
    return ran


def is_done(trial: FrozenTrial) -> bool:
    """A trial that evaluated its network (or reused an evaluation)."""
    return TrialRecord.of(trial).evaluated


__all__ = ["OBJECTIVES", "SAMPLERS", "SearchConfig", "SearchResult", "run_search"]
