"""Figures of the shipped search spaces: size, decode speed, fixed points.

For every space: the number of architectures it holds, the time to decode
and validate one architecture (median over repeats; "cold" clears the
memoised composite expansions first, "warm" does not: a searcher decoding
many neighbours of one net sees the warm figure), the time to draw a valid
sample, and the fixed-point table (zoo net -> space -> hash equal). The goal
is under 5 ms to decode and validate a ResNet-50-sized net.

Run from the repository root::

    .venv/bin/python examples/bench_space.py          # a table
    .venv/bin/python examples/bench_space.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from functools import partial
from typing import Any

import nas
import nas.space as S
from nas.passes.analysis import clear_cache


def _median_ms(fn: Any, repeats: int, cold: bool) -> float:
    times = []
    for _ in range(repeats):
        if cold:
            clear_cache()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(repeats: int) -> dict[str, Any]:
    spaces = []
    table = []
    for name in S.space_names():
        space = S.load_space(name)
        fixed = S.fixed_points(space)
        for net in fixed:
            graph = nas.build(net)
            assignment = S.encode(space, graph)
            table.append({"net": net, "space": name, "hash_equal": S.decode(space, assignment).hash == graph.hash})
        probe = "resnet50" if "resnet50" in fixed else (fixed[-1] if fixed else None)
        row: dict[str, Any] = {"space": name, "size": S.size(space), "fixed_points": len(fixed)}
        if probe is not None:
            assignment = S.encode(space, nas.build(probe))
            row["probe"] = probe
            row["probe_params"] = nas.build(probe).params
            row["decode_cold_ms"] = _median_ms(partial(S.decode, space, assignment), repeats, cold=True)
            row["decode_warm_ms"] = _median_ms(partial(S.decode, space, assignment), repeats, cold=False)
        row["sample_ms"] = _median_ms(partial(S.sample, space, random.Random(0)), repeats, cold=False)
        spaces.append(row)
    homeless = [n for n in nas.zoo.names() if n not in {r["net"] for r in table}]
    return {"spaces": spaces, "fixed_points": table, "zoo_nets_without_a_space": homeless}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    result = measure(args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    header = f"{'space':<14}{'architectures':>16}{'fixed pts':>10}  {'probe net':<22}"
    print(header + f"{'decode cold':>12}{'warm':>9}{'sample':>10}")
    for r in result["spaces"]:
        size = f"{r['size']:,}" if r["size"] < 10**9 else f"~10^{math.log10(r['size']):.1f}"
        print(
            f"{r['space']:<14}{size:>16}{r['fixed_points']:>10}  {r.get('probe', '-'):<22}"
            f"{r.get('decode_cold_ms', math.nan):>10.2f}ms{r.get('decode_warm_ms', math.nan):>7.2f}ms"
            f"{r['sample_ms']:>8.2f}ms"
        )
    print("\nfixed points (zoo net -> space -> decode(encode(net)) has the net's hash)")
    for r in result["fixed_points"]:
        print(f"  {r['net']:<22}{r['space']:<14}{'equal' if r['hash_equal'] else 'DIFFERENT'}")
    missing = result["zoo_nets_without_a_space"]
    print(f"\nzoo nets in no space: {', '.join(missing) if missing else 'none'}")


if __name__ == "__main__":
    main()
