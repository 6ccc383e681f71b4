"""``nas results``: a search's Pareto front, best model and pictures."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

import nas.search
from nas.cli.console import Json, si, table_console, text_console
from nas.cli.root import as_command
from nas.ir.errors import NASError
from nas.search.results import dashboard as serve
from nas.search.results import export_best, plot


def results(
    storage: Annotated[str, typer.Option("--storage", help="Optuna storage URL.")] = "sqlite:///runs/nas.db",
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: the only study in the storage).")
    ] = None,
    runs: Annotated[str, typer.Option("--runs", help="Folder of the search's weights; pictures go there.")] = "runs",
    dashboard: Annotated[
        bool, typer.Option("--dashboard", help="Serve optuna-dashboard on the storage (until Ctrl-C).")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="With --dashboard: the port on 127.0.0.1.")] = 8080,
    as_json: Json = False,
) -> None:
    """The feasible Pareto front of a search; saves the best model and two pictures."""
    if dashboard:
        print(f"optuna-dashboard on http://127.0.0.1:{port} for {storage} (Ctrl-C stops it)", file=sys.stderr)
        serve(storage, port=port)
        return
    st = nas.search.load_study(storage, study)
    report = nas.search.report(st)
    pictures = plot(st, runs)
    best_dir = None
    notes = [f"wrote {p}" for p in pictures] or ["no pictures: matplotlib is not installed"]
    try:
        best_dir, _ = export_best(st, runs, storage=storage)
        notes.append(f"best model: {best_dir}/model.yaml and model.safetensors")
    except NASError as e:  # no feasible trial yet, or weights left on another machine: the table still helps
        notes.append(f"no best model: {e}")
    if as_json:
        report["pictures"] = [str(p) for p in pictures]
        report["best_dir"] = None if best_dir is None else str(best_dir)
        print(json.dumps(report, indent=2))
        err = text_console(stderr=True)
        for note in notes:
            err.print(note, highlight=False)
        return
    console = table_console()
    counts, settings = report["trials"], report["settings"]
    console.print(
        f"study '{report['study']}': space {settings.get('space')}, objective {settings.get('objective')}, "
        f"budget {settings.get('latency_budget_ms')} ms on {settings.get('backend')}; {counts['finished']} trials: "
        f"feasible {counts['feasible']}, infeasible {counts['infeasible']}, pruned {counts['pruned']}, "
        f"failed {counts['failed']}",
        highlight=False,
    )
    console.print(_front(report))
    kept = report["finetuned"]
    if kept is not None:
        console.print(
            f"fine-tuned: trial {kept['trial']}, {kept['epochs']} epochs from its inherited weights, "
            f"accuracy {kept['accuracy']:.4f}, in {kept['directory']}",
            highlight=False,
        )
    for note in notes:
        console.print(note, highlight=False)


def _front(report: dict[str, Any]) -> Table:
    """The feasible Pareto front, one trial a row."""
    table = Table(title="Pareto front (feasible)", title_justify="left")
    for column, justify in (
        ("trial", "right"),
        (str(report["settings"].get("objective", "accuracy")), "right"),
        ("latency ms", "right"),
        ("params", "right"),
        ("MACs", "right"),
        ("origin", "left"),
        ("hash", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for entry in report["pareto_front"]:
        table.add_row(
            str(entry["trial"]),
            f"{entry['score']:.4f}",
            f"{entry['latency_ms']:.3f}",
            f"{entry['params']:,}",
            si(entry["macs"]),
            str(entry["origin"]),
            str(entry["hash"])[:12],
        )
    return table


command = as_command(results, "results")
