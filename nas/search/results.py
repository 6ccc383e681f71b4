"""What a search found: the feasible Pareto front, counts, pictures, the best model.

Everything is read back from the study's storage (the single source of
truth: any process, any machine with the storage URL); only the weights live
in files, under ``runs/<study>/trials/<number>.safetensors``.

Example:
    >>> study = optuna.load_study(study_name="early-digits", storage="sqlite:///runs/nas.db")  # doctest: +SKIP
    >>> [e["hash"] for e in pareto_front_entries(study)]                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.export import Model, export
from nas.io.exported import fit_weights, read_weights
from nas.io.parse import load_yaml
from nas.ir.errors import NASError
from nas.passes.lower import lower
from nas.predict import load_table
from nas.search.record import FINETUNED_ATTR, TrialRecord
from nas.search.sampler import nondominated_ranks
from nas.search.storage import load_study, open_storage
from nas.search.workers import retried


def run_dir(runs: str | Path, study_name: str) -> Path:
    """Where a study's files go: ``runs/<study>`` (the name made path-safe)."""
    return Path(runs) / re.sub(r"[^\w.-]", "_", study_name)


def is_feasible(trial: FrozenTrial) -> bool:
    """A finished trial within the latency budget (its ``constraint`` values all <= 0)."""
    return trial.state == TrialState.COMPLETE and TrialRecord.of(trial).within_budget


@dataclass(frozen=True)
class Tally:
    """Counts of a study's trials, and the best feasible objective value.

    A failed trial that was queued again (its worker died) is counted once,
    by its retry; ``queued`` trials wait for a worker."""

    finished: int
    feasible: int
    infeasible: int
    pruned: int
    failed: int
    running: int
    best: float | None
    queued: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def tally(study: optuna.Study) -> Tally:
    """Count the trials of ``study`` by outcome."""
    trials = study.get_trials(deepcopy=False)
    feasible = [t for t in trials if is_feasible(t)]
    complete = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    pruned = sum(1 for t in trials if t.state == TrialState.PRUNED)
    again = retried(trials)
    failed = sum(1 for t in trials if t.state == TrialState.FAIL and t.number not in again)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    queued = sum(1 for t in trials if t.state == TrialState.WAITING)
    best = max((t.values[0] for t in feasible), default=None)
    return Tally(
        complete + pruned + failed, len(feasible), complete - len(feasible), pruned, failed, running, best, queued
    )


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible trials no other feasible trial beats on both objectives
    (higher accuracy or score, lower latency); one trial per architecture
    (the first to evaluate it); sorted by latency."""
    trials = _feasible_architectures(study)
    ranks = nondominated_ranks([[-t.values[0], t.values[1]] for t in trials])
    front = [t for t, r in zip(trials, ranks) if r == 0]
    return sorted(front, key=lambda t: (t.values[1], -t.values[0]))


def entry(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as a JSON record: number, hash, objective values, costs, origin."""
    record = TrialRecord.of(trial)
    return {
        "trial": trial.number,
        "hash": record.hash,
        "accuracy": record.accuracy,
        "score": trial.values[0] if trial.values else None,
        "objective": record.objective,
        "latency_ms": record.latency_ms,
        "latency_source": record.latency_source,
        "params": record.params,
        "macs": record.macs,
        "origin": record.origin,
        "duplicate_of": record.duplicate_of,
        "weights": record.weights,
    }


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The most accurate (highest scoring) feasible trial; the faster one on a tie."""
    front = pareto_front(study)
    return max(front, key=lambda t: (t.values[0], -t.values[1])) if front else None


def leaders(study: optuna.Study, count: int) -> list[FrozenTrial]:
    """The ``count`` most accurate (highest scoring) feasible trials, one per
    architecture, best first; the faster one on a tie. The first is
    :func:`best_trial`'s."""
    return _ranked(study)[:count]


def contenders(study: optuna.Study, count: int, images: int) -> list[FrozenTrial]:
    """The ``count`` networks a search's fine-tuning screens: :func:`leaders`,
    except among the networks that score within the noise of the best
    (:class:`Spread`'s ``tied``, scores measured on ``images`` validation
    images), which the scores cannot order: of those, the ones with the most
    multiply-accumulates come first. Over a supernet trained briefly, many
    networks inherit about the same accuracy, while the compute a network
    has predicts what it reaches after fine-tuning (figures in the README)."""
    ranked = _ranked(study)
    apart = _spread_of([t.values[0] for t in ranked], images)
    if apart is None:
        return []
    # the first ``tied`` of the ranked networks; sorted stably: the leaders' order among equal compute
    tied = sorted(ranked[: apart.tied], key=lambda t: -(TrialRecord.of(t).macs or 0))
    return (tied + ranked[apart.tied :])[:count]


def _ranked(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible trials, one per architecture, the most accurate first; the faster one on a tie."""
    return sorted(_feasible_architectures(study), key=lambda t: (-t.values[0], t.values[1]))


def _feasible_architectures(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible trials, one per architecture (the first to evaluate it)."""
    unique: dict[str, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if is_feasible(t):
            unique.setdefault(str(TrialRecord.of(t).hash or t.number), t)
    return list(unique.values())


@dataclass(frozen=True)
class Spread:
    """How far apart a study's feasible networks score: the best and the
    median score, over ``networks`` architectures, the noise of a score
    measured on the validation images (two binomial standard errors at the
    best: the half-width of its 95% interval), and how many networks score
    within it of the best (``tied``, the best included): among those the
    scores cannot choose."""

    best: float
    median: float
    noise: float
    networks: int
    tied: int

    @property
    def told_apart(self) -> bool:
        """Whether the best scores above the typical network by more than the noise."""
        return self.best - self.median > self.noise

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spread(study: optuna.Study, images: int) -> Spread | None:
    """The :class:`Spread` of a study's accuracies measured on ``images``
    validation images (``None`` without a feasible trial). Over a supernet
    trained too briefly, every network inherits about the same accuracy,
    and the search's choice among them is the noise's."""
    return _spread_of([t.values[0] for t in _feasible_architectures(study)], images)


def _spread_of(accuracies: list[float], images: int) -> Spread | None:
    """The :class:`Spread` of ``accuracies`` (one per architecture) measured on ``images`` images."""
    scores = sorted(accuracies)
    if not scores or images < 1:
        return None
    best, middle = scores[-1], len(scores) // 2
    median = scores[middle] if len(scores) % 2 else (scores[middle - 1] + scores[middle]) / 2
    noise = max(2 * math.sqrt(best * (1 - best) / images), 1 / images)  # at least one image
    return Spread(best, median, noise, len(scores), sum(score >= best - noise for score in scores))


def report(study: optuna.Study) -> dict[str, Any]:
    """What ``nas results --json`` prints: the study's settings, counts, its
    feasible Pareto front, and (a supernet search's) the network its
    fine-tuning kept."""
    best = best_trial(study)
    attrs = dict(study.user_attrs)
    return {
        "study": study.study_name,
        "settings": {k: v for k, v in attrs.items() if k != FINETUNED_ATTR},
        "trials": tally(study).to_dict(),
        "pareto_front": [entry(t) for t in pareto_front(study)],
        "best": entry(best) if best is not None else None,
        "finetuned": attrs.get(FINETUNED_ATTR),
    }


def from_trial(
    storage: str,
    study: str | None = None,
    *,
    trial: int | None = None,
    best: bool = False,
    latency_budget_ms: float | None = None,
) -> Model:
    """A trial of a search as a :class:`Model`: its network, trained weights,
    accuracy, latency and provenance.

    Args:
        trial: the trial number; or ``best=True`` for the most accurate
            feasible trial of the Pareto front, within ``latency_budget_ms``
            if given (else the study's own budget).

    Raises:
        NASError: no such study or trial, an unfinished trial, none within
            the budget, or weights not on this machine.
    """
    st = load_study(storage, study)
    if best:
        front = pareto_front(st)
        if latency_budget_ms is not None:
            front = [t for t in front if t.values[1] <= latency_budget_ms]
        if not front:
            within = f" within {latency_budget_ms:g} ms" if latency_budget_ms is not None else ""
            raise NASError(
                f"study '{st.study_name}' has no feasible trial{within}",
                field="best",
                hint="raise --latency-budget-ms, or run more trials",
            )
        chosen = max(front, key=lambda t: (t.values[0], -t.values[1]))
    elif trial is not None:
        found = [t for t in st.get_trials(deepcopy=False) if t.number == trial]
        if not found:
            raise NASError(
                f"study '{st.study_name}' has no trial {trial}",
                field="trial",
                hint=f"give a trial number from 0 to {len(st.trials) - 1}",
            )
        chosen = found[0]
    else:
        raise NASError("name a trial of the study", field="trial", hint="give --trial N, or --best")
    return trial_model(st, chosen, storage=storage)


def trial_model(study: optuna.Study, chosen: FrozenTrial, *, storage: str | None = None) -> Model:
    """A finished trial of ``study`` as a :class:`Model` (see :func:`from_trial`).

    Raises:
        NASError: an unfinished trial, or weights not on this machine.
    """
    st = study
    record = TrialRecord.of(chosen)
    if chosen.state != TrialState.COMPLETE or record.yaml is None:
        raise NASError(
            f"trial {chosen.number} of '{st.study_name}' did not finish ({chosen.state.name.lower()})",
            field="trial",
            hint="export a finished trial: 'nas results' lists the Pareto front",
        )
    settings = dict(st.user_attrs)
    graph = load_yaml(record.yaml, file=f"{st.study_name}, trial {chosen.number}")
    path = record.weights
    if not path or not Path(path).is_file():
        raise NASError(
            f"the weights of trial {chosen.number} are not on this machine ({path})",
            field="trial",
            hint="export where the search ran, or retrain it: nas train FILE --data ...",
        )
    budget = settings.get("latency_budget_ms")
    search = {
        "storage": None if storage is None else _safe_url(storage),
        "study": st.study_name,
        "trial": chosen.number,
        "space": record.space,
        "assignment": record.assignment,
        "origin": record.origin,
        "objective": record.objective,
        "sampler": record.sampler,
        "latency_budget_ms": budget,
        "feasible": record.latency_ms is not None and budget is not None and record.latency_ms <= budget,
    }
    accuracy = None
    if record.accuracy is not None:
        accuracy = {
            "value": record.accuracy,
            "data": settings.get("data"),
            "split": "validation",
            "epochs": record.epochs,
            "seed": record.seed,
            "recipe": record.recipe,
        }
    latency = []
    if record.latency_ms is not None:
        latency.append(
            {
                **_latency_conditions(settings, record),
                "median_ms": record.latency_ms,
                "source": f"search ({record.latency_source})",
            }
        )
    model = Model(
        graph,
        read_weights(Path(path)),
        name=f"{st.study_name}-trial{chosen.number}",
        source={"kind": "trial", "study": st.study_name, "trial": chosen.number},
        accuracy=accuracy,
        search=search,
        latency=latency,
    )
    fit_weights(lower(graph), model.weights)
    return model


def _safe_url(url: str) -> str:
    """A storage URL without its password."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        user, _, rest = tail.partition("@")
        return f"{head}://{user.split(':', 1)[0]}:***@{rest}" if ":" in user else url
    return url


def _latency_conditions(settings: Mapping[str, Any], record: TrialRecord) -> dict[str, Any]:
    """The conditions a search's latencies hold for: a latency table's own
    (its backend, device, batch, precision, threads), where the search
    predicted from one and it is still there, else the search's settings."""
    table = settings.get("latency_table")
    if table:
        with contextlib.suppress(NASError):
            c = load_table(table).conditions
            return {k: c.get(k) for k in ("backend", "device", "batch", "precision", "threads")}
    return {
        "backend": settings.get("backend"),
        "batch": settings.get("batch", 1),
        "precision": settings.get("precision", "fp32"),
        "threads": record.threads,
    }


def export_best(
    study: optuna.Study, runs: str | Path = "runs", *, storage: str | None = None
) -> tuple[Path, FrozenTrial]:
    """Export the best model of the front to ``runs/<study>/best/`` with
    :mod:`nas.export`: ``model.yaml`` (its IR), ``model.safetensors`` (its
    trained weights), ``model.json`` and ``MODEL.md`` (its card), so that
    ``nas.load`` and ``nas show`` read it. A previous best is replaced.
    ``storage`` (the study's URL) goes on the card.

    Raises:
        NASError: no feasible trial yet, or its weights file is missing.
    """
    best = best_trial(study)
    if best is None:
        raise NASError(
            f"study '{study.study_name}' has no finished trial within its latency budget",
            hint="run more trials, or search again with a larger --latency-budget-ms",
        )
    model = trial_model(study, best, storage=storage)
    target = run_dir(runs, study.study_name) / "best"
    export(model, target, ("yaml", "weights"), overwrite=True)
    return target, best


def plot(study: optuna.Study, runs: str | Path = "runs") -> list[Path]:
    """Two pictures under ``runs/<study>/``: the feasible Pareto front
    (``pareto_front.png``), and every evaluated trial's objective against its
    latency with the zoo nets named and the budget drawn
    (``accuracy_latency.png``). Nothing (an empty list) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    folder = run_dir(runs, study.study_name)
    folder.mkdir(parents=True, exist_ok=True)
    label = str(study.user_attrs.get("objective", "accuracy"))
    budget = study.user_attrs.get("latency_budget_ms")
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    front = pareto_front(study)
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step([t.values[1] for t in front], [t.values[0] for t in front], where="post", color="C0")
    ax.scatter([t.values[1] for t in front], [t.values[0] for t in front], color="C0", zorder=3)
    for t in front:
        ax.annotate(str(t.number), (t.values[1], t.values[0]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xlabel="latency (ms)", ylabel=label, title=f"{study.study_name}: Pareto front (feasible)")
    fig.tight_layout()
    written.append(folder / "pareto_front.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    evaluated = [t for t in done if TrialRecord.of(t).accuracy is not None or label.startswith("proxy")]
    feasible = [t for t in evaluated if is_feasible(t)]
    over = [t for t in evaluated if not is_feasible(t)]
    ax.scatter([t.values[1] for t in feasible], [t.values[0] for t in feasible], s=14, color="C0", label="feasible")
    ax.scatter([t.values[1] for t in over], [t.values[0] for t in over], s=14, color="C7", label="over budget")
    zoo = [t for t in evaluated if str(TrialRecord.of(t).origin or "").startswith("zoo:")]
    ax.scatter([t.values[1] for t in zoo], [t.values[0] for t in zoo], s=60, marker="*", color="C3", label="zoo")
    for t in zoo:
        name = str(TrialRecord.of(t).origin).removeprefix("zoo:")
        ax.annotate(name, (t.values[1], t.values[0]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if budget is not None:
        ax.axvline(float(budget), color="C1", linestyle="--", label=f"budget {float(budget):g} ms")
    ax.set(xlabel="latency (ms)", ylabel=label, title=f"{study.study_name}: {label} against latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(folder / "accuracy_latency.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def dashboard(storage: str, *, port: int = 8080, host: str = "127.0.0.1") -> None:
    """Serve optuna-dashboard on ``http://host:port`` for the studies of
    ``storage`` (any URL :func:`~nas.search.study.open_storage` takes), until
    interrupted: live charts of every trial while workers search.

    Raises:
        NASError: the optuna-dashboard package is not installed, or the storage
            cannot be opened (one line each).
    """
    try:
        import optuna_dashboard
    except ImportError:
        raise NASError(
            "the dashboard needs the optuna-dashboard package, which is not installed",
            hint="pip install optuna-dashboard (or pip install -e '.[dashboard]')",
        ) from None
    optuna_dashboard.run_server(open_storage(storage, create=False), host=host, port=port)
