"""Benchmark (a) of the searcher issue: under LeNet-5's own latency, does a
search find a more accurate network than LeNet-5, trained the same way?

For each seed, in one process and in this order:

1. **The budget.** LeNet-5 (the zoo net ``lenet5``, fitted to the data's
   classes exactly as the search fits a candidate: decoded from the
   ``early`` space, then ``nas.build(..., classes=)``) is measured with ``nas.latency.measure``
   under the search's conditions (backend, batch, threads, the default
   timing policy), into a fresh latency store for this seed; its median is
   the latency budget. The search later reads LeNet-5's latency back from
   that store, so LeNet-5 sits exactly on the budget (feasible).
2. **The baseline.** LeNet-5 is trained with ``nas.train.train``,
   the function and settings the search trains every candidate with (same
   epochs, seed, data split, optimiser). LeNet-5 is also one of the zoo nets
   the study enqueues as a starting point, so the study trains it too: both
   figures are printed and should agree.
3. **The search.** ``run_search`` on the ``early`` space, evolution
   sampler, accuracy objective, stopped at ``--trials`` finished trials or
   at ``--minutes`` of wall time, whichever comes first.
4. **The reading.** The best feasible trial (latency <= budget), where it
   came from (``zoo:NAME`` for an enqueued zoo net, ``random`` for the
   sampler's random start, ``mutation of trial N``; ``root`` follows the
   mutations back to a zoo net or a random draw), and the best feasible
   trial that is *not* an enqueued zoo net (nor a re-discovery of one, by
   canonical hash): a search that only re-finds the Ciresan CNN shows
   little. The time from the start of the search to the first feasible
   trial more accurate than LeNet-5 is given for both.
5. **A re-check of latency.** Feasibility rests on one noisy measurement
   per candidate on a shared CPU; LeNet-5, the best and the best mutated
   network are measured again, fresh, in alternating rounds, and the
   ratio of their medians to LeNet-5's is printed (< 1: faster than LeNet-5).

Run from the repository root::

    .venv/bin/python examples/bench_budget.py                               # 3 seeds, <= 30 min each
    .venv/bin/python examples/bench_budget.py --seeds 0 --trials 8          # smoke run, ~1 min
    .venv/bin/python examples/bench_budget.py --trials 300 --minutes 10   # the issue note's run, ~35 min
    .venv/bin/python examples/bench_budget.py --json                        # one JSON object on stdout

It prints one row per seed (the budget, LeNet-5's accuracy, the best
feasible network and the best mutated one) and each winner's layers.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

import nas
import nas.space as S
from nas.data import load_data
from nas.ir.graph import Graph
from nas.latency import measure
from nas.search import SearchConfig, load_study, run_search
from nas.search.record import TrialRecord
from nas.search.results import is_feasible
from nas.train import default_device, train

BASELINE = "lenet5"


class TimeUp(Exception):
    """Raised from the trial callback once the search has had its minutes: it
    ends ``run_search`` after a finished trial whether that runs one
    ``study.optimize`` or one per trial (where ``study.stop`` ends only the current one)."""


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def layers(graph: Graph) -> str:
    """A network in one line: its input, then each block with its main parameters."""
    short = {"out_channels": "", "out_features": "", "kernel_size": "k", "stride": "s", "padding": "p"}
    parts = []
    for node in graph.topological_order():
        if node.block.name == "input":
            parts.append("x".join(str(s) for s in node.params["shape"]))
            continue
        args = [f"{short[k]}{v}" for k, v in node.params.items() if k in short and v is not None]
        if node.block.name == "conv_bn_act":
            args += [str(node.params.get(k)) for k in ("norm", "act") if node.params.get(k) not in (None, "none")]
        if node.block.name == "partial_conv2d":
            args.append(f"{len(node.params['table'])}maps")
        parts.append(node.block.name + (f"({','.join(args)})" if args else ""))
    return " ".join(parts)


def parent_of(trial: FrozenTrial) -> int | None:
    match = re.fullmatch(r"mutation of trial (\d+)", (TrialRecord.of(trial).origin or ""))
    return int(match.group(1)) if match else None


def root_of(trial: FrozenTrial, by_number: dict[int, FrozenTrial]) -> FrozenTrial:
    """The trial a chain of mutations started from (a zoo net or a random draw)."""
    seen = set()
    while (parent := parent_of(trial)) is not None and parent in by_number and parent not in seen:
        seen.add(parent)
        trial = by_number[parent]
    return trial


def describe(trial: FrozenTrial | None, by_number: dict[int, FrozenTrial], elapsed: dict[int, float]) -> Any:
    if trial is None:
        return None
    root = root_of(trial, by_number)
    attrs, first = TrialRecord.of(trial), TrialRecord.of(root)
    return {
        "trial": trial.number,
        "accuracy": attrs.accuracy,
        "latency_ms": attrs.latency_ms,
        "params": attrs.params,
        "macs": attrs.macs,
        "origin": attrs.origin,
        "root": first.origin,
        "root_trial": root.number,
        "decisions_from_root": S.distance(attrs.assignment or {}, first.assignment or {}),
        "duplicate_of": attrs.duplicate_of,
        "found_after_s": elapsed.get(trial.number),
        "layers": layers(nas.build(attrs.yaml)),
    }


def remeasure(graphs: dict[str, Graph], args: argparse.Namespace) -> dict[str, float]:
    """Fresh medians (no store) of each graph, in ``args.rounds`` alternating rounds; median over rounds."""
    medians: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(args.rounds):
        for name, graph in graphs.items():
            m = measure(graph, args.backend, batch=args.batch, threads=args.threads, cache=False)
            if m.ok and m.median_ms is not None:
                medians[name].append(float(m.median_ms))
    return {name: statistics.median(v) for name, v in medians.items() if v}


def run_seed(seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    # A fresh latency store per seed: every latency of this seed is measured
    # in this run, right after the budget, and LeNet-5's is read back from it.
    os.environ["NAS_CACHE_DIR"] = str(folder / f"latency-{seed}")
    started = time.perf_counter()
    data = load_data(args.data)
    space = S.load_space(args.space)
    baseline_graph = nas.build(S.decode(space, S.encode(space, nas.build(BASELINE))), classes=data.classes)
    m = measure(baseline_graph, args.backend, batch=args.batch, threads=args.threads)
    if not m.ok or m.median_ms is None:
        raise SystemExit(f"cannot measure {BASELINE}: {m.reason}")
    budget = float(m.median_ms)
    log(f"seed {seed}: {BASELINE} {budget:.4f} ms (p10 {m.p10_ms:.4f}, p90 {m.p90_ms:.4f}): the budget")
    device = default_device()
    base = train(baseline_graph, data, epochs=args.epochs, seed=seed, timeout_s=args.trial_timeout, device=device)
    log(f"seed {seed}: {BASELINE} trained, accuracy {base.accuracy:.4f} in {base.seconds:.1f} s")

    storage = f"sqlite:///{folder}/search-{seed}.db"
    config = SearchConfig(
        space=args.space,
        data=args.data,
        trials=args.trials,
        latency_budget_ms=budget,
        backend=args.backend,
        batch=args.batch,
        threads=args.threads,
        objective="accuracy",
        sampler=args.sampler,
        storage=storage,
        study=f"budget-{seed}",
        seed=seed,
        epochs=args.epochs,
        trial_timeout=args.trial_timeout,
        runs=str(folder / "runs"),
    )
    elapsed: dict[int, float] = {}
    search_start = time.perf_counter()
    limit_s = args.minutes * 60

    def on_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        elapsed[trial.number] = time.perf_counter() - search_start
        record = TrialRecord.of(trial)
        acc, ms = record.accuracy, record.latency_ms
        log(
            f"  seed {seed} trial {trial.number:>3} {trial.state.name:<8} "
            f"acc {'-' if acc is None else f'{acc:.4f}':>6} ms {'-' if ms is None else f'{ms:.3f}':>6} "
            f"{record.origin or ''} [{elapsed[trial.number]:.0f} s]"
        )
        if elapsed[trial.number] > limit_s:
            raise TimeUp

    try:
        run_search(config, on_trial=on_trial)
    except TimeUp:
        log(f"seed {seed}: stopped after {args.minutes:g} minutes")
    search_s = time.perf_counter() - search_start
    study = load_study(storage, config.study)
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    feasible = [t for t in trials if is_feasible(t) and TrialRecord.of(t).accuracy is not None]
    zoo_hashes = {TrialRecord.of(t).hash for t in trials if (TrialRecord.of(t).origin or "").startswith("zoo:")}
    mutated = [
        t
        for t in feasible
        if not (TrialRecord.of(t).origin or "").startswith("zoo:")
        and TrialRecord.of(t).hash not in zoo_hashes
        and TrialRecord.of(t).duplicate_of is None
    ]

    def best(ts: list[FrozenTrial]) -> FrozenTrial | None:
        return max(
            ts, key=lambda t: (TrialRecord.of(t).accuracy, -TrialRecord.of(t).latency_ms, -t.number), default=None
        )

    def first_beat(ts: list[FrozenTrial]) -> FrozenTrial | None:
        beating = [t for t in ts if TrialRecord.of(t).accuracy > base.accuracy]
        return min(beating, key=lambda t: t.number, default=None)

    in_study = [t for t in trials if TrialRecord.of(t).origin == f"zoo:{BASELINE}"]
    top, top_mutated = best(feasible), best(mutated)
    graphs = {BASELINE: baseline_graph}
    for label, t in (("best", top), ("best_mutated", top_mutated)):
        if t is not None and TrialRecord.of(t).hash != baseline_graph.hash:
            graphs[label] = nas.build(TrialRecord.of(t).yaml)
    log(f"seed {seed}: re-measuring {', '.join(graphs)} ({args.rounds} alternating rounds)")
    again = remeasure(graphs, args)
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return {
        "seed": seed,
        "budget_ms": budget,
        "baseline": {
            "name": BASELINE,
            "latency_ms": budget,
            "latency_p10_ms": m.p10_ms,
            "latency_p90_ms": m.p90_ms,
            "accuracy": base.accuracy,
            "curve": base.curve,
            "train_s": base.seconds,
            "accuracy_in_study": TrialRecord.of(in_study[0]).accuracy if in_study else None,
            "layers": layers(baseline_graph),
        },
        "trials": sum(1 for t in trials if t.state in counted),
        "feasible": len(feasible),
        "pruned": sum(1 for t in trials if t.state == TrialState.PRUNED),
        "failed": sum(1 for t in trials if t.state == TrialState.FAIL),
        "duplicates": sum(1 for t in trials if TrialRecord.of(t).duplicate_of is not None),
        "beating": sum(1 for t in feasible if TrialRecord.of(t).accuracy > base.accuracy),
        "beating_mutated": sum(1 for t in mutated if TrialRecord.of(t).accuracy > base.accuracy),
        "best": describe(top, by_number, elapsed),
        "best_mutated": describe(top_mutated, by_number, elapsed),
        "first_beat": describe(first_beat(feasible), by_number, elapsed),
        "first_beat_mutated": describe(first_beat(mutated), by_number, elapsed),
        "remeasured_ms": again,
        "search_s": search_s,
        "wall_s": time.perf_counter() - started,
    }


def fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace, conditions: dict[str, Any]) -> None:
    print(
        f"space {args.space}, data {args.data}, sampler {args.sampler}, objective accuracy, {args.epochs} epochs, "
        f"<= {args.trials} trials or {args.minutes:g} min per seed"
    )
    print(
        f"latency: {args.backend}, batch {args.batch}, {args.threads} thread(s), default timing policy; "
        f"training: {conditions['train_threads']} torch thread(s) on {conditions['cpu']}"
    )
    print()
    print("per seed: the budget is LeNet-5's latency measured just before the search")
    header = ("seed", "budget ms", "LeNet acc", "(study)", "best acc", "best ms", "trial", "origin", "root")
    tail = ("trials", "feasible", "beat LeNet", "1st beat s", "search s", "wall s")
    print(
        f"{header[0]:>4}  {header[1]:>9}  {header[2]:>9}  {header[3]:>7}  {header[4]:>8}  {header[5]:>7}  "
        f"{header[6]:>5}  {header[7]:<22}  {header[8]:<16}  " + "  ".join(f"{h:>10}" for h in tail)
    )
    for r in rows:
        b, top, first = r["baseline"], r["best"] or {}, r["first_beat"] or {}
        print(
            f"{r['seed']:>4}  {r['budget_ms']:>9.4f}  {b['accuracy']:>9.4f}  {fmt(b['accuracy_in_study']):>7}  "
            f"{fmt(top.get('accuracy')):>8}  {fmt(top.get('latency_ms')):>7}  {fmt(top.get('trial'), 'd'):>5}  "
            f"{top.get('origin', '-'):<22}  {top.get('root', '-'):<16}  "
            f"{r['trials']:>10}  {r['feasible']:>10}  {r['beating']:>10}  "
            f"{fmt(first.get('found_after_s'), '.0f'):>10}  {r['search_s']:>10.0f}  {r['wall_s']:>10.0f}"
        )
    print()
    print("best feasible network that is not an enqueued zoo net (nor a re-discovery of one)")
    header = ("seed", "acc", "ms", "trial", "origin", "root", "decisions", "beat LeNet", "1st beat s", "found s")
    print(
        f"{header[0]:>4}  {header[1]:>8}  {header[2]:>7}  {header[3]:>5}  {header[4]:<22}  {header[5]:<16}  "
        + "  ".join(f"{h:>10}" for h in header[6:])
    )
    for r in rows:
        t, first = r["best_mutated"] or {}, r["first_beat_mutated"] or {}
        print(
            f"{r['seed']:>4}  {fmt(t.get('accuracy')):>8}  {fmt(t.get('latency_ms')):>7}  "
            f"{fmt(t.get('trial'), 'd'):>5}  "
            f"{t.get('origin', '-'):<22}  {t.get('root', '-'):<16}  {fmt(t.get('decisions_from_root'), 'd'):>10}  "
            f"{r['beating_mutated']:>10}  {fmt(first.get('found_after_s'), '.0f'):>10}  "
            f"{fmt(t.get('found_after_s'), '.0f'):>10}"
        )
    print()
    print("latency re-measured after the search (fresh, alternating rounds): median ms, and ratio to LeNet-5")
    for r in rows:
        again = r["remeasured_ms"]
        base = again.get(BASELINE)
        cells = [
            f"{name} {ms:.4f} ({ms / base:.2f}x)" if base else f"{name} {ms:.4f}"
            for name, ms in again.items()
            if name != BASELINE
        ]
        print(f"  seed {r['seed']}: {BASELINE} {fmt(base)}; " + ("; ".join(cells) or "the best is LeNet-5 itself"))
    print()
    print("layers")
    for r in rows:
        print(f"  seed {r['seed']} {BASELINE}: {r['baseline']['layers']}")
        for key in ("best", "best_mutated"):
            if r[key] is not None:
                print(f"  seed {r['seed']} {key} (trial {r[key]['trial']}): {r[key]['layers']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="early")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=150, help="finished trials per search, at most")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-time limit per search")
    parser.add_argument("--sampler", default="evolution")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="latency threads (the search's setting)")
    parser.add_argument("--trial-timeout", type=float, default=120.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the latency re-check")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--save", metavar="PATH", help="also write that JSON object to PATH")
    args = parser.parse_args()
    conditions = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "train_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_seed(seed, args, Path(tmp)) for seed in args.seeds]
    conditions["load_after"] = os.getloadavg()
    if args.json or args.save:
        text = json.dumps({"settings": vars(args), "conditions": conditions, "seeds": rows}, indent=2)
        if args.save:
            Path(args.save).write_text(text + "\n")
        if args.json:
            print(text)
            return
    print_table(rows, args, conditions)
    print(
        f"\nload average before {conditions['load_before'][0]:.2f}, after {conditions['load_after'][0]:.2f} "
        f"({conditions['cores']} cores)"
    )


if __name__ == "__main__":
    main()
