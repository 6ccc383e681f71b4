"""Benchmark of the weight-sharing issue: does a supernet rank networks as training them does?

For each space of ``--spaces`` (narrowed by the fixes in :data:`FIXES`, which
keep a CPU run short and are printed), a supernet is trained on the data
(``nas.supernet``, sandwich rule, ``--epochs``). Then ``--subnets`` networks
are chosen across the space's range of MACs (the latency range: an equal
share from each quantile of a few hundred draws) and evaluated twice:

* inherited: the supernet's weights, batch-norm statistics recalibrated;
* stand-alone: trained from scratch with the same recipe for
  ``--standalone-epochs`` epochs (``nas.train.train``, as a search trial),
  in ``--workers`` processes.

With ``--screen-epochs N``, two more evaluators of each subnet: fine-tuned
``N`` epochs from its inherited weights (how ``nas supernet search
--finalists`` screens the best networks it found), and, the control,
trained ``N`` epochs from its own initialisation.

Printed: Kendall's tau-b between the two (with a bootstrap 95% interval)
and Spearman's rho, the supernet's training time against the stand-alone
trainings', the fixed points of the space (zoo nets that the narrowed
space holds) with their inherited and stand-alone accuracy, and whether
the goal holds. With two seeds or more, how well the stand-alone runs
agree with each other, and from that the most any evaluator can reach
against their mean (``nas.predict.predictor.tau_of_means``): a reference
whose seeds disagree caps every tau measured against it. And the same
tau for the inherited validation loss, a finer score than accuracy.

Run from the repository root::

    .venv/bin/python examples/bench_supernet.py                      # residual, 30 subnets
    .venv/bin/python examples/bench_supernet.py --spaces residual,mobile
    .venv/bin/python examples/bench_supernet.py --subnets 8 --epochs 2 --standalone-epochs 1   # a pilot
    .venv/bin/python examples/bench_supernet.py --spaces mobile --data cluttered:5000 --epochs 30 --json mob.json
    .venv/bin/python examples/bench_supernet.py --spaces mobile --data cluttered:5000 --epochs 30 --progressive 15 \
        --standalone-from mob.json     # another supernet, ranked against the same stand-alone runs
    .venv/bin/python examples/bench_supernet.py --spaces mobile --data cluttered:5000 --epochs 30 \
        --standalone-epochs 30 --standalone-seeds 0,1,2,3 --screen-epochs 1   # each trained as long as the supernet
    .venv/bin/python examples/bench_supernet.py --spaces early --epochs 30 --clip-grad 1   # LeNet-5 inside
    .venv/bin/python examples/bench_supernet.py --data cluttered:5000 --epochs 20 --standalone-epochs 12 \
        --device cuda --workers 4      # on a GPU, its workers sharing it

``--standalone-from`` reads the stand-alone accuracies of an earlier run's
``--json`` (the same space, data, seed and subnets drawn: the same networks)
and trains only the networks it lacks, so that training rules are compared
against one set of stand-alone runs. ``--standalone-log`` appends each
stand-alone run to a file as it finishes and reads back those of the same
settings, so that a reference too long for one sitting (``residual``
trained 20 epochs, two seeds, on a CPU) is trained over several stopped runs;
``--checkpoint DIR`` does the same for the supernet (it resumes from its last
epoch, and a finished one is only evaluated)::

    .venv/bin/python examples/bench_supernet.py --data cluttered:5000 --epochs 1 --standalone-epochs 20 \
        --standalone-log residual20.jsonl      # again until every run is in, then:
    .venv/bin/python examples/bench_supernet.py --data cluttered:5000 --epochs 20 --standalone-epochs 20 \
        --standalone-log residual20.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import scipy.stats
import torch

import nas
import nas.space as S
from nas.data import DataSet, load_data
from nas.io import zoo
from nas.predict.predictor import kendall_tau, kendall_tau_interval, tau_of_means
from nas.supernet import Supernet, SupernetRun, train_supernet
from nas.train import EvaluationFailed, choose_recipe, train

FIXES = {
    "residual": [
        "x.shape=3x32x32",
        "unit=basic_block",
        "expansion=1",
        "width=[16,32]",
        "conv1.out_channels=[16,32]",
        "conv1.kernel_size=3",
        "conv1.stride=1",
        "conv1.padding=1",
        "maxpool.present=false",
        "layer1.depth=[1,2,3]",
        "layer2.depth=[1,2,3]",
        "layer3.depth=[1,2,3]",
        "layer4.present=false",
    ],
    "mobile": [
        "x.shape=3x32x32",
        "head=linear",
        "exit_flow=false",
        "conv1.block=conv_bn_act",
        "conv1.conv_bn_act.out_channels=[8,16,24,32]",
        "conv1.conv_bn_act.padding=null",
        "conv2.present=false",
        "maxpool1.present=false",
        "unit1.present=true",
        "unit1.block=stage",
        "unit1.stage.depth=[1,2]",
        "unit1.stage.args.out_channels=[16,32,48,64]",
        "unit2.present=true",
        "unit2.block=stage",
        "unit2.stage.depth=[1,2,3]",
        "unit2.stage.args.out_channels=[32,48,64,96,128]",
        "unit3.present=true",
        "unit3.block=stage",
        "unit3.stage.depth=[1,2,3]",
        "unit3.stage.args.out_channels=[64,96,128,160,192,224,256]",
        "pool2.present=false",
        "pool3.present=false",
        "middle.present=false",
        "unit4.present=false",
        "unit5.present=false",
        "unit6.present=false",
        "unit7.present=false",
        "unit8.present=false",
        "pool4.present=false",
        "pool5.present=false",
        "pool6.present=false",
        "pool7.present=false",
        "dropout.present=false",
    ],
    # LeNet-5 and its neighbours: its layers, output and bounded activations; other widths, kernels,
    # poolings and convolutions. An RBF output after an unbounded (relu) activation diverges in a
    # supernet: its squared distances grow without bound, and so do its scores.
    "early": [
        "x.shape=1x32x32",
        "conv1.present=true",
        "act1.present=false",
        "pool1.present=true",
        "pool1_act.present=true",
        "conv2.present=true",
        "act2.present=true",
        "pool2.present=true",
        "pool2_act.present=true",
        "conv3.present=true",
        "act3.present=false",
        "pool3.present=false",
        "pool3_act.present=false",
        "fc1.present=true",
        "fc1_act.present=true",
        *(f"fc{i}{part}.present=false" for i in (2, 3, 4, 5) for part in ("", "_act")),
        "conv1.out_channels=[6,8,12,16]",
        "conv1.kernel_size=[3,5]",
        "conv1.padding=0",
        "conv1.bias=true",
        "conv1.norm=none",
        "conv2.conv_bn_act.out_channels=[16,24,32]",
        "conv2.conv_bn_act.kernel_size=[3,5]",
        "conv2.conv_bn_act.padding=0",
        "conv2.conv_bn_act.bias=true",
        "conv2.conv_bn_act.norm=none",
        "conv3.out_channels=[60,80,100,120]",
        "conv3.kernel_size=5",
        "conv3.padding=0",
        "conv3.bias=true",
        "conv3.norm=none",
        "fc1.out_features=[84,100,150,200]",
        "classifier.block=euclidean_rbf",
        *(
            f"{label}=[tanh,scaled_tanh]"
            for label in (
                "conv1.act",
                "pool1_act.block",
                "act2.block",
                "pool2_act.block",
                "conv2.conv_bn_act.act",
                "conv3.act",
                "fc1_act.block",
            )
        ),
    ],
}
"""What narrows each space for a run of minutes on two CPU cores."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def spread(supernet: Supernet, count: int, seed: int, draws: int) -> list[dict[str, Any]]:
    """``count`` distinct networks, an equal share from each MACs quantile of ``draws`` random ones."""
    rng = random.Random(seed)
    found: dict[str, dict[str, Any]] = {}
    for _ in range(draws):
        a = supernet.sample(rng)
        g = supernet.network(a)
        found.setdefault(g.hash, {"assignment": a, "macs": g.macs, "params": g.params, "hash": g.hash})
    ordered = sorted(found.values(), key=lambda r: r["macs"])
    if len(ordered) <= count:
        return ordered
    return [ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)]


_WORKER: dict[str, Any] = {}


def _start(space_name: str, fixes: list[str], data: str) -> None:
    torch.set_num_threads(1)
    _WORKER["space"] = S.narrowed(S.load_space(space_name), fixes)
    _WORKER["data"] = load_data(data)


def _standalone(job: dict[str, Any]) -> dict[str, Any]:
    data = _WORKER["data"]
    graph = nas.build(S.decode(_WORKER["space"], job["assignment"]), classes=data.classes)
    started = time.perf_counter()
    try:
        result = train(graph, data, recipe=job["recipe"], epochs=job["epochs"], seed=job["seed"], device=job["device"])
        accuracy: float | None = result.accuracy
    except EvaluationFailed:
        accuracy = None
    return {"hash": job["hash"], "seed": job["seed"], "accuracy": accuracy, "seconds": time.perf_counter() - started}


def screen(
    supernet: Supernet, run: SupernetRun, chosen: list[dict[str, Any]], data: DataSet, args: argparse.Namespace
) -> None:
    """Each subnet fine-tuned ``--screen-epochs`` from its inherited weights (``screened``, as
    ``nas supernet search --finalists`` screens) and, the control, trained as long from its own
    initialisation (``short``): their accuracies and seconds, put in each row."""
    for r in chosen:
        net = supernet.subnet(r["assignment"])
        supernet.recalibrate(net, run.feeds["calibrate"])
        inherited = supernet.weights(net)
        for key, weights in (("screened", inherited), ("short", None)):
            trained = train(
                net.graph, data, recipe=run.recipe, epochs=args.screen_epochs, seed=args.seed, weights=weights
            )
            r[key], r[f"{key}_s"] = trained.accuracy, trained.seconds
        log(f"  {r['hash'][:12]}: {r['screened']:.4f} fine-tuned, {r['short']:.4f} from its initialisation")


def validation_loss(supernet: Supernet, run: SupernetRun, assignment: dict[str, Any]) -> float:
    """The subnet's mean cross-entropy on the validation images, with the statistics :meth:`SupernetRun.evaluate`
    has just measured: a finer-grained score than accuracy, which counts only which images cross the boundary."""
    net = supernet.subnet(assignment)  # kept by the supernet since the evaluation
    net.module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in run.feeds["val"].epoch():
            total += float(torch.nn.functional.cross_entropy(supernet.forward(net, x), y, reduction="sum"))
            count += len(y)
    return total / max(1, count)


def fixed_points(supernet: Supernet, run: SupernetRun) -> list[dict[str, Any]]:
    """Zoo nets the narrowed space holds: assignment, MACs and inherited accuracy."""
    rows = []
    for name in S.fixed_points(supernet.space):
        assignment = S.encode(supernet.space, zoo.load(name))
        graph = supernet.network(assignment)
        rows.append(
            {"name": name, "assignment": assignment, "hash": graph.hash, "macs": graph.macs, "params": graph.params}
            | {"inherited": run.evaluate(assignment)}
        )
    return rows


def bench_space(name: str, args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(args.data)
    fixes = FIXES.get(name, [])
    space = S.narrowed(S.load_space(name), fixes)
    torch.manual_seed(args.seed)
    supernet = Supernet(space, data.classes).to(torch.device(args.device))
    run = SupernetRun(
        supernet,
        data,
        recipe=choose_recipe(data, args.recipe, clip_grad=args.clip_grad),
        epochs=args.epochs,
        rule=args.rule,
        random_subnets=args.random_subnets,
        progressive=args.progressive,
        seed=args.seed,
        distill=not args.no_distill,
    )
    largest, smallest = (supernet.network(a) for a in (supernet.largest(), supernet.smallest()))
    log(f"{name}: MACs {smallest.macs:,} .. {largest.macs:,}; training the supernet, {args.epochs} epochs")
    # One folder per schedule: resumed with more epochs, a supernet would stretch its schedule instead.
    folder = None if args.checkpoint is None else Path(args.checkpoint) / f"{name}-{args.epochs}"
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    history = train_supernet(run, data, directory=folder, on_epoch=lambda e: log(f"  {e}"))
    supernet_s = sum(e.seconds for e in history)  # the epochs' own: those of earlier runs too
    chosen = spread(supernet, args.subnets, args.seed, args.draws)
    evaluating = 0.0
    for r in chosen:
        started = time.perf_counter()
        r["inherited"] = run.evaluate(r["assignment"])
        evaluating += time.perf_counter() - started
        r["inherited_loss"] = validation_loss(supernet, run, r["assignment"])  # untimed
        loss = r["inherited_loss"]
        log(f"  inherited {r['hash'][:12]}: {r['inherited']:.4f} (loss {loss:.4f}) at {r['macs']:,} MACs")
    inherited_s = evaluating / len(chosen)
    if args.screen_epochs:
        screen(supernet, run, chosen, data, args)
    classics = fixed_points(supernet, run)
    seeds = args.standalone_seeds
    earlier = _earlier_runs(args, name)
    for h, logged in _logged_runs(args, name).items():
        earlier[h] = logged | earlier.get(h, {})
    networks = {r["hash"]: r for r in chosen + classics}  # a fixed point drawn among the subnets is trained once
    runs = {h: {seed: earlier[h][seed] for seed in seeds if seed in earlier.get(h, {})} for h in networks}
    jobs = [
        {
            "assignment": r["assignment"],
            "hash": h,
            "recipe": run.recipe,  # the same recipe, clipping included
            "epochs": args.standalone_epochs,
            "seed": seed,
            "device": args.device,
        }
        for seed in seeds  # one seed's runs all first: a run cut short has whole seeds
        for h, r in sorted(networks.items(), key=lambda item: -item[1]["macs"])
        if seed not in runs[h]
    ]
    log(f"  stand-alone: {len(jobs)} runs to train, {len(networks) * len(seeds) - len(jobs)} read")
    context = multiprocessing.get_context("spawn")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if jobs:
        with context.Pool(max(1, args.workers), initializer=_start, initargs=(name, fixes, args.data)) as pool:
            for i, out in enumerate(pool.imap_unordered(_standalone, jobs)):
                runs[out["hash"]][out["seed"]] = out["accuracy"]
                _log_run(args, name, out)
                seconds[out["hash"]] = seconds.get(out["hash"], 0.0) + out["seconds"]
                log(
                    f"  stand-alone {i + 1}/{len(jobs)}: {out['hash'][:12]} seed {out['seed']} "
                    f"{out['accuracy']} ({out['seconds']:.1f} s)"
                )
    standalone_wall = time.perf_counter() - started
    for r in chosen + classics:  # the mean over seeds, where every seed's run finished
        r["runs"] = dict(runs[r["hash"]])
        r["standalone"] = None if not r["runs"] or None in r["runs"].values() else statistics.fmean(r["runs"].values())
    both = [r for r in chosen if r["standalone"] is not None]
    pairs = [  # every two seeds' runs against each other
        kendall_tau([r["runs"][a] for r in both], [r["runs"][b] for r in both])
        for a, b in itertools.combinations(seeds, 2)
    ]
    between = statistics.fmean(pairs) if pairs else math.nan
    half = len(seeds) // 2  # with 4 seeds or more: the mean of half the seeds against the other half's
    split_half = (
        kendall_tau(
            [statistics.fmean(r["runs"][s] for s in seeds[:half]) for r in both],
            [statistics.fmean(r["runs"][s] for s in seeds[half:]) for r in both],
        )
        if half > 1
        else math.nan
    )
    xs, ys = [r["inherited"] for r in both], [r["standalone"] for r in both]
    tau, low, high = kendall_tau_interval(xs, ys, seed=args.seed)
    loss_tau, loss_low, loss_high = kendall_tau_interval([-r["inherited_loss"] for r in both], ys, seed=args.seed)
    screening = {}
    if args.screen_epochs:
        for key in ("screened", "short"):
            value, lo, hi = kendall_tau_interval([r[key] for r in both], ys, seed=args.seed)
            screening |= {f"{key}_tau": value, f"{key}_tau_low": lo, f"{key}_tau_high": hi}
            screening[f"{key}_s"] = statistics.fmean(r[f"{key}_s"] for r in both)
    return {
        "space": name,
        "fixes": fixes,
        "macs": [smallest.macs, largest.macs],
        "epochs": args.epochs,
        "history": [vars(e) for e in history],
        "supernet_s": supernet_s,
        "inherited_s": inherited_s,
        "standalone_s": sum(seconds.values()),
        "standalone_wall_s": standalone_wall,
        "n": len(both),
        "tau": tau,
        "tau_low": low,
        "tau_high": high,
        "standalone_tau": pairs[0] if pairs else math.nan,
        "between_seeds_tau": between,
        "tau_ceiling": tau_of_means(between, len(seeds)),
        "split_half_model": tau_of_means(between, half, len(seeds) - half) if half > 1 else math.nan,
        "split_half_tau": split_half,
        "rho": float(scipy.stats.spearmanr(xs, ys).statistic),
        "loss_tau": loss_tau,
        "loss_tau_low": loss_low,
        "loss_tau_high": loss_high,
        "macs_tau": kendall_tau([r["macs"] for r in both], ys),
        **screening,
        "inherited_mean": statistics.fmean(xs),
        "standalone_mean": statistics.fmean(ys),
        "fixed_points": [{k: v for k, v in r.items() if k != "assignment"} for r in classics],
        "subnets": [{k: v for k, v in r.items() if k != "assignment"} for r in chosen],
    }


def fail(text: str) -> NoReturn:
    """Stop the benchmark on bad input or an impossible setting: one line, exit code 2."""
    log(text)
    raise SystemExit(2)


def read_earlier(path: str, args: argparse.Namespace, settings: Sequence[str], what: str) -> dict[str, Any]:
    """An earlier run's ``--json`` whose ``settings`` are those of ``args``; else one line naming them, exit 2."""
    try:
        earlier = json.loads(Path(path).read_text())
        held = earlier["settings"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{path}: not the --json of an earlier run ({type(e).__name__}: {e}); give the file its --json wrote")
    different = [k for k in settings if held.get(k) != getattr(args, k)]
    if different:
        fail(f"{path}: {what} of another {', '.join(different)}; give the same settings")
    return earlier


STANDALONE_SETTINGS = ("data", "standalone_epochs", "recipe", "clip_grad", "seed")
"""What a stand-alone run's accuracy depends on, besides its network and seed: an earlier one is read only where
they are the same."""


def _earlier_runs(args: argparse.Namespace, space: str) -> dict[str, dict[int, float | None]]:
    """Stand-alone accuracies by network hash and seed from ``--standalone-from`` (an earlier ``--json``)."""
    if not args.standalone_from:
        return {}
    earlier = read_earlier(args.standalone_from, args, STANDALONE_SETTINGS, "stand-alone runs")
    return {
        r["hash"]: {int(seed): accuracy for seed, accuracy in r.get("runs", {}).items()}
        for row in earlier["rows"]
        if row["space"] == space
        for r in row["subnets"] + row.get("fixed_points", [])
        if isinstance(r, dict)
    }


def _logged_runs(args: argparse.Namespace, space: str) -> dict[str, dict[int, float | None]]:
    """Stand-alone accuracies by network hash and seed from ``--standalone-log``, those of this space and settings."""
    if not args.standalone_log or not Path(args.standalone_log).exists():
        return {}
    settings = {k: getattr(args, k) for k in STANDALONE_SETTINGS}
    runs: dict[str, dict[int, float | None]] = {}
    for number, line in enumerate(Path(args.standalone_log).read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
            if entry["space"] == space and entry["settings"] == settings:
                runs.setdefault(entry["hash"], {})[int(entry["seed"])] = entry["accuracy"]
        except (ValueError, KeyError, TypeError) as e:  # a line cut short by a run killed while writing it
            log(f"{args.standalone_log}:{number}: left out, not a whole stand-alone run ({type(e).__name__}: {e})")
    return runs


def _log_run(args: argparse.Namespace, space: str, out: dict[str, Any]) -> None:
    """Append a finished stand-alone run to ``--standalone-log``, so that a benchmark stopped half-way keeps it."""
    if args.standalone_log:
        entry = {"space": space, "settings": {k: getattr(args, k) for k in STANDALONE_SETTINGS}, **out}
        with open(args.standalone_log, "a+b") as f:
            if f.seek(0, os.SEEK_END):
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # after a line cut short: this run on a line of its own (writes append)
            f.write(json.dumps(entry).encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="residual")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--recipe", default="digits")
    parser.add_argument("--epochs", type=int, default=10, help="supernet training epochs")
    parser.add_argument("--rule", default="sandwich", help="sandwich or uniform (nas supernet train --rule)")
    parser.add_argument("--random-subnets", type=int, default=2, help="random subnets per step (sandwich)")
    parser.add_argument(
        "--no-distill", action="store_true", help="the sandwich's other subnets learn the labels (nas supernet train)"
    )
    parser.add_argument("--clip-grad", type=float, help="gradient norm clipped to, supernet and stand-alone alike")
    parser.add_argument(
        "--progressive", type=int, default=0, help="progressive-shrinking epochs (nas supernet train --progressive)"
    )
    parser.add_argument("--subnets", type=int, default=30)
    parser.add_argument("--draws", type=int, default=300, help="random networks the subnets are chosen from")
    parser.add_argument("--standalone-epochs", type=int, default=4)
    parser.add_argument(
        "--standalone-seeds", default="0,1", help="seeds of the stand-alone runs (their mean is compared)"
    )
    parser.add_argument(
        "--screen-epochs",
        type=int,
        default=0,
        help="also rank subnets fine-tuned this many epochs from inherited weights, and trained as long from scratch",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--standalone-from", metavar="JSON", help="stand-alone accuracies of an earlier --json run")
    parser.add_argument(
        "--standalone-log",
        metavar="JSONL",
        help="append each stand-alone run to JSONL as it finishes, and read those of the same settings: a long "
        "reference trained over several stopped runs",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="checkpoint each space's supernet after every epoch in DIR/SPACE-EPOCHS and resume from it: a "
        "supernet trained over several stopped runs",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of the supernet (more than one thrashes on a shared CPU)"
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda[:N]: the supernet and every stand-alone run (workers share it)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--goal", type=float, default=0.8)
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args()
    if args.screen_epochs < 0:
        fail("--screen-epochs must be 0 (no screening) or more")
    args.standalone_seeds = [int(x) for x in args.standalone_seeds.split(",")]
    torch.set_num_threads(args.threads)
    rows = [bench_space(s.strip(), args) for s in args.spaces.split(",") if s.strip()]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2, default=str)
    for r in rows:
        print(f"space {r['space']} narrowed by: {' '.join(r['fixes'])}")
        print(
            f"  rule {args.rule}{' on the labels' if args.no_distill else ''}, {args.random_subnets} random "
            f"subnets per step, recipe {args.recipe}"
            f"{'' if args.clip_grad is None else f' (gradients clipped to {args.clip_grad})'}, "
            f"{args.progressive} progressive epochs, data {args.data}"
        )
        print(
            f"  MACs {r['macs'][0]:,} .. {r['macs'][1]:,}; supernet {r['epochs']} epochs in {r['supernet_s']:.0f} s "
            f"(largest {r['history'][-1]['largest']:.4f}, smallest {r['history'][-1]['smallest']:.4f})"
        )
        print(
            f"  {r['n']} subnets: inherited accuracy mean {r['inherited_mean']:.4f} ({r['inherited_s']:.2f} s each), "
            f"stand-alone ({args.standalone_epochs} epochs) mean {r['standalone_mean']:.4f} "
            f"({r['standalone_s']:.0f} s of training, {r['standalone_wall_s']:.0f} s wall)"
        )
        print(
            f"  Kendall tau-b {r['tau']:+.3f} [{r['tau_low']:+.2f}, {r['tau_high']:+.2f}], Spearman {r['rho']:+.3f}; "
            f"goal tau >= {args.goal}: {'yes' if r['tau'] >= args.goal else 'NO'}"
        )
        if len(args.standalone_seeds) > 1:
            seeds = len(args.standalone_seeds)
            print(
                f"  stand-alone against itself (seed {args.standalone_seeds[0]} vs {args.standalone_seeds[1]}): "
                f"Kendall tau-b {r['standalone_tau']:+.3f}"
                + (f" ({r['between_seeds_tau']:+.3f} over every two of the {seeds} seeds)" if seeds > 2 else "")
            )
            print(
                f"  the most any evaluator can reach against the mean of {seeds} seeds: Kendall tau-b "
                f"{r['tau_ceiling']:+.3f} (modelled: each run's noise Gaussian and alike for every network)"
            )
        else:
            print("  one stand-alone seed: no ceiling measured (--standalone-seeds 0,1 measures it)")
        if not math.isnan(r.get("split_half_tau", math.nan)):
            half = len(args.standalone_seeds) // 2
            rest = len(args.standalone_seeds) - half
            print(
                f"  the mean of {half} stand-alone seeds against the mean of the other {rest}: "
                f"Kendall tau-b {r['split_half_tau']:+.3f}, how well a mean of that many runs orders the subnets "
                f"(the noise model above says {r['split_half_model']:+.3f})"
            )
        print(
            f"  inherited validation loss (lower first) against stand-alone: Kendall tau-b {r['loss_tau']:+.3f} "
            f"[{r['loss_tau_low']:+.2f}, {r['loss_tau_high']:+.2f}]"
        )
        print(f"  MACs alone against stand-alone: Kendall tau-b {r['macs_tau']:+.3f}, what any evaluator must beat")
        if args.screen_epochs:
            for key, what in (("screened", "fine-tuned from inherited weights"), ("short", "from scratch")):
                print(
                    f"  {args.screen_epochs} epochs {what} ({r[key + '_s']:.1f} s each) against stand-alone: "
                    f"Kendall tau-b {r[key + '_tau']:+.3f} [{r[key + '_tau_low']:+.2f}, {r[key + '_tau_high']:+.2f}]"
                )
        for c in r["fixed_points"]:
            alone = "failed" if c["standalone"] is None else f"{c['standalone']:.4f}"
            print(
                f"  fixed point {c['name']}: inherited accuracy {c['inherited']:.4f}, stand-alone {alone}, "
                f"at {c['macs']:,} MACs"
            )


if __name__ == "__main__":
    main()
