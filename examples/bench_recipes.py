"""Benchmark 3 of the training-recipe issue: how repeatable the ranking of
architectures is under each training recipe, as a search's short trials see it.

``--archs`` architectures are drawn from each of ``--spaces`` (``early`` and
``residual`` by default) with ``nas.space.sample`` and seed ``--seed``,
decoded and fitted to the data's classes with ``nas.build(..., classes=)``
as the search fits its candidates. A draw that is a duplicate (by canonical
hash), that the data cannot take, or whose MACs exceed ``--max-macs`` is
drawn again: the cap keeps a CPU run short (``residual`` reaches ResNet-152
at 224x224), and is printed with the results.

Each architecture is then trained under every recipe (``--old``, ``--new``
and any ``--recipe``) once per seed of ``--seeds`` (two by default), as a
search trains a candidate: ``nas.train.train`` for ``--epochs`` epochs on the
fixed training/validation split, the recipe's own batch size and
augmentation, ``seed`` seeding the weights and the order of the batches.
The final validation accuracy is kept, as a search stores it.

Printed per recipe: the architectures trained under both seeds, the mean
accuracy, the median and largest ``|acc(seed a) - acc(seed b)|``, and
between the two seeds' accuracies Kendall's tau-b (ties counted as
``scipy.stats.kendalltau`` does, with a bootstrap 95% interval over the
architectures; also within each space) and Spearman's rho. Then whether
the issue's goals hold: the new recipe's tau above the old one's, and at
least ``--goal``. An architecture whose training fails under a seed (a
non-finite loss, the time limit) is left out of that recipe's figures and
counted.

A recipe is a shipped name (``adam``, ``digits``, ``cifar``, ``imagenet``),
a recipe ``.yaml`` file, or either with changes to its fields after a
colon, so that a variant can be measured without a file::

    digits:lr=2e-3,label_smoothing=0
    digits:batch_size=64          # the rate scales linearly with the batch

Run from the repository root::

    .venv/bin/python examples/bench_recipes.py                   # adam (old) against digits (new)
    .venv/bin/python examples/bench_recipes.py --recipe cifar    # and SGD's recipe
    .venv/bin/python examples/bench_recipes.py --archs 4 --recipe digits:warmup=0.3   # a pilot
    .venv/bin/python examples/bench_recipes.py --json            # one JSON object on stdout

Training runs in ``--workers`` processes of ``--threads`` torch threads
each, longest first. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import scipy.stats
import torch

import nas
import nas.space as S
from nas.data import DataSet, load_data
from nas.ir.errors import NASError
from nas.predict.predictor import kendall_tau, kendall_tau_interval
from nas.train import EvaluationFailed, Recipe, input_shape, recipe, train

FIELD_TYPES = {"int": int, "float": float, "str": str}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_recipe(spelling: str) -> Recipe:
    """A recipe from ``NAME`` or ``NAME:field=value,...`` (``NAME`` a shipped recipe or a .yaml file).

    Raises:
        NASError: an unknown recipe or field, or a value of the wrong type.
    """
    name, _, changes = spelling.partition(":")
    types = {f.name: str(f.type) for f in dataclasses.fields(Recipe)}
    overrides: dict[str, Any] = {}
    for item in filter(None, changes.split(",")):
        key, _, text = item.partition("=")
        kind = types.get(key.strip())
        if kind is None:
            raise NASError(f"a recipe has no field '{key}'", field="recipe", hint=f"use {', '.join(types)}")
        if kind == "bool":
            value: Any = text.strip().lower() in ("1", "true", "yes", "on")
        else:
            try:
                value = FIELD_TYPES[kind](text.strip())
            except ValueError:
                raise NASError(f"recipe field '{key}' is {text!r}", field=key, hint=f"give a {kind}") from None
        overrides[key.strip()] = value
    return dataclasses.replace(recipe(name, **overrides), name=spelling)


def draw(space: S.Space, classes: int, count: int, seed: int, max_macs: float) -> list[dict[str, Any]]:
    """``count`` distinct (by hash) architectures of ``space`` within its limits and ``max_macs``."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    draws = 0
    while len(found) < count and draws < 200 * count:
        draws += 1
        assignment = S.sample(space, rng)
        try:
            graph = nas.build(S.decode(space, assignment), classes=classes)
        except NASError as e:  # a draw the data cannot take is drawn again
            log(f"  redraw: {' '.join(str(e).split())[:120]}")
            continue
        over = any(getattr(graph, k) > v for k, v in space.limits.items()) or graph.macs > max_macs
        if graph.hash in seen or over:
            continue
        seen.add(graph.hash)
        found.append(
            {
                "space": space.name,
                "index": len(found),
                "assignment": assignment,
                "hash": graph.hash,
                "params": graph.params,
                "macs": graph.macs,
                "input": list(input_shape(graph)),
            }
        )
    log(f"{len(found)} architectures of '{space.name}' in {draws} draws")
    return found


# Training, in worker processes ------------------------------------------------

_WORKER: dict[str, Any] = {}


def _start_worker(data_source: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["data"] = load_data(data_source)
    _WORKER["spaces"] = {}


def _train_one(job: dict[str, Any]) -> dict[str, Any]:
    """One training run of one architecture under one recipe and seed."""
    data: DataSet = _WORKER["data"]
    spaces = _WORKER["spaces"]
    if job["space"] not in spaces:
        spaces[job["space"]] = S.load_space(job["space"])
    space = spaces[job["space"]]
    graph = nas.build(S.decode(space, job["assignment"]), classes=data.classes)
    record = {k: job[k] for k in ("space", "index", "hash", "recipe", "seed")}
    started = time.perf_counter()
    try:
        result = train(
            graph,
            data,
            recipe=parse_recipe(job["recipe"]),
            epochs=job["epochs"],
            seed=job["seed"],
            timeout_s=job["timeout"],
            device="cpu",
        )
        record.update(accuracy=result.accuracy, curve=result.curve)
    except EvaluationFailed as e:
        record.update(accuracy=None, error=str(e))
    record["seconds"] = time.perf_counter() - started
    return record


def run_all(archs: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (architecture, recipe, seed) run, the costliest first so that the workers finish together."""
    jobs = [
        {**a, "recipe": r, "seed": s, "epochs": args.epochs, "timeout": args.timeout}
        for a in sorted(archs, key=lambda a: -a["macs"])
        for r in args.recipes
        for s in args.seeds
    ]
    records = []
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_start_worker, initargs=(args.data, args.threads)) as pool:
        for i, r in enumerate(pool.imap_unordered(_train_one, jobs)):
            records.append(r)
            acc = "failed" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
            log(
                f"  {i + 1:>4}/{len(jobs)} {r['space']}#{r['index']:<3} {r['recipe']:<28} seed {r['seed']}: "
                f"acc {acc} ({r['seconds']:.1f} s)"
            )
    return records


# Figures -----------------------------------------------------------------------


def recipe_row(name: str, records: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The figures of one recipe: the two seeds' accuracies paired by architecture."""
    first, second = args.seeds[0], args.seeds[1]
    by_key: dict[tuple[str, int], dict[int, float | None]] = {}
    seconds = []
    for r in records:
        if r["recipe"] == name:
            by_key.setdefault((r["space"], r["index"]), {})[r["seed"]] = r["accuracy"]
            seconds.append(r["seconds"])
    pairs = [(k, v[first], v[second]) for k, v in sorted(by_key.items()) if None not in (v[first], v[second])]
    xs = [float(a) for _, a, _ in pairs]
    ys = [float(b) for _, _, b in pairs]
    gaps = [abs(a - b) for a, b in zip(xs, ys)]
    tau, low, high = kendall_tau_interval(xs, ys, args.bootstrap, args.seed)
    per_space = {}
    for space in args.spaces:
        sx = [a for (k, a, _) in pairs if k[0] == space]
        sy = [b for (k, _, b) in pairs if k[0] == space]
        per_space[space] = kendall_tau(sx, sy) if len(sx) > 1 else math.nan
    return {
        "recipe": name,
        "n": len(pairs),
        "failed": len(by_key) - len(pairs),
        "mean_accuracy": statistics.fmean(xs + ys) if xs else math.nan,
        "median_gap": statistics.median(gaps) if gaps else math.nan,
        "max_gap": max(gaps, default=math.nan),
        "tau": tau,
        "tau_low": low,
        "tau_high": high,
        "tau_per_space": per_space,
        "rho": float(scipy.stats.spearmanr(xs, ys).statistic) if len(xs) > 2 else math.nan,
        "train_median_s": statistics.median(seconds) if seconds else math.nan,
    }


def goals(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, bool]:
    old, new = rows[0], rows[1]
    return {"new_tau_above_old": new["tau"] > old["tau"], "new_tau_at_least_goal": new["tau"] >= args.goal}


def print_tables(
    archs: list[dict[str, Any]], rows: list[dict[str, Any]], summary: dict[str, Any], args: argparse.Namespace
) -> None:
    counts = ", ".join(f"{sum(a['space'] == s for a in archs)} of '{s}'" for s in args.spaces)
    print(
        f"data {args.data}: {len(archs)} architectures ({counts}; draw seed {args.seed}, "
        f"MACs <= {args.max_macs:,.0f}), {args.epochs} epochs each (as a search trial), "
        f"seeds {args.seeds[0]} and {args.seeds[1]}"
    )
    shapes = sorted({"x".join(map(str, a["input"])) for a in archs})
    macs = [a["macs"] for a in archs]
    print(
        f"inputs {', '.join(shapes)}; MACs {min(macs):,} .. {max(macs):,}; "
        f"{args.workers} worker(s) x {args.threads} torch thread(s); wall {summary['wall_s'] / 60:.1f} min"
    )
    print()
    spaces = [f"tau {s}" for s in args.spaces]
    header = ["recipe", "n", "fail", "mean acc", "med |d|", "max |d|", "tau-b", "95% CI", *spaces, "rho", "med s"]
    width = max(len(r["recipe"]) for r in rows)
    widths = [15 if h == "95% CI" else max(8, len(h)) for h in header[1:]]
    print(f"{header[0]:<{width}}  " + "  ".join(f"{h:>{w}}" for h, w in zip(header[1:], widths)))
    for r in rows:
        interval = f"[{r['tau_low']:+.2f}, {r['tau_high']:+.2f}]"
        cells = [f"{r['n']:>8}", f"{r['failed']:>8}", f"{r['mean_accuracy']:>8.4f}", f"{r['median_gap']:>8.4f}"]
        cells += [f"{r['max_gap']:>8.4f}", f"{r['tau']:>+8.3f}", f"{interval:>15}"]
        cells += [f"{r['tau_per_space'][s]:>+{max(8, len(s) + 4)}.3f}" for s in args.spaces]
        cells += [f"{r['rho']:>+8.3f}", f"{r['train_median_s']:>8.1f}"]
        print(f"{r['recipe']:<{width}}  " + "  ".join(cells))
    print()
    held = summary["goals"]
    old, new = rows[0], rows[1]
    print(
        f"goal: new tau ({new['recipe']}) {new['tau']:+.3f} above old ({old['recipe']}) {old['tau']:+.3f}: "
        f"{'yes' if held['new_tau_above_old'] else 'NO'}"
    )
    print(f"goal: new tau >= {args.goal}: {'yes' if held['new_tau_at_least_goal'] else 'NO'}")
    print(f"load average before {summary['load_before']:.2f}, after {summary['load_after']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="early,residual", help="comma-separated spaces to draw from")
    parser.add_argument("--archs", type=int, default=10, help="architectures drawn from each space")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--old", default="adam", help="the recipe to beat")
    parser.add_argument("--new", default="digits", help="the recipe the goals are about")
    parser.add_argument("--recipe", action="append", default=[], help="another recipe or variant (repeatable)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (the search's default)")
    parser.add_argument("--seeds", default="0,1", help="the two training seeds")
    parser.add_argument("--seed", type=int, default=0, help="seeds the draws and the bootstrap")
    parser.add_argument("--max-macs", type=float, default=20e6, help="draws above are drawn again (CPU time)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per training run")
    parser.add_argument("--workers", type=int, default=2, help="training processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the tau interval")
    parser.add_argument("--goal", type=float, default=0.8, help="the new recipe's tau to reach")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--save", metavar="PATH", help="also write that JSON object to PATH")
    args = parser.parse_args()
    args.spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if len(args.seeds) != 2 or args.seeds[0] == args.seeds[1]:
        parser.error("--seeds takes two different seeds")
    args.recipes = list(dict.fromkeys([args.old, args.new, *args.recipe]))
    for spelling in args.recipes:  # an unknown recipe or field fails here, before any training
        try:
            parse_recipe(spelling)
        except NASError as e:
            parser.error(f"{spelling}: {' '.join(str(e).split())}")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    data = load_data(args.data)
    archs = [a for s in args.spaces for a in draw(S.load_space(s), data.classes, args.archs, args.seed, args.max_macs)]
    records = run_all(archs, args)
    rows = [recipe_row(name, records, args) for name in args.recipes]
    summary = {
        "wall_s": time.perf_counter() - started,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "goals": goals(rows, args),
    }
    if args.json or args.save:
        settings = {k: v for k, v in vars(args).items()}
        text = json.dumps(
            {"settings": settings, "summary": summary, "rows": rows, "architectures": archs, "records": records},
            indent=2,
            default=str,
        )
        if args.save:
            Path(args.save).write_text(text + "\n")
        if args.json:
            print(text)
            return
    print_tables(archs, rows, summary, args)


if __name__ == "__main__":
    main()
