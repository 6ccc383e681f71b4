"""Fitting a table's models from its measurements.

* :func:`fit_fallback`: linear unit models ``ms = a + b * GMACs + c * MB
  moved`` per variant, kind, first block type and overall
  (:func:`fit_nonnegative`), for the units a table lacks;
* :func:`fit_correction` and :func:`select_correction`: the correction from
  the unit sum to a whole network's time, ``ms = w . features``, on a
  feature set chosen by leave-one-out error (:func:`loo_predictions`);
* :func:`fit_neighbours`: the residuals of that correction by
  neighbourhood (:class:`nas.predict.nearest.Neighbours`), kept where they
  lower the leave-one-out error.

Example:
    >>> from nas.predict.fit import fit_nonnegative
    >>> coef = fit_nonnegative([[1.0, 1.0, 0.0], [1.0, 2.0, 0.0], [1.0, 3.0, 0.0]], [3.0, 5.0, 7.0])
    >>> [round(c, 6) for c in coef]
    [1.0, 2.0, 0.0]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.predict.features import (
    CANDIDATE_FEATURES,
    DEFAULT_FEATURES,
    NEIGHBOUR_FEATURES,
    correction_target,
    unit_row,
    variant,
)
from nas.predict.nearest import Neighbours, choose_spatial_weight

# -- unit models ------------------------------------------------------------------


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


def fit_fallback(blocks: Sequence[Mapping[str, Any]], *, min_entries: int = 4) -> dict[str, Any]:
    """The unit models of a table: per variant (kind, kernel, stride,
    grouping; at least ``min_entries + 1`` entries), per kind, per first
    block type (at least ``min_entries``) and global; and the weight of the
    map size in finding a unit's nearest entries
    (:data:`nas.predict.nearest.SPATIAL_WEIGHTS`)."""
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
                    [unit_row(r["macs"], r["bytes"]) for r in rows], [r["median_ms"] for r in rows]
                )
    if blocks:
        result["global"] = fit_nonnegative(
            [unit_row(r["macs"], r["bytes"]) for r in blocks], [r["median_ms"] for r in blocks]
        )
    result["spatial_weight"] = choose_spatial_weight(blocks, result)
    return result


# -- the correction ----------------------------------------------------------------


def correction_value(coef: Sequence[float], values: Sequence[float], target: str) -> float:
    """A correction ``coef`` at the feature ``values``: ``w . values``, or its
    exponential for a ``"log"`` target."""
    value = sum(c * v for c, v in zip(coef, values))
    return math.exp(min(value, 700.0)) if target == "log" else value


def floor_prediction(value: float, blocks_ms: float) -> float:
    """A corrected prediction is never below a tenth of the unit sum."""
    return max(value, 0.1 * blocks_ms, 1e-6)


def fit_correction(
    rows: Sequence[Mapping[str, float]], targets: Sequence[float], features: Sequence[str] = DEFAULT_FEATURES
) -> dict[str, Any]:
    """Least squares of the measured whole-network times on ``features``,
    on relative error (so that small and large networks count alike): of
    ``ms`` itself, or of ``log ms`` when a feature is a ``log_*`` one
    (:func:`~nas.predict.features.correction_target`).

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
    fitted = [floor_prediction(correction_value(coef, [r[f] for f in features], target), r["blocks_ms"]) for r in rows]
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
        value = correction_value(fitted["coef"], [rows[i][f] for f in features], fitted["target"])
        predictions.append(floor_prediction(value, rows[i]["blocks_ms"]))
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


# -- its residuals by neighbourhood ---------------------------------------------------


def fit_neighbours(
    rows: Sequence[Mapping[str, float]],
    targets: Sequence[float],
    correction: Mapping[str, Any],
    ks: Sequence[int] = (4, 8, 16),
    shrinks: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    min_gain: float = 0.02,
) -> dict[str, Any] | None:
    """The :class:`~nas.predict.nearest.Neighbours` spec (``k`` and
    ``shrink`` of lowest leave-one-out error) for ``correction`` fitted on
    ``rows``; ``None`` when it lowers that error by less than ``min_gain``
    of it (then the networks' residuals are not telling apart where they
    lie), or with too few networks (fewer than ``2 * min(ks) + 2``)."""
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


__all__ = [
    "correction_value",
    "fit_correction",
    "fit_fallback",
    "fit_neighbours",
    "fit_nonnegative",
    "floor_prediction",
    "loo_predictions",
    "select_correction",
]
