"""Latency: how long a graph takes on a target device and runtime.

The searcher's most frequent question, answered by measurement:

* :func:`measure` a graph (cached by canonical hash and conditions) or
  :func:`measure_module` any module, on a backend: ``tensorrt``, ``cuda``,
  ``onnxruntime``, ``torch`` or ``auto`` (the best available here);
* a :class:`Measurement` holds a distribution (median, p10, p90, runs,
  coefficient of variation) and its :class:`Conditions` (device, library
  versions, threads, batch, shape, precision), or ``ok=False`` and a reason;
* :func:`roofline` gives the analytic lower bound to compare it with;
* prediction from a portable table of such measurements is the layer above,
  :mod:`nas.predict`.

Example:
    >>> import nas.latency
    >>> m = nas.latency.measure("resnet18", "onnxruntime", threads=2)   # doctest: +SKIP
    >>> m.median_ms, m.p10_ms, m.p90_ms, m.cached                       # doctest: +SKIP
    (31.2, 30.8, 32.0, False)

Extending: a new runtime is a :class:`Backend` subclass (three methods)
registered in :data:`BACKENDS`; everything around it is shared.
"""

from nas.ir.graph import Graph
from nas.latency.backends import (
    AUTO_ORDER,
    BACKENDS,
    PRECISIONS,
    Backend,
    BuildFailed,
    Settings,
    available_backends,
    get_backend,
)
from nas.latency.cache import LatencyCache, default_cache_path
from nas.latency.measurement import (
    Conditions,
    Measurement,
    conditions_for,
    example_inputs,
    measure,
    measure_module,
    parse_shape,
)
from nas.latency.roofline import Peaks, Roofline, attained, cpu_peaks, published_gpu_peaks, roofline, store_cpu_peaks
from nas.latency.timing import Distribution, TimingPolicy, time_callable


def device_peaks(
    measurement: Measurement, cache: LatencyCache | None = None, graph: Graph | None = None
) -> Peaks | None:
    """The peaks of the device a measurement ran on: published for GPUs
    (``None`` for one the table does not know), measured once for the CPU.

    With the measured ``graph``, the peaks are raised to what it attained
    (:func:`~nas.latency.roofline.attained`), so that its roofline bound is
    never above its measurement; raised CPU peaks are stored in ``cache``.
    """
    conditions = measurement.conditions
    backend = BACKENDS[conditions.backend]()
    threads = conditions.threads or 1
    gpu = backend.uses_gpu(conditions.mode)
    if gpu:
        peaks = published_gpu_peaks(conditions.device, conditions.precision)
    else:
        peaks = cpu_peaks(conditions.device, conditions.precision, threads, cache)
    if peaks is None or graph is None or not measurement.ok or measurement.median_ms is None:
        return peaks
    raised = attained(peaks, graph, measurement.median_ms, batch=conditions.batch)
    if raised != peaks and cache is not None and not gpu:
        store_cpu_peaks(raised, threads, cache)
    return raised


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "BuildFailed",
    "Conditions",
    "Distribution",
    "LatencyCache",
    "Measurement",
    "Peaks",
    "Roofline",
    "Settings",
    "TimingPolicy",
    "attained",
    "available_backends",
    "conditions_for",
    "cpu_peaks",
    "default_cache_path",
    "device_peaks",
    "example_inputs",
    "get_backend",
    "measure",
    "measure_module",
    "parse_shape",
    "published_gpu_peaks",
    "roofline",
    "store_cpu_peaks",
    "time_callable",
]
