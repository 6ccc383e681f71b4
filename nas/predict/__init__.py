"""Latency prediction: a portable per-block table measured once on a target, and a predictor over it.

* :func:`profile` measures a :class:`LatencyTable` (per-block latencies, whole
  networks, fitted models) on one backend and device; :func:`refit` measures
  a stale table's whole networks again and refits it;
* a :class:`Predictor` answers from a table in microseconds, for the
  conditions the table was measured in (it refuses others);
* :func:`accuracy` and :func:`kendall_tau` score predictions against measurements.

Example:
    >>> from nas.predict import Predictor, load_table
    >>> predictor = Predictor(load_table("ort.json"))        # doctest: +SKIP
    >>> predictor.predict(nas.build("resnet20"))             # doctest: +SKIP
"""

from nas.predict.predictor import Prediction, Predictor, accuracy, kendall_tau
from nas.predict.profiling import profile, refit
from nas.predict.table import LatencyTable, load_table

__all__ = [
    "LatencyTable",
    "Prediction",
    "Predictor",
    "accuracy",
    "kendall_tau",
    "load_table",
    "profile",
    "refit",
]
