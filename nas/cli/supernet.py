"""``nas supernet train``, ``search`` and ``export``: weight sharing over a space.

``train`` trains one supernet for a space (decisions that cannot share
weights fixed with ``--fix``) and writes its directory; ``search`` runs the
same Optuna study as ``nas search`` over it, with accuracy from inherited
weights instead of training, for one or several latency budgets and
latency tables (one study each), then fine-tunes and exports each best
network (with ``--finalists K``: the best of the K most accurate after a
short fine-tune each, :mod:`nas.search.finalists`); ``export`` writes one
network the user names (a zoo net the space holds, or some decisions fixed)
with its inherited weights, as ``nas export`` writes any model.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import torch
import typer

import nas
import nas.export
import nas.search
from nas.cli.console import (
    AmpOption,
    BatchOption,
    CardLatencyOption,
    ClipGradOption,
    DataOption,
    DataWorkersOption,
    DeviceOption,
    FixOption,
    ForceOption,
    FormatsOption,
    Json,
    PrecisionOption,
    RecipeOption,
    ThreadsOption,
    backend_list,
)
from nas.cli.export import print_export
from nas.cli.progress import progress_bar
from nas.cli.root import _SETTINGS
from nas.cli.search import SearchDisplay
from nas.data import DataSet, load_data
from nas.ir.errors import NASError
from nas.ir.values import plain
from nas.predict import Predictor
from nas.search.finalists import FINALISTS, Finetuned, Outcome, finetune_once
from nas.search.record import TrialRecord
from nas.search.results import Spread, spread
from nas.space import Assignment, encode, load_space, narrowed, parse_fixes
from nas.supernet import (
    RULES,
    CostRange,
    EpochLog,
    Supernet,
    SupernetInfo,
    SupernetRun,
    load_supernet,
    read_info,
    save_supernet,
    train_supernet,
)
from nas.supernet.extract import choose, extract, supernet_model
from nas.supernet.store import META
from nas.train import EvaluationFailed, choose_recipe, precision_for, resolve_device, train

app = typer.Typer(
    name="supernet",
    help="Weight sharing: train a supernet per space, then search it or export its networks.",
    **_SETTINGS,
)


@app.command("train")
def train_command(
    output: Annotated[str, typer.Option("-o", "--output", help="The supernet's directory.")] = "",
    space_name: Annotated[str, typer.Option("--space", help="A shipped space name or a space file.")] = "early",
    data: DataOption = "digits",
    fix: FixOption = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 10,
    rule: Annotated[str, typer.Option("--rule", help="sandwich (largest, smallest, random) or uniform.")] = "sandwich",
    random_subnets: Annotated[int, typer.Option("--random-subnets", help="Random subnets per step (sandwich).")] = 2,
    distill: Annotated[
        bool,
        typer.Option(
            "--distill/--no-distill",
            help="The sandwich's other subnets learn the largest's predictions (in-place distillation), or the labels.",
        ),
    ] = True,
    progressive: Annotated[
        int,
        typer.Option(
            "--progressive",
            help="Epochs over which the subnets drawn widen from the largest network to the whole space "
            "(progressive shrinking; 0: the whole space from the start).",
        ),
    ] = 0,
    recipe: RecipeOption = None,
    clip_grad: ClipGradOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights and of the subnets drawn.")] = 0,
    device: DeviceOption = None,
    amp: AmpOption = None,
    data_workers: DataWorkersOption = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="A trained network of the space, with its weights (a directory 'nas import', 'nas train' or "
            "'nas export' wrote): the bank starts from it.",
        ),
    ] = None,
    latency_range: Annotated[
        str | None,
        typer.Option(
            "--latency-range-ms",
            help="Train only the networks whose latency --latency-table predicts in LOW:HIGH ms (or 0 to HIGH): "
            "the budgets the supernet will serve.",
        ),
    ] = None,
    latency_table: Annotated[
        str | None, typer.Option("--latency-table", help="The table that predicts --latency-range-ms.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Train one supernet for a space; run it again after an interruption and it resumes."""
    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if epochs < 1 or random_subnets < 0:
        raise NASError("--epochs must be at least 1 and --random-subnets 0 or more", field="epochs")
    if rule not in RULES:
        raise NASError(f"unknown rule '{rule}'", field="rule", hint=f"use {' or '.join(RULES)}")
    if not 0 <= progressive < epochs:
        raise NASError(
            f"--progressive must be fewer than the {epochs} epochs, got {progressive}",
            field="progressive",
            hint=f"give 0 (off) to {epochs - 1}, e.g. {epochs // 2}",
        )
    within = _cost_range(latency_range, latency_table)
    if within is not None and progressive:
        raise NASError(
            "--progressive widens from the largest network, which --latency-range-ms leaves out",
            field="progressive",
            hint="give one of them",
        )
    runs_on = resolve_device(device)
    precision = precision_for(runs_on, amp=amp)  # --amp on the CPU refused before any work
    directory = Path(output)
    space = load_space(space_name)
    assert space.file is not None  # a loaded space knows its file
    fixed = list(fix or [])
    split = load_data(data)
    chosen = choose_recipe(split, recipe, clip_grad=clip_grad)
    info = SupernetInfo(
        space=space.name,
        fixed=fixed,
        data=split.name,
        classes=split.classes,
        training={"recipe": chosen.name, "rule": rule, "random_subnets": random_subnets, "epochs": epochs}
        | ({"progressive": progressive} if progressive else {})
        | ({"distill": False} if not distill else {})
        | ({"clip_grad": chosen.clip_grad} if chosen.clip_grad is not None else {})
        | ({"amp": precision.plain()["amp"]} if precision.dtype is not None else {})
        | ({"init": init} if init is not None else {})
        | ({"range": within.plain()} if within is not None else {}),
    )
    extended = _check_same(directory, info)
    supernet = Supernet(narrowed(space, fixed), split.classes).to(runs_on)
    initial = None if init is None else _initial(init, supernet, fixed)
    run = SupernetRun(
        supernet,
        split,
        recipe=chosen,
        epochs=epochs,
        rule=rule,
        random_subnets=random_subnets,
        progressive=progressive,
        seed=seed,
        precision=precision,
        workers=data_workers,
        initial=initial,
        within=within,
        distill=distill,
    )
    try:
        run.ends()  # a range that holds no network is refused before anything is written
    except NASError as e:
        e.field = "latency-range-ms"
        raise e from None
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META).write_text(json.dumps(info.__dict__, indent=2) + "\n")
    print(
        f"training a supernet of '{space.name}' on {split.name}: {epochs} epochs"
        f"{f' ({progressive} progressive)' if progressive else ''}, rule {rule}, recipe {chosen.name}, "
        f"{run.steps} steps per epoch"
        + (f"; planned for {extended} epochs before, its schedule stretched to {epochs}" if extended else "")
        + (f"; the bank starts from {init}" if init is not None else "")
        + (f"; only networks of {within.describe()} on {within.source}" if within is not None else ""),
        file=sys.stderr,
    )
    progress = progress_bar("status")
    task = progress.add_task("epoch 1", total=epochs * run.steps, status="")

    def on_step(epoch: int, step: int, loss: float) -> None:
        progress.update(task, completed=epoch * run.steps + step + 1, description=f"epoch {epoch + 1}/{epochs}")
        progress.update(task, status=f"loss {loss:.4f}")

    ends = ("largest", "smallest") if within is None else ("most MACs in range", "fewest")

    def on_epoch(e: EpochLog) -> None:
        progress.console.print(
            f"epoch {e.epoch}/{epochs}: loss {e.loss:.4f}, accuracy {ends[0]} {e.largest:.4f}, "
            f"{ends[1]} {e.smallest:.4f} ({e.seconds:.0f} s)",
            highlight=False,
        )

    started = time.perf_counter()
    progress.start()
    try:
        log = train_supernet(run, split, directory=directory, on_step=on_step, on_epoch=on_epoch)
    except EvaluationFailed as e:
        raise NASError(
            f"supernet training failed: {e}", hint="clip the gradients (--clip-grad 1) or lower the recipe's lr"
        ) from None
    finally:
        progress.stop()
    if run.started is not None:
        fresh = run.started.fresh
        print(
            f"the bank started from {init}: {len(run.started.taken)} of its parameters"
            + (f"; {len(fresh)} kept their initialisation (other shapes: {', '.join(fresh)})" if fresh else ""),
            file=sys.stderr,
        )
    save_supernet(directory, supernet, info, Path(space.file))
    seconds = time.perf_counter() - started
    if as_json:
        entries: dict[str, object] = {"bank_entries": len(supernet.bank.names), "seconds": seconds}
        if run.started is not None:
            entries["init"] = {"from": init, "taken": run.started.taken, "fresh": run.started.fresh}
        print(json.dumps({"directory": str(directory), **entries, "epochs": [vars(e) for e in log]}, indent=2))
        return
    print(
        f"supernet of {len(supernet.bank.names)} bank entries in {directory} ({seconds:.0f} s); "
        f"{ends[0]} {log[-1].largest:.4f}, {ends[1]} {log[-1].smallest:.4f}"
    )
    print(f"search it: nas supernet search {directory} --latency-budget-ms X")


def _cost_range(text: str | None, table: str | None) -> CostRange | None:
    """``--latency-range-ms`` as the networks a run trains: those whose latency ``table`` predicts in it.

    Raises:
        NASError: a range that is not LOW:HIGH or HIGH in ms, one without a table (or a table without one),
            a table that does not load.
    """
    if text is None:
        if table is not None:
            raise NASError(
                "--latency-table without --latency-range-ms", field="latency-table", hint="give the range it predicts"
            )
        return None
    if table is None:
        raise NASError(
            "--latency-range-ms needs the table that predicts it",
            field="latency-range-ms",
            hint="give --latency-table TABLE (nas latency profile makes one)",
        )
    low, _, high = text.rpartition(":")
    try:
        bounds = float(low or 0), float(high)
    except ValueError:
        raise NASError(
            f"--latency-range-ms '{text}' is not LOW:HIGH", field="latency-range-ms", hint="e.g. 0.2:0.7, or 0.7"
        ) from None
    predictor = Predictor(table)  # a bad table fails here, in one line
    try:
        return CostRange(predictor.predict, *bounds, source=table)
    except NASError as e:
        e.field = "latency-range-ms"
        raise e from None


def _initial(source: str, supernet: Supernet, fixed: list[str]) -> tuple[Assignment, dict[str, torch.Tensor]]:
    """The assignment and weights of ``--init``'s network in the supernet's space.

    Raises:
        NASError: not a network directory with weights, or a network the
            space (as fixed) does not hold.
    """
    model = nas.export.from_source(source)
    if model.weights is None:
        raise NASError(f"'{source}' holds no weights", field="init", hint="export it with them: --format yaml,weights")
    try:
        assignment = encode(supernet.space, model.graph)
    except NASError as e:
        where = " as fixed" if fixed else ""
        raise NASError(
            f"'{source}' is not a network of the space{where}: {e.message}",
            field="init",
            hint=f"write the space around it: nas space --around {source} -o SPACE.yaml, then --space SPACE.yaml",
        ) from None
    return assignment, dict(model.weights)


def _check_same(directory: Path, info: SupernetInfo) -> int | None:
    """Refuse to resume, or overwrite, a supernet directory made for something
    else; the epochs it was planned for where it is the same supernet given
    more epochs now (training goes on), ``None`` where there is none.

    Raises:
        NASError: a supernet of another space, data or training, or one
            planned for more epochs than asked now.
    """
    if not (directory / META).is_file():
        return None
    stored = read_info(directory)
    planned = stored.training.get("epochs")
    asked = info.training["epochs"]
    if isinstance(planned, int) and planned > asked:
        raise NASError(
            f"the directory holds a supernet of {planned} epochs, not {asked}",
            file=str(directory),
            hint=f"give --epochs {planned} to resume it, more to train it further, or another -o",
        )
    for key in ("space", "fixed", "data", "training"):
        held = getattr(stored, key)
        if key == "training" and isinstance(planned, int):
            held = {**held, "epochs": asked}  # more epochs: the same supernet, trained further
        if held != getattr(info, key):
            raise NASError(
                f"the directory holds a supernet of another {key} ({getattr(stored, key)!r})",
                file=str(directory),
                hint="give the same settings to resume it, or another -o",
            )
    return planned if isinstance(planned, int) and planned < asked else None


@app.command("search")
def search_command(
    directory: Annotated[str, typer.Argument(help="A directory that 'nas supernet train' wrote.")],
    budgets: Annotated[
        list[float], typer.Option("--latency-budget-ms", help="Latency limit, ms; repeat it to specialise to several.")
    ],
    tables: Annotated[
        list[str] | None,
        typer.Option("--latency-table", help="Predict latency from this table; repeat it for several devices."),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="torch, onnxruntime, cuda, tensorrt or auto.")] = "torch",
    batch: BatchOption = None,
    precision: PrecisionOption = None,
    threads: ThreadsOption = 1,
    objective: Annotated[
        str, typer.Option("--objective", help="accuracy: with the inherited weights, statistics recalibrated.")
    ] = "accuracy",
    trials: Annotated[int, typer.Option("--trials", help="Trials per budget and table.")] = 100,
    sampler: Annotated[str, typer.Option("--sampler", help="evolution, tpe, nsga2 or random.")] = "evolution",
    storage: Annotated[str, typer.Option("--storage", help="Optuna storage URL.")] = "sqlite:///runs/nas.db",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler.")] = 0,
    finetune: Annotated[int, typer.Option("--finetune-epochs", help="Epochs of fine-tuning of each best network.")] = 2,
    finalists: Annotated[
        int,
        typer.Option(
            "--finalists",
            help="The most accurate networks (the costliest first among those the noise ties with the best), "
            "screened by a short fine-tune; 1: no screening.",
        ),
    ] = FINALISTS,
    screen: Annotated[
        int, typer.Option("--screen-epochs", help="Epochs of fine-tuning that screen the finalists.")
    ] = 1,
    runs: Annotated[str, typer.Option("-o", "--runs", help="Folder for weights and the best models.")] = "runs",
    device: DeviceOption = None,
    data_workers: DataWorkersOption = None,
    as_json: Json = False,
) -> None:
    """Search a trained supernet under each latency budget (and table), in seconds per budget."""
    info = read_info(Path(directory))
    runs_on = resolve_device(device)  # once: the evaluations and the fine-tuning share it
    if finetune < 0:
        raise NASError("--finetune-epochs must be 0 or more", field="finetune-epochs")
    if finalists < 1 or screen < 1:
        raise NASError(
            "--finalists and --screen-epochs must be 1 or more", field="finalists" if finalists < 1 else "screen-epochs"
        )
    split = load_data(info.data)
    say = _say(as_json)
    targets: list[dict[str, object]] = []
    for table in tables or [None]:
        for budget in budgets:
            beyond = _beyond_range(info, budget)
            if beyond is not None:
                print(beyond, file=sys.stderr)
            name = f"{Path(directory).resolve().name}-{budget:g}ms" + (f"-{Path(table).stem}" if table else "")
            config = nas.search.SearchConfig(
                supernet=directory,
                trials=trials,
                latency_budget_ms=budget,
                backend=backend,
                batch=batch,
                precision=precision,
                threads=threads,
                latency_table=table,
                objective=objective,
                sampler=sampler,
                storage=storage,
                study=name,
                seed=seed,
                runs=runs,
                prune=False,
                device=str(runs_on),
                data_workers=data_workers,
            )
            display = SearchDisplay(budget, sys.stderr, each_trial=False)  # trials by the hundred: a bar only
            started = time.perf_counter()
            try:
                result = nas.search.run_search(config, data=split, on_start=display.on_start, on_trial=display.on_trial)
            finally:
                display.stop()
            seconds = time.perf_counter() - started
            where = f"{budget:g} ms" + (f" on {Path(table).stem}" if table else f" ({backend})")
            target: dict[str, object] = {
                "latency_budget_ms": budget,
                "latency_table": table,
                "backend": None if table else backend,
                "study": result.study,
                "trials": result.tally.finished,
                "seconds": seconds,
            }
            targets.append(target)
            if result.best is None or result.best_dir is None:
                say(f"{where}: {result.tally.finished} trials ({seconds:.1f} s), no best: {result.best_error}")
                target["best"] = None
                continue
            best = TrialRecord.of(result.best)
            target["best"] = {
                "trial": result.best.number,
                "inherited": result.best.values[0],
                "latency_ms": best.latency_ms,
                "params": best.params,
                "directory": str(result.best_dir),
            }
            say(
                f"{where}: {result.tally.finished} trials ({seconds:.1f} s); best trial {result.best.number}, "
                f"inherited accuracy {result.best.values[0]:.4f} at {best.latency_ms:.3f} ms, {best.params:,} params"
            )
            study = nas.search.load_study(config.storage, result.study)
            apart = spread(study, len(split.val))
            if apart is not None:
                target["spread"] = apart.to_dict()
                say(
                    f"  {apart.tied} of {apart.networks} networks score within the noise of the best "
                    f"(+-{apart.noise:.4f})"
                )
                if not apart.told_apart:
                    print(_untold(where, apart, len(split.val)), file=sys.stderr)
            if finetune:
                outcome = finetune_once(
                    study,
                    split,
                    partial(
                        _export,
                        target=result.best_dir.with_name("finetuned"),
                        directory=directory,
                        info=info,
                        split=split,
                        study=result.study,
                        seed=seed,
                    ),
                    count=finalists,
                    screen_epochs=screen,
                    epochs=finetune,
                    recipe=info.training.get("recipe"),
                    seed=seed,
                    storage=config.storage,
                    device=runs_on,
                    workers=data_workers,
                )
                target["finetuned"] = _report_finetuned(outcome, say)
    if as_json:
        print(json.dumps({"supernet": directory, "targets": targets}, indent=2))


def _beyond_range(info: SupernetInfo, budget: float) -> str | None:
    """The warning for a budget above the latency range the supernet was trained in, if it is."""
    trained = info.training.get("range")
    if not isinstance(trained, dict) or budget <= trained["high"]:
        return None
    return (
        f"warning: the supernet trained only networks of {trained['low']:g} to {trained['high']:g} ms "
        f"({trained['source']}); under {budget:g} ms the heavier networks inherit weights not trained for them: "
        f"train one with --latency-range-ms {trained['low']:g}:{budget:g}"
    )


def _untold(where: str, apart: Spread, images: int) -> str:
    """The warning for a supernet whose networks all inherit about the same accuracy."""
    return (
        f"warning: {where}: the supernet does not tell its networks apart: the best of {apart.networks} "
        f"inherits {apart.best:.4f}, the median {apart.median:.4f}, within the noise of {images} validation images "
        f"(+-{apart.noise:.4f}); the networks kept are the noise's choice: train it further (its 'nas supernet train' "
        "again with more --epochs goes on)"
    )


def _say(as_json: bool) -> Callable[[str], None]:
    """Report lines on standard output, or on standard error where standard output is the JSON."""
    return partial(print, file=sys.stderr if as_json else sys.stdout)


def _report_finetuned(outcome: Outcome, say: Callable[[str], None]) -> dict[str, object] | None:
    """Say what a search's fine-tuning kept (or that another worker fine-tunes); its record for the JSON report."""
    record = outcome.record
    if record is None:
        say(f"  fine-tuning left to another worker: {outcome.elsewhere}")
        return None
    for number, accuracy in record["screened"].items():
        say(f"  finalist trial {number}: {accuracy:.4f} after {record['screen_epochs']} epochs of fine-tuning")
    before = " (fine-tuned before, with the same leaders and settings)" if outcome.reused else ""
    say(
        f"  fine-tuned trial {record['trial']} {record['epochs']} epochs: "
        f"accuracy {record['accuracy']:.4f}, exported to {record['directory']}{before}"
    )
    return {**record, "reused": outcome.reused}


def _export(
    kept: Finetuned, *, target: Path, directory: str, info: SupernetInfo, split: DataSet, study: str, seed: int
) -> Path:
    """Export the fine-tuned network to ``target`` with a card that names the
    supernet and its trial; the folder written."""
    model = supernet_model(
        kept.model.graph,
        kept.trial.values[0],
        directory=directory,
        info=info,
        data=split,
        source={"study": study, "trial": kept.trial.number},
        finetuned=kept.result,
        seed=seed,
        accuracy={"screened": {str(n): a for n, a in kept.screened.items()}} if kept.screened else None,
    )
    nas.export.export(model, target, "yaml,weights", overwrite=True)
    return target


@app.command("export")
def export_command(
    directory: Annotated[str, typer.Argument(help="A directory that 'nas supernet train' wrote.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The directory to write.")] = "",
    net: Annotated[
        str | None, typer.Option("--net", help="A zoo net the supernet's space holds (its fixed points).")
    ] = None,
    fix: FixOption = None,
    smallest: Annotated[
        bool, typer.Option("--smallest", help="The network of the fewest MACs (with --fix) instead of the most.")
    ] = False,
    finetune: Annotated[
        int, typer.Option("--finetune-epochs", help="Epochs of fine-tuning from the inherited weights (0: none).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fine-tuning.")] = 0,
    formats: FormatsOption = "yaml,weights,pt2,torchscript,onnx",
    latency: CardLatencyOption = "torch",
    force: ForceOption = False,
    device: DeviceOption = None,
    data_workers: DataWorkersOption = None,
    as_json: Json = False,
) -> None:
    """Export one network of a trained supernet with its inherited weights (or fine-tuned from them).

    The network is a zoo net the space holds (--net), or the largest one with
    the decisions --fix sets (--smallest: the smallest); with neither, the
    largest of all. Its batch-norm statistics are measured again on the
    supernet's training data and its accuracy on the validation part.
    """
    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if finetune < 0:
        raise NASError("--finetune-epochs must be 0 or more", field="finetune-epochs")
    if net is not None and smallest:
        raise NASError("a zoo net has its own size", field="smallest", hint="drop --smallest or --net")
    nas.export.check_target(Path(output), overwrite=force)  # before minutes of evaluation and fine-tuning
    runs_on = resolve_device(device)
    supernet, info = load_supernet(Path(directory))
    supernet.to(runs_on)
    split = load_data(info.data)
    values = parse_fixes(supernet.space, fix or [])
    assignment = choose(supernet.space, net=net, values=values, largest=not smallest)
    recipe = info.training.get("recipe")
    taken = extract(supernet, assignment, split, recipe=recipe, workers=data_workers)
    print(f"inherited accuracy {taken.inherited:.4f} ({taken.graph.params:,} params)", file=sys.stderr)
    trained = None
    if finetune:
        trained = train(
            taken.graph,
            split,
            recipe=recipe,
            epochs=finetune,
            seed=seed,
            weights=taken.weights,
            device=runs_on,
            workers=data_workers,
        )
        print(f"fine-tuned {finetune} epochs: accuracy {trained.accuracy:.4f}", file=sys.stderr)
    which = f"zoo:{net}" if net else "smallest" if smallest else "largest"
    model = supernet_model(
        taken.graph,
        taken.inherited,
        directory=directory,
        info=info,
        data=split,
        source={"network": which, "fixed": list(fix or []), "assignment": plain(assignment)},
        weights=taken.weights,
        finetuned=trained,
        seed=seed,
    )
    backends = backend_list(latency)
    exported = nas.export.export(model, output, formats, overwrite=force, latency=backends)
    raise typer.Exit(print_export(exported, as_json))


command = typer.main.get_command(app)
