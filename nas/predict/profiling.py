"""Profiling a latency table: measure units and whole networks of search
spaces on one backend, fit the predictor's models, return the table.

What is measured (``nas latency profile``):

* **Whole networks**: ``networks`` architectures sampled from each space at
  one input shape (the space's smallest unless given), redrawn above a MACs
  cap, timed through :func:`nas.latency.measure`. They fit the correction.
* **Units**: every distinct unit configuration (:mod:`nas.passes.fusion`)
  of those networks, of ``block_samples`` further samples per space, and of
  the space's zoo fixed points rebuilt at that input shape, each timed
  alone as a one-unit network. This is the configurations *met in these
  samples*, not every configuration a space can produce (an infinite set
  for most spaces); the predictor models the others.

:func:`refit` measures a table's whole networks again and refits its
correction, keeping its units: they move much less between sittings of a
shared machine than whole networks do.

A time budget stops measuring when spent (networks first, then units by
how often they occur); the table then says ``complete: false``.
Measurements go through the latency store, so an interrupted profile
resumes where it stopped.
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import nas
from nas.io.build import build
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.latency.backends import get_backend
from nas.latency.cache import LatencyCache
from nas.latency.measurement import (
    Conditions,
    Measurement,
    check_request,
    frozen_collector,
    measure,
    parse_shape,
)
from nas.latency.timing import TimingPolicy
from nas.passes.fusion import Unit, units
from nas.predict.fit import fit_correction, fit_fallback, fit_neighbours, select_correction
from nas.predict.predictor import Predictor
from nas.predict.table import LatencyTable
from nas.space import Const, Space, Use, decode, fixed_points, load_space, sample

BLOCK_POLICY = TimingPolicy(
    warmup_window=3,
    max_warmup_runs=30,
    max_warmup_s=0.05,
    min_runs=7,
    max_runs=300,
    min_time_s=0.03,
    max_time_s=0.15,
    median_tolerance=0.03,
)
"""Units are many and short: 50 ms of warm-up at most, 150 ms of timing."""

NETWORK_POLICY = TimingPolicy(
    warmup_window=3,
    max_warmup_runs=50,
    max_warmup_s=0.3,
    min_runs=10,
    max_runs=500,
    min_time_s=0.1,
    max_time_s=0.6,
    median_tolerance=0.02,
)
"""Whole networks: fewer, and the ground truth of the correction."""

NOTE = (
    "Block entries are the unit configurations (leaf composite blocks, fused conv/linear + norm + activation "
    "chains, other primitives) met in the sampled networks and zoo fixed points listed under 'spaces', at "
    "those input shapes; a space can produce configurations not listed here, which the predictor models "
    "from their kind, MACs and bytes ('fallback'). Whole-network measurements fit 'correction'."
)

Progress = Callable[[str], None]


def parse_space_spec(text: str) -> tuple[str, tuple[int, ...] | None]:
    """``"residual"`` or ``"residual@3x32x32"``: a space and an optional input shape."""
    name, _, shape = text.partition("@")
    return name, (parse_shape(shape) if shape else None)


def input_shape_of(space: Space, shape: Sequence[int] | None) -> tuple[int, ...]:
    """The input shape to profile ``space`` at: ``shape``, else the space's
    smallest input choice (by number of elements)."""
    if len(space.inputs) != 1:
        raise NASError(f"space '{space.name}' has {len(space.inputs)} inputs; profiling takes one", file=space.file)
    if shape is not None:
        return tuple(shape)
    value = next(iter(space.inputs.values()))
    if isinstance(value, Const):
        return tuple(value.value)
    if isinstance(value, Use):
        choices = space.by_label[value.label].choices
        return tuple(min(choices, key=lambda s: math.prod(s)))
    raise NASError(f"space '{space.name}': cannot tell its input shape", file=space.file, hint="give SPACE@CxHxW")


def sample_at(
    space: Space, rng: random.Random, shape: Sequence[int], *, max_macs: float | None = None, tries: int = 200
) -> Graph:
    """A random network of ``space`` at input ``shape`` with at most
    ``max_macs`` MACs (redrawn otherwise).

    Raises:
        NASError: none found in ``tries`` draws.
    """
    value = next(iter(space.inputs.values()))
    reason = ""
    for _ in range(tries):
        try:
            assignment = sample(space, rng)
            if isinstance(value, Use):
                assignment[value.label] = tuple(shape)
                graph = decode(space, assignment, check=False)
            else:
                graph = decode(space, assignment)
                if tuple(graph.summary.inputs[next(iter(space.inputs))]) != tuple(shape):
                    graph = build(graph, input_shape=shape)
        except NASError as e:
            reason = str(e)
            continue
        if max_macs is not None and graph.macs > max_macs:
            reason = f"MACs {graph.macs:,} above the cap of {max_macs:,.0f}"
            continue
        return graph
    raise NASError(
        f"no network of space '{space.name}' at {'x'.join(map(str, shape))} in {tries} draws; last reason: {reason}",
        file=space.file,
        hint="raise --max-macs or choose a smaller input",
    )


def zoo_at(space: Space, shape: Sequence[int], max_macs: float | None = None) -> list[tuple[str, Graph]]:
    """The space's zoo fixed points rebuilt at ``shape`` (those that take it
    and stay under ``max_macs``)."""
    found = []
    for name in fixed_points(space):
        try:
            graph = nas.build(name)
            if tuple(next(iter(graph.summary.inputs.values()))) != tuple(shape):
                graph = build(graph, input_shape=shape)
        except NASError:
            continue
        if max_macs is None or graph.macs <= max_macs:
            found.append((name, graph))
    return found


def _draws(
    space: Space, shape: Sequence[int], seed: int, count: int, max_macs: float | None
) -> list[tuple[str, Graph]]:
    """The first ``count`` networks :func:`profile` draws from ``space``
    with ``seed`` (whole networks, then block samples), with their names."""
    rng = random.Random(f"{seed}:{space.name}")
    return [(f"{space.name}#{i}", sample_at(space, rng, shape, max_macs=max_macs)) for i in range(count)]


def _record(m: Measurement) -> dict[str, Any]:
    return {"median_ms": m.median_ms, "p10_ms": m.p10_ms, "p90_ms": m.p90_ms, "runs": m.runs}


def unit_entry(unit: Unit, m: Measurement, count: int = 1) -> dict[str, Any]:
    """The table's block entry for ``unit`` timed alone as ``m``, met ``count`` times."""
    return {"key": unit.key, **unit.describe(), **_record(m), "count": count}


def profile(
    spaces: Sequence[str | tuple[str | Space, Sequence[int] | None]],
    backend: str = "torch",
    *,
    networks: int = 30,
    block_samples: int | None = None,
    zoo: bool = True,
    seed: int = 0,
    max_macs: float | None = 300e6,
    budget_s: float | None = None,
    threads: int | None = None,
    batch: int = 1,
    precision: str = "fp32",
    mode: str | None = None,
    cache: LatencyCache | str | bool | None = True,
    block_policy: TimingPolicy = BLOCK_POLICY,
    network_policy: TimingPolicy = NETWORK_POLICY,
    features: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> LatencyTable:
    """Measure a latency table on ``backend``; see the module doc.

    Args:
        spaces: space names or files, each optionally with ``@CxHxW``
            (``"residual@3x32x32"``), or ``(space, shape)`` pairs.
        networks: whole networks measured per space (they fit the correction).
        block_samples: further networks per space whose units are timed
            (default: ``3 * networks``).
        zoo: also time the units of the space's zoo fixed points.
        seed: the draws' seed.
        max_macs: networks above this are redrawn (``None``: no cap).
        budget_s: stop measuring after this many seconds (``None``: no limit).
        threads, batch, precision, mode, cache: as for :func:`nas.latency.measure`.
        features: the correction's features; ``None`` (default) chooses
            among :data:`nas.predict.features.CANDIDATE_FEATURES` by
            leave-one-out error on the measured networks.
        progress: called with a line of text now and then.

    Raises:
        NASError: a bad space, backend or request, or nothing could be measured.
    """
    started = time.perf_counter()
    say = progress or (lambda line: None)
    block_samples = 3 * networks if block_samples is None else block_samples
    plan = _plan(spaces, networks, block_samples, seed=seed, max_macs=max_macs, zoo=zoo, say=say)
    say(f"{len(plan.order)} distinct units to time, {len(plan.whole)} networks")
    # One set of conditions for every measurement of the table.
    run = functools.partial(
        measure, backend=backend, batch=batch, precision=precision, threads=threads, mode=mode, cache=cache
    )
    clock = _Clock(started, budget_s)
    with frozen_collector():
        done = _Measured()
        _measure_networks(done, plan.whole, run, network_policy, clock)
        say(f"measured {len(done.networks)} networks in {clock.elapsed():.0f} s")
        _measure_units(done, plan, run, block_policy, clock, say)
    if done.conditions is None:
        raise NASError("nothing was measured", field="budget", hint="raise the time budget")
    record = done.conditions.to_dict()
    table = LatencyTable(
        conditions={k: record[k] for k in ("backend", "mode", "device", "precision", "batch", "threads", "versions")},
        blocks=done.blocks,
        networks=done.networks,
        profile={
            "spaces": plan.described,
            "seed": seed,
            "max_macs": max_macs,
            "requested": {"backend": backend, "batch": batch, "precision": precision, "threads": threads, "mode": mode},
            "block_policy": asdict(block_policy),
            "network_policy": asdict(network_policy),
            "budget_s": budget_s,
            **done.summary(plan),
            "note": NOTE,
        },
    )
    fit_table(table, done.graphs, features)
    table.profile["elapsed_s"] = round(clock.elapsed(), 1)
    say(f"timed {len(done.blocks)} units; correction fit MAPE {table.correction['fit']['mape']:.1%}")
    return table


@dataclass
class _Plan:
    """What :func:`profile` measures: the whole networks, and the units of
    those, of the zoo fixed points and of the further samples."""

    whole: list[tuple[str, Graph]] = field(default_factory=list)
    extra: list[Graph] = field(default_factory=list)
    zoo: list[tuple[str, Graph]] = field(default_factory=list)
    described: list[dict[str, Any]] = field(default_factory=list)
    """Per space, what the table records under ``profile.spaces``."""
    found: dict[str, Unit] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    """Unit keys by priority: those of the measured networks, of the zoo, then the most frequent."""

    def rank_units(self) -> None:
        rank: dict[str, int] = {}
        for tier, graphs in enumerate(([g for _, g in self.whole], [g for _, g in self.zoo], self.extra)):
            for graph in graphs:
                for u in units(graph):
                    self.found.setdefault(u.key, u)
                    self.count[u.key] = self.count.get(u.key, 0) + 1
                    rank[u.key] = min(rank.get(u.key, tier), tier)
        self.order = sorted(self.found, key=lambda k: (rank[k], -self.count[k]))


def _plan(
    spaces: Sequence[str | tuple[str | Space, Sequence[int] | None]],
    networks: int,
    block_samples: int,
    *,
    seed: int,
    max_macs: float | None,
    zoo: bool,
    say: Progress,
) -> _Plan:
    """Draw what :func:`profile` measures from each of ``spaces``."""
    plan = _Plan()
    for entry in spaces:
        spec, shape = parse_space_spec(entry) if isinstance(entry, str) else entry
        space = spec if isinstance(spec, Space) else load_space(spec)
        shape = input_shape_of(space, shape)
        drawn = _draws(space, shape, seed, networks + block_samples, max_macs)
        plan.whole += drawn[:networks]
        plan.extra += [g for _, g in drawn[networks:]]
        fixed = zoo_at(space, shape, max_macs) if zoo else []
        plan.zoo += fixed
        plan.described.append(
            {
                "space": space.name,
                "source": spec if isinstance(spec, str) else (space.file or space.name),
                "input": list(shape),
                "networks": networks,
                "block_samples": block_samples,
                "zoo": [name for name, _ in fixed],
            }
        )
        say(
            f"{space.name} at {'x'.join(map(str, shape))}: {networks} + {block_samples} networks, {len(fixed)} zoo nets"
        )
    plan.rank_units()
    return plan


@dataclass(frozen=True)
class _Clock:
    """Time since :func:`profile` started, and whether its budget is spent."""

    started: float
    budget_s: float | None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        return self.budget_s is not None and self.elapsed() > self.budget_s


@dataclass
class _Measured:
    """What :func:`profile` has measured so far."""

    conditions: Conditions | None = None
    networks: list[dict[str, Any]] = field(default_factory=list)
    graphs: list[Graph] = field(default_factory=list)
    """The built networks of ``networks``, in order."""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """``name: reason`` for a network, ``unit kind key: reason`` for a unit."""

    def summary(self, plan: _Plan) -> dict[str, Any]:
        """The table's record of what was timed, what failed, and whether all was."""
        unit_failures = sum(1 for f in self.failures if f.startswith("unit "))
        network_failures = len(self.failures) - unit_failures
        return {
            "units_found": len(plan.order),
            "units_timed": len(self.blocks),
            "failures": self.failures[:20],
            "failed": len(self.failures),
            "complete": len(self.blocks) + unit_failures == len(plan.order)
            and len(self.networks) + network_failures == len(plan.whole),
        }


def _measure_networks(
    done: _Measured,
    whole: Sequence[tuple[str, Graph]],
    run: Callable[..., Measurement],
    policy: TimingPolicy,
    clock: _Clock,
) -> None:
    """Time the whole networks, first: they are the ground truth of the correction."""
    for name, graph in whole:
        if clock.out_of_time():
            break
        m = run(graph, policy=policy)
        done.conditions = done.conditions or m.conditions
        if not m.ok:
            done.failures.append(f"{name}: {m.reason}")
            continue
        done.networks.append({"name": name, "hash": graph.hash, "source": name.split("#")[0], **_record(m)})
        done.networks[-1].pop("runs")
        done.graphs.append(graph)


def _measure_units(
    done: _Measured,
    plan: _Plan,
    run: Callable[..., Measurement],
    policy: TimingPolicy,
    clock: _Clock,
    say: Progress,
) -> None:
    """Time each unit of ``plan`` alone, in its order, while the budget lasts."""
    for i, key in enumerate(plan.order):
        if clock.out_of_time():
            break
        unit = plan.found[key]
        m = run(unit.graph(), policy=policy)
        done.conditions = done.conditions or m.conditions
        if not m.ok:
            done.failures.append(f"unit {unit.kind} {key[:8]}: {m.reason}")
            continue
        done.blocks.append(unit_entry(unit, m, plan.count[key]))
        if (i + 1) % 100 == 0:
            say(f"timed {i + 1}/{len(plan.order)} units in {clock.elapsed():.0f} s")


def fit_table(table: LatencyTable, graphs: Sequence[Graph], features: Sequence[str] | None = None) -> None:
    """(Re)fit a table's fallback and correction: ``graphs`` are the built
    networks of ``table.networks``, in order. ``features``: the
    correction's; ``None`` chooses among
    :data:`nas.predict.features.CANDIDATE_FEATURES` by leave-one-out error.
    The correction's residuals by neighbourhood
    (:class:`~nas.predict.nearest.Neighbours`) join it where they lower
    that error."""
    table.fallback = fit_fallback(table.blocks)
    table.correction = {}
    raw = Predictor(table)
    rows = [raw.features_of(g) for g in graphs]
    targets = [n["median_ms"] for n in table.networks]
    table.correction = select_correction(rows, targets) if features is None else fit_correction(rows, targets, features)
    near = fit_neighbours(rows, targets, table.correction)
    if near is not None:
        table.correction["neighbours"] = near


def table_networks(table: LatencyTable) -> list[Graph]:
    """The whole networks of ``table``, drawn again as :func:`profile` drew
    them (its spaces, input shapes, seed and MACs cap), in its order.

    Raises:
        NASError: the table does not say how it was profiled, or a space no
            longer draws the network the table measured (the space file or
            this nas changed since).
    """
    record = table.profile
    where = table.path or "the table"
    if not record.get("spaces") or "seed" not in record:
        raise NASError(f"{where} does not record how it was profiled", field="profile", hint="profile it again")
    drawn: dict[str, Graph] = {}
    for entry in record["spaces"]:
        space = load_space(entry.get("source", entry["space"]))
        drawn.update(_draws(space, tuple(entry["input"]), record["seed"], entry["networks"], record.get("max_macs")))
    graphs = []
    for row in table.networks:
        graph = drawn.get(row["name"])
        if graph is None or graph.hash != row["hash"]:
            raise NASError(
                f"{where}: network '{row['name']}' is not what its space draws now",
                field="networks",
                hint="the space or nas changed since the table was profiled; profile it again",
            )
        graphs.append(graph)
    return graphs


def refit(
    table: LatencyTable,
    *,
    backend: str | None = None,
    threads: int | None = None,
    cache: LatencyCache | str | bool | None = True,
    network_policy: TimingPolicy | None = None,
    progress: Progress | None = None,
) -> LatencyTable:
    """``table`` with its whole networks measured again, now, and its
    correction fitted to them; its unit entries are kept.

    Units timed alone hardly move between sittings of a shared machine;
    whole networks do (they lean on the shared cache), so a table's
    correction goes stale first. Measuring its networks again takes a small
    part of profiling it all again and recovers most of the accuracy lost;
    when the networks have not moved, it changes nothing that matters, so
    refit when they have (``examples/bench_predictor.py`` measures both).

    Args:
        table: a table made by :func:`profile` (it records how).
        backend, threads: what the caller asked for, if anything: a refit
            measures in the table's own conditions, so others are refused.
        cache: the latency store the fresh measurements are added to.
        network_policy: how to time the networks (default: the table's).
        progress: called with a line of text now and then.

    Raises:
        NASError: a backend or thread count other than the table's, the
            table has no networks, they cannot be drawn again
            (:func:`table_networks`), this machine is not the table's, or a
            network cannot be measured.
    """
    say = progress or (lambda line: None)
    started = time.perf_counter()
    _check_asked(table, backend=backend, threads=threads)
    if not table.networks:
        raise NASError(f"{table.path or 'the table'} has no whole networks to refit on", field="networks")
    graphs = table_networks(table)
    _check_machine(table)
    policy = network_policy or TimingPolicy(**table.profile.get("network_policy", asdict(NETWORK_POLICY)))
    fresh = copy.deepcopy(table)
    moved = _measure_again(fresh, graphs, cache=cache, policy=policy, say=say, started=started)
    fit_table(fresh, graphs)
    fresh.profile.setdefault("refits", []).append(
        {
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "networks": len(graphs),
            "median_ratio": statistics.median(moved),
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
    )
    say(f"refitted on {len(graphs)} networks: they take {statistics.median(moved):.3f}x what the table held (median)")
    return fresh


def _check_asked(table: LatencyTable, **asked: Any) -> None:
    """Refuse conditions asked of a refit (``None``: not asked) that are not the table's."""
    where = table.path or "the table"
    for option, given in asked.items():
        held = table.conditions.get(option)
        if given is not None and given != held:
            raise NASError(
                f"{where} was profiled with --{option} {held}, not {given}",
                file=str(where),
                field=option,
                hint=f"leave --{option} out: a refit measures in the table's conditions",
            )


def _check_machine(table: LatencyTable) -> None:
    """Refuse to refit ``table`` on a machine that cannot measure its
    conditions, or is not the device it was profiled on.

    Raises:
        NASError: naming the condition (``conditions.<field>``).
    """
    conditions = table.conditions
    where = table.path or "the table"
    backend = get_backend(conditions["backend"])  # raises, naming what this machine lacks
    try:
        mode = check_request(
            backend, conditions["precision"], conditions.get("mode"), conditions["batch"], conditions.get("threads")
        )
    except NASError as error:  # before device_name(), which asks CUDA for a GPU it may not have
        raise NASError(
            f"{where} was profiled on {conditions['device']}: {error.message}",
            field=f"conditions.{error.field}",
            hint="refit a table on the machine it was profiled on",
        ) from None
    here = backend.device_name(mode)
    if here != conditions["device"]:
        raise NASError(
            f"{where} was profiled on {conditions['device']}, this is {here}",
            field="conditions.device",
            hint="refit a table on the machine it was profiled on, or profile one here",
        )


def _measure_again(
    fresh: LatencyTable,
    graphs: Sequence[Graph],
    *,
    cache: LatencyCache | str | bool | None,
    policy: TimingPolicy,
    say: Progress,
    started: float,
) -> list[float]:
    """Measure ``fresh``'s networks (built as ``graphs``) again under its
    conditions, updating its rows; returns each one's new time over its old.

    Raises:
        NASError: a network could not be measured.
    """
    conditions = fresh.conditions
    moved = []
    for i, (row, graph) in enumerate(zip(fresh.networks, graphs)):
        m = measure(
            graph,
            conditions["backend"],
            batch=conditions["batch"],
            precision=conditions["precision"],
            threads=conditions.get("threads"),
            mode=conditions.get("mode"),
            cache=cache,
            refresh=True,
            policy=policy,
        )
        if not m.ok:
            raise NASError(f"network '{row['name']}' could not be measured: {m.reason}", field="networks")
        moved.append(m.median_ms / row["median_ms"])
        row.update({k: v for k, v in _record(m).items() if k != "runs"})
        if (i + 1) % 20 == 0:
            say(f"measured {i + 1}/{len(graphs)} networks in {time.perf_counter() - started:.0f} s")
    return moved


__all__ = [
    "BLOCK_POLICY",
    "NETWORK_POLICY",
    "fit_table",
    "input_shape_of",
    "parse_space_spec",
    "profile",
    "refit",
    "sample_at",
    "table_networks",
]
