"""Measuring a network: conditions, the shared procedure, and the result.

Every backend goes through :func:`measure_module`: check the request, bind
seeded inputs, pin threads, prepare, run once, warm up and time
(:mod:`nas.latency.timing`), and catch whatever the runtime throws, so that
a network a runtime cannot take is a :class:`Measurement` with ``ok=False``
and a reason, and the searcher asking goes on to the next candidate.
:func:`measure` adds what a graph brings: its input shape, its canonical
hash, and the cache keyed by both.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import nas
from nas.io.build import build, parse_shape
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.latency.backends import Backend, BuildFailed, Settings, error_line, get_backend, torch_threads
from nas.latency.cache import LatencyCache, default_cache_path
from nas.latency.device import physical_cores
from nas.latency.memory import check_fits
from nas.latency.timing import Distribution, TimingPolicy, time_callable
from nas.passes.lower import lower

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Conditions:
    """Everything a latency depends on besides the network itself.

    Attributes:
        backend, mode: the runtime and its variant (``cuda_graph``, ``cpu`` ...).
        device: the device's name (CPU model, GPU name).
        precision: ``fp32``, ``fp16`` or ``bf16``.
        batch: the batch size.
        shapes: the shape of each input, without the batch dimension.
        threads: CPU threads used (``None`` for GPU backends).
        versions: library versions, as sorted (name, version) pairs.
    """

    backend: str
    mode: str
    device: str
    precision: str
    batch: int
    shapes: tuple[Shape, ...]
    threads: int | None
    versions: tuple[tuple[str, str], ...]

    def key(self, graph_hash: str) -> str:
        """The cache key of a network measured under these conditions."""
        text = json.dumps({"graph": graph_hash, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "mode": self.mode,
            "device": self.device,
            "precision": self.precision,
            "batch": self.batch,
            "shape": list(self.shapes[0]) if self.shapes else [],
            "shapes": [list(s) for s in self.shapes],
            "threads": self.threads,
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conditions:
        return cls(
            backend=data["backend"],
            mode=data["mode"],
            device=data["device"],
            precision=data["precision"],
            batch=int(data["batch"]),
            shapes=tuple(tuple(s) for s in data["shapes"]),
            threads=data["threads"],
            versions=tuple(sorted(data["versions"].items())),
        )


@dataclass(frozen=True)
class Measurement:
    """One network (or module) timed under stated :class:`Conditions`.

    ``ok`` is False when the backend could not build or run it; ``reason``
    then says why and ``distribution`` is ``None``. ``cached`` says the
    result came from the store rather than from running now.
    """

    conditions: Conditions
    ok: bool
    distribution: Distribution | None = None
    reason: str | None = None
    graph_hash: str | None = None
    cached: bool = False
    measured_at: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat())
    elapsed_s: float = 0.0
    """Wall time the measurement took, preparation included (what the searcher pays)."""

    @property
    def median_ms(self) -> float | None:
        return self.distribution.median_ms if self.distribution else None

    @property
    def p10_ms(self) -> float | None:
        return self.distribution.p10_ms if self.distribution else None

    @property
    def p90_ms(self) -> float | None:
        return self.distribution.p90_ms if self.distribution else None

    @property
    def runs(self) -> int:
        return self.distribution.runs if self.distribution else 0

    @property
    def cv(self) -> float | None:
        return self.distribution.cv if self.distribution else None

    @property
    def backend(self) -> str:
        return self.conditions.backend

    @property
    def device(self) -> str:
        return self.conditions.device

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        """A flat JSON-ready record: conditions, then the distribution's figures."""
        record: dict[str, Any] = {
            **self.conditions.to_dict(),
            "ok": self.ok,
            "reason": self.reason,
            "graph_hash": self.graph_hash,
            "cached": self.cached,
            "measured_at": self.measured_at,
            "elapsed_s": self.elapsed_s,
        }
        dist = asdict(self.distribution) if self.distribution else dict.fromkeys(_DISTRIBUTION_KEYS)
        dist["median_ci_ms"] = list(dist["median_ci_ms"]) if dist["median_ci_ms"] else None
        dist["runs"] = dist["runs"] or 0
        if not samples:
            dist.pop("samples_ms")
        else:
            dist["samples_ms"] = list(dist["samples_ms"] or ())
        return {**record, **dist}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        distribution = None
        if data["ok"]:
            fields = {k: data[k] for k in _DISTRIBUTION_KEYS if k in data}
            fields["median_ci_ms"] = tuple(fields["median_ci_ms"])
            fields["samples_ms"] = tuple(fields.get("samples_ms") or ())
            distribution = Distribution(**fields)
        return cls(
            conditions=Conditions.from_dict(data),
            ok=bool(data["ok"]),
            distribution=distribution,
            reason=data.get("reason"),
            graph_hash=data.get("graph_hash"),
            cached=bool(data.get("cached", False)),
            measured_at=data["measured_at"],
            elapsed_s=float(data.get("elapsed_s", 0.0)),
        )


_DISTRIBUTION_KEYS = tuple(Distribution.__dataclass_fields__)


# -- the request ----------------------------------------------------------------


def check_request(backend: Backend, precision: str, mode: str | None, batch: int, threads: int | None) -> str:
    """Validate a request against ``backend`` on this machine; returns the
    mode to use (its default for ``None``).

    Raises:
        NASError: a precision, mode, batch or thread count the backend
            cannot run here, naming the field.
    """
    if precision not in backend.precisions:
        raise NASError(
            f"backend '{backend.name}' does not run precision '{precision}'",
            field="precision",
            hint=f"use one of {', '.join(backend.precisions)}",
        )
    if not isinstance(batch, int) or batch < 1:
        raise NASError(f"batch must be a positive integer, got {batch!r}", field="batch")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise NASError(f"threads must be a positive integer, got {threads!r}", field="threads")
    mode = mode or backend.default_mode()
    if mode not in backend.modes:
        raise NASError(
            f"backend '{backend.name}' has no mode '{mode}'",
            field="mode",
            hint=f"use one of {', '.join(backend.modes)}",
        )
    reason = backend.mode_missing(mode)
    if reason is not None:
        raise NASError(f"backend '{backend.name}' cannot run mode '{mode}' here: {reason}", field="mode")
    return mode


def conditions_for(
    backend: Backend, *, precision: str, mode: str, batch: int, shapes: Sequence[Shape], threads: int | None
) -> Conditions:
    """The conditions a measurement will run under (threads default to the
    physical cores for backends that use CPU threads, ``None`` otherwise)."""
    threads = (threads or physical_cores()) if backend.uses_threads else None
    versions = {**backend.versions(mode), "nas": nas.__version__}
    return Conditions(
        backend=backend.name,
        mode=mode,
        device=backend.device_name(mode),
        precision=precision,
        batch=batch,
        shapes=tuple(tuple(s) for s in shapes),
        threads=threads,
        versions=tuple(sorted(versions.items())),
    )


def example_inputs(shapes: Sequence[Shape], batch: int, seed: int = 0) -> list[torch.Tensor]:
    """Seeded normal inputs: the same tensors for every backend and run, so
    that outputs are comparable and data-dependent timing cannot differ."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn((batch, *shape), generator=generator) for shape in shapes]


def _resolve(backend: str | Backend) -> Backend:
    if isinstance(backend, Backend):
        reason = backend.missing()
        if reason is not None:
            return get_backend(backend.name)  # raises, naming what is missing
        return backend
    if not isinstance(backend, str):
        raise NASError(f"a backend is a name, got {backend!r}", field="backend")
    return get_backend(backend)


@functools.lru_cache(maxsize=8)
def _store_at(path: Path) -> LatencyCache:
    """One store object per file and process: a searcher calling thousands
    of times reuses its connection instead of reopening the file."""
    return LatencyCache(path)


def _open_cache(cache: LatencyCache | str | bool | None) -> LatencyCache | None:
    if cache is True:
        return _store_at(default_cache_path())
    if cache is False or cache is None:
        return None
    if isinstance(cache, LatencyCache):
        return cache
    return LatencyCache(cache)


# -- measuring ------------------------------------------------------------------


def measure(
    graph: Graph | str,
    backend: str | Backend = "auto",
    *,
    batch: int = 1,
    precision: str = "fp32",
    input_shape: Sequence[int] | str | None = None,
    threads: int | None = None,
    mode: str | None = None,
    cache: LatencyCache | str | bool | None = True,
    refresh: bool = False,
    policy: TimingPolicy | None = None,
) -> Measurement:
    """How long ``graph`` takes on ``backend``: a cached or fresh measurement.

    Args:
        graph: a :class:`~nas.Graph`, or anything :func:`nas.io.build` takes.
        backend: ``auto``, ``tensorrt``, ``cuda``, ``onnxruntime``, ``torch``,
            or a :class:`~nas.latency.backends.Backend`.
        batch: the batch size.
        precision: ``fp32``, ``fp16`` or ``bf16`` (as the backend supports).
        input_shape: the input shape without batch (``(3, 160, 160)`` or
            ``"3x160x160"``) if not the graph's; the graph is rebuilt at that
            shape, so its hash and roofline match what is measured.
        threads: CPU threads (default: the physical cores); ignored by GPU backends.
        mode: a backend variant (``backend.modes``); its default otherwise.
        cache: ``True`` for the default store, ``False``/``None`` for none,
            a path, or a :class:`~nas.latency.cache.LatencyCache`.
        refresh: measure even when the store has the answer (and append it).
        policy: warm-up and run counts (:class:`TimingPolicy`).

    Returns:
        A :class:`Measurement`; ``ok=False`` with a ``reason`` if the backend
        could not build or run the network (never an exception for that).

    Raises:
        NASError: a bad request: unknown or missing backend, unsupported
            precision or mode, bad batch, threads or shape, an invalid graph,
            a network that cannot fit in the device's memory, or an unusable
            cache file.

    Example:
        >>> m = measure("lenet5", "torch", threads=1, cache=False, policy=TimingPolicy.quick())  # doctest: +SKIP
        >>> m.ok, m.median_ms > 0                                                               # doctest: +SKIP
        (True, True)
    """
    chosen = _resolve(backend)
    mode = check_request(chosen, precision, mode, batch, threads)
    graph = build(graph, input_shape=input_shape)
    shapes = list(graph.summary.inputs.values())
    conditions = conditions_for(chosen, precision=precision, mode=mode, batch=batch, shapes=shapes, threads=threads)
    graph_hash = graph.hash
    store = _open_cache(cache)
    key = conditions.key(graph_hash)
    if store is not None and not refresh:
        stored = store.get(key)
        if stored is not None:
            return replace(Measurement.from_dict(stored), cached=True)
    device = "cuda" if chosen.uses_gpu(mode) else "cpu"
    check_fits(graph, batch=batch, device=device, precision=precision, what=f"measuring on {chosen.name}")
    result = _run(chosen, lower(graph).eval(), example_inputs(shapes, batch), conditions, policy, graph_hash)
    if store is not None and result.ok:
        # Failures are not stored: an out-of-memory may pass, and the reason
        # of a deterministic one is cheap to get again.
        store.put(key, result.to_dict(samples=True))
    return result


def measure_module(
    module: torch.nn.Module,
    shapes: Sequence[Sequence[int]],
    backend: str | Backend = "auto",
    *,
    batch: int = 1,
    precision: str = "fp32",
    threads: int | None = None,
    mode: str | None = None,
    policy: TimingPolicy | None = None,
) -> Measurement:
    """Time any ``module`` (a torchvision model, one lowered block) the way
    :func:`measure` times a graph; not cached, since a module has no hash.

    ``shapes`` are its inputs' shapes without the batch dimension.
    """
    chosen = _resolve(backend)
    mode = check_request(chosen, precision, mode, batch, threads)
    parsed = [parse_shape(s) for s in shapes]
    conditions = conditions_for(chosen, precision=precision, mode=mode, batch=batch, shapes=parsed, threads=threads)
    return _run(chosen, module.eval(), example_inputs(parsed, batch), conditions, policy, None)


def _run(
    backend: Backend,
    module: torch.nn.Module,
    inputs: list[torch.Tensor],
    conditions: Conditions,
    policy: TimingPolicy | None,
    graph_hash: str | None,
) -> Measurement:
    """Prepare, run once, warm up, time; any failure of the runtime becomes
    ``ok=False`` with a one-line reason naming the stage that failed."""
    started = time.perf_counter()
    settings = Settings(precision=conditions.precision, mode=conditions.mode, threads=conditions.threads)
    stage = "preparing"
    run = None
    try:
        with torch_threads(conditions.threads), backend.context():
            run = backend.prepare(module, inputs, settings)
            stage = "first run"
            run()
            stage = "timing"
            distribution = time_callable(run, backend.timer(conditions.mode), policy)
    except BuildFailed as e:
        return _failed(conditions, str(e), graph_hash, started)
    except Exception as e:  # whatever a runtime raises (OOM, driver errors) is a failed measurement
        reason = f"{stage} on {backend.name} failed: {error_line(e)}"
        if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
            reason = f"out of memory: {reason}"
        return _failed(conditions, reason, graph_hash, started)
    finally:
        del run
        gc.collect()  # sessions and engines hold native memory until collected
        backend.release()
    return Measurement(
        conditions=conditions,
        ok=True,
        distribution=distribution,
        graph_hash=graph_hash,
        elapsed_s=time.perf_counter() - started,
    )


_open_freezes = 0
"""How many :func:`frozen_collector` blocks are open in this process."""


@contextlib.contextmanager
def frozen_collector() -> Iterator[None]:
    """Keep the objects alive now out of the collections that follow.

    Each measurement ends with ``gc.collect()`` (runtimes hold native memory
    until collected), which walks every object the process holds: with
    thousands of sampled graphs alive, that costs more than timing a unit.
    Loops of measurements run inside this (``examples/bench_predictor.py``
    times its units beside thousands of graphs). Nested, the inner one
    freezes what was made since and the outermost unfreezes everything (the
    collector cannot unfreeze part of what it froze). Where the caller froze
    the collector itself, this leaves it as it is: what the caller froze is
    the caller's to unfreeze, and what this froze would stay frozen.
    """
    global _open_freezes
    if gc.get_freeze_count() and not _open_freezes:
        yield
        return
    _open_freezes += 1
    gc.freeze()
    try:
        yield
    finally:
        _open_freezes -= 1
        if not _open_freezes:
            gc.unfreeze()


def _failed(conditions: Conditions, reason: str, graph_hash: str | None, started: float) -> Measurement:
    return Measurement(
        conditions=conditions,
        ok=False,
        reason=reason,
        graph_hash=graph_hash,
        elapsed_s=time.perf_counter() - started,
    )
