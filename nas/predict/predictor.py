"""Predicting latency from a table, in microseconds instead of seconds.

A prediction has three parts:

1. **The sum over units.** The network is cut into units
   (:mod:`nas.passes.fusion`: leaf composites, fused conv/linear + norm +
   activation chains, lone primitives); each unit's latency is read from
   the table, or, for a configuration the table lacks, from the nearest
   entries of its variant or kind (:class:`~nas.predict.nearest.LocalModel`),
   else a model ``ms = a + b * GMACs + c * MB moved`` fitted on the table's
   entries of its variant (kind, kernel, stride, grouping), else of its
   kind, of its first block type, of all kinds (:mod:`nas.predict.fit`).
2. **A correction** fitted on whole networks measured with the table:
   ``ms = w . features`` with features such as the unit sum, the number of
   units and a constant (:data:`~nas.predict.features.FEATURES`), fitted by
   least squares on relative error. It absorbs what timing units one by one
   gets wrong: the per-call overhead of a one-unit network, caches warmed by
   the previous unit, fusion across unit boundaries.
3. **Its residuals by neighbourhood** (:class:`~nas.predict.nearest.Neighbours`,
   where they lower the leave-one-out error): the prediction moves towards
   the errors the correction made on the profiled networks nearest to the
   candidate.

The predictor memoises each unit's latency by key, so once a search has seen
its configurations a candidate costs the walk over its top-level nodes.
:func:`accuracy` and :func:`kendall_tau` score predictions against
measurements.

Example:
    >>> from nas.predict.predictor import kendall_tau
    >>> kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])
    0.6666666666666666
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.io.build import build
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.passes.analysis import BYTES_PER_ELEMENT
from nas.passes.fusion import Unit, identity_of, parts, units
from nas.predict.features import FEATURES, SPILL_MB, Walk, capacities, linear_ms, variant, weights_mb
from nas.predict.fit import correction_value, floor_prediction
from nas.predict.nearest import Neighbours, local_models
from nas.predict.table import LatencyTable


@dataclass(frozen=True)
class Prediction:
    """A predicted latency and how it was reached.

    Attributes:
        median_ms: the prediction (of the median a measurement would give).
        blocks_ms: the sum over units, before the correction.
        units: how many units the network has.
        from_table: how many of them the table holds (the rest were modelled).
        table: the table's path.
        neighbours: what the nearest profiled networks' residuals multiplied
            the correction's prediction by (:class:`Neighbours`; 1 without).
    """

    median_ms: float
    blocks_ms: float
    units: int
    from_table: int
    table: str | None
    neighbours: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "blocks_ms": self.blocks_ms,
            "units": self.units,
            "units_from_table": self.from_table,
            "neighbours_factor": self.neighbours,
            "table": self.table,
        }


class Predictor:
    """Predicts a network's latency from a :class:`LatencyTable`.

    Args:
        table: a table, or the path of a table file.

    A table holds latencies for the conditions it was measured in (backend,
    batch, precision, threads, mode); :meth:`check` refuses others, since a
    prediction for batch 1 fp32 says nothing about batch 8 bf16.

    Example:
        >>> p = Predictor("resnet_torch.json")          # doctest: +SKIP
        >>> p.check(batch=1, precision="fp32")          # doctest: +SKIP
        >>> ms = p.predict(nas.build("resnet20"))       # doctest: +SKIP
    """

    def __init__(self, table: LatencyTable | str) -> None:
        self.table = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
        self._known: dict[Any, float] = {}
        """Table medians by unit identity (rebuilt from the JSON entries), so
        that a unit is found without computing its digest."""
        for row in self.table.blocks:
            try:
                identity = identity_of(row["members"], row["inputs"], row["wiring"])
            except (NASError, KeyError, TypeError, ValueError):
                continue  # a block type or parameter this nas does not know: never met
            self._known[identity] = float(row["median_ms"])
        fallback = self.table.fallback
        self._variants: dict[str, list[float]] = dict(fallback.get("variants", {}))
        self._kinds: dict[str, list[float]] = dict(fallback.get("kinds", {}))
        self._heads: dict[str, list[float]] = dict(fallback.get("heads", {}))
        self._global: list[float] | None = fallback.get("global")
        self._local = local_models(self.table.blocks, fallback, float(fallback.get("spatial_weight", 1.0)))
        """Local models by variant and by kind (see :class:`~nas.predict.nearest.LocalModel`),
        fitted here from the table's entries, so that any table has them."""
        correction = self.table.correction
        self.features: list[str] = list(correction.get("features", ["blocks_ms"]))
        self.coef: list[float] = list(correction.get("coef", [1.0] * len(self.features)))
        self.target: str = str(correction.get("target", "linear"))
        self._functions = [FEATURES[f] for f in self.features]
        self._capacities = capacities(self.features)
        """The cache sizes whose small weights the correction reads (:class:`~nas.predict.features.Cold`)."""
        near = correction.get("neighbours")
        self.neighbours: Neighbours | None = Neighbours(near) if near else None
        self._memo: dict[int, tuple[Unit, float]] = {}
        self._groups: dict[int, tuple[tuple[Unit, ...], float, int, tuple[int, ...]]] = {}
        """Sum, count and small weights (parameters, per capacity) of the
        units of an opened composite, by the id of its memoised tuple (kept
        alive here, so ids are not reused)."""

    def check(
        self,
        *,
        backend: str | None = None,
        batch: int | None = None,
        precision: str | None = None,
        threads: int | None = None,
        mode: str | None = None,
    ) -> None:
        """Refuse conditions the table was not measured in (``None``: not asked).

        Raises:
            NASError: one line naming the table, the first condition that
                differs as the field, and what to do.
        """
        asked = {"backend": backend, "batch": batch, "precision": precision, "threads": threads, "mode": mode}
        held = self.table.conditions
        for key, value in asked.items():
            if value is not None and value != held[key]:
                raise NASError(
                    f"the table was measured with {key} {held[key]!r}, not {value!r}",
                    file=self.table.path,
                    field=key,
                    hint=f"profile a table for {key} {value!r}, or leave --{key} out",
                )

    def unit_ms(self, unit: Unit) -> float:
        """One unit's latency: the table's median, else the fitted model."""
        entry = self._memo.get(id(unit))
        if entry is not None and entry[0] is unit:
            return entry[1]
        value = self._known.get(unit.identity)
        if value is None:
            name = variant(unit.kind, unit.members)
            local = (self._local.get(name) if name is not None else None) or self._local.get(unit.kind)
            if local is not None:
                value = local(unit.macs, unit.bytes, unit.inputs)
            else:
                value = self.model_ms(unit.kind, unit.macs, unit.bytes, name)
        if len(self._memo) > 500_000:
            self._memo.clear()
        self._memo[id(unit)] = (unit, value)  # units are memoised objects; holding one keeps its id
        return value

    def in_table(self, unit: Unit) -> bool:
        return unit.identity in self._known

    def model_ms(self, kind: str, macs: float, moved: float, variant: str | None = None) -> float:
        """A unit's latency from its kind (and variant), MACs and bytes: the
        finest fallback model the table has."""
        coef = (
            (self._variants.get(variant) if variant is not None else None)
            or self._kinds.get(kind)
            or self._heads.get(kind.split("+")[0])
            or self._global
        )
        if coef is None:
            return 0.0
        return max(0.0, linear_ms(coef, macs, moved))

    def walk(self, graph: Graph, capacities_mb: Sequence[float] | None = None) -> Walk:
        """What the correction reads of ``graph``'s units (:class:`Walk`),
        with small weights for each of ``capacities_mb`` (default: the
        sizes the correction reads). Units are memoised; so are the opened
        composites' sums, for the correction's own sizes."""
        capacities = self._capacities if capacities_mb is None else tuple(capacities_mb)
        memoise = capacities == self._capacities
        limits = [c * 1e6 / BYTES_PER_ELEMENT for c in capacities]  # in parameters
        small = [0] * len(limits)
        memo = self._memo
        groups = self._groups
        total = 0.0
        count = 0
        for part in parts(graph):
            if isinstance(part, Unit):
                hit = memo.get(id(part))
                total += hit[1] if hit is not None and hit[0] is part else self.unit_ms(part)
                count += 1
                for i, limit in enumerate(limits):
                    if part.params <= limit:
                        small[i] += part.params
            else:
                entry = groups.get(id(part)) if memoise else None
                if entry is None or entry[0] is not part:
                    sizes = tuple(sum(u.params for u in part if u.params <= limit) for limit in limits)
                    entry = (part, sum(self.unit_ms(u) for u in part), len(part), sizes)
                    if memoise:
                        if len(groups) > 100_000:
                            groups.clear()
                        groups[id(part)] = entry
                total += entry[1]
                count += entry[2]
                for i, size in enumerate(entry[3]):
                    small[i] += size
        return Walk(total, count, {c: weights_mb(p) for c, p in zip(capacities, small)})

    def features_of(self, graph: Graph) -> dict[str, float]:
        """The correction's inputs for ``graph`` (all of :data:`FEATURES`)."""
        walk = self.walk(graph, SPILL_MB)
        return {name: fn(graph, walk) for name, fn in FEATURES.items()}

    def predict(self, graph: Graph | str) -> float:
        """The predicted median latency of ``graph`` in milliseconds."""
        if not isinstance(graph, Graph):
            graph = build(graph)
        return self._predict(graph, self.walk(graph))[0]

    def _predict(self, graph: Graph, walk: Walk) -> tuple[float, float]:
        """The prediction from ``graph``'s walk, and what its nearest
        networks multiplied it by (1 without :class:`Neighbours`)."""
        value = correction_value(self.coef, [fn(graph, walk) for fn in self._functions], self.target)
        factor = self.neighbours.factor(graph, walk) if self.neighbours is not None else 1.0
        return floor_prediction(value * factor, walk.blocks_ms), factor

    def explain(self, graph: Graph | str) -> Prediction:
        """:meth:`predict` with the unit sum and the table coverage."""
        if not isinstance(graph, Graph):
            graph = build(graph)
        walk = self.walk(graph)
        median, factor = self._predict(graph, walk)
        return Prediction(
            median_ms=median,
            blocks_ms=walk.blocks_ms,
            units=walk.units,
            from_table=sum(1 for u in units(graph) if self.in_table(u)),
            table=self.table.path,
            neighbours=factor,
        )


# -- accuracy -------------------------------------------------------------------


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two paired sequences (ties counted as in
    ``scipy.stats.kendalltau``); O(n^2), fine for hundreds of networks."""
    n = len(x)
    if n != len(y):
        raise ValueError("kendall_tau needs sequences of the same length")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = x[i] - x[j]
            dy = y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def kendall_tau_interval(
    x: Sequence[float], y: Sequence[float], rounds: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Kendall's tau-b, and its 2.5 and 97.5 percentiles over ``rounds``
    bootstrap resamples of the pairs: how far a ranking figure measured on a
    few dozen networks can be trusted. NaNs where fewer than two pairs, or
    no resample, have one."""
    if len(x) < 2:
        return math.nan, math.nan, math.nan
    rng = random.Random(seed)
    taus = []
    for _ in range(rounds):
        pick = [rng.randrange(len(x)) for _ in x]
        tau = kendall_tau([x[i] for i in pick], [y[i] for i in pick])
        if not math.isnan(tau):
            taus.append(tau)
    if not taus:
        return kendall_tau(x, y), math.nan, math.nan
    taus.sort()
    return kendall_tau(x, y), taus[int(0.025 * (len(taus) - 1))], taus[int(0.975 * (len(taus) - 1))]


def tau_of_means(between_runs: float, runs: int, other: float = math.inf) -> float:
    """The Kendall tau expected between the mean of ``runs`` runs and the
    mean of ``other`` runs, where two single runs agree at ``between_runs``.
    By default ``other`` is infinite: the expected scores themselves, what
    an evaluator that knew them would reach against a mean of ``runs``, and
    so the most any evaluator can. NaN where the runs do not agree at all.

    The model: each run scatters a network's score by the same Gaussian
    noise around its expected score. For Gaussian pairs tau is
    ``2/pi * asin(rho)`` (Greiner's relation), which gives the correlation
    of two runs; a mean of ``k`` runs correlates with the expected scores
    as the square root of its reliability (Spearman-Brown). Noise that
    differs between networks makes the real figure lower.
    """
    if not between_runs > 0 or runs < 1 or other < 1:
        return math.nan
    rho = math.sin(math.pi / 2 * min(between_runs, 1.0))

    def reliability(k: float) -> float:
        return 1.0 if math.isinf(k) else k * rho / (1 + (k - 1) * rho)

    return 2 / math.pi * math.asin(min(1.0, math.sqrt(reliability(runs) * reliability(other))))


def accuracy(predicted: Iterable[float], measured: Iterable[float]) -> dict[str, float]:
    """Mean absolute percentage error, the share of predictions within
    +-10% of the measurement, and Kendall's tau between the two."""
    p = np.asarray(list(predicted), dtype=float)
    m = np.asarray(list(measured), dtype=float)
    if len(p) == 0:
        return {"n": 0, "mape": math.nan, "within_10": math.nan, "tau": math.nan}
    error = np.abs(p - m) / m
    return {
        "n": len(p),
        "mape": float(np.mean(error)),
        "within_10": float(np.mean(error <= 0.10 + 1e-12)),  # 2.2 against 2.0 is within 10%
        "tau": kendall_tau(p.tolist(), m.tolist()),
    }


__all__ = ["Prediction", "Predictor", "accuracy", "kendall_tau", "kendall_tau_interval", "tau_of_means"]
