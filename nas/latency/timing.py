"""Timing shared by every backend: warm-up until stable, timed runs until the
median is known well enough, and the statistics of what was timed.

Backends differ only in how one run is timed (:class:`PerfCounterTimer`
around a synchronous call, :class:`CudaEventTimer` with events on the GPU's
stream); the policy deciding how many runs to make, and what to report, is
the same for all of them, so their figures are comparable.

Example:
    >>> import time
    >>> dist = time_callable(lambda: time.sleep(0.001), PerfCounterTimer(), TimingPolicy.quick())
    >>> 0.9 < dist.median_ms < 50
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Run = Callable[[], Any]
"""One inference: takes nothing (its inputs are bound), returns the outputs."""


class Timer(Protocol):
    """Times ``runs`` consecutive calls of ``fn``; returns seconds per call.

    A timer sees a batch of runs at once so that a GPU timer can record
    events for all of them and synchronise once at the end, rather than
    stalling the device between runs.
    """

    def __call__(self, fn: Run, runs: int) -> list[float]: ...


class PerfCounterTimer:
    """Wall time of synchronous calls (CPU backends, ONNX Runtime sessions).

    Args:
        clock: seconds as a float; ``time.perf_counter`` (monotonic, the
            finest clock Python has) unless a test injects a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock

    def __call__(self, fn: Run, runs: int) -> list[float]:
        clock = self.clock
        times = []
        for _ in range(runs):
            start = clock()
            fn()
            times.append(clock() - start)
        return times


class CudaEventTimer:
    """GPU time of asynchronous calls, from CUDA events on the current stream.

    Wall time around an asynchronous launch measures the launch, not the
    work. Events recorded on the stream before and after each run time the
    work on the device itself; one synchronisation after the whole batch
    keeps the GPU busy back to back, as in serving, and a synchronisation
    before it keeps earlier work (uploads, warm-up) out of the first run.
    """

    def __init__(self, device: Any = None) -> None:
        import torch

        self.torch = torch
        self.device = device

    def __call__(self, fn: Run, runs: int) -> list[float]:
        cuda = self.torch.cuda
        pairs = [(cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)) for _ in range(runs)]
        cuda.synchronize(self.device)
        for start, end in pairs:
            start.record()
            fn()
            end.record()
        cuda.synchronize(self.device)
        return [start.elapsed_time(end) / 1e3 for start, end in pairs]


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how many runs to time.

    Warm-up runs in windows of ``warmup_window`` runs until the medians of
    two successive windows differ by at most ``warmup_tolerance`` (caches,
    allocators, autotuners and CPU clocks have settled), or until
    ``max_warmup_runs`` / ``max_warmup_s`` are spent. Timed runs continue
    until there are ``min_runs`` of them covering ``min_time_s`` and the 95%
    confidence interval of the median is within ``median_tolerance`` of it,
    or until ``max_runs`` / ``max_time_s`` are spent; whether the median got
    that tight is reported as ``stable``. Time budgets count the timed calls
    themselves, so a fake timer in a test sees the same decisions.
    """

    warmup_window: int = 3
    warmup_tolerance: float = 0.05
    max_warmup_runs: int = 200
    max_warmup_s: float = 2.0
    min_runs: int = 10
    max_runs: int = 2000
    min_time_s: float = 0.2
    max_time_s: float = 3.0
    median_tolerance: float = 0.02

    @classmethod
    def quick(cls) -> TimingPolicy:
        """A short policy for tests and smoke runs (tens of runs, well under a second)."""
        return cls(max_warmup_runs=20, max_warmup_s=0.3, min_runs=5, max_runs=50, min_time_s=0.0, max_time_s=0.3)

    def __post_init__(self) -> None:
        if self.warmup_window < 1 or self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError("need warmup_window >= 1 and 1 <= min_runs <= max_runs")


@dataclass(frozen=True)
class Distribution:
    """What the timed runs gave, in milliseconds.

    ``cv`` is the coefficient of variation (sample standard deviation over
    the mean): above a few percent the machine was busy or the clock
    wandered. ``median_ci_ms`` is the distribution-free 95% confidence
    interval of the median (order statistics), which decided ``stable``.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    cv: float
    runs: int
    warmup_runs: int
    warmup_stable: bool
    stable: bool
    median_ci_ms: tuple[float, float]
    samples_ms: tuple[float, ...] = field(repr=False, default=())

    @classmethod
    def of(
        cls,
        seconds: Sequence[float],
        *,
        warmup_runs: int = 0,
        warmup_stable: bool = True,
        median_tolerance: float = 0.02,
    ) -> Distribution:
        """The statistics of per-run times given in seconds."""
        if not seconds:
            raise ValueError("no timed runs")
        ms = sorted(s * 1e3 for s in seconds)
        n = len(ms)
        mean = sum(ms) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in ms) / (n - 1)) if n > 1 else 0.0
        median = percentile(ms, 50)
        low, high = median_ci(ms)
        return cls(
            median_ms=median,
            p10_ms=percentile(ms, 10),
            p90_ms=percentile(ms, 90),
            mean_ms=mean,
            min_ms=ms[0],
            cv=std / mean if mean > 0 else 0.0,
            runs=n,
            warmup_runs=warmup_runs,
            warmup_stable=warmup_stable,
            stable=_ci_within(median, low, high, median_tolerance),
            median_ci_ms=(low, high),
            samples_ms=tuple(s * 1e3 for s in seconds),
        )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of already sorted values, interpolating
    linearly between neighbours (numpy's default ``"linear"`` method)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    weight = position - below
    return sorted_values[below] * (1 - weight) + sorted_values[above] * weight


def median_ci(sorted_values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free confidence interval of the median: the order
    statistics ``n/2 -+ z*sqrt(n)/2`` (about 95% for ``z = 1.96``).

    Run times are skewed (a few slow outliers) so a normal-theory interval
    of the mean would be both wrong and about the wrong statistic.
    """
    n = len(sorted_values)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half))
    return sorted_values[low], sorted_values[high]


def _ci_within(median: float, low: float, high: float, tolerance: float) -> bool:
    return median > 0 and (high - low) / 2 <= tolerance * median


def _median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)


def warm_up(fn: Run, timer: Timer, policy: TimingPolicy) -> tuple[int, bool, float]:
    """Run ``fn`` until its time per run stops changing.

    Returns:
        (runs made, whether it became stable, median seconds of the last window)
    """
    runs, spent = 0, 0.0
    previous: float | None = None
    last = math.nan
    while runs < policy.max_warmup_runs and spent < policy.max_warmup_s:
        window = timer(fn, min(policy.warmup_window, policy.max_warmup_runs - runs))
        runs += len(window)
        spent += sum(window)
        last = _median(window)
        if previous is not None and abs(last - previous) <= policy.warmup_tolerance * previous:
            return runs, True, last
        previous = last
    return runs, False, last


def time_callable(fn: Run, timer: Timer, policy: TimingPolicy | None = None) -> Distribution:
    """Warm ``fn`` up, then time it until its median is stable; see :class:`TimingPolicy`.

    Timed runs come in chunks sized from what is known so far (the warm-up's
    median, then the runs themselves), so that a 50 µs block and a 300 ms
    network both stop close to their budgets.
    """
    policy = policy or TimingPolicy()
    warmup_runs, warmup_stable, per_run = warm_up(fn, timer, policy)
    samples: list[float] = []
    spent = 0.0
    while True:
        remaining_runs = policy.max_runs - len(samples)
        # Up to min_runs first, then half as many again each time: few checks, little overshoot.
        chunk = policy.min_runs - len(samples) if len(samples) < policy.min_runs else max(1, len(samples) // 2)
        if per_run > 0 and math.isfinite(per_run):
            budget_runs = int((policy.max_time_s - spent) / per_run)
            chunk = min(chunk, max(1, budget_runs))
        chunk = min(chunk, remaining_runs)
        times = timer(fn, chunk)
        samples.extend(times)
        spent += sum(times)
        per_run = _median(samples)
        if len(samples) >= policy.max_runs:
            break
        if len(samples) < policy.min_runs:  # a hard minimum, even past the time budget
            continue
        if spent >= policy.max_time_s:
            break
        if spent >= policy.min_time_s:
            ordered = sorted(samples)
            low, high = median_ci(ordered)
            if _ci_within(percentile(ordered, 50), low, high, policy.median_tolerance):
                break
    return Distribution.of(
        samples,
        warmup_runs=warmup_runs,
        warmup_stable=warmup_stable,
        median_tolerance=policy.median_tolerance,
    )
