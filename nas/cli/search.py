"""``nas search``: an Optuna study of a space, with a progress display."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any, TextIO

import optuna
import typer
from optuna.trial import FrozenTrial, TrialState

import nas.search
from nas.cli.console import (
    AmpOption,
    AugmentOption,
    BatchOption,
    ChannelsLastOption,
    DataOption,
    DataWorkersOption,
    DeviceOption,
    FixOption,
    Json,
    PrecisionOption,
    RecipeOption,
    ThreadsOption,
    augment_choice,
)
from nas.cli.progress import progress_bar
from nas.cli.root import as_command
from nas.search.record import TrialRecord
from nas.search.results import tally


def search(
    space_name: Annotated[str, typer.Option("--space", help="A shipped space name or a space file.")] = "early",
    data: DataOption = "digits",
    fix: FixOption = None,
    trials: Annotated[int, typer.Option("--trials", help="Finished trials the study should have in all.")] = 16,
    budget: Annotated[float, typer.Option("--latency-budget-ms", help="Hard latency limit per network, ms.")] = 1.0,
    backend: Annotated[str, typer.Option("--backend", help="torch, onnxruntime, cuda, tensorrt or auto.")] = "torch",
    batch: BatchOption = None,
    precision: PrecisionOption = None,
    threads: ThreadsOption = 1,
    latency_table: Annotated[
        str | None, typer.Option("--latency-table", help="Predict latency from this table instead of measuring.")
    ] = None,
    objective: Annotated[
        str, typer.Option("--objective", help="accuracy (short training) or proxy:naswot|synflow|grad_norm.")
    ] = "accuracy",
    sampler: Annotated[str, typer.Option("--sampler", help="evolution, tpe, nsga2 or random.")] = "evolution",
    storage: Annotated[str, typer.Option("--storage", help="Optuna storage URL.")] = "sqlite:///runs/nas.db",
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default SPACE-DATA); an existing one resumes.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler and the weights.")] = 0,
    trial_timeout: Annotated[float, typer.Option("--trial-timeout", help="Seconds of training per trial.")] = 120.0,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs per trial.")] = 2,
    runs: Annotated[str, typer.Option("-o", "--runs", help="Folder for weights and the best model.")] = "runs",
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Median stopping rule between epochs.")] = True,
    recipe: RecipeOption = None,
    augment: AugmentOption = None,
    device: DeviceOption = None,
    amp: AmpOption = None,
    channels_last: ChannelsLastOption = None,
    data_workers: DataWorkersOption = None,
    as_json: Json = False,
) -> None:
    """Search a space for accurate networks within a latency budget (an Optuna study).

    Zoo nets of the space that meet the budget are tried first; then the
    sampler mutates outward. Results: 'nas results'.
    """
    config = nas.search.SearchConfig(
        space=space_name,
        fix=tuple(fix or ()),
        data=data,
        trials=trials,
        latency_budget_ms=budget,
        backend=backend,
        batch=batch,
        precision=precision,
        threads=threads,
        latency_table=latency_table,
        objective=objective,
        sampler=sampler,
        storage=storage,
        study=study,
        seed=seed,
        trial_timeout=trial_timeout,
        epochs=epochs,
        runs=runs,
        prune=prune,
        recipe=recipe,
        augment=augment_choice(augment),
        device=device,
        amp=amp,
        channels_last=channels_last,
        data_workers=data_workers,
    )
    display = SearchDisplay(budget, sys.stderr if as_json else sys.stdout)
    started = time.perf_counter()
    try:
        result = nas.search.run_search(config, on_start=display.on_start, on_trial=display.on_trial)
    finally:
        display.stop()
    seconds = time.perf_counter() - started
    if as_json:
        print(json.dumps(_result_json(result, seconds), indent=2, default=str))
    else:
        _print_result(result, config, seconds)


def _where(cfg: nas.search.SearchConfig) -> str:
    """Where the budget's latencies come from: the backend measured, or the latency table."""
    if cfg.latency_table is not None:
        return f"predicted from {cfg.latency_table} (batch {cfg.batch}, {cfg.precision})"
    return f"on {cfg.backend} (batch {cfg.batch}, {cfg.precision})"


class SearchDisplay:
    """The study's line, then a progress bar with the counts of outcomes and
    (``each_trial``) one line per finished trial above it."""

    def __init__(self, budget: float, out: TextIO, *, each_trial: bool = True) -> None:
        self.budget = budget
        self.out = out
        self.each_trial = each_trial
        self.progress = progress_bar("counts")
        self.task: int | None = None

    def counts(self, study: optuna.Study) -> tuple[int, str]:
        t = tally(study)
        best = "-" if t.best is None else f"{t.best:.4f}"
        return t.finished, (
            f"feasible {t.feasible}  infeasible {t.infeasible}  pruned {t.pruned}  failed {t.failed}  "
            f"best {best}  budget {self.budget:g} ms"
        )

    def on_start(self, study: optuna.Study, cfg: nas.search.SearchConfig) -> None:
        done, text = self.counts(study)
        print(
            f"study '{study.study_name}' in {cfg.storage}: space {cfg.space}, data {cfg.data}, objective "
            f"{cfg.objective}, sampler {cfg.sampler}, budget {cfg.latency_budget_ms:g} ms {_where(cfg)}"
            + (f" (resumed with {done} trials done)" if done else ""),
            file=self.out,
            flush=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("trials", total=cfg.trials, completed=done, counts=text)

    def on_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        done, text = self.counts(study)
        if self.each_trial:
            self.progress.console.print(_trial_line(trial), highlight=False)
        if self.task is not None:
            self.progress.update(self.task, completed=done, counts=text)

    def stop(self) -> None:
        if self.task is not None:  # stopping a display that never started prints a stray line
            self.progress.stop()


def _trial_line(trial: FrozenTrial) -> str:
    """One line per finished trial: origin, outcome, objective, latency."""
    r = TrialRecord.of(trial)
    head = f"trial {trial.number:>3} {r.origin or ''!s:<22}"
    latency = "" if r.latency_ms is None else f"{r.latency_ms:.3f} ms"
    same = "" if r.duplicate_of is None else f" (same net as trial {r.duplicate_of})"
    if trial.state == TrialState.FAIL:
        return f"{head} failed: {r.failure or 'error'}"
    if trial.state == TrialState.PRUNED:
        return f"{head} pruned  {latency:>10}  {r.pruned or ''}{same}"
    verdict = "feasible" if r.within_budget else "over budget"
    figure = f"{trial.values[0]:.4f}" if r.accuracy is not None or "score" in r.stored else "-"
    return f"{head} {figure:>8}  {latency:>10}  {verdict}, {r.params or 0:,} params{same}"


def _result_json(result: nas.search.SearchResult, seconds: float) -> dict[str, Any]:
    """What ``_print_result`` says, as JSON: the study's counts and its best model."""
    best = None
    if result.best is not None:
        record = TrialRecord.of(result.best)
        best = {
            "trial": result.best.number,
            "values": result.best.values,
            "latency_ms": record.latency_ms,
            "params": record.params,
            "macs": record.macs,
            "directory": None if result.best_dir is None else str(result.best_dir),
        }
    return {
        "study": result.study,
        "storage": result.storage,
        "ran": result.ran,
        "seconds": seconds,
        "tally": result.tally.to_dict(),
        "best": best,
        "best_error": result.best_error,
    }


def _print_result(result: nas.search.SearchResult, config: nas.search.SearchConfig, seconds: float) -> None:
    """The counts of the study, its best model and how to see the rest."""
    t = result.tally
    print(
        f"{t.finished} trials in study '{result.study}' ({result.ran} run now, {seconds:.0f} s): "
        f"feasible {t.feasible}, infeasible {t.infeasible}, pruned {t.pruned}, failed {t.failed}"
    )
    if result.best is not None and result.best_dir is not None:
        best = TrialRecord.of(result.best)
        label = "accuracy" if config.objective == "accuracy" else config.objective
        print(
            f"best: trial {result.best.number}, {label} {result.best.values[0]:.4f} at {best.latency_ms:.3f} ms, "
            f"{best.params:,} params, {best.macs:,} MACs"
        )
        print(f"best model: {result.best_dir}/model.yaml and model.safetensors")
    else:
        print(f"no best model: {result.best_error}")
    print(f"results: nas results --storage {result.storage} --study {result.study}")


command = as_command(search, "search")
