"""Benchmark of the IR foundation: how the IR scales with depth, and how fast
lowered code runs next to hand-written PyTorch.

What it measures:

1. **Scaling of the IR with depth.** CIFAR ResNets (He et al. 2015, section
   4.2; see ``examples/cifar_resnet.py``) with n = 18, 200 and 1667 basic
   blocks per stage: ResNet-110, ResNet-1202 and a 5,001-residual-block graph.
   Each repeat builds a fresh graph (results are cached on a graph) and times,
   in this order, on that graph:

   * ``build``: constructing it with ``nas.Graph`` / ``g.add``;
   * ``summary``: ``g.summary``, i.e. validation, shape inference and costs;
   * ``hash``: ``g.hash`` (flattening included; the analysis is cached);
   * ``yaml``: ``g.to_yaml()`` and ``nas.parse.load_yaml`` of that text;
   * ``lower``: ``nas.lower(g)`` to a ``torch.fx.GraphModule`` (analysis
     cached; creating and initialising the weights included).

   The best of a few repeats is reported, in seconds and in microseconds per
   residual block: flat per-block costs mean the step is linear in depth.
   Time in Python's cyclic garbage collector is measured apart (full
   collections land on whichever step crosses the collector's threshold), and
   the flatness check uses per-block times without it.
   Targets for ResNet-1202 on a 2-core CPU: ``build + summary < 1 s`` and
   ``build + summary + lower < 3 s``. The parameter counts of ResNet-110 and
   ResNet-1202 are checked against the paper (1.7M and 19.4M), and the first
   repeat checks that the YAML round trip is exact and keeps the hash.

2. **Lowered ResNet-18 against torchvision's ResNet-18** on the CPU with
   ``torch.set_num_threads(2)``, in eval mode under ``torch.inference_mode()``,
   at batch 1 and batch 32, 224x224. The lowered model gets torchvision's
   weights (and must give the same outputs). After a warm-up the two models
   run interleaved, in ABBA order, so drift on a noisy machine hits both
   alike. Reported: the median latency of each, the ratio of the medians
   (ours / torchvision; target 0.97..1.03), and the 10th-90th percentile of
   the per-pair ratios as a rough spread; a spread wider than the target band
   is flagged as noisy (another process competing for the two cores).

Run it from the repository root::

    .venv/bin/python examples/bench_foundation.py            # full, a few minutes
    .venv/bin/python examples/bench_foundation.py --quick    # < 1 minute, skips the 5,001-block graph
    .venv/bin/python examples/bench_foundation.py --json     # one JSON object on stdout
    .venv/bin/python examples/bench_foundation.py --profile  # cProfile of summary and lower, ResNet-1202

Progress goes to stderr, so ``--json`` output can be piped as it is.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import re
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision

import nas
from nas.io.parse import load_yaml

try:  # run as a script: examples/ is on sys.path
    from cifar_resnet import cifar_resnet, depth_of
except ImportError:  # imported as examples.bench_foundation from the repository root
    from examples.cifar_resnet import cifar_resnet, depth_of

HERE = Path(__file__).resolve().parent
RESNET18_YAML = HERE / "resnet18.yaml"

STEPS = ("build", "summary", "hash", "yaml", "lower")
"""The timed IR steps, in the order they run on each fresh graph."""

PAPER_PARAMS_M = {18: 1.7, 200: 19.4}
"""Parameters in millions from the paper's Table 6: ResNet-110 and ResNet-1202."""

TARGET_BUILD_SUMMARY_S = 1.0
TARGET_TO_MODULE_S = 3.0
TARGET_RESNET_N = 200
"""The time targets apply to ResNet-1202 (n = 200)."""

RATIO_LOW, RATIO_HIGH = 0.97, 1.03
"""Target band for lowered / torchvision median latency."""

FLAT_GROWTH = 1.5
"""Per-block cost may grow at most this much from the smallest to the largest graph."""

THREADS = 2


def model_label(n: int) -> str:
    """The paper's name for its models, the block count for the others (the 5,001-block graph)."""
    return f"ResNet-{depth_of(n)}" if n in PAPER_PARAMS_M else f"{3 * n}-block"


@dataclass(frozen=True)
class Plan:
    """How much to measure: the --quick and the full settings."""

    depths: tuple[tuple[int, int], ...]  # (n blocks per stage, repeats)
    inference: tuple[tuple[int, int, int], ...]  # (batch, warm-up runs per model, timed pairs)


QUICK = Plan(depths=((18, 3), (200, 3)), inference=((1, 5, 20), (32, 1, 6)))
FULL = Plan(depths=((18, 5), (200, 5), (1667, 3)), inference=((1, 10, 50), (32, 2, 12)))


# --------------------------------------------------------------------------
# 1. Scaling of the IR with depth


class GcTimer:
    """Seconds spent in Python's cyclic garbage collector, via ``gc.callbacks``.

    Full (generation 2) collections visit every live object and run whenever
    enough objects have survived, so they land on whichever step happens to
    cross the threshold; timing them separately keeps the per-step scaling
    readable.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


@dataclass
class ScalingRow:
    model: str
    n: int
    depth: int
    blocks: int
    nodes: int
    params: int
    macs: int
    repeats: int
    seconds: dict[str, float]  # best wall time of each step, garbage collection included
    gc_seconds: dict[str, float]  # time in the garbage collector during that best repeat
    seconds_without_gc: dict[str, float]  # best of (wall - garbage collection)
    us_per_block: dict[str, float]
    us_per_block_without_gc: dict[str, float]
    yaml_round_trip_exact: bool
    yaml_round_trip_same_hash: bool


def measure_scaling(n: int, repeats: int) -> ScalingRow:
    """Best-of-``repeats`` time of each IR step on a CIFAR ResNet with ``n`` blocks per stage."""
    best = dict.fromkeys(STEPS, math.inf)
    best_gc = dict.fromkeys(STEPS, 0.0)
    best_without_gc = dict.fromkeys(STEPS, math.inf)
    exact = same_hash = False
    params = macs = nodes = 0
    for repeat in range(repeats):
        gc.collect()
        with GcTimer() as collector:
            marks = [(time.perf_counter(), collector.seconds)]
            g = cifar_resnet(n)
            marks.append((time.perf_counter(), collector.seconds))
            summary = g.summary
            marks.append((time.perf_counter(), collector.seconds))
            digest = g.hash
            marks.append((time.perf_counter(), collector.seconds))
            text = g.to_yaml()
            loaded = load_yaml(text)
            marks.append((time.perf_counter(), collector.seconds))
            module = nas.lower(g)
            marks.append((time.perf_counter(), collector.seconds))
        for step, (t0, gc0), (t1, gc1) in zip(STEPS, marks, marks[1:], strict=False):
            wall, in_gc = t1 - t0, gc1 - gc0
            if wall < best[step]:
                best[step], best_gc[step] = wall, in_gc
            best_without_gc[step] = min(best_without_gc[step], wall - in_gc)
        if repeat == 0:  # correctness, untimed
            params, macs, nodes = summary.params, summary.macs, len(g)
            exact = loaded.to_yaml() == text
            same_hash = loaded.hash == digest
        del g, summary, loaded, module
    blocks = 3 * n
    return ScalingRow(
        model=model_label(n),
        n=n,
        depth=depth_of(n),
        blocks=blocks,
        nodes=nodes,
        params=params,
        macs=macs,
        repeats=repeats,
        seconds=best,
        gc_seconds=best_gc,
        seconds_without_gc=best_without_gc,
        us_per_block={step: best[step] / blocks * 1e6 for step in STEPS},
        us_per_block_without_gc={step: best_without_gc[step] / blocks * 1e6 for step in STEPS},
        yaml_round_trip_exact=exact,
        yaml_round_trip_same_hash=same_hash,
    )


@dataclass
class Check:
    name: str
    value: str
    target: str
    ok: bool


def scaling_checks(rows: Sequence[ScalingRow]) -> list[Check]:
    """Targets, parameter counts, round trips and per-block flatness."""
    checks: list[Check] = []
    by_n = {row.n: row for row in rows}
    for n, paper in PAPER_PARAMS_M.items():
        if n in by_n:
            got = by_n[n].params / 1e6
            checks.append(Check(f"{model_label(n)} params", f"{got:.3f}M", f"paper: {paper}M", round(got, 1) == paper))
    if TARGET_RESNET_N in by_n:
        s = by_n[TARGET_RESNET_N].seconds
        name = f"ResNet-{depth_of(TARGET_RESNET_N)}"
        built = s["build"] + s["summary"]
        lowered = built + s["lower"]
        for label, seconds, target in (
            ("build+summary", built, TARGET_BUILD_SUMMARY_S),
            ("build+summary+lower", lowered, TARGET_TO_MODULE_S),
        ):
            checks.append(Check(f"{name} {label}", f"{seconds:.3f} s", f"< {target:g} s", seconds < target))
    for row in rows:
        ok = row.yaml_round_trip_exact and row.yaml_round_trip_same_hash
        value = "exact, same hash" if ok else "DIFFERS"
        checks.append(Check(f"YAML round trip, {row.blocks} blocks", value, "exact, same hash", ok))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        for step in STEPS:
            growth = last.us_per_block_without_gc[step] / first.us_per_block_without_gc[step]
            with_gc = last.us_per_block[step] / first.us_per_block[step]
            checks.append(
                Check(
                    f"{step} us/block w/o GC, {last.blocks} vs {first.blocks}",
                    f"x{growth:.2f} (GC incl. x{with_gc:.2f})",
                    f"flat: <= x{FLAT_GROWTH:g}",
                    growth <= FLAT_GROWTH,
                )
            )
    return checks


# --------------------------------------------------------------------------
# 2. Lowered ResNet-18 against torchvision


@dataclass
class InferenceRow:
    batch: int
    warmup: int
    pairs: int
    torchvision_median_ms: float
    ours_median_ms: float
    ratio: float  # ours / torchvision, of the medians
    pair_ratio_p10: float
    pair_ratio_median: float
    pair_ratio_p90: float
    max_abs_diff: float
    same_output: bool
    ok: bool
    noisy: bool  # the p10..p90 spread of the pair ratios is wider than the target band
    torchvision_ms: list[float]
    ours_ms: list[float]


def torchvision_key(key: str) -> str:
    """Our state-dict key as torchvision names it: ``layer2_0.conv_down`` is ``layer2.0.downsample.0``."""
    key = re.sub(r"^layer(\d+)_(\d+)\.", r"layer\1.\2.", key)
    return key.replace(".conv_down.", ".downsample.0.").replace(".bn_down.", ".downsample.1.")


def load_torchvision_weights(ours: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Copy ``ref``'s weights into ``ours`` so that both compute the same function."""
    theirs = ref.state_dict()
    ours.load_state_dict({key: theirs[torchvision_key(key)] for key in ours.state_dict()}, strict=True)


def _timed(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    model(x)
    return time.perf_counter() - t0


def measure_inference(plan: Plan) -> list[InferenceRow]:
    """Median latencies of lowered and torchvision ResNet-18, interleaved ABBA."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    ours = nas.lower(nas.build(RESNET18_YAML)).eval()
    ref = torchvision.models.resnet18().eval()
    load_torchvision_weights(ours, ref)
    rows = []
    with torch.inference_mode():
        for batch, warmup, pairs in plan.inference:
            print(f"  resnet18 batch {batch}: {warmup} warm-up + {pairs} timed pairs", file=sys.stderr)
            x = torch.randn(batch, 3, 224, 224)
            expected, got = ref(x), ours(x)
            diff = (got - expected).abs().max().item()
            same = torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
            for _ in range(warmup):
                ref(x)
                ours(x)
            ref_s: list[float] = []
            ours_s: list[float] = []
            for i in range(pairs):
                if i % 2 == 0:  # A B, then B A: ABBA ABBA ...
                    ref_s.append(_timed(ref, x))
                    ours_s.append(_timed(ours, x))
                else:
                    ours_s.append(_timed(ours, x))
                    ref_s.append(_timed(ref, x))
            ratios = [o / r for o, r in zip(ours_s, ref_s, strict=True)]
            deciles = statistics.quantiles(ratios, n=10, method="inclusive")
            ratio = statistics.median(ours_s) / statistics.median(ref_s)
            rows.append(
                InferenceRow(
                    batch=batch,
                    warmup=warmup,
                    pairs=pairs,
                    torchvision_median_ms=statistics.median(ref_s) * 1e3,
                    ours_median_ms=statistics.median(ours_s) * 1e3,
                    ratio=ratio,
                    pair_ratio_p10=deciles[0],
                    pair_ratio_median=statistics.median(ratios),
                    pair_ratio_p90=deciles[-1],
                    max_abs_diff=diff,
                    same_output=same,
                    ok=RATIO_LOW <= ratio <= RATIO_HIGH,
                    noisy=deciles[-1] - deciles[0] > RATIO_HIGH - RATIO_LOW,
                    torchvision_ms=[t * 1e3 for t in ref_s],
                    ours_ms=[t * 1e3 for t in ours_s],
                )
            )
    return rows


# --------------------------------------------------------------------------
# Profile (--profile)


def profile_resnet1202(top: int = 25) -> None:
    """Print cProfile's top functions for ``g.summary`` and ``nas.lower(g)``
    (analysis cached) of ResNet-1202, each on a fresh graph.

    The garbage collector is paused while profiling: otherwise its pauses are
    charged to whatever function happens to allocate when they start.
    """
    name = f"ResNet-{depth_of(TARGET_RESNET_N)}"
    g = cifar_resnet(TARGET_RESNET_N)
    _print_profile(f"g.summary, {name}", lambda: g.summary, top)
    g = cifar_resnet(TARGET_RESNET_N)
    _ = g.summary
    _print_profile(f"nas.lower(g), {name}, analysis cached", lambda: nas.lower(g), top)


def _print_profile(label: str, run: Callable[[], object], top: int) -> None:
    profiler = cProfile.Profile()
    gc.collect()
    gc.disable()
    try:
        profiler.runcall(run)
    finally:
        gc.enable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    buffer.write(f"--- cProfile of {label} (garbage collector paused): top {top} by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(top)
    buffer.write(f"--- cProfile of {label} (garbage collector paused): top {top // 2} by own time\n")
    stats.sort_stats("tottime").print_stats(top // 2)
    text = buffer.getvalue()
    # Shorten paths, keeping enough to tell nas/graph.py from torch/fx/graph.py.
    for prefix in (str(Path(torch.__file__).parents[1]), str(HERE.parent), sysconfig.get_paths()["stdlib"]):
        text = text.replace(prefix + os.sep, "")
    print(text)


# --------------------------------------------------------------------------
# Report


def environment(quick: bool) -> dict[str, Any]:
    return {
        "mode": "quick" if quick else "full",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "nas": nas.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": THREADS,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def failures(checks: Sequence[Check], inference: Sequence[InferenceRow]) -> list[str]:
    """Names of the failed checks, for the summary line and the JSON report."""
    failed = [c.name for c in checks if not c.ok]
    for r in inference:
        if not r.same_output:
            failed.append(f"ResNet-18 batch {r.batch} outputs differ")
        if not r.ok:
            failed.append(f"ResNet-18 batch {r.batch} ratio")
    return failed


def print_table(
    env: dict[str, Any],
    rows: Sequence[ScalingRow],
    checks: Sequence[Check],
    inference: Sequence[InferenceRow],
    elapsed: float,
) -> None:
    print(
        f"nas foundation benchmark ({env['mode']}): python {env['python']}, torch {env['torch']}, "
        f"torchvision {env['torchvision']}, {env['cpu_count']} CPUs, load average at the end "
        + "/".join(f"{x:.2f}" for x in env["load_average"] or ())
    )
    print()
    print("1. IR scaling with depth: CIFAR ResNets (option A shortcuts), best of N, fresh graph each repeat")
    header = f"{'model':>12} {'blocks':>6} {'params':>11} {'N':>2} | " + " ".join(f"{s:>8}" for s in STEPS)
    print(header)
    print("-" * len(header))
    indent = len(header) - len(" | ") - 9 * len(STEPS) + 1
    for row in rows:
        print(
            f"{row.model:>12} {row.blocks:>6} {row.params:>11,} {row.repeats:>2} | "
            + " ".join(f"{row.seconds[s]:>7.3f}s" for s in STEPS)
        )
        print(f"{'us/block':>{indent}} | " + " ".join(f"{row.us_per_block[s]:>8.0f}" for s in STEPS))
        print(f"{'us/block w/o GC':>{indent}} | " + " ".join(f"{row.us_per_block_without_gc[s]:>8.0f}" for s in STEPS))
    print("   build: nas.Graph + g.add       summary: validation + shapes + costs   hash: g.hash")
    print("   yaml: g.to_yaml + load_yaml    lower: nas.lower(g), analysis cached, weights created")
    print("   w/o GC: best of (wall time - time in Python's cyclic garbage collector)")
    print()
    for check in checks:
        print(f"   {_verdict(check.ok)}  {check.name:<36} {check.value:>26}   ({check.target})")
    print()
    print(
        f"2. ResNet-18: nas.lower(examples/resnet18.yaml) vs torchvision.models.resnet18, CPU, "
        f"torch.set_num_threads({THREADS})"
    )
    print("   eval + inference_mode, 224x224, same weights, warm-up then interleaved ABBA pairs, medians")
    header = (
        f"{'batch':>5} {'pairs':>5} {'torchvision':>12} {'ours':>10} {'ours/tv':>8}   "
        f"{'pair ratios p10 / p50 / p90':>27} {'max|diff|':>9}  target {RATIO_LOW}..{RATIO_HIGH}"
    )
    print(header)
    print("-" * len(header))
    for r in inference:
        spread = f"{r.pair_ratio_p10:.3f} / {r.pair_ratio_median:.3f} / {r.pair_ratio_p90:.3f}"
        print(
            f"{r.batch:>5} {r.pairs:>5} {r.torchvision_median_ms:>9.2f} ms {r.ours_median_ms:>7.2f} ms "
            f"{r.ratio:>8.3f}   {spread:>27} {r.max_abs_diff:>9.1e}  {_verdict(r.ok)}"
            + ("  (noisy: spread wider than the target band)" if r.noisy else "")
        )
    print()
    failed = failures(checks, inference)
    print(f"overall: {_verdict(not failed)}" + (f" (failed: {'; '.join(failed)})" if failed else ""))
    print(f"total time {elapsed:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 5,001-block graph (< 1 minute)")
    parser.add_argument(
        "--profile", action="store_true", help="only print cProfile of summary and lower of ResNet-1202"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    warm = cifar_resnet(1)  # load the block library and warm the code paths outside the timings
    nas.lower(warm)
    if args.profile:
        profile_resnet1202()
        return 0

    start = time.perf_counter()
    rows = []
    for n, repeats in plan.depths:
        print(f"  {model_label(n)} ({3 * n} blocks, depth {depth_of(n)}) x {repeats}", file=sys.stderr)
        rows.append(measure_scaling(n, repeats))
    checks = scaling_checks(rows)
    inference = measure_inference(plan)
    elapsed = time.perf_counter() - start

    env = environment(args.quick)
    if args.json:
        report = {
            "environment": env,
            "ir_scaling": [asdict(row) for row in rows],
            "checks": [asdict(check) for check in checks],
            "inference": [asdict(row) for row in inference],
            "targets": {
                "resnet1202_build_summary_s": TARGET_BUILD_SUMMARY_S,
                "resnet1202_build_summary_lower_s": TARGET_TO_MODULE_S,
                "resnet18_ratio": [RATIO_LOW, RATIO_HIGH],
                "per_block_growth_max": FLAT_GROWTH,
            },
            "failed": failures(checks, inference),
            "pass": not failures(checks, inference),
            "elapsed_s": elapsed,
        }
        print(json.dumps(report, indent=2))
    else:
        print_table(env, rows, checks, inference, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
