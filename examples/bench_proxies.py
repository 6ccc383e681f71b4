"""Benchmark (c) of the searcher issue: how well each zero-cost proxy ranks
architectures against their trained accuracy, and what it costs.

``--archs`` architectures are drawn at random from a space (``early`` by
default) with ``nas.space.sample``, decoded and fitted to the data's classes
with ``nas.build(..., classes=)`` as the search fits its candidates (duplicates by
canonical hash are drawn again). Each one is then

* **trained** the way the search trains a candidate:
  ``nas.train.train`` with the search's defaults (``--epochs``
  epochs of Adam, batch 32, the fixed training/validation split, seed
  ``--seed``), giving its validation accuracy;
* **scored** by every proxy of ``nas.search.proxies`` (naswot, synflow,
  grad_norm) as the search scores it with ``--objective proxy:NAME``: the
  network lowered after ``torch.manual_seed(seed)``, on the first
  ``proxies.BATCH`` training images at its input size.

Printed: Kendall's tau-b (``nas.latency.kendall_tau``) between each proxy
and the trained accuracy, with a bootstrap 95% interval over the
architectures, the number of architectures a proxy could not score
(``-inf``: they rank last, tied), and, as plain baselines every proxy
should beat, the parameter count and MACs (more is taken as better). Then
the time per evaluation: median and mean seconds of each proxy against a
training run. Architectures whose training fails (a non-finite loss, the
time limit) are left out of every tau and counted.

Run from the repository root::

    .venv/bin/python examples/bench_proxies.py                  # 40 architectures, 2 epochs, 5-15 min on 2 cores
    .venv/bin/python examples/bench_proxies.py --archs 8        # smoke run
    .venv/bin/python examples/bench_proxies.py --archs 50       # the issue note's run (12 min at load 5)
    .venv/bin/python examples/bench_proxies.py --json           # one JSON object on stdout

Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import nas
import nas.space as S
from nas.data import load_data, loader
from nas.ir.errors import NASError
from nas.passes.lower import lower
from nas.predict.predictor import kendall_tau_interval
from nas.search.proxies import BATCH, PROXIES, score
from nas.train import EvaluationFailed, default_device, input_shape, train

BASELINES = ("params", "macs")
WORST = -1e300
"""Where a ``-inf`` proxy score ranks: below every finite score, tied with the other ``-inf``."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def draw(space: S.Space, classes: int, count: int, seed: int) -> list[tuple[dict[str, Any], Any]]:
    """``count`` distinct (by hash) architectures of ``space`` within its limits, fitted to ``classes``."""
    rng = random.Random(seed)
    found, seen, tries = [], set(), 0
    while len(found) < count and tries < 20 * count:
        tries += 1
        assignment = S.sample(space, rng)
        try:
            graph = nas.build(S.decode(space, assignment), classes=classes)
        except NASError as e:  # a draw the data cannot take is drawn again
            log(f"  redraw: {' '.join(str(e).split())[:120]}")
            continue
        if graph.hash in seen or any(getattr(graph, k) > v for k, v in space.limits.items()):
            continue
        seen.add(graph.hash)
        found.append((assignment, graph))
    return found


def evaluate(graph: Any, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    record: dict[str, Any] = {"params": graph.params, "macs": graph.macs, "hash": graph.hash}
    first = loader(data, "train", input_shape(graph), batch_size=BATCH, augment=False, shuffle=False)
    x, y = next(iter(first.epoch()))  # the images a search's proxy scores on
    for name in PROXIES:
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        model = lower(graph)
        try:
            value = score(name, graph, x, y, model=model)
        except (RuntimeError, ValueError) as e:
            value = math.nan
            record[f"{name}_error"] = " ".join(str(e).split())[:200]
        record[f"{name}_s"] = time.perf_counter() - started
        record[name] = value
    started = time.perf_counter()
    try:
        result = train(graph, data, epochs=args.epochs, seed=args.seed, timeout_s=args.timeout, device=default_device())
        record["accuracy"] = result.accuracy
    except EvaluationFailed as e:
        record["accuracy"] = None
        record["train_error"] = str(e)
    record["train_s"] = time.perf_counter() - started
    return record


def ranked(value: float) -> float:
    return WORST if value == -math.inf else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="early")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--archs", type=int, default=40, help="architectures to sample")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (the search's default)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the draws, the weights and the batches")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per training run (as a search trial)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the tau interval")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--save", metavar="PATH", help="also write that JSON object to PATH")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    data = load_data(args.data)
    space = S.load_space(args.space)
    drawn = draw(space, data.classes, args.archs, args.seed)
    log(f"{len(drawn)} architectures of '{space.name}'")
    records = []
    for i, (_, graph) in enumerate(drawn):
        r = evaluate(graph, data, args)
        records.append(r)
        acc = "failed" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        scores = "  ".join(f"{n} {r[n]:.3g}" for n in PROXIES)
        log(f"  {i + 1:>3}/{len(drawn)} acc {acc} ({r['train_s']:.1f} s)  {scores}  params {r['params']:,}")
    trained = [r for r in records if r["accuracy"] is not None]
    accuracy = [r["accuracy"] for r in trained]
    rows = []
    for name in (*PROXIES, *BASELINES):
        usable = [r for r in trained if not math.isnan(r[name])]
        tau, low, high = kendall_tau_interval(
            [ranked(float(r[name])) for r in usable], [r["accuracy"] for r in usable], args.bootstrap, args.seed
        )
        times = [r[f"{name}_s"] for r in records] if name in PROXIES else []
        rows.append(
            {
                "name": name,
                "kind": "proxy" if name in PROXIES else "baseline",
                "n": len(usable),
                "unscored": sum(1 for r in usable if r[name] == -math.inf) + len(trained) - len(usable),
                "tau": tau,
                "tau_low": low,
                "tau_high": high,
                "median_s": statistics.median(times) if times else None,
                "mean_s": statistics.fmean(times) if times else None,
            }
        )
    train_times = [r["train_s"] for r in records]
    summary = {
        "architectures": len(records),
        "trained": len(trained),
        "train_failed": len(records) - len(trained),
        "accuracy_min": min(accuracy, default=None),
        "accuracy_median": statistics.median(accuracy) if accuracy else None,
        "accuracy_max": max(accuracy, default=None),
        "train_median_s": statistics.median(train_times),
        "train_mean_s": statistics.fmean(train_times),
        "torch_threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    if args.json or args.save:
        text = json.dumps({"settings": vars(args), "summary": summary, "rows": rows, "records": records}, indent=2)
        if args.save:
            Path(args.save).write_text(text + "\n")
        if args.json:
            print(text)
            return
    print(
        f"space {args.space}, data {args.data}: {summary['architectures']} sampled architectures (seed {args.seed}), "
        f"{summary['trained']} trained ({args.epochs} epochs, as a search trial), {summary['train_failed']} failed"
    )
    print(
        f"trained accuracy: min {summary['accuracy_min']:.4f}, median {summary['accuracy_median']:.4f}, "
        f"max {summary['accuracy_max']:.4f}; proxies on {BATCH} training images; "
        f"{summary['torch_threads']} torch thread(s)"
    )
    print()
    header = ("score", "kind", "n", "-inf", "tau-b", "95% CI", "median s", "mean s", "x faster")
    print(f"{header[0]:>9}  {header[1]:>8}  {header[2]:>3}  {header[3]:>4}  {header[4]:>6}  {header[5]:>15}  ", end="")
    print("  ".join(f"{h:>9}" for h in header[6:]))
    for r in rows:
        interval = f"[{r['tau_low']:+.2f}, {r['tau_high']:+.2f}]"
        if r["median_s"] is None:
            cost = f"{'-':>9}  {'-':>9}  {'-':>9}"
        else:
            speed = summary["train_median_s"] / r["median_s"]
            cost = f"{r['median_s']:>9.4f}  {r['mean_s']:>9.4f}  {speed:>9.0f}"
        print(
            f"{r['name']:>9}  {r['kind']:>8}  {r['n']:>3}  {r['unscored']:>4}  {r['tau']:>+6.3f}  "
            f"{interval:>15}  {cost}"
        )
    print(
        f"{'training':>9}  {'':>8}  {len(records):>3}  {'':>4}  {'':>6}  {'':>15}  "
        f"{summary['train_median_s']:>9.4f}  {summary['train_mean_s']:>9.4f}  {1:>9}"
    )
    print(f"load average before {load_before:.2f}, after {summary['load_after']:.2f}")


if __name__ == "__main__":
    main()
