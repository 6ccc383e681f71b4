"""The samplers side by side: one search per sampler on the same space, data and budget.

For every sampler (evolution, tpe, nsga2, random) and seed, a fresh study in
a temporary SQLite file: finished, feasible, pruned and failed trials, the
best feasible accuracy (or proxy score), the size of the feasible Pareto
front, its hypervolume, and the wall time. The hypervolume is the area
dominated by the front inside the box from (objective 0, latency = budget)
to (the best objective, latency 0): higher is better; with a proxy
objective the lower corner is the worst feasible score of all the runs
(one floor for every sampler and seed, so their hypervolumes compare);
``--floor`` sets it (with accuracy and floor 0, the area mostly rewards
low latency: a floor near LeNet-5's accuracy weighs accuracy more). Points
below the floor add nothing.

Then a summary over seeds: per sampler the median and mean hypervolume
and best objective, and, per seed, evolution against random (which has
the larger hypervolume at the same trial count), with the win count.

All runs of one invocation share one fresh latency store (unless
``--cache``): a network measured once has the same latency in every study,
so the samplers are compared on the same figures; latency is timed with
``--threads`` threads (1: the search's default). Both samplers start from
the same enqueued zoo nets (those of the space within the budget), which
count towards the trial count; the random sampler draws Optuna parameters
independently and so can draw networks over the space's size limits,
which fail (the evolutionary sampler redraws those).

Run from the repository root::

    .venv/bin/python examples/bench_search.py                           # 16 trials, accuracy, ~5 min on 2 cores
    .venv/bin/python examples/bench_search.py --trials 8 --objective proxy:naswot --json
    .venv/bin/python examples/bench_search.py --samplers evolution random --seeds 0 1 2 3 4 --trials 20
    .venv/bin/python examples/bench_search.py --supernet sn/residual --trials 500 --seeds 0 1 2 3 4

With ``--supernet``, the space and the data are the supernet's, and each
trial is an inherited evaluation (a fraction of a second) instead of a
training: the trial counts the cheap evaluation affords.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.search import SAMPLERS, SearchConfig, load_study, pareto_front, run_search
from nas.search.record import TrialRecord
from nas.search.results import is_feasible


def hypervolume(points: list[tuple[float, float]], floor: float, budget: float) -> float:
    """Area dominated by ``(objective, latency)`` points (objective maximised,
    latency minimised) above ``floor`` and below ``budget``."""
    area, best = 0.0, floor
    for value, latency in sorted(points, key=lambda p: p[1]):  # by latency, left to right
        if value > best:
            area += (value - best) * (budget - latency)
            best = value
    return area


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(sampler: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    storage = f"sqlite:///{folder}/{sampler}-{seed}.db"
    config = SearchConfig(
        space=args.space,
        data=args.data,
        trials=args.trials,
        latency_budget_ms=args.budget,
        backend=args.backend,
        threads=args.threads,
        objective=args.objective,
        sampler=sampler,
        storage=storage,
        study=f"{sampler}-{seed}",
        seed=seed,
        epochs=args.epochs,
        runs=str(folder / "runs"),
        supernet=args.supernet,
        latency_table=args.latency_table,
    )
    started = time.perf_counter()
    result = run_search(config)
    wall = time.perf_counter() - started
    study = load_study(storage, config.study)
    front = pareto_front(study)
    feasible = [t for t in study.trials if is_feasible(t)]
    tally = result.tally
    log(f"{sampler} seed {seed}: {tally.finished} trials, {tally.feasible} feasible, best {tally.best}, {wall:.0f} s")
    return {
        "sampler": sampler,
        "seed": seed,
        "finished": tally.finished,
        "feasible": tally.feasible,
        "infeasible": tally.infeasible,
        "pruned": tally.pruned,
        "failed": tally.failed,
        "zoo": sum(1 for t in study.trials if (TrialRecord.of(t).origin or "").startswith("zoo:")),
        "best": tally.best,
        "front": len(front),
        "front_points": [(t.values[0], t.values[1]) for t in front],
        "worst": min((t.values[0] for t in feasible), default=None),
        "wall_s": wall,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per sampler: median and mean hypervolume and best over seeds; per seed,
    evolution against random (when both ran)."""
    samplers: dict[str, Any] = {}
    for name in dict.fromkeys(r["sampler"] for r in rows):
        mine = [r for r in rows if r["sampler"] == name]
        volumes = [r["hypervolume"] for r in mine]
        bests = [r["best"] for r in mine if r["best"] is not None]
        samplers[name] = {
            "seeds": len(mine),
            "hypervolume_median": statistics.median(volumes),
            "hypervolume_mean": statistics.fmean(volumes),
            "hypervolume_min": min(volumes),
            "hypervolume_max": max(volumes),
            "best_median": statistics.median(bests) if bests else None,
            "feasible_mean": statistics.fmean(r["feasible"] for r in mine),
            "failed_mean": statistics.fmean(r["failed"] for r in mine),
            "wall_s_mean": statistics.fmean(r["wall_s"] for r in mine),
        }
    by = {(r["sampler"], r["seed"]): r for r in rows}
    paired = []
    for seed in dict.fromkeys(r["seed"] for r in rows):
        evo, rnd = by.get(("evolution", seed)), by.get(("random", seed))
        if evo is None or rnd is None:
            continue
        difference = evo["hypervolume"] - rnd["hypervolume"]
        winner = "evolution" if difference > 0 else "random" if difference < 0 else "tie"
        paired.append(
            {
                "seed": seed,
                "evolution": evo["hypervolume"],
                "random": rnd["hypervolume"],
                "difference": difference,
                "winner": winner,
            }
        )
    wins = {w: sum(1 for p in paired if p["winner"] == w) for w in ("evolution", "random", "tie")}
    return {"samplers": samplers, "evolution_vs_random": paired, "wins": wins}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="early")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--budget", type=float, default=1.0, help="latency budget, ms")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--threads", type=int, default=1, help="threads of the latency measurement")
    parser.add_argument("--objective", default="accuracy")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--floor", type=float, help="objective at the hypervolume's lower corner (0 for accuracy, else the worst)"
    )
    parser.add_argument(
        "--supernet", metavar="DIR", help="evaluate with a trained supernet's weights (nas supernet train -o DIR)"
    )
    parser.add_argument("--latency-table", metavar="PATH", help="predict latency from a table instead of measuring")
    parser.add_argument("--cache", action="store_true", help="use the default latency store, not a fresh one")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--save", metavar="PATH", help="also write that JSON object to PATH")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if not args.cache:
            os.environ["NAS_CACHE_DIR"] = str(Path(tmp) / "latency")
        # Seed by seed, samplers side by side: load on the machine drifts, and
        # a seed's runs should see the same conditions.
        rows = [run(s, seed, args, Path(tmp)) for seed in args.seeds for s in args.samplers]
    worst = [r["worst"] for r in rows if r["worst"] is not None]
    floor = args.floor if args.floor is not None else 0.0 if args.objective == "accuracy" else min(worst, default=0.0)
    for r in rows:
        r["hypervolume"] = hypervolume(r["front_points"], floor, args.budget)
    summary = summarise(rows)
    if args.json or args.save:
        settings = {**vars(args), "floor": floor, "load_before": load_before, "load_after": os.getloadavg()[0]}
        text = json.dumps({"settings": settings, "runs": rows, "summary": summary}, indent=2)
        if args.save:
            Path(args.save).write_text(text + "\n")
        if args.json:
            print(text)
            return
    searched = (
        f"supernet {args.supernet} (inherited accuracy)"
        if args.supernet
        else f"space {args.space}, data {args.data}, objective {args.objective}, {args.epochs} epochs"
    )
    measured = f"on {args.backend} ({args.threads} thread(s))"
    latency = f"predicted by {args.latency_table}" if args.latency_table else measured
    print(f"{searched}, {args.trials} trials, budget {args.budget:g} ms {latency}, hypervolume floor {floor:g}")
    header = ("sampler", "seed", "done", "feasible", "over", "pruned", "failed", "best", "front", "hypervol", "wall s")
    print("  ".join(f"{h:>9}" for h in header))
    for r in sorted(rows, key=lambda r: (args.samplers.index(r["sampler"]), r["seed"])):
        best = "-" if r["best"] is None else f"{r['best']:.4f}"
        cells = (r["sampler"], r["seed"], r["finished"], r["feasible"], r["infeasible"], r["pruned"], r["failed"])
        print(
            "  ".join(f"{c!s:>9}" for c in cells) + f"  {best:>9}  {r['front']:>9}  {r['hypervolume']:>9.4f}  "
            f"{r['wall_s']:>9.1f}"
        )
    print()
    print(f"over {len(args.seeds)} seed(s)")
    header = ("sampler", "hv median", "hv mean", "hv min", "hv max", "best med", "feasible", "failed", "wall s")
    print("  ".join(f"{h:>9}" for h in header))
    for name, s in summary["samplers"].items():
        best = "-" if s["best_median"] is None else f"{s['best_median']:.4f}"
        print(
            f"{name:>9}  {s['hypervolume_median']:>9.4f}  {s['hypervolume_mean']:>9.4f}  {s['hypervolume_min']:>9.4f}  "
            f"{s['hypervolume_max']:>9.4f}  {best:>9}  {s['feasible_mean']:>9.1f}  {s['failed_mean']:>9.1f}  "
            f"{s['wall_s_mean']:>9.1f}"
        )
    if summary["evolution_vs_random"]:
        print()
        print("evolution against random, per seed (hypervolume)")
        print("  ".join(f"{h:>10}" for h in ("seed", "evolution", "random", "difference", "winner")))
        for p in summary["evolution_vs_random"]:
            print(
                f"{p['seed']:>10}  {p['evolution']:>10.4f}  {p['random']:>10.4f}  {p['difference']:>+10.4f}  "
                f"{p['winner']:>10}"
            )
        w = summary["wins"]
        print(f"evolution wins {w['evolution']}, random wins {w['random']}, ties {w['tie']}")
    print(f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
