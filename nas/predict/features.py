"""What the predictor reads of a unit and of a whole network.

* Of a **unit** (:class:`nas.passes.fusion.Unit`): the row of its linear
  model (:func:`unit_row`: a constant, GMACs, MB moved), its log-space
  position for the local models (:func:`unit_features`), and its
  :func:`variant` (kind, kernel, stride, grouping), the finest group its
  models are fitted on.
* Of a **network**: the correction's inputs (:data:`FEATURES`), computed from
  the graph's summary and from a :class:`Walk` over its units, and the
  feature sets the correction chooses among (:data:`CANDIDATE_FEATURES`).

Example:
    >>> from nas.predict.features import correction_target
    >>> correction_target(["log_blocks_ms", "const"])
    'log'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.ir.graph import Graph
from nas.passes.analysis import BYTES_PER_ELEMENT

# -- a unit ---------------------------------------------------------------------


def unit_row(macs: float, moved: float) -> list[float]:
    """The inputs of a unit's linear model ``ms = a + b * GMACs + c * MB moved``."""
    return [1.0, macs / 1e9, moved / 1e6]


def linear_ms(coef: Sequence[float], macs: float, moved: float) -> float:
    """A linear unit model ``coef`` (:func:`unit_row`) at ``macs`` and ``moved`` bytes."""
    return sum(c * v for c, v in zip(coef, unit_row(macs, moved)))


def unit_features(macs: float, moved: float, inputs: Sequence[Sequence[int]]) -> list[float]:
    """A unit's log-space features for the local fallback model: log MACs,
    log bytes moved, log of the first input's spatial size and channels."""
    first = inputs[0] if inputs else ()
    spatial = math.prod(first[1:]) if len(first) > 1 else 1
    channels = first[0] if first else 1
    return [math.log(macs + 1.0), math.log(moved + 1.0), math.log(spatial + 1.0), math.log(channels + 1.0)]


SPATIAL = 2
"""The index of the map size among :func:`unit_features`."""


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


# -- a network ------------------------------------------------------------------


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


def weights_mb(params: float) -> float:
    """The size in MB of ``params`` fp32 weights."""
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
    inference streams them from the next level, and the network runs
    slower than the sum of its units. The cache size is the device's, so
    it is not assumed: the correction is offered one feature per size in
    :data:`SPILL_MB` and the leave-one-out choice
    (:func:`nas.predict.fit.select_correction`) finds the one that explains
    the table's networks.
    """

    def feature(graph: Graph, walk: Walk) -> float:
        weights = weights_mb(graph.summary.params)
        return weights if weights > capacity_mb else 0.0

    return feature


@dataclass(frozen=True)
class Cold:
    """The feature ``cold_<C>mb``: in a network whose weights exceed
    ``capacity_mb``, the weights (MB) of its units that fit it alone; else 0.

    :func:`spill` counts every weight, but a unit whose own weights exceed
    the cache streams them when it is timed alone too, and its table entry
    already holds that cost: only the units that were cached alone and are
    not in the network run slower there. So a network whose weights sit
    nearly all in one huge layer is not charged for them twice, while one
    of many units of a few MB each is charged for all of them.
    """

    capacity_mb: float

    def __call__(self, graph: Graph, walk: Walk) -> float:
        return walk.small_mb[self.capacity_mb] if weights_mb(graph.summary.params) > self.capacity_mb else 0.0


FEATURES.update({f"spill_{c}mb": spill(c) for c in SPILL_MB})
FEATURES.update({f"cold_{c}mb": Cold(c) for c in SPILL_MB})


def capacities(features: Iterable[str]) -> tuple[float, ...]:
    """The cache sizes a walk must gather small weights for to compute ``features``."""
    return tuple(sorted({fn.capacity_mb for f in features if isinstance(fn := FEATURES[f], Cold)}))


def correction_target(features: Sequence[str]) -> str:
    """``"log"`` when any feature is a ``log_*`` one (the fit is then of
    ``log ms``), else ``"linear"``."""
    return "log" if any(f.startswith("log_") for f in features) else "linear"


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
"""Feature sets :func:`nas.predict.fit.select_correction` chooses from, by
leave-one-out error on the profiled networks (backends differ: torch's
whole networks are a fairly constant factor slower than their units,
onnxruntime's lose a per-unit overhead and gain with parameters, and
weights that spill the cache cost more than their units timed alone show)."""

NEIGHBOUR_FEATURES = ("log_blocks_ms", "log_units", "log_macs_g", "log_params_m", "log_activation_mb")
"""Where a network lies, for :class:`nas.predict.nearest.Neighbours`: the
logarithms of its unit sum, unit count, MACs, parameters and activations."""


__all__ = [
    "CANDIDATE_FEATURES",
    "DEFAULT_FEATURES",
    "FEATURES",
    "NEIGHBOUR_FEATURES",
    "SPATIAL",
    "SPILL_MB",
    "Cold",
    "Feature",
    "Walk",
    "capacities",
    "correction_target",
    "linear_ms",
    "spill",
    "unit_features",
    "unit_row",
    "variant",
    "weights_mb",
]
