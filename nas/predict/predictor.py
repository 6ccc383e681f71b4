"""Predicting latency from a table, in microseconds instead of seconds.

A prediction has three parts:

1. **The sum over units.** The network is cut into units
   (:mod:`nas.passes.fusion`: leaf composites, fused conv/linear + norm +
   activation chains, lone primitives); each unit's latency is read from
   the table, or, for a configuration the table lacks, from a model
   ``ms = a + b * GMACs + c * MB moved`` fitted on the table's entries of
   its variant (kind, kernel, stride, grouping), else of its kind, of its
   first block type, of all kinds.
2. **A correction** fitted on whole networks measured with the table:
   ``ms = w . features`` with features such as the unit sum, the number of
   units and a constant (:data:`FEATURES`), fitted by least squares on
   relative error. It absorbs what timing units one by one gets wrong:
   the per-call overhead of a one-unit network, caches warmed by the
   previous unit, fusion across unit boundaries.
3. **Its residuals by neighbourhood** (:class:`Neighbours`, where they
   lower the leave-one-out error): the prediction moves towards the errors
   the correction made on the profiled networks nearest to the candidate.

The predictor memoises each unit's latency by key, so once a search has seen
its configurations a candidate costs the walk over its top-level nodes.

Example:
    >>> from nas.predict.predictor import kendall_tau
    >>> kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])
    0.6666666666666666
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.io.build import build
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.passes.analysis import BYTES_PER_ELEMENT
from nas.passes.fusion import Unit, identity_of, parts, units
from nas.predict.table import LatencyTable


@dataclass(frozen=True)
class Walk:
    """What a predictor gathers walking over a network's units, for the
    correction's features.

    Attributes:
        blocks_ms: the sum of the units' latencies (ms).
        units: how many units.
        small_mb: for each cache size ``C`` (MB) asked for, the fp32 weights
            (MB) of the units whose own weights are at most ``C``.
    """

    blocks_ms: float
    units: int
    small_mb: Mapping[float, float]


def _weights_mb(params: float) -> float:
    return params * BYTES_PER_ELEMENT / 1e6


Feature = Callable[[Graph, Walk], float]

FEATURES: dict[str, Feature] = {
    "blocks_ms": lambda g, w: w.blocks_ms,
    "units": lambda g, w: float(w.units),
    "const": lambda g, w: 1.0,
    "macs_g": lambda g, w: g.summary.macs / 1e9,
    "params_m": lambda g, w: g.summary.params / 1e6,
    "activation_mb": lambda g, w: g.summary.activation_bytes / 1e6,
    "log_blocks_ms": lambda g, w: math.log(max(w.blocks_ms, 1e-6)),
    "log_units": lambda g, w: math.log(max(w.units, 1)),
    "log_macs_g": lambda g, w: math.log(max(g.summary.macs, 1) / 1e9),
    "log_params_m": lambda g, w: math.log(max(g.summary.params, 1) / 1e6),
    "log_activation_mb": lambda g, w: math.log(max(g.summary.activation_bytes, 1) / 1e6),
}
"""Whole-network features the correction may use: the unit sum (ms), the
number of units, a constant, GMACs, millions of parameters, MB of
activations, the logarithms of these (``log_*``), and the weights that
spill a cache (``spill_<C>mb``, :func:`spill`; ``cold_<C>mb``,
:class:`Cold`). A correction whose features include a ``log_*`` one is
fitted in log space: ``ms = exp(w . features)`` (``"target": "log"``)."""

SPILL_MB = (1, 2, 4, 8, 16, 32, 64, 128)
"""Cache sizes (MB) at which ``spill_<C>mb`` and ``cold_<C>mb`` features are offered."""


def spill(capacity_mb: float) -> Feature:
    """The feature ``spill_<C>mb``: a network's fp32 weights in MB when
    they exceed ``capacity_mb``, else 0.

    A unit is timed alone, over and over, so its weights stay in cache
    between runs; in a network whose weights do not fit the cache, every
    inference streams them from the next level (on a 2-core EPYC with 32 MB
    of L3, ResNet-18 at 32x32, 47 MB of weights, runs 1.55 ms in ONNX
    Runtime against 0.75 ms for its units timed alone). The cache size is
    the device's, so it is not assumed: the correction is offered one
    feature per size in :data:`SPILL_MB` and the leave-one-out choice
    (:func:`select_correction`) finds the one that explains the table's
    networks.
    """

    def feature(graph: Graph, walk: Walk) -> float:
        weights_mb = _weights_mb(graph.summary.params)
        return weights_mb if weights_mb > capacity_mb else 0.0

    return feature


@dataclass(frozen=True)
class Cold:
    """The feature ``cold_<C>mb``: in a network whose weights exceed
    ``capacity_mb``, the weights (MB) of its units that fit it alone; else 0.

    :func:`spill` counts every weight, but a unit whose own weights exceed
    the cache streams them when it is timed alone too, and its table entry
    already holds that cost: only the units that were cached alone and are
    not in the network run slower there. On ONNX Runtime, one 2-core EPYC
    (``examples/bench_predictor.py``, two fresh runs): a net of the
    ``macro`` space with 224 MB of weights, nearly all in one fully
    connected layer, ran 0.84 ms with a unit sum of 0.85 ms, and the spill
    correction predicted 4.2 ms; the cold one predicted 1.16 ms for 1.67
    measured in the next run, VGG-11 at 32x32 (531 MB) 30.7 ms for 28.6
    (spill: 32.7 for 25.6) and ResNet-50 (many units of a few MB) 5.1 ms
    for 5.5 (spill: 3.8 for 4.7).
    """

    capacity_mb: float

    def __call__(self, graph: Graph, walk: Walk) -> float:
        return walk.small_mb[self.capacity_mb] if _weights_mb(graph.summary.params) > self.capacity_mb else 0.0


FEATURES.update({f"spill_{c}mb": spill(c) for c in SPILL_MB})
FEATURES.update({f"cold_{c}mb": Cold(c) for c in SPILL_MB})


def capacities(features: Iterable[str]) -> tuple[float, ...]:
    """The cache sizes a walk must gather small weights for to compute ``features``."""
    return tuple(sorted({fn.capacity_mb for f in features if isinstance(fn := FEATURES[f], Cold)}))


DEFAULT_FEATURES = ("blocks_ms", "units", "params_m", "const")

CANDIDATE_FEATURES: tuple[tuple[str, ...], ...] = (
    DEFAULT_FEATURES,
    ("blocks_ms", "units", "params_m", "activation_mb", "const"),
    ("blocks_ms", "units", "const"),
    ("log_blocks_ms", "log_units", "log_macs_g", "log_params_m", "log_activation_mb", "const"),
    ("log_blocks_ms", "log_units", "const"),
    *(("blocks_ms", "units", f"spill_{c}mb", "const") for c in SPILL_MB),
    *(("blocks_ms", "units", f"spill_{c}mb", "activation_mb", "const") for c in SPILL_MB),
    *(("blocks_ms", "units", f"cold_{c}mb", "const") for c in SPILL_MB),
    *(("blocks_ms", "units", f"cold_{c}mb", "activation_mb", "const") for c in SPILL_MB),
)
"""Feature sets :func:`select_correction` chooses from, by leave-one-out
error on the profiled networks (backends differ: torch's whole networks
are a fairly constant factor slower than their units, onnxruntime's lose
a per-unit overhead and gain with parameters, and weights that spill the
cache cost more than their units timed alone show)."""


# -- fitting ----------------------------------------------------------------


def _unit_row(macs: float, moved: float) -> list[float]:
    return [1.0, macs / 1e9, moved / 1e6]


def fit_nonnegative(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> list[float]:
    """Least squares on relative error (each row divided by its target) with
    non-negative coefficients, by trying every subset of the columns (there
    are three): a latency model with a negative cost per MAC would predict
    negative times for big blocks."""
    x = np.asarray(rows, dtype=float)
    y = np.asarray(targets, dtype=float)
    xw, yw = x / y[:, None], np.ones_like(y)
    best: tuple[float, list[float]] | None = None
    k = x.shape[1]
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            coef, *_ = np.linalg.lstsq(xw[:, subset], yw, rcond=None)
            if np.any(coef < 0):
                continue
            full = np.zeros(k)
            full[list(subset)] = coef
            residual = float(np.sum((xw @ full - yw) ** 2))
            if best is None or residual < best[0] - 1e-12:
                best = (residual, full.tolist())
    if best is None:  # cannot happen: a single column with positive values fits with a positive weight
        return [float(np.median(y)), 0.0, 0.0]
    return best[1]


def variant(kind: str, members: Sequence[Sequence[Any]]) -> str | None:
    """A finer group than the kind for units that start with a convolution
    or pooling: the kernel, the stride and whether it is grouped, which
    change the time per MAC several-fold (an 11x11 stride-4 convolution is
    not a 1x1 one). ``None`` for units without a kernel."""
    params = dict(members[0][1]) if members else {}
    kernel = params.get("kernel_size")
    if kernel is None:
        return None
    stride = params.get("stride", 1)
    grouped = (params.get("groups") or 1) > 1
    text = [list(v) if isinstance(v, (list, tuple)) else v for v in (kernel, stride)]
    return f"{kind}|k={text[0]}|s={text[1]}|grouped={grouped}".replace(" ", "")


def fit_fallback(blocks: Sequence[Mapping[str, Any]], *, min_entries: int = 4) -> dict[str, Any]:
    """The unit models of a table: per variant (kind, kernel, stride,
    grouping; at least ``min_entries + 1`` entries), per kind, per first
    block type (at least ``min_entries``) and global; and the weight of the
    map size in finding a unit's nearest entries (:data:`SPATIAL_WEIGHTS`)."""
    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {"variants": {}, "kinds": {}, "heads": {}}
    for row in blocks:
        name = variant(row["kind"], row["members"])
        if name is not None:
            groups["variants"].setdefault(name, []).append(row)
        groups["kinds"].setdefault(row["kind"], []).append(row)
        groups["heads"].setdefault(row["kind"].split("+")[0], []).append(row)
    result: dict[str, Any] = {"variants": {}, "kinds": {}, "heads": {}}
    for group, by_name in groups.items():
        for name, rows in sorted(by_name.items()):
            if len(rows) >= min_entries + (group == "variants"):
                result[group][name] = fit_nonnegative(
                    [_unit_row(r["macs"], r["bytes"]) for r in rows], [r["median_ms"] for r in rows]
                )
    if blocks:
        result["global"] = fit_nonnegative(
            [_unit_row(r["macs"], r["bytes"]) for r in blocks], [r["median_ms"] for r in blocks]
        )
    result["spatial_weight"] = choose_spatial_weight(blocks, result)
    return result


def correction_target(features: Sequence[str]) -> str:
    """``"log"`` when any feature is a ``log_*`` one (the fit is then of
    ``log ms``), else ``"linear"``."""
    return "log" if any(f.startswith("log_") for f in features) else "linear"


def fit_correction(
    rows: Sequence[Mapping[str, float]], targets: Sequence[float], features: Sequence[str] = DEFAULT_FEATURES
) -> dict[str, Any]:
    """Least squares of the measured whole-network times on ``features``,
    on relative error (so that small and large networks count alike): of
    ``ms`` itself, or of ``log ms`` when a feature is a ``log_*`` one
    (:func:`correction_target`).

    Returns:
        ``{"features", "coef", "target", "fit": {"n", "mape"}}``; with fewer
        networks than features, the identity on the unit sum.
    """
    features = list(features)
    target = correction_target(features)
    y = np.asarray(targets, dtype=float)
    if len(rows) < len(features) + 1:
        identity = "log_blocks_ms" if target == "log" else "blocks_ms"
        coef = [1.0 if f == identity else 0.0 for f in features]
    else:
        x = np.asarray([[r[f] for f in features] for r in rows], dtype=float)
        if target == "log":
            solved, *_ = np.linalg.lstsq(x, np.log(y), rcond=None)
        else:
            solved, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
        coef = solved.tolist()
    fitted = [_floor(_combine(coef, [r[f] for f in features], target), r["blocks_ms"]) for r in rows]
    mape = float(np.mean(np.abs(np.asarray(fitted) - y) / y)) if len(rows) else math.nan
    return {"features": features, "coef": coef, "target": target, "fit": {"n": len(rows), "mape": mape}}


def loo_predictions(
    rows: Sequence[Mapping[str, float]], targets: Sequence[float], features: Sequence[str]
) -> list[float]:
    """Each network's prediction by the correction on ``features`` fitted
    on the other networks (leave-one-out)."""
    predictions = []
    for i in range(len(rows)):
        rest = [r for j, r in enumerate(rows) if j != i]
        fitted = fit_correction(rest, [t for j, t in enumerate(targets) if j != i], features)
        value = _combine(fitted["coef"], [rows[i][f] for f in features], fitted["target"])
        predictions.append(_floor(value, rows[i]["blocks_ms"]))
    return predictions


def _mape(predicted: Sequence[float], targets: Sequence[float]) -> float:
    return float(np.mean([abs(p - t) / t for p, t in zip(predicted, targets)]))


def select_correction(
    rows: Sequence[Mapping[str, float]],
    targets: Sequence[float],
    candidates: Sequence[Sequence[str]] = CANDIDATE_FEATURES,
) -> dict[str, Any]:
    """The correction (:func:`fit_correction`) of the feature set with the
    lowest leave-one-out mean relative error on ``rows``; the first
    candidate when there are too few networks to tell."""
    best: tuple[float, Sequence[str]] | None = None
    for features in candidates:
        if len(rows) < len(features) + 3:
            continue
        score = _mape(loo_predictions(rows, targets, features), targets)
        if best is None or score < best[0] - 1e-12:
            best = (score, features)
    chosen = fit_correction(rows, targets, best[1] if best is not None else candidates[0])
    if best is not None:
        chosen["fit"]["loo_mape"] = best[0]
    return chosen


class _Nearest:
    """The inverse-square-distance weighted mean of the residuals of the
    ``k`` points nearest a vector, distances in units of ``scale`` (what
    :class:`LocalModel` reads off a group's table entries and
    :class:`Neighbours` off the profiled networks).

    ``|p - x|^2 = |p|^2 - 2 p.x + |x|^2``: points are ranked by
    ``|p|^2 / 2 - p.x``, one product with the raw vector, and square roots
    are taken for the ``k`` nearest only (a search calls this per
    candidate: about 5 us at 60 points).
    """

    def __init__(self, points: Any, residuals: Any, scale: Any, k: int, softening: float) -> None:
        self.scale = [float(s) for s in scale]
        standard = np.asarray(points, dtype=float) / np.asarray(self.scale)
        self.residuals = [float(r) for r in residuals]
        self.k = k
        self.softening = softening  # as Neighbours.SOFTENING
        self._half_norms = (standard**2).sum(axis=1) / 2
        self._projection = standard / np.asarray(self.scale)

    def mean(self, vector: Sequence[float], exclude: int | None = None) -> float:
        """The weighted mean residual near ``vector`` (leaving out the point at ``exclude``)."""
        rank = self._half_norms - self._projection.dot(vector)
        if exclude is not None:
            rank[exclude] = np.inf
        k = min(self.k, len(rank) - (exclude is not None))
        near = rank.argpartition(k - 1)[:k].tolist()
        ranks = rank.tolist()
        norm = sum((v / s) ** 2 for v, s in zip(vector, self.scale))
        total = weights = 0.0
        for i in near:
            w = 1.0 / (math.sqrt(max(2.0 * ranks[i] + norm, 0.0)) + self.softening) ** 2
            total += w * self.residuals[i]
            weights += w
        return total / weights


NEIGHBOUR_FEATURES = ("log_blocks_ms", "log_units", "log_macs_g", "log_params_m", "log_activation_mb")
"""Where a network lies, for :class:`Neighbours`: the logarithms of its unit
sum, unit count, MACs, parameters and activations."""


class Neighbours:
    """What a linear correction gets wrong, read off the profiled networks
    nearest to a candidate.

    The correction is one law for every network; the error it leaves is
    not noise alone: networks of one family (a space's VGG-like stacks of
    grouped convolutions on a 2x2 map, its ResNets with hundreds of MB of
    weights) sit on one side of it together. The residual of each profiled
    network (``log`` of measured over predicted, the prediction fitted
    without it) is kept; a candidate's prediction is multiplied by
    ``exp(shrink * r)``, ``r`` the inverse-square-distance weighted mean of
    the residuals of its ``k`` nearest networks in :data:`NEIGHBOUR_FEATURES`
    (standardised). ``k`` and ``shrink`` are chosen by leave-one-out error
    (:func:`fit_neighbours`). On the 2-core EPYC, four runs of
    ``examples/bench_predictor.py`` (124 held-out networks each, the same
    measurements with and without it) went from 12.6-16.3% to 11.0-16.0%
    MAPE on ONNX Runtime and from 10.7-13.4% to 9.8-13.2% on torch, but
    for a sitting so disturbed that measuring again differed by 15.5%
    (torch 16.5% to 17.1% there).

    Args:
        spec: the ``correction.neighbours`` object of a table: ``features``,
            ``k``, ``shrink``, ``scale``, ``points`` and ``residuals``.
    """

    SOFTENING = 0.3
    """Added to distances before weighting, so that one near twin does not outvote the rest."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.features = list(spec["features"])
        self.shrink = float(spec["shrink"])
        self._near = _Nearest(spec["points"], spec["residuals"], spec["scale"], int(spec["k"]), self.SOFTENING)
        self._functions = [FEATURES[f] for f in self.features]

    def shift(self, vector: Sequence[float], exclude: int | None = None) -> float:
        """``shrink`` times the weighted mean residual of the ``k`` profiled
        networks nearest to ``vector`` (leaving out the one at ``exclude``)."""
        return self.shrink * self._near.mean(vector, exclude)

    def factor(self, graph: Graph, walk: Walk) -> float:
        """What the linear correction's prediction of ``graph`` is multiplied by."""
        return math.exp(self.shift([fn(graph, walk) for fn in self._functions]))


def fit_neighbours(
    rows: Sequence[Mapping[str, float]],
    targets: Sequence[float],
    correction: Mapping[str, Any],
    ks: Sequence[int] = (4, 8, 16),
    shrinks: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    min_gain: float = 0.02,
) -> dict[str, Any] | None:
    """The :class:`Neighbours` spec (``k`` and ``shrink`` of lowest
    leave-one-out error) for ``correction`` fitted on ``rows``; ``None``
    when it lowers that error by less than ``min_gain`` of it (then the
    networks' residuals are not telling apart where they lie), or with too
    few networks (fewer than ``2 * min(ks) + 2``)."""
    if len(rows) < 2 * min(ks) + 2:
        return None
    features = list(correction["features"])
    predicted = loo_predictions(rows, targets, features)
    points = np.asarray([[r[f] for f in NEIGHBOUR_FEATURES] for r in rows], dtype=float)
    spec: dict[str, Any] = {
        "features": list(NEIGHBOUR_FEATURES),
        "scale": np.maximum(points.std(axis=0), 1e-3).tolist(),
        "points": points.tolist(),
        "residuals": [math.log(t / p) for t, p in zip(targets, predicted)],
    }
    base = _mape(predicted, targets)
    best: tuple[float, int, float] | None = None
    for k in ks:
        if k >= len(rows):
            continue
        near = Neighbours({**spec, "k": k, "shrink": 1.0})
        shifts = [near.shift(point, exclude=i) for i, point in enumerate(points)]
        for shrink in shrinks:
            score = _mape([p * math.exp(shrink * s) for p, s in zip(predicted, shifts)], targets)
            if best is None or score < best[0] - 1e-12:
                best = (score, k, shrink)
    if best is None or best[0] >= (1 - min_gain) * base:
        return None
    return {**spec, "k": best[1], "shrink": best[2], "loo_mape": best[0], "linear_loo_mape": base}


def _combine(coef: Sequence[float], values: Sequence[float], target: str) -> float:
    value = sum(c * v for c, v in zip(coef, values))
    return math.exp(min(value, 700.0)) if target == "log" else value


def _floor(value: float, blocks_ms: float) -> float:
    """A corrected prediction is never below a tenth of the unit sum."""
    return max(value, 0.1 * blocks_ms, 1e-6)


# -- predicting ---------------------------------------------------------------


def unit_features(macs: float, moved: float, inputs: Sequence[Sequence[int]]) -> list[float]:
    """A unit's log-space features for the local fallback model: log MACs,
    log bytes moved, log of the first input's spatial size and channels."""
    first = inputs[0] if inputs else ()
    spatial = math.prod(first[1:]) if len(first) > 1 else 1
    channels = first[0] if first else 1
    return [math.log(macs + 1.0), math.log(moved + 1.0), math.log(spatial + 1.0), math.log(channels + 1.0)]


_SPATIAL = 2
"""The index of the map size among :func:`unit_features`."""


class LocalModel:
    """A fallback model for one group of table entries (a variant or a
    kind): the better, on the group's entries, of its linear model
    (``a + b * GMACs + c * MB``) and a log-log regression on
    :func:`unit_features`; then corrected by the residuals (in log space)
    of the nearest entries, so that a configuration between two timed ones
    is interpolated between them rather than read off a global line.

    Args:
        rows: the group's table entries.
        linear: the group's linear model, if the table has one.
        spatial_weight: how much more the map size counts than the other
            features in finding the nearest entries (see
            :data:`SPATIAL_WEIGHTS`).
    """

    NEIGHBOURS = 4

    def __init__(
        self, rows: Sequence[Mapping[str, Any]], linear: Sequence[float] | None, spatial_weight: float = 1.0
    ) -> None:
        x = np.asarray([[1.0, *unit_features(r["macs"], r["bytes"], r["inputs"])] for r in rows], dtype=float)
        y = np.log(np.asarray([r["median_ms"] for r in rows], dtype=float))
        penalty = 1e-2 * np.eye(x.shape[1])
        penalty[0, 0] = 0.0
        self.coef = np.linalg.solve(x.T @ x + penalty, x.T @ y)
        loglog = y - x @ self.coef
        self.linear = list(linear) if linear is not None else None
        residual = loglog
        if self.linear is not None:
            lin = np.asarray([_linear(self.linear, r["macs"], r["bytes"]) for r in rows])
            lin_residual = y - np.log(np.maximum(lin, 1e-9))
            if float(np.mean(np.abs(lin_residual))) < float(np.mean(np.abs(loglog))):
                residual = lin_residual
            else:
                self.linear = None
        points = x[:, 1:]
        scale = np.maximum(points.std(axis=0), 1e-3)
        scale[_SPATIAL] /= spatial_weight
        self._points = points
        self._residuals = residual
        self._near = _Nearest(points, residual, scale, self.NEIGHBOURS, 0.1)

    def __call__(self, macs: float, moved: float, inputs: Sequence[Sequence[int]]) -> float:
        f = unit_features(macs, moved, inputs)
        if self.linear is not None:
            base = math.log(max(_linear(self.linear, macs, moved), 1e-9))
        else:
            base = float(self.coef[0] + np.dot(self.coef[1:], f))
        return math.exp(base + self._near.mean(f))

    def loo_errors(self) -> list[float]:
        """For each of the group's entries, ``|log|`` of its prediction over
        its measured time, with the residuals of its nearest *other* entries
        (the regression under them keeps it): how far off the model is for a
        configuration the table lacks."""
        return [
            abs(self._near.mean(point, exclude=i) - residual)
            for i, (point, residual) in enumerate(zip(self._points.tolist(), self._residuals.tolist()))
        ]


MIN_LOCAL = 6
"""Entries a variant or kind needs for a :class:`LocalModel`."""

SPATIAL_WEIGHTS = (1.0, 3.0, 10.0)
"""Weights of the map size among the local models' features that
:func:`fit_fallback` chooses from, by leave-one-out error over the table's
entries. Latency is not monotonic in map size on every runtime: in torch
on one 2-core EPYC, a 3x3 convolution runs at 3.4 GMAC/s (median) on maps
of under 2,000 input elements against 30-50 on larger ones, and a ResNet
bottleneck of 1,024 channels takes 1.44 ms on a 2x2 map and 0.18 ms on a
1x1 one, which its 2x2 neighbours had put at 1.06. Weighting the map size
3x keeps the neighbours on the unit's own map size where the table has
them; torch tables choose 3 (held-out MAPE 12.6, 12.2, 11.6, 12.5, 13.2%
to 12.0, 11.2, 11.0, 12.1, 12.7% on five sittings' tables), ONNX Runtime
tables 1."""


def _groups(blocks: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """``blocks`` by variant and by kind (an entry is in both), in order,
    for the groups with a :class:`LocalModel` (:data:`MIN_LOCAL` entries)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in blocks:
        name = variant(row["kind"], row["members"])
        if name is not None:
            grouped.setdefault(name, []).append(row)
        grouped.setdefault(row["kind"], []).append(row)
    return {name: rows for name, rows in grouped.items() if len(rows) >= MIN_LOCAL}


def local_models(
    blocks: Sequence[Mapping[str, Any]], fallback: Mapping[str, Any], spatial_weight: float = 1.0
) -> dict[str, LocalModel]:
    """The :class:`LocalModel` of each variant and kind with at least
    :data:`MIN_LOCAL` entries among ``blocks``, on the linear models of
    ``fallback`` (:func:`fit_fallback`)."""
    variants, kinds = fallback.get("variants", {}), fallback.get("kinds", {})
    return {
        name: LocalModel(rows, variants.get(name) or kinds.get(name), spatial_weight)
        for name, rows in _groups(blocks).items()
    }


def choose_spatial_weight(
    blocks: Sequence[Mapping[str, Any]],
    fallback: Mapping[str, Any],
    weights: Sequence[float] = SPATIAL_WEIGHTS,
    min_gain: float = 0.01,
) -> float:
    """The one of ``weights`` whose local models predict the table's
    entries best (:meth:`LocalModel.loo_errors`, each entry in the model
    the predictor would use for it: its variant's, else its kind's). A
    weight is taken over the best one before it only if it lowers the mean
    error by ``min_gain`` of it, so a table that cannot tell keeps 1."""
    groups = _groups(blocks)
    used: dict[str, list[bool]] = {name: [] for name in groups}
    """Per group, whether each of its entries is predicted by it."""
    for row in blocks:
        name = variant(row["kind"], row["members"])
        chosen = name if name in groups else row["kind"]
        for group in (name, row["kind"]):
            if group in used:
                used[group].append(group == chosen)
    best: tuple[float, float] | None = None
    for weight in weights:
        models = local_models(blocks, fallback, weight)
        errors = [e for name, model in models.items() for e, mine in zip(model.loo_errors(), used[name]) if mine]
        if not errors:
            return weights[0]
        score = float(np.mean(errors))
        if best is None or score < (1 - min_gain) * best[0]:
            best = (score, weight)
    return best[1] if best is not None else weights[0]


def _linear(coef: Sequence[float], macs: float, moved: float) -> float:
    return sum(c * v for c, v in zip(coef, _unit_row(macs, moved)))


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

    Example:
        >>> p = Predictor("resnet_torch.json")          # doctest: +SKIP
        >>> p.predict(nas.build("resnet20"))            # doctest: +SKIP
        1.61
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
        """Local models by variant and by kind (see :class:`LocalModel`),
        fitted here from the table's entries, so that any table has them."""
        correction = self.table.correction
        self.features: list[str] = list(correction.get("features", ["blocks_ms"]))
        self.coef: list[float] = list(correction.get("coef", [1.0] * len(self.features)))
        self.target: str = str(correction.get("target", "linear"))
        self._functions = [FEATURES[f] for f in self.features]
        self._capacities = capacities(self.features)
        """The cache sizes whose small weights the correction reads (:class:`Cold`)."""
        near = correction.get("neighbours")
        self.neighbours: Neighbours | None = Neighbours(near) if near else None
        self._memo: dict[int, tuple[Unit, float]] = {}
        self._groups: dict[int, tuple[tuple[Unit, ...], float, int, tuple[int, ...]]] = {}
        """Sum, count and small weights (parameters, per capacity) of the
        units of an opened composite, by the id of its memoised tuple (kept
        alive here, so ids are not reused)."""

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
        return max(0.0, sum(c * v for c, v in zip(coef, _unit_row(macs, moved))))

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
        return Walk(total, count, {c: _weights_mb(p) for c, p in zip(capacities, small)})

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
        value = _combine(self.coef, [fn(graph, walk) for fn in self._functions], self.target)
        factor = self.neighbours.factor(graph, walk) if self.neighbours is not None else 1.0
        return _floor(value * factor, walk.blocks_ms), factor

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


__all__ = [
    "CANDIDATE_FEATURES",
    "DEFAULT_FEATURES",
    "FEATURES",
    "MIN_LOCAL",
    "NEIGHBOUR_FEATURES",
    "SPATIAL_WEIGHTS",
    "Cold",
    "LocalModel",
    "Neighbours",
    "Prediction",
    "Predictor",
    "Walk",
    "accuracy",
    "capacities",
    "choose_spatial_weight",
    "correction_target",
    "fit_correction",
    "fit_fallback",
    "fit_neighbours",
    "fit_nonnegative",
    "kendall_tau",
    "local_models",
    "loo_predictions",
    "select_correction",
    "spill",
    "unit_features",
    "variant",
]
