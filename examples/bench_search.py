"""The samplers side by side: one search per sampler on the same space, data and budget.

For every sampler (evolution, tpe, nsga2, random) and seed, a fresh study in
a temporary SQLite file: finished, feasible, pruned and failed trials, the
best feasible accuracy (or proxy score), the size of the feasible Pareto
front, its hypervolume, and the wall time. The hypervolume is the area
dominated by the front inside the box from (objective 0, latency = budget)
to (the best objective, latency 0): higher is better; with a proxy
objective the lower corner is the study's worst feasible score instead of 0.

Run from the repository root::

    .venv/bin/python examples/bench_search.py                           # 16 trials, accuracy, ~5 min on 2 cores
    .venv/bin/python examples/bench_search.py --trials 8 --objective proxy:naswot --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.search import SAMPLERS, SearchConfig, load_study, pareto_front, run_search
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


def run(sampler: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    storage = f"sqlite:///{folder}/{sampler}-{seed}.db"
    config = SearchConfig(
        space=args.space,
        data=args.data,
        trials=args.trials,
        latency_budget_ms=args.budget,
        backend=args.backend,
        objective=args.objective,
        sampler=sampler,
        storage=storage,
        study=f"{sampler}-{seed}",
        seed=seed,
        epochs=args.epochs,
        runs=str(folder / "runs"),
    )
    started = time.perf_counter()
    result = run_search(config)
    wall = time.perf_counter() - started
    study = load_study(storage, config.study)
    front = pareto_front(study)
    feasible = [t for t in study.trials if is_feasible(t)]
    floor = 0.0 if args.objective == "accuracy" else min((t.values[0] for t in feasible), default=0.0)
    tally = result.tally
    return {
        "sampler": sampler,
        "seed": seed,
        "finished": tally.finished,
        "feasible": tally.feasible,
        "infeasible": tally.infeasible,
        "pruned": tally.pruned,
        "failed": tally.failed,
        "best": tally.best,
        "front": len(front),
        "hypervolume": hypervolume([(t.values[0], t.values[1]) for t in front], floor, args.budget),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="early")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--budget", type=float, default=1.0, help="latency budget, ms")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--objective", default="accuracy")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(s, seed, args, Path(tmp)) for s in args.samplers for seed in args.seeds]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"space {args.space}, data {args.data}, {args.trials} trials, budget {args.budget:g} ms on {args.backend}, "
        f"objective {args.objective}"
    )
    header = ("sampler", "seed", "done", "feasible", "over", "pruned", "failed", "best", "front", "hypervol", "wall s")
    print("  ".join(f"{h:>9}" for h in header))
    for r in rows:
        best = "-" if r["best"] is None else f"{r['best']:.4f}"
        cells = (r["sampler"], r["seed"], r["finished"], r["feasible"], r["infeasible"], r["pruned"], r["failed"])
        print(
            "  ".join(f"{c!s:>9}" for c in cells) + f"  {best:>9}  {r['front']:>9}  {r['hypervolume']:>9.4f}  "
            f"{r['wall_s']:>9.1f}"
        )


if __name__ == "__main__":
    main()
