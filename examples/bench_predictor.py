"""Benchmark 3 of the latency issue: how well, and how fast, a latency table
predicts what measurement gives.

For each backend (``torch`` eager and ``onnxruntime`` CPU, one thread each
on this CPU):

1. **Profile** a table with ``nas.predict.profile`` over five spaces at
   small inputs (``residual``, ``macro`` and ``fractal`` at 3x32x32,
   ``early`` at 1x32x32, ``mobile`` at 3x64x64, which is below the
   space's own 224/299 choices), networks capped at 300 M MACs: a few
   whole networks per space fit the correction, the blocks of those and of
   more samples (and of the zoo fixed points at these inputs) are timed.
2. **Hold out** other networks: ``--heldout`` per space drawn with another
   seed (none equal to a network of the table), plus the zoo nets that the
   spaces reach at these inputs, each measured for real with the
   profile's network policy.
3. **Compare**: mean absolute percentage error, the share within +-10% and
   Kendall's tau, of the full predictor (with its neighbourhood step where
   the table holds one) and of the bare block sum (no correction), overall
   and per space.
4. **The noise floor**: the same figures for a second, fresh measurement
   of each held-out network against the first (``--no-repeat`` skips it):
   on a shared machine no predictor can do better.
5. **Where the error comes from** (``--no-complete`` skips it): the
   held-out networks' units that the table lacks are timed alone and added
   to it, and the networks predicted again. What error is left is the
   correction's, the law from units timed alone to whole networks; what
   went was the fallback's, which models the units a table lacks.

Then **screening speed**: predictions per second over freshly sampled
candidates that are already built (the first prediction of each, with new
block configurations, and again once its blocks are memoised).

Measurements go to a fresh latency store in a temporary folder unless
``--cache`` is given (then the default store: reruns are fast, but the
table and the held-out networks may then come from different sittings,
and on a shared machine whole networks move between sittings much more
than units timed alone do: quote figures from a fresh run).
``--against EARLIER.json`` compares with an earlier run: how far its
measurements moved, and how its table predicts this run's networks as it
is and refitted on this run's whole networks. Threads are pinned to 1: on a
shared machine a second thread waits on a core that is often busy, which
makes times no table could predict.

Run it from the repository root::

    .venv/bin/python examples/bench_predictor.py            # full: >= 100 held-out nets per backend, slow
    .venv/bin/python examples/bench_predictor.py --quick    # fewer networks, a few minutes
    .venv/bin/python examples/bench_predictor.py --json     # one JSON object on stdout
    .venv/bin/python examples/bench_predictor.py --against earlier.json   # and how far an earlier run's times are

Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nas.latency as latency
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.latency.measurement import frozen_collector
from nas.passes.fusion import units
from nas.predict.predictor import Predictor, accuracy
from nas.predict.profiling import (
    BLOCK_POLICY,
    NETWORK_POLICY,
    fit_table,
    input_shape_of,
    parse_space_spec,
    profile,
    sample_at,
    table_networks,
    unit_entry,
    zoo_at,
)
from nas.predict.table import LatencyTable
from nas.space import load_space

Rows = list[dict[str, Any]]

SPACES = ("residual@3x32x32", "macro@3x32x32", "early@1x32x32", "fractal@3x32x32", "mobile@3x64x64")
MAX_MACS = 300e6


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def held_out(count: int, seed: int) -> list[tuple[str, Graph]]:
    """``count`` networks per space (another seed than the profile's) and the
    zoo nets the spaces reach at their profiled inputs, deduplicated by hash."""
    found: list[tuple[str, Graph]] = []
    seen: set[str] = set()
    for spec in SPACES:
        name, shape = parse_space_spec(spec)
        space = load_space(name)
        shape = input_shape_of(space, shape)
        rng = random.Random(f"heldout:{seed}:{name}")
        drawn = [(name, sample_at(space, rng, shape, max_macs=MAX_MACS)) for _ in range(count)]
        for source, graph in drawn + [(f"zoo:{n}", g) for n, g in zoo_at(space, shape, MAX_MACS)]:
            if graph.hash not in seen:
                seen.add(graph.hash)
                found.append((source, graph))
    return found


def run_backend(
    backend: str, args: argparse.Namespace, nets: list[tuple[str, Graph]], out: Path
) -> tuple[dict[str, Any], Predictor]:
    started = time.perf_counter()
    log(f"[{backend}] profiling {', '.join(SPACES)}")
    # Sizes not given are profile()'s own defaults, what `nas latency profile` builds.
    sizes = {k: v for k, v in (("networks", args.networks), ("block_samples", args.block_samples)) if v is not None}
    table = profile(
        SPACES,
        backend,
        **sizes,
        seed=0,
        max_macs=MAX_MACS,
        threads=args.threads,
        cache=args.cache_path,
        progress=lambda line: log(f"[{backend}]   {line}"),
    )
    path = table.save(out / f"table_{backend}.json")
    profile_s = time.perf_counter() - started
    trained = {n["hash"] for n in table.networks}
    evaluate = [(s, g) for s, g in nets if g.hash not in trained]
    log(f"[{backend}] table: {table.describe()} in {profile_s:.0f} s; measuring {len(evaluate)} held-out networks")
    predictor = Predictor(table)
    t0 = time.perf_counter()
    rows = measure_held_out(predictor, evaluate, backend, args)
    heldout_s = time.perf_counter() - t0
    repeat = noise_floor(evaluate, rows, backend, args) if args.repeat else None
    complete = every_unit_timed(table, evaluate, rows, backend, args) if args.complete else None

    def score(key: str, subset: list[dict[str, Any]]) -> dict[str, float]:
        return accuracy([r[key] for r in subset], [r["measured_ms"] for r in subset])

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault("zoo" if r["source"].startswith("zoo:") else r["source"], []).append(r)
    coverage = sum(r["units_from_table"] for r in rows) / max(1, sum(r["units"] for r in rows))
    measured = [r["measured_ms"] for r in rows]
    return (
        {
            "backend": backend,
            "table": str(path),
            "conditions": table.conditions,
            "table_blocks": len(table.blocks),
            "table_networks": len(table.networks),
            "profile_s": round(profile_s, 1),
            "heldout_s": round(heldout_s, 1),
            "correction": table.correction,
            "heldout": len(rows),
            "measured_ms_range": [min(measured), max(measured)] if measured else None,
            "unit_coverage": coverage,
            "predictor": score("predicted_ms", rows),
            "block_sum": score("blocks_ms", rows),
            "repeat": repeat,
            "all_units_timed": complete,
            "by_source": {k: score("predicted_ms", v) for k, v in sorted(groups.items())},
            "rows": rows,
        },
        predictor,
    )


def measure_held_out(
    predictor: Predictor, evaluate: list[tuple[str, Graph]], backend: str, args: argparse.Namespace
) -> Rows:
    """Each held-out network measured for real and predicted, one row each
    (those whose measurement failed are left out)."""
    rows: Rows = []
    t0 = time.perf_counter()
    with frozen_collector():  # each measurement's gc.collect() would walk every graph held here
        for i, (source, graph) in enumerate(evaluate):
            m = latency.measure(graph, backend, threads=args.threads, cache=args.cache_path, policy=NETWORK_POLICY)
            if not m.ok:
                log(f"[{backend}]   {source}: failed: {m.reason}")
                continue
            detail = predictor.explain(graph)
            rows.append(
                {
                    "source": source,
                    "hash": graph.hash,
                    "macs": graph.macs,
                    "measured_ms": m.median_ms,
                    "cv": m.cv,
                    "predicted_ms": detail.median_ms,
                    "blocks_ms": detail.blocks_ms,
                    "units": detail.units,
                    "units_from_table": detail.from_table,
                }
            )
            if (i + 1) % 25 == 0:
                log(f"[{backend}]   measured {i + 1}/{len(evaluate)} in {time.perf_counter() - t0:.0f} s")
    return rows


def noise_floor(
    evaluate: list[tuple[str, Graph]], rows: Rows, backend: str, args: argparse.Namespace
) -> dict[str, float]:
    """Each held-out network measured again, fresh (not from the store),
    now, scored against the first measurement: no predictor can agree with
    a measurement better than a second measurement does."""
    by_hash = {g.hash: g for _, g in evaluate}
    second = []
    for r in rows:
        m = latency.measure(by_hash[r["hash"]], backend, threads=args.threads, cache=False, policy=NETWORK_POLICY)
        if m.ok:
            second.append((m.median_ms, r["measured_ms"]))
    repeat = accuracy([a for a, _ in second], [b for _, b in second])
    log(f"[{backend}] a second measurement against the first: {fmt(repeat)}")
    return repeat


def every_unit_timed(
    table: LatencyTable, nets: list[tuple[str, Graph]], rows: Rows, backend: str, args: argparse.Namespace
) -> dict[str, Any]:
    """A diagnostic: the held-out networks' units that the table lacks,
    timed alone and added to it, the table refitted, the networks predicted
    again. What error is left is the correction's (timing units alone and
    summing them); what went is the fallback's (modelling the units the
    table lacks). Their unit sums before and after tell how far the
    fallback was off."""
    graphs = {g.hash: g for _, g in nets}
    known = {row["key"] for row in table.blocks}
    added: dict[str, dict[str, Any]] = {}
    with frozen_collector():  # each measurement's gc.collect() would walk every graph held here
        for r in rows:
            for unit in units(graphs[r["hash"]]):
                if unit.key in known or unit.key in added:
                    continue
                m = latency.measure(
                    unit.graph(), backend, threads=args.threads, cache=args.cache_path, policy=BLOCK_POLICY
                )
                if m.ok:
                    added[unit.key] = unit_entry(unit, m)
    full = copy.deepcopy(table)
    full.blocks = table.blocks + list(added.values())
    fit_table(full, table_networks(table))
    predictor = Predictor(full)
    detail = [predictor.explain(graphs[r["hash"]]) for r in rows]  # the prediction and the unit sum, one walk
    log(f"[{backend}] timed the {len(added)} units of the held-out networks that the table lacks")
    return {
        "units_added": len(added),
        "predictor": accuracy([d.median_ms for d in detail], [r["measured_ms"] for r in rows]),
        "fallback_unit_sums": accuracy([r["blocks_ms"] for r in rows], [d.blocks_ms for d in detail]),
    }


def screening(predictor: Predictor, count: int) -> dict[str, Any]:
    """Predictions per second over ``count`` freshly sampled, built candidates."""
    candidates: list[Graph] = []
    started = time.perf_counter()
    for spec in SPACES:
        name, shape = parse_space_spec(spec)
        space = load_space(name)
        shape = input_shape_of(space, shape)
        rng = random.Random(f"screen:{name}")
        candidates += [sample_at(space, rng, shape, max_macs=None) for _ in range(count // len(SPACES))]
    build_s = (time.perf_counter() - started) / len(candidates)
    t = time.perf_counter()
    for g in candidates:
        predictor.predict(g)
    cold = (time.perf_counter() - t) / len(candidates)
    warm_runs = []
    for _ in range(3):
        t = time.perf_counter()
        for g in candidates:
            predictor.predict(g)
        warm_runs.append((time.perf_counter() - t) / len(candidates))
    warm = min(warm_runs)
    return {
        "candidates": len(candidates),
        "first_prediction_us": cold * 1e6,
        "first_per_s": 1 / cold,
        "memoised_prediction_us": warm * 1e6,
        "memoised_per_s": 1 / warm,
        "sample_and_build_us": build_s * 1e6,
    }


def against(report: dict[str, Any], earlier: dict[str, Any], name: str, nets: list[tuple[str, Graph]]) -> list[str]:
    """An earlier run against this one, per backend.

    1. **How far its measurements moved**: the unit times of the two tables
       (by key) and the held-out networks (by hash), as the MAPE of the
       earlier against the later and the median ratio. Units timed alone
       move little between sittings of a shared machine; whole networks,
       which lean on the shared cache, move more.
    2. **What a stale table is worth**: this run's held-out networks
       predicted by the earlier table as it is, and by the earlier table
       refitted (``nas.predict.refit``) on this run's measurements
       of the same whole networks, beside this run's own table.
    """
    lines = [f"\nAgainst {name} (an earlier run):"]
    graphs = {g.hash: g for _, g in nets}
    for now in report["results"]:
        before = next((r for r in earlier.get("results", []) if r["backend"] == now["backend"]), None)
        if before is None:
            lines.append(f"  {now['backend']:12s} not in {name}")
            continue
        pairs = {"networks": _pairs(before["rows"], now["rows"], "hash", "measured_ms")}
        stale = None
        current = LatencyTable.load(now["table"])
        try:
            stale = LatencyTable.load(before["table"])
        except (OSError, ValueError, KeyError, NASError) as error:
            lines.append(f"  {now['backend']:12s} its table is not readable, so only its networks compare: {error}")
        else:
            pairs["units"] = _pairs(stale.blocks, current.blocks, "key", "median_ms")
        for what, (old, new) in sorted(pairs.items(), reverse=True):
            if old:
                moved = accuracy(old, new)
                ratio = sorted(b / a for a, b in zip(old, new))[len(old) // 2]
                lines.append(
                    f"  {now['backend']:12s} {what:9s} n={len(old):5d}  moved: MAPE {100 * moved['mape']:5.1f}%  "
                    f"within 10% {100 * moved['within_10']:5.1f}%  median ratio now/then {ratio:.3f}"
                )
        if stale is None:
            continue
        fresh = {n["name"]: n["median_ms"] for n in current.networks}
        if any(n["name"] not in fresh for n in stale.networks):
            lines.append(f"  {now['backend']:12s} its table profiled other networks: nothing to refit it on")
            continue
        refitted = copy.deepcopy(stale)
        refitted.networks = [dict(n, median_ms=fresh[n["name"]]) for n in stale.networks]
        fit_table(refitted, table_networks(stale))
        rows = [r for r in now["rows"] if r["hash"] in graphs]
        measured = [r["measured_ms"] for r in rows]
        for label, table in (("earlier table", stale), ("  refitted now", refitted)):
            predictor = Predictor(table)
            score = accuracy([predictor.predict(graphs[r["hash"]]) for r in rows], measured)
            lines.append(f"  {now['backend']:12s} {label:15s} {fmt(score)}")
        lines.append(f"  {now['backend']:12s} {'this run':15s} {fmt(now['predictor'])}")
    return lines


def _pairs(old: Rows, new: Rows, key: str, value: str) -> tuple[list[float], list[float]]:
    then = {r[key]: r[value] for r in old}
    common = [(then[r[key]], r[value]) for r in new if r[key] in then]
    return [a for a, _ in common], [b for _, b in common]


def fmt(a: dict[str, float]) -> str:
    return f"MAPE {100 * a['mape']:5.1f}%  within 10% {100 * a['within_10']:5.1f}%  tau {a['tau']:.3f}  (n={a['n']})"


def main() -> None:
    args = parse_args()
    scratch = tempfile.mkdtemp(prefix="bench_predictor_")
    args.cache_path = True if args.cache else os.path.join(scratch, "latency.sqlite")
    # The ONNX exporter prints whole graphs to stdout (from C++) when it
    # fails on a network: send them to stderr, keep stdout for the report.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            report = run(args, scratch)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    if args.against:
        earlier = json.loads(Path(args.against).read_text())
        report["against"] = against(report, earlier, args.against, held_out(args.heldout, seed=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)


def parse_args() -> argparse.Namespace:
    """The command line, with the sizes ``--quick`` and the defaults imply."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer networks (held-out < 100)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", action="store_true", help="use the default latency store")
    parser.add_argument("--out", default=None, help="folder for the tables (default: a temporary one)")
    parser.add_argument("--networks", type=int, default=None, help="whole networks per space fitting the correction")
    parser.add_argument("--block-samples", type=int, default=None, help="more networks per space, blocks only")
    parser.add_argument("--heldout", type=int, default=None, help="held-out networks per space")
    parser.add_argument("--screen", type=int, default=2000, help="candidates for the screening speed")
    parser.add_argument(
        "--no-repeat", dest="repeat", action="store_false", help="skip measuring the held-out networks a second time"
    )
    parser.add_argument(
        "--no-complete",
        dest="complete",
        action="store_false",
        help="skip timing the held-out networks' units that the table lacks (the fallback's share of the error)",
    )
    parser.add_argument(
        "--against",
        metavar="REPORT",
        help="a --json report of an earlier run: how far its unit and network times are from this run's",
    )
    args = parser.parse_args()
    # The full run measures the table `nas latency profile` builds by default
    # (profile()'s sizes), so that its figures are those of the table users get:
    # fewer whole networks fit a worse correction, which more block samples alone
    # do not make up for.
    if args.quick:
        args.networks = 4 if args.networks is None else args.networks
        args.block_samples = 0 if args.block_samples is None else args.block_samples
    args.heldout = args.heldout if args.heldout is not None else (6 if args.quick else 20)
    return args


def print_report(report: dict[str, Any]) -> None:
    """The report as the tables a reader compares with the README's."""
    print(f"Predictor accuracy on held-out networks ({', '.join(SPACES)}; zoo nets at those inputs)")
    for r in report["results"]:
        c = r["conditions"]
        print(
            f"\n{r['backend']} ({c['mode']}), {c['threads']} thread(s): table {r['table_blocks']} blocks + "
            f"{r['table_networks']} networks, profiled in {r['profile_s']:.0f} s; held-out {r['heldout']} "
            f"networks, {r['measured_ms_range'][0]:.3f}..{r['measured_ms_range'][1]:.1f} ms; "
            f"{100 * r['unit_coverage']:.0f}% of their blocks in the table"
        )
        print(f"  predictor   {fmt(r['predictor'])}")
        print(f"  block sum   {fmt(r['block_sum'])}")
        if r["repeat"] is not None:
            print(f"  remeasured  {fmt(r['repeat'])}  (a second measurement against the first: the noise floor)")
        if r["all_units_timed"] is not None:
            full = r["all_units_timed"]
            print(
                f"  all units   {fmt(full['predictor'])}  (the {full['units_added']} units the table lacked timed and "
                f"added; the fallback's unit sums were off by {100 * full['fallback_unit_sums']['mape']:.1f}%)"
            )
        corr = r["correction"]
        print("  correction  " + " + ".join(f"{w:.4g}*{f}" for w, f in zip(corr["coef"], corr["features"])))
        near = corr.get("neighbours")
        if near:
            print(
                f"  neighbours  k={near['k']} shrink={near['shrink']}: leave-one-out MAPE "
                f"{100 * near['linear_loo_mape']:.1f}% -> {100 * near['loo_mape']:.1f}% on the table's networks"
            )
        for source, a in r["by_source"].items():
            print(f"    {source:10s} {fmt(a)}")
    speed = report["screening"]
    print(
        f"\nScreening {speed['candidates']} freshly sampled, built candidates: "
        f"{speed['first_per_s']:,.0f}/s on first sight ({speed['first_prediction_us']:.0f} us), "
        f"{speed['memoised_per_s']:,.0f}/s once their blocks are memoised ({speed['memoised_prediction_us']:.0f} us); "
        f"sampling and building one costs {speed['sample_and_build_us']:.0f} us"
    )
    for line in report.get("against", []):
        print(line)
    print(f"total {report['total_s']:.0f} s")


def run(args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    out = Path(args.out or scratch)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    nets = held_out(args.heldout, seed=1)
    log(f"{len(nets)} held-out candidates ({args.heldout} per space + zoo)")
    results = []
    predictor = None
    for backend in args.backends.split(","):
        result, p = run_backend(backend, args, nets, out)
        results.append(result)
        predictor = predictor or p
    assert predictor is not None
    log("screening speed")
    speed = screening(predictor, args.screen)
    return {
        "machine": {"cpu": latency.device.cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
        "spaces": list(SPACES),
        "max_macs": MAX_MACS,
        "threads": args.threads,
        "quick": args.quick,
        "results": results,
        "screening": speed,
        "total_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main()
