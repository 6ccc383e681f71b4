"""Benchmark of the weight-sharing issue's cost goal: a supernet against from-scratch search, to equal accuracy.

For each seed of ``--seeds``, on one narrowed space (``--space``, narrowed by
:data:`bench_supernet.FIXES`) and one latency budget:

* from scratch: ``nas search`` (evolution, ``--scratch-trials`` trials of
  ``--scratch-epochs`` epochs each, latency measured on this CPU); its wall
  time and the best feasible accuracy, the target;
* weight sharing: a supernet trained for ``--supernet-epochs`` epochs (with
  ``--within LO:HI``, only on the networks the table predicts in that
  latency range, as ``nas supernet train --latency-range-ms`` trains), then
  ``nas supernet search`` over it (``--trials`` inherited evaluations under
  the same budget, latency measured the same way), then the best network
  fine-tuned for ``--finetune-epochs`` epochs from its inherited weights
  (with ``--finalists K``: the best of the K most accurate after
  ``--screen-epochs`` of fine-tuning each, the screening timed too);
  its wall time, training included, and the fine-tuned accuracy;
* along the way (``--checkpoints``): the supernet also searched and its
  best fine-tuned at earlier epochs of the same training, each timed as if
  training had stopped there; the first as accurate as the from-scratch best
  gives the time to it;
* to match (``--match-epochs``): where the supernet's network is the more
  accurate, the search from scratch again with twice the epochs a trial,
  until its best is as accurate (or the epochs reach the cap): the time
  from scratch to the supernet's accuracy, or a lower bound on it;
* specialisation: one more budget (``--more-budget``) searched on the same
  supernet and its best fine-tuned: the time a new target costs once a
  supernet exists;
* trained again (``--again``, untimed): each arm's final network trained
  once more with another seed, the from-scratch best from scratch and the
  supernet's from its inherited weights. The from-scratch best is the
  highest of many validation scores and so flatters its network; the
  second run's accuracy carries no such selection;
* held out (``--test-data SPEC``, untimed): each arm's final network, with
  the weights it was kept with, scored on the validation part of another
  data set of the same classes (``cluttered:20000``: 5000 new images of the
  held-out digits), images no search or screening chose on. With it, the
  verdicts (as accurate, the epoch that reaches the from-scratch best)
  compare these held-out accuracies: the from-scratch best's validation
  score is the largest of many noisy ones, and the winner's curse (Thaler
  1988) would otherwise count against the arm that chose among fewer.

Each arm measures latency into a store of its own, so that neither is
timed on figures the other measured; or both predict it from one table
(``--latency-table``, made by ``nas latency profile``), as a search for
another device does, and as a CPU shared with other work requires. Printed per seed: both arms' time and
accuracy, whether the supernet's network is at least as accurate as the
best from-scratch one, and the speed-up; then the median over seeds and
whether the goals hold (at least 5x, under 60 s per new budget), and from
how many targets (budgets or devices, each a new search from scratch but
only a specialisation of the supernet) weight sharing is 5x faster.

Run from the repository root::

    .venv/bin/python examples/bench_specialise.py                    # mobile, 3 seeds
    .venv/bin/python examples/bench_specialise.py --seeds 0 --scratch-trials 6 --trials 50   # a pilot
    .venv/bin/python examples/bench_specialise.py --data cluttered:5000 --latency-table TABLE --budget 0.4 \
        --more-budget 0.3 --supernet-epochs 30 --match-epochs 16 --seeds 0
    .venv/bin/python examples/bench_specialise.py --data cluttered:5000 --latency-table TABLE --budget 0.4 \
        --more-budget 0.3 --scratch-trials 100 --scratch-epochs 4 --supernet-epochs 30 --checkpoints 3,6,9,12,15,20,25
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_supernet import FIXES, fail, read_earlier

import nas
import nas.space as S
from nas.data import DataSet, load_data, loader
from nas.ir.errors import NASError
from nas.predict import Predictor
from nas.search import SearchConfig, SearchResult, load_study, run_search
from nas.search.finalists import FINALISTS, Finetuned, finetune_best
from nas.search.results import spread, trial_model
from nas.supernet import CostRange, EpochLog, Supernet, SupernetInfo, SupernetRun, save_supernet, train_supernet
from nas.train import train
from nas.train.loop import accuracy as accuracy_of
from nas.train.loop import input_shape


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def search(config: SearchConfig, cache: Path, data: DataSet | None = None) -> tuple[SearchResult, float]:
    """The search, timed, with its latency store in ``cache`` (and ``data`` loaded already, where given)."""
    os.environ["NAS_CACHE_DIR"] = str(cache)
    started = time.perf_counter()
    try:
        result = run_search(config, data=data)
    except NASError as e:  # an impossible budget, a bad table: the search's own one-line error
        fail(str(e))
    return result, time.perf_counter() - started


def finetune(
    result: SearchResult, data: DataSet, args: argparse.Namespace, seed: int
) -> tuple[float, float, Finetuned]:
    """The search's finalists screened and the best fine-tuned from its inherited weights
    (:func:`nas.search.finalists.finetune_best`): accuracy, seconds, what was kept."""
    started = time.perf_counter()
    kept = finetune_best(
        load_study(result.storage, result.study),
        data,
        count=args.finalists,
        screen_epochs=args.screen_epochs,
        epochs=args.finetune_epochs,
        recipe=args.recipe,
        seed=seed,
        storage=result.storage,
    )
    return kept.result.accuracy, time.perf_counter() - started, kept


AGAIN_SEED = 1000
"""Added to a seed for the untimed runs of ``--again``: another order of batches (and initialisation)."""


def retrain(
    graph: nas.Graph, epochs: int, args: argparse.Namespace, seed: int, weights: dict[str, torch.Tensor] | None = None
) -> float:
    """``graph`` trained for ``epochs`` from ``weights`` (else its own initialisation), untimed: its accuracy.
    ``--control`` trains the kept network from its own initialisation; ``--again`` trains each arm's final
    network once more as it was, with another seed, for an accuracy free of the search's selection."""
    return train(graph, load_data(args.data), recipe=args.recipe, epochs=epochs, seed=seed, weights=weights).accuracy


def held_out(args: argparse.Namespace) -> DataSet | None:
    """``--data`` with the validation part of ``--test-data`` in place of its own (its training part, and so
    its normalisation, kept): images that no search or screening chose on. None without ``--test-data``."""
    if not args.test_data:
        return None
    data, other = load_data(args.data), load_data(args.test_data)
    if other.class_names != data.class_names:
        fail(f"--test-data {args.test_data} has classes {other.class_names}, --data has {data.class_names}")
    return dataclasses.replace(data, val=other.val)


def tested(graph: nas.Graph, weights: dict[str, torch.Tensor], args: argparse.Namespace) -> float | None:
    """``graph`` with ``weights``: its accuracy on the held-out images (untimed), None without ``--test-data``."""
    if args.test is None:
        return None
    model = nas.lower(graph)
    model.load_state_dict(weights)
    return accuracy_of(graph, model, loader(args.test, "val", input_shape(graph), batch_size=256, augment=False))


def scratch_search(seed: int, epochs: int, args: argparse.Namespace, folder: Path) -> tuple[SearchResult, float]:
    """``nas search`` from scratch under the first budget, trials of ``epochs`` epochs, timed."""
    return search(
        SearchConfig(
            space=args.space,
            fix=tuple(FIXES[args.space]),
            data=args.data,
            recipe=args.recipe,
            trials=args.scratch_trials,
            epochs=epochs,
            latency_budget_ms=args.budget,
            latency_table=args.latency_table,
            sampler="evolution",
            storage=f"sqlite:///{folder}/scratch-{seed}-{epochs}.db",
            study="scratch",
            runs=str(folder / f"runs-scratch-{seed}-{epochs}"),
            seed=seed,
        ),
        folder / f"cache-scratch-{seed}",
    )


def to_match(seed: int, accuracy: float, args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    """From-scratch searches with twice the epochs each time, from ``--scratch-epochs`` up to
    ``--match-epochs``, until one finds a network as accurate as ``accuracy``: each rung's epochs,
    time and best. A user who knew the epochs needed would run only the last rung, so its time
    (not the sum) is what weight sharing is compared with."""
    rungs = []
    epochs = args.scratch_epochs * 2
    while epochs <= args.match_epochs:
        log(f"seed {seed}: from scratch to match {accuracy:.4f}, {args.scratch_trials} trials of {epochs} epochs")
        result, seconds = scratch_search(seed, epochs, args, folder)
        best = result.best.values[0] if result.best is not None else math.nan
        rungs.append({"epochs": epochs, "seconds": seconds, "best": best})
        log(f"  best {best:.4f} in {seconds:.0f} s")
        if best >= accuracy:
            break
        epochs *= 2
    return rungs


def specialise(directory: Path, budget: float, epoch: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """A search of the supernet saved in ``directory`` under ``budget``, its best fine-tuned: times and
    accuracy. As ``nas supernet search`` does, the data is loaded once (timed with the search) for both."""
    folder = directory.parent
    started = time.perf_counter()
    data = load_data(args.data)
    loading_s = time.perf_counter() - started
    result, search_s = search(
        SearchConfig(
            supernet=str(directory),
            trials=args.trials,
            latency_budget_ms=budget,
            latency_table=args.latency_table,
            sampler="evolution",
            seed=seed,
            storage=f"sqlite:///{folder}/supernet-{seed}.db",
            study=f"supernet-{budget:g}-{epoch}",
            runs=str(folder / f"runs-supernet-{seed}-{epoch}"),
            prune=False,
        ),
        folder / f"cache-supernet-{seed}",
        data,
    )
    search_s += loading_s
    if result.best is None:
        fail(f"the supernet search found no network within {budget} ms: {result.best_error}; raise the budget")
    accuracy, finetune_s, kept = finetune(result, data, args, seed)
    own = retrain(kept.model.graph, args.finetune_epochs, args, seed) if args.control else None
    repeated = None
    if args.again:
        repeated = retrain(kept.model.graph, args.finetune_epochs, args, seed + AGAIN_SEED, kept.model.weights)
    apart = spread(load_study(result.storage, result.study), len(data.val))  # untimed: what the search could tell
    assert apart is not None  # the search found a best
    test = tested(kept.model.graph, kept.result.state, args)
    log(
        f"  epoch {epoch}, {budget:g} ms: {search_s:.0f} s search, {finetune_s:.0f} s fine-tuning, {accuracy:.4f}"
        + ("" if test is None else f" ({test:.4f} held out)")
        + ("" if own is None else f" (from its own initialisation {own:.4f})")
        + f"; {apart.tied} of {apart.networks} networks within +-{apart.noise:.3f} of the best inherited"
    )
    return {
        "epoch": epoch,
        "budget": budget,
        "search_s": search_s,
        "finetune_s": finetune_s,
        "spread": apart.to_dict(),
        "inherited": result.best.values[0],
        "accuracy": accuracy,
        "test": test,
        "control": own,
        "again": repeated,
    }


SCRATCH_SETTINGS = (
    "space",
    "data",
    "recipe",
    "budget",
    "latency_table",
    "scratch_trials",
    "scratch_epochs",
    "test_data",
)
"""What a from-scratch search's result depends on: an earlier run's is reused only where they are the same."""


def rule(args: argparse.Namespace) -> str:
    """The supernet's sampling rule in words."""
    return "uniform" if args.rule == "uniform" else f"sandwich, {args.random_subnets} random"


def earlier_scratch(args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    """The from-scratch arm of an earlier ``--json`` run (``--scratch-from``) by seed: time, best, trials finished."""
    if not args.scratch_from:
        return {}
    earlier = read_earlier(args.scratch_from, args, SCRATCH_SETTINGS, "a search from scratch")
    keep, rows = ("scratch_s", "scratch_best", "scratch_finished"), earlier["rows"]
    optional = ("scratch_again", "scratch_test")
    return {row["seed"]: {k: row[k] for k in keep} | {k: row.get(k) for k in optional} for row in rows}


def within(args: argparse.Namespace) -> CostRange | None:
    """``--within LO:HI``: the supernet trains only networks whose latency the table predicts in it."""
    if not args.within:
        return None
    if not args.latency_table:
        fail("--within needs --latency-table, the table that predicts it")
    low, _, high = args.within.rpartition(":")
    return CostRange(Predictor(args.latency_table).predict, float(low or 0), float(high), source=args.latency_table)


def bench_seed(
    seed: int, args: argparse.Namespace, folder: Path, scratch: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Both arms for one seed; the from-scratch one taken from ``scratch`` where an earlier run measured it."""
    fixes = tuple(FIXES[args.space])
    if scratch is None:
        log(f"seed {seed}: from scratch, {args.scratch_trials} trials of {args.scratch_epochs} epochs")
        result, seconds = scratch_search(seed, args.scratch_epochs, args, folder)
        if result.best is None:
            fail(
                f"the from-scratch search found no network within {args.budget} ms: {result.best_error}; raise --budget"
            )
        # The best is the most accurate of many validation scores: trained again (another seed), and
        # its trained weights scored on held-out images (both untimed), its accuracy without that selection.
        best = trial_model(load_study(result.storage, result.study), result.best, storage=result.storage)
        scratch = {
            "scratch_s": seconds,
            "scratch_best": result.best.values[0],
            "scratch_finished": result.tally.finished,
            "scratch_again": retrain(best.graph, args.scratch_epochs, args, seed + AGAIN_SEED) if args.again else None,
            "scratch_test": tested(best.graph, best.weights, args),
        }
    else:
        log(f"seed {seed}: from scratch as measured in {args.scratch_from}")
    scratch_s, target = scratch["scratch_s"], scratch["scratch_best"]
    measure = "accuracy"  # what the verdicts compare: validation scores, or held-out ones
    if args.test is not None:
        if scratch.get("scratch_test") is None:
            fail(f"--scratch-from {args.scratch_from} has no held-out accuracy for seed {seed}: give it --test-data")
        target, measure = scratch["scratch_test"], "test"

    log(f"seed {seed}: supernet, {args.supernet_epochs} epochs")
    started = time.perf_counter()
    data = load_data(args.data)
    space = S.load_space(args.space)
    assert space.file is not None
    torch.manual_seed(seed)
    supernet = Supernet(S.narrowed(space, fixes), data.classes)
    initial = None
    if args.init_epochs:
        largest = supernet.largest()
        alone = train(supernet.network(largest), data, recipe=args.recipe, epochs=args.init_epochs, seed=seed)
        initial = (largest, alone.state)
        log(f"  the largest network alone, {args.init_epochs} epochs: {alone.accuracy:.4f}")
    run = SupernetRun(
        supernet,
        data,
        recipe=args.recipe,
        epochs=args.supernet_epochs,
        rule=args.rule,
        random_subnets=args.random_subnets,
        seed=seed,
        initial=initial,
        within=within(args),
    )
    directory = folder / f"supernet-{seed}"
    info = SupernetInfo(
        space=space.name,
        fixed=list(fixes),
        data=data.name,
        classes=data.classes,
        training={"recipe": run.recipe.name, "rule": run.rule, "random_subnets": run.random_subnets},
    )
    along: list[dict[str, Any]] = []  # the specialisations at --checkpoints, each timed as if training stopped there
    paused = 0.0

    def checkpoint(entry: EpochLog) -> None:
        nonlocal paused
        if entry.epoch not in args.checkpoints or entry.epoch == args.supernet_epochs:
            return
        begun = time.perf_counter()
        state = torch.random.get_rng_state()  # training goes on as if it had not stopped
        save_supernet(directory, supernet, info, Path(space.file))
        row = specialise(directory, args.budget, entry.epoch, seed, args)
        torch.random.set_rng_state(state)
        row["train_s"] = begun - started - paused
        along.append(row)
        paused += time.perf_counter() - begun

    train_supernet(run, data, on_epoch=checkpoint)
    save_supernet(directory, supernet, info, Path(space.file))
    supernet_s = time.perf_counter() - started - paused

    specialised = [specialise(directory, b, args.supernet_epochs, seed, args) for b in (args.budget, args.more_budget)]
    along.append(specialised[0] | {"train_s": supernet_s})
    for row in along:
        row["total_s"] = row["train_s"] + row["search_s"] + row["finetune_s"]
    final = along[-1]
    reached_at = next((row for row in along if row[measure] >= target), None)
    supernet_total = final["total_s"]
    # Searches from scratch compare validation scores: the match is on them.
    beaten = final["accuracy"] > scratch["scratch_best"]
    rungs = to_match(seed, final["accuracy"], args, folder) if beaten else []
    matched = [r for r in rungs if r["best"] >= final["accuracy"]]
    return {
        "seed": seed,
        **scratch,
        "supernet_train_s": supernet_s,
        "supernet_total_s": supernet_total,
        "supernet_accuracy": final["accuracy"],
        "supernet_test": final["test"],
        "reached": final[measure] >= target,
        "speedup": scratch_s / supernet_total,
        "along": along,
        # The first checkpoint whose network is as accurate as the from-scratch best: the time to it
        # (training to that epoch, one search, one fine-tuning) against the search from scratch.
        "target_epoch": None if reached_at is None else reached_at["epoch"],
        "target_s": None if reached_at is None else reached_at["total_s"],
        "target_speedup": None if reached_at is None else scratch_s / reached_at["total_s"],
        "match": rungs,
        # Time from scratch to the supernet's accuracy over the supernet's: exact if a rung matched,
        # else a lower bound (the last rung's time), None if no rung ran.
        "match_speedup": (matched[0] if matched else rungs[-1])["seconds"] / supernet_total if rungs else None,
        "match_reached": bool(matched),
        "more_budget_s": specialised[1]["search_s"] + specialised[1]["finetune_s"],
        "specialised": specialised,
    }


def both(val: float, test: float | None) -> str:
    """A validation accuracy, with the held-out one where measured."""
    return f"{val:.4f}" + ("" if test is None else f" ({test:.4f} held out)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="mobile", choices=sorted(FIXES))
    parser.add_argument("--data", default="digits")
    parser.add_argument("--recipe", default="digits")
    parser.add_argument("--budget", type=float, default=2.0, help="latency budget, ms")
    parser.add_argument("--more-budget", type=float, default=1.0, help="the budget specialised afterwards, ms")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--latency-table",
        metavar="PATH",
        help="predict latency from this table in both arms (measuring on a busy CPU moves the budget's meaning)",
    )
    parser.add_argument("--scratch-trials", type=int, default=30)
    parser.add_argument("--scratch-epochs", type=int, default=2)
    parser.add_argument(
        "--scratch-from",
        metavar="JSON",
        help="the from-scratch arm of an earlier --json run of the same settings, for the seeds it has: "
        "only the supernet arm runs for those",
    )
    parser.add_argument(
        "--match-epochs",
        type=int,
        default=0,
        help="where the supernet's network beats the search from scratch, search again from scratch with "
        "twice the epochs, up to this many, until it is matched (0: do not)",
    )
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument(
        "--checkpoints",
        default="",
        help="epochs (e.g. 2,4,6) at which the supernet is also specialised, to time it to the from-scratch best",
    )
    parser.add_argument(
        "--init-epochs",
        type=int,
        default=0,
        help="train the largest network alone for this many epochs first (timed with the supernet) and start "
        "the supernet from it (nas supernet train --init), Once-for-All's order",
    )
    parser.add_argument("--rule", default="sandwich", help="sandwich or uniform (nas supernet train --rule)")
    parser.add_argument("--random-subnets", type=int, default=2, help="random subnets per step (sandwich)")
    parser.add_argument(
        "--within",
        metavar="LO:HI",
        help="train only the networks the latency table predicts within LO to HI ms (needs --latency-table)",
    )
    parser.add_argument("--trials", type=int, default=100, help="inherited evaluations per budget")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument(
        "--finalists",
        type=int,
        default=FINALISTS,
        help="networks screened by a short fine-tune (nas supernet search --finalists)",
    )
    parser.add_argument("--screen-epochs", type=int, default=1, help="epochs of fine-tuning that screen finalists")
    parser.add_argument(
        "--control",
        action="store_true",
        help="also train each network found for the fine-tuning epochs from its own initialisation, untimed: "
        "what the inherited weights add to the search's choice",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="also train each arm's final network once more with another seed, untimed: the from-scratch best "
        "from scratch, the supernet's from its inherited weights; accuracies free of the search's selection",
    )
    parser.add_argument(
        "--test-data",
        metavar="SPEC",
        help="score each arm's final network on this data set's validation images (e.g. cluttered:20000), "
        "untimed, and compare these held-out accuracies: free of the winner's curse of the from-scratch best",
    )
    parser.add_argument("--speedup-goal", type=float, default=5.0)
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of both arms (more than one thrashes on a shared CPU)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args()
    if args.finalists < 1 or args.screen_epochs < 1 or args.finetune_epochs < 1:
        fail("--finalists, --screen-epochs and --finetune-epochs must be 1 or more")
    args.checkpoints = sorted({int(e) for e in args.checkpoints.split(",") if e.strip()})
    args.test = held_out(args)
    torch.set_num_threads(args.threads)
    rows = []
    measured = earlier_scratch(args)
    with tempfile.TemporaryDirectory(prefix="bench-specialise-") as tmp:
        for seed in args.seeds:
            rows.append(bench_seed(seed, args, Path(tmp), measured.get(seed)))
            log(json.dumps(rows[-1]))
            if args.json:  # after every seed: a long run stopped early keeps what it measured
                settings = {k: v for k, v in vars(args).items() if k != "test"}
                Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    print(f"space {args.space} narrowed by: {' '.join(FIXES[args.space])}; budget {args.budget:g} ms")
    if args.scratch_from:
        print(
            f"from-scratch times read from {args.scratch_from}: the speed-ups set them against times measured in "
            "this run, perhaps on another machine; quote the figures of one run"
        )
    print(
        f"from scratch: {args.scratch_trials} trials of {args.scratch_epochs} epochs; supernet: "
        f"{args.supernet_epochs} epochs ({rule(args)})"
        + (f" started from the largest network trained alone for {args.init_epochs}" if args.init_epochs else "")
        + (f" on the networks of {args.within} ms only" if args.within else "")
        + f", {args.trials} inherited trials, "
        f"{args.finetune_epochs} epochs of fine-tuning"
        + (f" (the best of {args.finalists} after {args.screen_epochs} each)" if args.finalists > 1 else "")
    )
    if args.test is not None:
        print(
            f"held out: each final network scored on the {len(args.test.val)} validation images of "
            f"{args.test_data}; 'as accurate' compares these scores"
        )
    for r in rows:
        print(
            f"  seed {r['seed']}: from scratch {r['scratch_s']:.0f} s, "
            f"best {both(r['scratch_best'], r.get('scratch_test'))}; "
            f"supernet {r['supernet_total_s']:.0f} s ({r['supernet_train_s']:.0f} s training), "
            f"fine-tuned {both(r['supernet_accuracy'], r.get('supernet_test'))} "
            f"({'as accurate' if r['reached'] else 'LESS accurate'}); "
            f"speed-up {r['speedup']:.2f}x; one more budget ({args.more_budget:g} ms) {r['more_budget_s']:.0f} s"
        )
        for row in r["along"]:
            print(
                f"    supernet at epoch {row['epoch']}: fine-tuned {both(row['accuracy'], row.get('test'))} "
                f"after {row['total_s']:.0f} s "
                f"({row['train_s']:.0f} s training, {row['search_s']:.0f} s search, "
                f"{row['finetune_s']:.0f} s fine-tuning)"
                + ("" if row.get("control") is None else f"; from its own initialisation {row['control']:.4f}")
                + ("" if row.get("again") is None else f"; trained again {row['again']:.4f}")
            )
        if r.get("scratch_again") is not None:
            print(f"    the from-scratch best trained again (another seed): {r['scratch_again']:.4f}")
        if r["target_s"] is not None:
            best = r["scratch_best"] if args.test is None else r["scratch_test"]
            print(
                f"    to the from-scratch best ({best:.4f}): supernet at epoch {r['target_epoch']}, "
                f"{r['target_s']:.0f} s against {r['scratch_s']:.0f} s, {r['target_speedup']:.2f}x faster"
            )
        for rung in r["match"]:
            print(f"    from scratch, {rung['epochs']} epochs a trial: {rung['best']:.4f} in {rung['seconds']:.0f} s")
        if r["match"]:
            bound = "" if r["match_reached"] else "at least "
            print(
                f"    to the supernet's accuracy, weight sharing is {bound}{r['match_speedup']:.2f}x faster"
                + ("" if r["match_reached"] else f" (not matched within {args.match_epochs} epochs a trial)")
            )
    speedup = statistics.median(r["speedup"] for r in rows)
    timed = [r["target_speedup"] for r in rows if r["target_speedup"] is not None]
    if args.checkpoints and timed:
        print(
            f"to the from-scratch best, the supernet (stopped at the first checkpoint as accurate) is median "
            f"{statistics.median(timed):.2f}x faster over {len(timed)} of {len(rows)} seeds (goal >= "
            f"{args.speedup_goal:g}x: {'yes' if statistics.median(timed) >= args.speedup_goal else 'NO'})"
        )
    matched = [r for r in rows if r["match"]]
    if matched:
        bounds = sum(not r["match_reached"] for r in matched)
        print(
            f"to the supernet's accuracy: median {statistics.median(r['match_speedup'] for r in matched):.2f}x "
            f"faster over {len(matched)} seeds ({bounds} of them lower bounds)"
        )
    more = max(r["more_budget_s"] for r in rows)
    reached = sum(r["reached"] for r in rows)
    scratch = statistics.median(r["scratch_s"] for r in rows)
    shared = statistics.median(r["supernet_total_s"] for r in rows)
    each = statistics.median(r["more_budget_s"] for r in rows)
    # k targets (budgets or devices): k searches from scratch against one supernet and k specialisations.
    goal = args.speedup_goal
    if scratch <= goal * each:
        when = f"never {goal:g}x faster: a new target costs it more than 1/{goal:g} of a search from scratch"
    else:
        when = f"{goal:g}x faster from {math.ceil(goal * (shared - each) / (scratch - goal * each))} targets on"
    print(
        f"per target: from scratch {scratch:.0f} s, specialising the trained supernet {each:.0f} s; "
        f"over targets (budgets or latency tables), the supernet is {when}"
    )
    print(
        f"median speed-up {speedup:.2f}x (goal >= {args.speedup_goal:g}x: "
        f"{'yes' if speedup >= args.speedup_goal and reached == len(rows) else 'NO'}); "
        f"as accurate in {reached} of {len(rows)} seeds; one more budget at most {more:.0f} s (goal < 60 s: "
        f"{'yes' if more < 60 else 'NO'})"
    )


if __name__ == "__main__":
    main()
