"""Benchmark of the latency measurement: the seed's table on this CPU, and the
overhead of lowered modules against their reference implementations.

What it measures:

1. **The seed's table, reproduced.** Batch-1 inference of ResNet-18, AlexNet,
   VGG-16, SqueezeNet (1.0) and MobileNet v1 (224x224, fp32) through
   ``nas.latency.measure`` with the ``torch`` backend (PyTorch eager) and the
   ``onnxruntime`` backend (CPU execution provider), threads pinned to the
   physical cores (or with the backends of ``--backends`` at
   ``--precision``: ``cuda`` on a GPU), next to the seed's figures on a
   Titan Xp (2.9, 1.0, 1.7, 2.7 and 33 ms; MobileNet was slow there because
   of its depthwise convolutions) and to the roofline lower bound of each net
   on this device (peaks measured here: a large matmul and a large copy).
   The ordering is compared with the seed's: is MobileNet still the slowest
   at batch 1?

2. **Overhead of the lowered IR module** against torchvision's module of the
   same network (timm's ``mobilenetv1_100`` for MobileNet v1, which
   torchvision lacks), with the first backend of ``--backends`` through
   ``nas.latency.measure_module``: the two are measured alternately (A B B A
   ...) and the ratio of their pooled medians is reported (ours / reference;
   1.00 means no overhead).

Measurements are fresh (the latency store is neither read nor written),
unless ``--cache`` is given.

Run it from the repository root::

    .venv/bin/python examples/bench_latency.py            # full, a few minutes on 2 cores
    .venv/bin/python examples/bench_latency.py --quick    # shorter timing policy, one round of part 2
    .venv/bin/python examples/bench_latency.py --json     # one JSON object on stdout
    .venv/bin/python examples/bench_latency.py --backends cuda,cuda:eager --precision fp16   # on a GPU

Progress goes to stderr, so ``--json`` output can be piped as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import timm
import torch
import torchvision

import nas
import nas.latency as latency
from nas.latency.device import physical_cores

SEED_NETS: tuple[tuple[str, str, float], ...] = (
    ("ResNet-18", "resnet18", 2.9),
    ("AlexNet", "alexnet", 1.0),
    ("VGG-16", "vgg16", 1.7),
    ("SqueezeNet", "squeezenet1_0", 2.7),
    ("MobileNet v1", "mobilenet_v1", 33.0),
)
"""(label, zoo name, the seed's batch-1 milliseconds on a Titan Xp)."""

REFERENCES: dict[str, Callable[[], torch.nn.Module]] = {
    "resnet18": torchvision.models.resnet18,
    "alexnet": torchvision.models.alexnet,
    "vgg16": torchvision.models.vgg16,
    "squeezenet1_0": torchvision.models.squeezenet1_0,
    "mobilenet_v1": lambda: timm.create_model("mobilenetv1_100"),
}
"""The reference module of each net, for the overhead comparison."""

BACKENDS = ("torch", "onnxruntime")
"""The default backends: the CPU's (``--backends cuda,cuda:eager`` on a GPU)."""


@dataclass(frozen=True)
class Target:
    """A backend to time the nets on, with its variant: ``torch``, ``cuda:eager``."""

    backend: str
    mode: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        backend, _, mode = text.partition(":")
        return cls(backend, mode or None)

    @property
    def key(self) -> str:
        return self.backend if self.mode is None else f"{self.backend}:{self.mode}"

    def resolved(self) -> tuple[latency.Backend, str]:
        """The backend and the mode it runs in (its default where none was given)."""
        backend = latency.get_backend(self.backend)
        return backend, self.mode or backend.default_mode()

    def uses_gpu(self) -> bool:
        backend, mode = self.resolved()
        return backend.uses_gpu(mode)

    def device(self) -> str:
        """The device it runs on, as measurements name it."""
        backend, mode = self.resolved()
        return backend.device_name(mode)

    def label(self, precision: str) -> str:
        return f"{self.key} {precision} {'GPU' if self.uses_gpu() else 'CPU'}"


@dataclass(frozen=True)
class Plan:
    """How much to measure: the --quick and the full settings."""

    policy: latency.TimingPolicy
    seed_rounds: int  # rounds over the seed's table (the best round of each cell is kept)
    rounds: int  # A/B rounds of part 2 (each round: ours, ref, ref, ours)


FULL = Plan(latency.TimingPolicy(), seed_rounds=3, rounds=2)
QUICK = Plan(
    latency.TimingPolicy(max_warmup_s=0.5, min_runs=5, max_runs=200, min_time_s=0.1, max_time_s=1.0),
    seed_rounds=1,
    rounds=1,
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# 1. The seed's table


def seed_table(
    plan: Plan, targets: Sequence[Target], precision: str, threads: int, cache: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each net on each backend, ``plan.seed_rounds`` times, nets and backends
    interleaved; per cell, the round with the lowest median is kept.

    On a shared machine other processes take the cores for seconds at a
    time, and a round that overlaps them is slow as a whole; the best round
    is the figure least disturbed (as ``timeit`` reports its minimum). The
    ratio of the slowest to the fastest round median shows the disturbance.
    """
    store = latency.LatencyCache() if cache else None
    graphs = {name: nas.build(name) for _, name, _ in SEED_NETS}
    rounds: dict[tuple[str, str], list[latency.Measurement]] = {}
    for r in range(plan.seed_rounds):
        for label, name, _ in SEED_NETS:
            for target in targets if r % 2 == 0 else targets[::-1]:
                log(f"  round {r + 1}/{plan.seed_rounds}: {label}, {target.key}")
                m = latency.measure(
                    graphs[name],
                    target.backend,
                    mode=target.mode,
                    precision=precision,
                    threads=threads,
                    cache=store if store is not None else False,
                    refresh=r > 0,
                    policy=plan.policy,
                )
                rounds.setdefault((name, target.key), []).append(m)
    rows = []
    peaks: latency.Peaks | None = None
    for label, name, seed_ms in SEED_NETS:
        graph = graphs[name]
        row: dict[str, Any] = {
            "net": label,
            "zoo": name,
            "params": graph.params,
            "macs": graph.macs,
            "seed_titan_xp_ms": seed_ms,
        }
        for key in (t.key for t in targets):
            done = [m for m in rounds[(name, key)] if m.ok and m.median_ms is not None]
            if not done:
                row[key] = rounds[(name, key)][-1].to_dict()
                continue
            best = min(done, key=lambda m: m.median_ms or 0.0)
            row[key] = best.to_dict()
            medians = [m.median_ms or 0.0 for m in done]
            row[key]["round_medians_ms"] = medians
            row[key]["round_spread"] = max(medians) / min(medians)
            peaks = latency.device_peaks(best, store) if peaks is None else peaks
            if peaks is not None and best.median_ms is not None:  # a bound is never above a measurement
                peaks = latency.attained(peaks, graph, best.median_ms)
        rows.append(row)
    for row in rows:  # one set of peaks, raised by every net, for every net's bound
        if peaks is not None:
            row["roofline"] = latency.roofline(graphs[row["zoo"]], peaks).to_dict()
    ordering = compare_orderings(rows, [t.key for t in targets])
    ordering["peaks"] = None if peaks is None else peaks.__dict__
    return rows, ordering


def _ranked(rows: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float | None]) -> list[str]:
    known = [(value(r), r["net"]) for r in rows if value(r) is not None]
    return [net for _, net in sorted(known, key=lambda pair: -pair[0])]  # type: ignore[operator]


def compare_orderings(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Slowest-first orderings of the seed and of each backend, and whether they agree."""
    result: dict[str, Any] = {"seed": _ranked(rows, lambda r: r["seed_titan_xp_ms"])}
    for key in keys:
        result[key] = _ranked(rows, lambda r, k=key: r[k]["median_ms"])  # type: ignore[misc]
    result["mobilenet_slowest"] = {k: bool(result[k]) and result[k][0] == "MobileNet v1" for k in keys}
    result["same_order_as_seed"] = {k: result[k] == result["seed"] for k in keys}
    return result


# --------------------------------------------------------------------------
# 2. Overhead of the lowered module


def overhead(plan: Plan, target: Target, precision: str, threads: int) -> list[dict[str, Any]]:
    rows = []
    for label, name, _ in SEED_NETS:
        graph = nas.build(name)
        shape = next(iter(graph.summary.inputs.values()))
        torch.manual_seed(0)
        models = {"ours": nas.lower(graph).eval(), "reference": REFERENCES[name]().eval()}
        samples: dict[str, list[float]] = {"ours": [], "reference": []}
        failed: list[str] = []
        order = []
        for r in range(plan.rounds):
            order += (
                ["ours", "reference", "reference", "ours"] if r % 2 == 0 else ["reference", "ours", "ours", "reference"]
            )
        log(f"  {label}: {' '.join(order)}")
        for which in order:
            m = latency.measure_module(
                models[which],
                [shape],
                target.backend,
                mode=target.mode,
                precision=precision,
                threads=threads,
                policy=plan.policy,
            )
            if not m.ok or m.distribution is None:
                failed.append(f"{which}: {m.reason}")
                continue
            samples[which].extend(m.distribution.samples_ms)
        ours = statistics.median(samples["ours"]) if samples["ours"] else None
        ref = statistics.median(samples["reference"]) if samples["reference"] else None
        rows.append(
            {
                "net": label,
                "reference": "timm mobilenetv1_100" if name == "mobilenet_v1" else f"torchvision {name}",
                "ours_median_ms": ours,
                "reference_median_ms": ref,
                "ratio": ours / ref if ours and ref else None,
                "runs": {k: len(v) for k, v in samples.items()},
                "failed": failed,
            }
        )
    return rows


# --------------------------------------------------------------------------
# Report


def environment(plan: Plan, quick: bool, targets: Sequence[Target], precision: str, threads: int) -> dict[str, Any]:
    return {
        "backends": [t.key for t in targets],
        "precision": precision,
        "mode": "quick" if quick else "full",
        "seed_rounds": plan.seed_rounds,
        "overhead_rounds": plan.rounds,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "nas": nas.__version__,
        "device": targets[0].device(),
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


def _ms(record: dict[str, Any]) -> str:
    if not record["ok"]:
        return "failed"
    return f"{record['median_ms']:8.2f} ({record['p10_ms']:.1f}-{record['p90_ms']:.1f})"


def print_report(
    env: dict[str, Any],
    targets: Sequence[Target],
    rows: list[dict[str, Any]],
    ordering: dict[str, Any],
    over: list[dict[str, Any]],
) -> None:
    precision = env["precision"]
    on_cpu = not all(t.uses_gpu() for t in targets)
    ort = any(t.backend == "onnxruntime" for t in targets)
    print(
        f"nas latency benchmark ({env['mode']}): {env['device']}"
        + (f", {env['threads']} threads" if on_cpu else "")
        + f", torch {env['torch']}"
        + (f", onnxruntime {env['onnxruntime']}" if ort else "")
        + ", load average (1/5/15 min) at the start "
        + "/".join(f"{x:.2f}" for x in env["load_average_at_start"] or ())
        + ", at the end "
        + "/".join(f"{x:.2f}" for x in env["load_average"] or ())
    )
    print()
    print(
        f"1. The seed's table at batch 1, 224x224, {precision}: median ms (p10-p90) of the best of "
        f"{env['seed_rounds']} round(s), coefficient of variation, slowest/fastest round median"
    )
    header = (
        f"{'net':<13} {'GMACs':>6} {'seed Titan Xp':>13} | "
        + "".join(f"{t.label(precision):>22} {'cv':>5} {'spread':>6} | " for t in targets)
        + f"{'roofline':>8} {'limit':>7} "
        + " ".join(f"{'bound/' + t.key:>{max(11, len(t.key) + 6)}}" for t in targets)
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = [row[t.key] for t in targets]
        roof = row.get("roofline")
        bound: float = roof["bound_ms"] if roof else math.nan
        print(
            f"{row['net']:<13} {row['macs'] / 1e9:>6.2f} {row['seed_titan_xp_ms']:>10.1f} ms | "
            + "".join(f"{_ms(c):>22} {_pct(c.get('cv')):>5} {_spread(c):>6} | " for c in cells)
            + (
                f"{bound:>5.2f} ms {roof['limit']:>7} "
                + " ".join(f"{_frac(bound, c):>{max(11, len(t.key) + 6)}}" for t, c in zip(targets, cells))
                if roof
                else "   (no peaks)"
            )
        )
    peaks = ordering.get("peaks")
    if peaks:
        print(
            f"   roofline peaks: {peaks['flops_per_s'] / 1e9:.0f} GFLOP/s, {peaks['bytes_per_s'] / 1e9:.1f} GB/s "
            f"({peaks['source']})"
        )
    print()
    print("   slowest first:")
    print(f"   {'seed, Titan Xp':<26} " + " > ".join(ordering["seed"]))
    for t in targets:
        print(f"   {t.label(precision) + ', here':<26} " + " > ".join(ordering[t.key]))
    for t in targets:
        slowest = ordering[t.key][0] if ordering[t.key] else "?"
        verdict = "yes" if ordering["mobilenet_slowest"][t.key] else f"no, the slowest is {slowest}"
        print(f"   MobileNet v1 still the slowest at batch 1 with {t.key}? {verdict}")
    print()
    print(
        f"2. Overhead of the lowered IR module: {targets[0].label(precision)}, batch 1, ours / reference, "
        "pooled medians, A B B A"
    )
    header = f"{'net':<13} {'reference':<22} {'ours':>9} {'reference':>10} {'ratio':>6} {'runs':>11}"
    print(header)
    print("-" * len(header))
    for row in over:
        if row["ratio"] is None:
            print(f"{row['net']:<13} {row['reference']:<22} failed: {'; '.join(row['failed'])}")
            continue
        print(
            f"{row['net']:<13} {row['reference']:<22} {row['ours_median_ms']:>6.2f} ms "
            f"{row['reference_median_ms']:>7.2f} ms {row['ratio']:>6.3f} "
            f"{row['runs']['ours']:>5}/{row['runs']['reference']:<5}"
        )


def _spread(record: dict[str, Any]) -> str:
    spread = record.get("round_spread")
    return "" if spread is None else f"x{spread:.2f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _frac(bound: float, record: dict[str, Any]) -> str:
    return f"{bound / record['median_ms']:.0%}" if record["ok"] and record["median_ms"] else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--quick", action="store_true", help="a shorter timing policy and one A/B round")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the physical cores)")
    parser.add_argument("--cache", action="store_true", help="read and write the latency store (default: fresh)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="BACKEND[:MODE],... to time the seed's table on; the first also times part 2 (e.g. cuda,cuda:eager)",
    )
    parser.add_argument("--precision", default="fp32", help="fp32, fp16 or bf16")
    args = parser.parse_args(argv)
    targets = [Target.parse(t) for t in args.backends.split(",") if t.strip()]
    plan = QUICK if args.quick else FULL
    threads = args.threads or physical_cores()

    start = time.perf_counter()
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    log("1. the seed's table")
    rows, ordering = seed_table(plan, targets, args.precision, threads, args.cache)
    log("2. overhead of the lowered module")
    over = overhead(plan, targets[0], args.precision, threads)
    elapsed = time.perf_counter() - start
    env = environment(plan, args.quick, targets, args.precision, threads)
    env["load_average_at_start"] = load_at_start
    if args.json:
        print(
            json.dumps(
                {"environment": env, "seed_table": rows, "ordering": ordering, "overhead": over, "elapsed_s": elapsed},
                indent=2,
            )
        )
    else:
        print_report(env, targets, rows, ordering, over)
        print(f"total time {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
