"""Models that read residuals off the nearest measured points.

* :class:`LocalModel`: a unit the table lacks, from the table's entries of
  its variant or kind nearest to it (:func:`local_models`, with the weight
  of the map size chosen by :func:`choose_spatial_weight`);
* :class:`Neighbours`: what the correction gets wrong on a network, from the
  profiled networks nearest to it (fitted by
  :func:`nas.predict.fit.fit_neighbours`).

Both rank points by a scaled distance and take the inverse-square-distance
weighted mean of the residuals of the nearest few.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.ir.graph import Graph
from nas.predict.features import FEATURES, SPATIAL, Walk, linear_ms, unit_features, variant


class _Nearest:
    """The inverse-square-distance weighted mean of the residuals of the
    ``k`` points nearest a vector, distances in units of ``scale`` (what
    :class:`LocalModel` reads off a group's table entries and
    :class:`Neighbours` off the profiled networks).

    ``|p - x|^2 = |p|^2 - 2 p.x + |x|^2``: points are ranked by
    ``|p|^2 / 2 - p.x``, one product with the raw vector, and square roots
    are taken for the ``k`` nearest only, since a search calls this once per
    candidate.
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


# -- units the table lacks --------------------------------------------------------


class LocalModel:
    """A fallback model for one group of table entries (a variant or a
    kind): the better, on the group's entries, of its linear model
    (``a + b * GMACs + c * MB``) and a log-log regression on
    :func:`~nas.predict.features.unit_features`; then corrected by the
    residuals (in log space) of the nearest entries, so that a
    configuration between two timed ones is interpolated between them
    rather than read off a global line.

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
            lin = np.asarray([linear_ms(self.linear, r["macs"], r["bytes"]) for r in rows])
            lin_residual = y - np.log(np.maximum(lin, 1e-9))
            if float(np.mean(np.abs(lin_residual))) < float(np.mean(np.abs(loglog))):
                residual = lin_residual
            else:
                self.linear = None
        points = x[:, 1:]
        scale = np.maximum(points.std(axis=0), 1e-3)
        scale[SPATIAL] /= spatial_weight
        self._points = points
        self._residuals = residual
        self._near = _Nearest(points, residual, scale, self.NEIGHBOURS, 0.1)

    def __call__(self, macs: float, moved: float, inputs: Sequence[Sequence[int]]) -> float:
        f = unit_features(macs, moved, inputs)
        if self.linear is not None:
            base = math.log(max(linear_ms(self.linear, macs, moved), 1e-9))
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
:func:`nas.predict.fit.fit_fallback` chooses from, by leave-one-out error
over the table's entries. Latency is not monotonic in map size on every
runtime: in torch, a convolution on a tiny map can run several times slower
per MAC than on a larger one, and its neighbours in MACs on other map sizes
mislead. Weighting the map size more keeps the neighbours on the unit's own
map size where the table has them; a table whose latencies are smooth in
map size keeps 1."""


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
    ``fallback`` (:func:`nas.predict.fit.fit_fallback`)."""
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


# -- what the correction gets wrong -------------------------------------------------


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
    the residuals of its ``k`` nearest networks in
    :data:`~nas.predict.features.NEIGHBOUR_FEATURES` (standardised). ``k``
    and ``shrink`` are chosen by leave-one-out error
    (:func:`nas.predict.fit.fit_neighbours`), which leaves them out of a
    table where they do not help.

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


__all__ = [
    "MIN_LOCAL",
    "SPATIAL_WEIGHTS",
    "LocalModel",
    "Neighbours",
    "choose_spatial_weight",
    "local_models",
]
