"""The ``nas`` command: a thin layer over the public API.

Every error a user can cause is one line on stderr and exit code 2; ``nas
--debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

import nas
import nas.passes.draw
import nas.space
from nas.ir.errors import NASError
from nas.ir.registry import REQUIRED
from nas.passes.analysis import node_table

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    name="nas",
    help="Neural architecture search by block composition.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _version(value: bool) -> None:
    if value:
        print(f"nas {nas.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Neural architecture search by block composition."""


def _text_console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A console that prints text as it is: no Rich markup, so that
    ``pip install 'nas[onnx]'`` in a reason or a hint keeps its brackets."""
    return Console(markup=False, stderr=stderr, width=width)


def _progress(field: str) -> Progress:
    """A transient progress bar on stderr: the task's description, the bar,
    done/total, the task's ``field`` and the time elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = _text_console(stderr=True)
    console = console if console.is_terminal else _text_console(stderr=True, width=200)
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _console() -> Console:
    """A console for tables: as wide as the terminal, or roomy when piped
    (rich's default of 80 columns would cut node names in files and logs)."""
    console = _text_console()
    return console if console.is_terminal else _text_console(width=200)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(int(value))


def _shape(shapes: list[list[int]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


@app.command()
def show(
    source: Annotated[str, typer.Argument(help="An IR YAML file or a YAML string.")],
    as_json: Json = False,
    flat: Annotated[bool, typer.Option("--flat", help="Expand composite blocks into primitives.")] = False,
) -> None:
    """Shapes, parameters, MACs and receptive fields of a network, node by node."""
    graph = nas.build(source)
    if flat:
        graph = nas.flatten(graph)
    summary = graph.summary
    rows = node_table(graph)
    if as_json:
        report = {
            "name": graph.name,
            "params": summary.params,
            "macs": summary.macs,
            "input": list(next(iter(summary.inputs.values()))),
            "output": list(summary.outputs[0]),
            "inputs": {k: list(v) for k, v in summary.inputs.items()},
            "outputs": [list(s) for s in summary.outputs],
            "nodes": sum(1 for row in rows if row["block"] != "input"),
            "hash": graph.hash,
            "activation_bytes": summary.activation_bytes,
            "peak_activation_bytes": summary.peak_activation_bytes,
            "receptive_field": list(summary.receptive_field),
            "layers": rows,
        }
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{graph.name}  ({graph.source or 'built'})", title_justify="left")
    for column, justify in (
        ("node", "left"),
        ("block", "left"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("MACs/px", "right"),
        ("RF", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        rf = row["receptive_field"]
        table.add_row(
            str(row["name"]),
            str(row["block"]),
            _shape(row["shapes"]),  # type: ignore[arg-type]
            f"{row['params']:,}",
            _si(row["macs"]),  # type: ignore[arg-type]
            "" if row["macs_per_position"] is None else f"{row['macs_per_position']:,}",
            f"{rf[0]}" if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}",  # type: ignore[index]
        )
    table.add_section()
    outputs = _shape([list(s) for s in summary.outputs])
    table.add_row("total", "", outputs, f"{summary.params:,}", _si(summary.macs), "", "")
    console = _console()
    console.print(table)
    console.print(
        f"params {summary.params:,}  MACs {summary.macs:,}  activations {_si(summary.activation_bytes)}B "
        f"(peak {_si(summary.peak_activation_bytes)}B)  hash {graph.hash}",
        highlight=False,
    )


@app.command()
def blocks(
    pattern: Annotated[str, typer.Argument(help="Shell-style pattern, e.g. 'conv*'.")] = "*",
    as_json: Json = False,
) -> None:
    """List the registered block types and their parameters."""
    entries = []
    for name in nas.list_blocks(pattern):
        block = nas.get_block(name)
        entries.append(
            {
                "name": name,
                "composite": block.composite,
                "inputs": list(block.arity),
                "params": {
                    p.name: {
                        "default": None if p.default is REQUIRED else p.default,
                        "required": p.default is REQUIRED,
                    }
                    for p in block.params
                },
                "doc": (block.__doc__ or "").strip().split("\n")[0],
            }
        )
    if as_json:
        print(json.dumps(entries, indent=2, default=list))
        return
    table = Table(title_justify="left")
    for column in ("block", "parameters", "description"):
        table.add_column(column)
    for entry in entries:
        params = ", ".join(k if v["required"] else f"{k}={v['default']}" for k, v in entry["params"].items())  # type: ignore[attr-defined]
        table.add_row(str(entry["name"]) + (" *" if entry["composite"] else ""), params, str(entry["doc"]))
    _console().print(table)
    _console().print("* composite: defined as a graph of smaller blocks", highlight=False)


@app.command()
def space(
    source: Annotated[str | None, typer.Argument(help="A shipped space name or a space file; none lists them.")] = None,
    as_json: Json = False,
    samples: Annotated[
        int, typer.Option("--sample", help="Draw N architectures (with -o: write them as IR YAML).")
    ] = 0,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Directory for the sampled architectures.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the draws.")] = 0,
) -> None:
    """Describe a search space: decisions, size, fixed points, cost range."""
    if source is None:
        rows = [nas.space.overview(nas.space.load_space(name)) for name in nas.space.space_names()]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table(title_justify="left")
        for column in ("space", "architectures", "decisions", "description"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["name"], _power(row["size"]), str(row["decisions"]), row["description"])
        _console().print(table)
        return
    sp = nas.space.load_space(source)
    if output is not None:
        written = nas.space.write_samples(sp, samples or 1, output, seed=seed)
        print(f"wrote {len(written)} architectures to {output}")
        return
    report = nas.space.report(sp, samples=samples or 20, seed=seed)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    console = _console()
    console.print(f"{report['name']}: {report['description']}", highlight=False)
    table = Table(title_justify="left")
    for column in ("decision", "choices", "exists when"):
        table.add_column(column)
    for d in report["decisions"]:
        table.add_row(d["label"], d["choices"], d["when"])
    console.print(table)
    cost = report["sample"]
    console.print(
        f"architectures: {_power(report['size'])}\n"
        f"fixed points: {', '.join(report['fixed_points']) or 'none'}\n"
        f"over {cost['n']} samples: params {_si(cost['params'][0])} .. {_si(cost['params'][1])}, "
        f"MACs {_si(cost['macs'][0])} .. {_si(cost['macs'][1])}",
        highlight=False,
    )


def _power(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"~10^{math.log10(n):.1f}"


@app.command()
def zoo(
    as_json: Json = False,
    plot: Annotated[
        str | None, typer.Option("--plot", help="Also draw MACs against params to this image file.")
    ] = None,
) -> None:
    """List the classic nets: family, year, input, params, MACs, reference."""
    rows = nas.zoo.table()
    if plot:
        nas.passes.draw.plot_zoo(rows, plot)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title_justify="left")
    for column, justify in (
        ("name", "left"),
        ("family", "left"),
        ("year", "right"),
        ("input", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("checked against", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            str(row["year"]),
            "x".join(map(str, row["input"])),
            f"{row['params']:,}",
            _si(row["macs"]),
            str(row["reference"]),
        )
    _console().print(table)
    if plot:
        _text_console(stderr=True).print(f"wrote {plot}", highlight=False)


@app.command()
def draw(
    source: Annotated[str, typer.Argument(help="A zoo name, an IR YAML file or a YAML string.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The picture: .svg, .png, .pdf or .dot.")],
    expand: Annotated[bool, typer.Option("--expand", help="Draw composite blocks with their inner blocks.")] = False,
) -> None:
    """Draw a network: blocks as boxes, tensor shapes on the edges (Graphviz)."""
    path = nas.passes.draw.render(nas.passes.draw.to_dot(nas.build(source), expand=expand), output)
    print(f"wrote {path}")


# -- nas search ---------------------------------------------------------------


def _trial_line(trial: object) -> str:
    """One line per finished trial: origin, outcome, objective, latency."""
    from optuna.trial import TrialState

    attrs = trial.user_attrs  # type: ignore[attr-defined]
    head = f"trial {trial.number:>3} {attrs.get('origin', '')!s:<22}"  # type: ignore[attr-defined]
    latency = "" if attrs.get("latency_ms") is None else f"{attrs['latency_ms']:.3f} ms"
    same = "" if attrs.get("duplicate_of") is None else f" (same net as trial {attrs['duplicate_of']})"
    state = trial.state  # type: ignore[attr-defined]
    if state == TrialState.FAIL:
        return f"{head} failed: {attrs.get('failure', 'error')}"
    if state == TrialState.PRUNED:
        return f"{head} pruned  {latency:>10}  {attrs.get('pruned', '')}{same}"
    value = trial.values[0]  # type: ignore[attr-defined]
    verdict = "feasible" if all(c <= 0 for c in attrs.get("constraint", [1])) else "over budget"
    figure = f"{value:.4f}" if attrs.get("accuracy") is not None or "score" in attrs else "-"
    return f"{head} {figure:>8}  {latency:>10}  {verdict}, {attrs.get('params', 0):,} params{same}"


@app.command()
def search(
    space_name: Annotated[str, typer.Option("--space", help="A shipped space name or a space file.")] = "early",
    data: Annotated[
        str, typer.Option("--data", help="digits (built in), a .npz file (x, y) or a class folder.")
    ] = "digits",
    trials: Annotated[int, typer.Option("--trials", help="Finished trials the study should have in all.")] = 16,
    budget: Annotated[float, typer.Option("--latency-budget-ms", help="Hard latency limit per network, ms.")] = 1.0,
    backend: Annotated[str, typer.Option("--backend", help="torch, onnxruntime, cuda, tensorrt or auto.")] = "torch",
    batch: Annotated[int, typer.Option("--batch", help="Batch size of the latency measurement.")] = 1,
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or bf16.")] = "fp32",
    threads: Annotated[int, typer.Option("--threads", help="CPU threads of the latency measurement.")] = 1,
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
    runs: Annotated[str, typer.Option("--runs", help="Folder for weights and the best model.")] = "runs",
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Median stopping rule between epochs.")] = True,
) -> None:
    """Search a space for accurate networks within a latency budget (an Optuna study).

    Zoo nets of the space that meet the budget are tried first; then the
    sampler mutates outward. Results: 'nas results'.
    """
    import time

    import nas.search
    from nas.search.results import tally

    config = nas.search.SearchConfig(
        space=space_name,
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
    )
    progress = _progress("counts")
    task = None
    started = time.perf_counter()

    def counts(st: object) -> tuple[int, str]:
        t = tally(st)  # type: ignore[arg-type]
        best = "-" if t.best is None else f"{t.best:.4f}"
        return t.finished, (
            f"feasible {t.feasible}  infeasible {t.infeasible}  pruned {t.pruned}  failed {t.failed}  "
            f"best {best}  budget {budget:g} ms"
        )

    def on_start(st: object, cfg: nas.search.SearchConfig) -> None:
        nonlocal task
        done, text = counts(st)
        print(
            f"study '{st.study_name}' in {cfg.storage}: space {cfg.space}, data {cfg.data}, objective "  # type: ignore[attr-defined]
            f"{cfg.objective}, sampler {cfg.sampler}, budget {cfg.latency_budget_ms:g} ms on {cfg.backend}"
            + (f" (resumed with {done} trials done)" if done else ""),
            flush=True,
        )
        progress.start()
        task = progress.add_task("trials", total=cfg.trials, completed=done, counts=text)

    def on_trial(st: object, trial: object) -> None:
        done, text = counts(st)
        progress.console.print(_trial_line(trial), highlight=False)
        if task is not None:
            progress.update(task, completed=done, counts=text)

    try:
        result = nas.search.run_search(config, on_start=on_start, on_trial=on_trial)
    finally:
        if task is not None:  # stopping a display that never started prints a stray line
            progress.stop()
    t = result.tally
    print(
        f"{t.finished} trials in study '{result.study}' ({result.ran} run now, {time.perf_counter() - started:.0f} s): "
        f"feasible {t.feasible}, infeasible {t.infeasible}, pruned {t.pruned}, failed {t.failed}"
    )
    if result.best is not None and result.best_dir is not None:
        attrs = result.best.user_attrs
        label = "accuracy" if config.objective == "accuracy" else config.objective
        print(
            f"best: trial {result.best.number}, {label} {result.best.values[0]:.4f} at {attrs['latency_ms']:.3f} ms, "
            f"{attrs['params']:,} params, {attrs['macs']:,} MACs"
        )
        print(f"best model: {result.best_dir}/model.yaml and model.safetensors")
    else:
        print(f"no best model: {result.best_error}")
    print(f"results: nas results --storage {result.storage} --study {result.study}")


@app.command()
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
    import nas.search
    from nas.search.results import dashboard as serve
    from nas.search.results import export_best, plot

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
        err = _text_console(stderr=True)
        for note in notes:
            err.print(note, highlight=False)
        return
    counts = report["trials"]
    console = _console()
    settings = report["settings"]
    console.print(
        f"study '{report['study']}': space {settings.get('space')}, objective {settings.get('objective')}, "
        f"budget {settings.get('latency_budget_ms')} ms on {settings.get('backend')}; {counts['finished']} trials: "
        f"feasible {counts['feasible']}, infeasible {counts['infeasible']}, pruned {counts['pruned']}, "
        f"failed {counts['failed']}",
        highlight=False,
    )
    table = Table(title="Pareto front (feasible)", title_justify="left")
    for column, justify in (
        ("trial", "right"),
        (str(settings.get("objective", "accuracy")), "right"),
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
            _si(entry["macs"]),
            str(entry["origin"]),
            str(entry["hash"])[:12],
        )
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


# -- nas export, nas train ---------------------------------------------------


def _print_export(exported: object, as_json: bool) -> int:
    """Report an export: a table (or the manifest as JSON); exit code 2 if a format failed."""
    from nas.export import Exported

    assert isinstance(exported, Exported)
    failed = exported.failed
    if as_json:
        print(json.dumps({"directory": str(exported.directory), **exported.manifest}, indent=2, default=str))
    else:
        console = _console()
        table = Table(title=f"{exported.directory}", title_justify="left")
        for column in ("format", "file", "check"):
            table.add_column(column)
        for name, written in exported.formats.items():
            if written.ok:
                check = "" if written.max_abs_error is None else f"max abs error {written.max_abs_error:.2g}"
                table.add_row(name, str(written.file), check)
            else:
                table.add_row(name, "-", f"failed: {written.reason}")
        console.print(table)
        card = exported.manifest
        arch = card["architecture"]
        closest = card.get("closest_zoo")
        console.print(
            f"{arch['params']:,} params, {_si(arch['macs'])} MACs; weights: {card['weights']['note']}"
            + (f"; closest zoo net: {closest['name']} ({closest['distance']} decisions)" if closest else ""),
            highlight=False,
        )
        console.print(f"model card: {exported.directory}/MODEL.md; load it with nas.load('{exported.directory}')")
    for name, reason in failed.items():
        print(f"nas: error: format {name} not written: {reason}", file=sys.stderr)
    return 2 if failed else 0


@app.command()
def export(
    source: Annotated[
        str | None,
        typer.Argument(help="Zoo name, IR YAML file or export directory (or --storage/--study for a search trial)."),
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="The directory to write.")] = "",
    formats: Annotated[
        str, typer.Option("--format", help="Comma-separated: yaml,weights,pt2,torchscript,onnx,tensorrt or all.")
    ] = "yaml,weights,pt2,torchscript,onnx",
    weights: Annotated[str | None, typer.Option("--weights", help="A .safetensors file of weights for SOURCE.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Optuna storage URL of a search.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the storage's only one).")] = None,
    trial: Annotated[int | None, typer.Option("--trial", help="The trial of the study to export.")] = None,
    best: Annotated[
        bool, typer.Option("--best", help="The most accurate feasible trial of the study's Pareto front.")
    ] = False,
    budget: Annotated[
        float | None, typer.Option("--latency-budget-ms", help="With --best: only trials at most this fast.")
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Another input shape without the batch, e.g. 3x64x64.")
    ] = None,
    latency: Annotated[
        str, typer.Option("--latency", help="Backends to measure for the model card (comma-separated, or none).")
    ] = "torch",
    batch: Annotated[int, typer.Option("--batch", help="Batch of the example input the files are checked with.")] = 2,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier export in the directory.")] = False,
    as_json: Json = False,
) -> None:
    """Write a model as files other tools load, checked against the IR module, with its model card.

    Every format is loaded back and run; one that fails (a missing library,
    an operator the format cannot express) is reported and the rest are
    written. The directory appears whole or not at all.
    """
    import nas.export as E
    from nas.search.results import from_trial

    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if storage is not None or study is not None:
        if source is not None:
            raise NASError("give SOURCE or a search trial, not both", field="source", hint="drop SOURCE or --storage")
        if trial is None and not best:
            raise NASError("which trial of the study?", field="trial", hint="give --trial N or --best")
        model = from_trial(storage or "sqlite:///runs/nas.db", study, trial=trial, best=best, latency_budget_ms=budget)
        if weights is not None or input_shape is not None:
            raise NASError("a trial brings its own weights and input", field="weights", hint="drop --weights/--input")
    elif source is None:
        raise NASError("nothing to export", field="source", hint="give a zoo name or file, or --storage/--study")
    else:
        model = E.from_source(source, weights=weights, input_shape=input_shape)
    backends = [] if latency.strip().lower() in ("", "none") else [b.strip() for b in latency.split(",") if b.strip()]
    exported = E.export(model, output, formats, batch=batch, overwrite=force, latency=backends)
    raise typer.Exit(_print_export(exported, as_json))


@app.command()
def train(
    source: Annotated[str, typer.Argument(help="Zoo name, IR YAML file or export directory.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The directory to export the trained model to.")] = "",
    data: Annotated[
        str, typer.Option("--data", help="digits (built in), a .npz file (x, y) or a class folder.")
    ] = "digits",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights and the batch order.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = 2e-3,
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Input shape to train at (the data is resized), e.g. 1x32x32.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="Checkpoint file (default: beside the output); an existing one resumes."),
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", help="Formats to export (as in 'nas export').")
    ] = "yaml,weights,pt2,torchscript,onnx",
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier export in the directory.")] = False,
    as_json: Json = False,
) -> None:
    """Train an architecture from scratch on a data set, then export it with its accuracy.

    The network's classifier is fitted to the data's classes. The run is
    saved after every epoch; run the same command again after an
    interruption and it resumes where it stopped.
    """
    from pathlib import Path

    import nas.export as E
    from nas.search import load_data
    from nas.search.train import EvaluationFailed
    from nas.search.train import train as train_graph

    if not output:
        raise NASError("no output directory", field="output", hint="give -o DIR")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise NASError("epochs and batch size must be at least 1, lr above 0", field="epochs")
    E.check_target(Path(output), force)  # fail before training, not after
    split = load_data(data)
    origin = E.from_source(source, input_shape=input_shape)
    graph = nas.build(origin.graph, classes=split.classes)
    target = Path(output)
    ckpt = Path(checkpoint) if checkpoint else target.with_name(f".{target.name}.checkpoint.safetensors")
    resumed = ckpt.is_file()
    steps = -(-len(split.train) // batch_size)
    progress = _progress("status")
    task = progress.add_task("epoch 1", total=epochs * steps, status="", completed=0)

    def on_step(epoch: int, step: int, loss: float) -> None:
        progress.update(
            task,
            completed=epoch * steps + step + 1,
            description=f"epoch {epoch + 1}/{epochs}",
            status=f"loss {loss:.4f}",
        )

    def on_epoch(epoch: int, accuracy: float) -> None:
        progress.console.print(f"epoch {epoch + 1}/{epochs}: validation accuracy {accuracy:.4f}", highlight=False)

    print(
        f"training {origin.name} ({graph.params:,} params) on {split.name}: {len(split.train)} images, "
        f"{epochs} epochs" + (f", resuming from {ckpt}" if resumed else ""),
        file=sys.stderr,
    )
    progress.start()
    try:
        result = train_graph(
            graph,
            split,
            epochs=epochs,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            on_step=on_step,
            on_epoch=on_epoch,
            checkpoint=ckpt,
        )
    except EvaluationFailed as e:
        raise NASError(f"training failed: {e}", hint="try a lower --lr, or check the data") from None
    finally:
        progress.stop()
    model = E.Model(
        graph,
        result.state,
        name=origin.name,
        source={"kind": "train", "from": source, "data": split.name},
        accuracy={
            "value": result.accuracy,
            "data": split.name,
            "split": "validation",
            "epochs": epochs,
            "seed": seed,
            "curve": result.curve,
        },
    )
    exported = E.export(model, target, formats, overwrite=force)
    ckpt.unlink(missing_ok=True)  # the export holds the weights now
    print(f"validation accuracy {result.accuracy:.4f} after {epochs} epochs ({result.seconds:.0f} s)", file=sys.stderr)
    raise typer.Exit(_print_export(exported, as_json))


# -- nas latency ------------------------------------------------------------


@app.command()
def latency(
    source: Annotated[str, typer.Argument(help="A zoo name, an IR YAML file or a YAML string.")],
    backend: Annotated[
        str, typer.Option("--backend", help="auto, tensorrt, cuda, onnxruntime or torch (auto: the best here).")
    ] = "auto",
    batch: Annotated[int, typer.Option("--batch", help="Batch size.")] = 1,
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or bf16.")] = "fp32",
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Input shape without the batch, e.g. 3x160x160.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: the physical cores).")] = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="Backend variant: torch eager|compile, cuda cuda_graph|eager, ..."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the latency store.")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again even if the store has it.")] = False,
    with_roofline: Annotated[
        bool, typer.Option("--roofline/--no-roofline", help="Show the analytic lower bound beside the measurement.")
    ] = True,
    predict: Annotated[
        str | None, typer.Option("--predict", help="Predict from this latency table instead of measuring.")
    ] = None,
    spaces: Annotated[
        list[str] | None,
        typer.Option("--space", help="profile: a space to profile, as NAME or NAME@CxHxW (repeatable)."),
    ] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="profile: the table file to write.")] = None,
    networks: Annotated[
        int, typer.Option("--networks", help="profile: whole networks measured per space (fit the correction).")
    ] = 30,
    block_samples: Annotated[
        int | None,
        typer.Option("--block-samples", help="profile: more networks per space, blocks only (default 3x --networks)."),
    ] = None,
    max_macs: Annotated[
        float, typer.Option("--max-macs", help="profile: redraw sampled networks above this many MACs (0: no cap).")
    ] = 300e6,
    budget: Annotated[
        float | None, typer.Option("--budget", help="profile: stop measuring after this many seconds.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="profile: seed of the sampled networks.")] = 0,
    no_zoo: Annotated[
        bool, typer.Option("--no-zoo", help="profile: leave out the blocks of the spaces' zoo fixed points.")
    ] = False,
    refit_table: Annotated[
        str | None,
        typer.Option(
            "--refit",
            help="profile: measure this table's whole networks again, now, and refit its correction (blocks kept).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Measure a network's latency on a backend (cached), with its roofline lower bound.

    A measurement the backend cannot make (an export or engine build that
    fails) is a one-line error, exit 2; with --json its record is printed first.

    `nas latency NET --predict TABLE` predicts from a latency table instead
    (microseconds, no runtime needed). `nas latency profile --space SPACE
    --backend B -o TABLE` measures such a table: the blocks of networks
    sampled from the spaces (and their zoo fixed points), timed one by one,
    plus whole networks that fit the correction; `nas latency profile
    --refit TABLE -o TABLE` measures those networks again (a table goes
    stale as the machine's load changes; its blocks much less).
    """
    import nas.latency

    if source == "profile" and refit_table is not None:
        if spaces:
            raise NASError("--refit measures the table's own networks; it takes no --space", field="space")
        _latency_refit(refit_table, output, backend=backend, threads=threads, cache=not no_cache, as_json=as_json)
        return
    if source == "profile":
        _latency_profile(
            spaces or [],
            output,
            backend=backend,
            batch=batch,
            precision=precision,
            threads=threads,
            mode=mode,
            networks=networks,
            block_samples=block_samples,
            max_macs=max_macs or None,
            budget=budget,
            seed=seed,
            zoo=not no_zoo,
            cache=not no_cache,
            as_json=as_json,
        )
        return
    if spaces or output is not None or refit_table is not None:
        raise NASError("--space, --refit and -o belong to 'nas latency profile'", field="space")
    graph = nas.build(source)
    if input_shape is not None:
        graph = nas.build(graph, input_shape=input_shape)
    if predict is not None:
        _latency_predict(
            graph,
            predict,
            backend=backend,
            batch=batch,
            precision=precision,
            threads=threads,
            mode=mode,
            as_json=as_json,
        )
        return
    if input_shape is not None:
        graph = nas.build(graph, input_shape=input_shape)
    store = None if no_cache else nas.latency.LatencyCache()
    result = nas.latency.measure(
        graph,
        backend,
        batch=batch,
        precision=precision,
        threads=threads,
        mode=mode,
        cache=store if store is not None else False,
        refresh=refresh,
    )
    bound = None
    if with_roofline and result.ok:
        peaks = nas.latency.device_peaks(result, store, graph)
        bound = None if peaks is None else nas.latency.roofline(graph, peaks, batch=batch)
    if as_json:
        report = {"name": graph.name, **result.to_dict()}
        report["roofline"] = bound.to_dict() if bound else None
        report["roofline_fraction"] = bound.fraction_of(result.median_ms) if bound and result.median_ms else None
        print(json.dumps(report, indent=2))
    c = result.conditions
    if not result.ok:  # after the JSON, so that scripts see the record of the failure too
        others = [b for b in nas.latency.available_backends() if b != c.backend]
        raise NASError(
            f"measurement failed: {result.reason}", hint=f"try another backend: {', '.join(others)}" if others else None
        )
    if as_json:
        return
    shape = " + ".join("x".join(map(str, s)) for s in c.shapes)
    threads_text = "" if c.threads is None else f", {c.threads} threads"
    print(f"{graph.name} on {c.backend} ({c.mode}), {c.device}: {c.precision}, batch {c.batch}, {shape}{threads_text}")
    d = result.distribution
    assert d is not None
    verdict = "stable" if d.stable else f"median not within {100 * nas.latency.TimingPolicy().median_tolerance:g}%"
    print(
        f"  measured  median {d.median_ms:.3f} ms   p10 {d.p10_ms:.3f}   p90 {d.p90_ms:.3f}   "
        f"cv {100 * d.cv:.1f}%   {d.runs} runs ({verdict})" + ("   [cached]" if result.cached else "")
    )
    if bound is not None:
        p = bound.peaks
        print(
            f"  roofline  {bound.bound_ms:.3f} ms, {bound.limit}-bound: {bound.flops / 1e9:.2f} GFLOP at "
            f"{p.flops_per_s / 1e9:.0f} GFLOP/s = {bound.compute_ms:.3f} ms, {bound.bytes / 1e6:.1f} MB at "
            f"{p.bytes_per_s / 1e9:.0f} GB/s = {bound.memory_ms:.3f} ms"
        )
        print(f"            bound / measured = {bound.fraction_of(d.median_ms):.0%}   peaks {p.source}")
    elif with_roofline:
        print(f"  roofline  no peak figures known for {c.device}")
    print("  versions  " + ", ".join(f"{k} {v}" for k, v in c.versions))


def _latency_predict(
    graph: nas.Graph,
    table_path: str,
    *,
    backend: str,
    batch: int,
    precision: str,
    threads: int | None,
    mode: str | None,
    as_json: bool,
) -> None:
    """`nas latency NET --predict TABLE`: a prediction under the table's conditions."""
    import time

    from nas.predict.predictor import Predictor

    predictor = Predictor(table_path)
    c = predictor.table.conditions
    asked = {
        "backend": None if backend == "auto" else backend,
        "batch": batch,
        "precision": precision,
        "threads": threads,
        "mode": mode,
    }
    for key, value in asked.items():
        if value is not None and value != c[key]:
            raise NASError(
                f"the table was measured with {key} {c[key]!r}, not {value!r}",
                file=table_path,
                field=key,
                hint=f"profile a table for {key} {value!r}, or leave --{key} out",
            )
    started = time.perf_counter()
    prediction = predictor.explain(graph)
    elapsed = time.perf_counter() - started
    shape = list(next(iter(graph.summary.inputs.values())))
    if as_json:
        report = {
            "name": graph.name,
            "predicted": True,
            **{k: c[k] for k in ("backend", "mode", "device", "precision", "batch", "threads")},
            "shape": shape,
            "graph_hash": graph.hash,
            **prediction.to_dict(),
            "table_conditions": c,
            "elapsed_s": elapsed,
        }
        print(json.dumps(report, indent=2))
        return
    threads_text = "" if c["threads"] is None else f", {c['threads']} threads"
    print(
        f"{graph.name} on {c['backend']} ({c['mode']}), {c['device']}: {c['precision']}, batch {c['batch']}, "
        f"{'x'.join(map(str, shape))}{threads_text}"
    )
    print(
        f"  predicted median {prediction.median_ms:.3f} ms   (blocks {prediction.blocks_ms:.3f} ms, "
        f"{prediction.from_table}/{prediction.units} blocks from the table"
        + (f", x{prediction.neighbours:.3f} by its nearest networks" if prediction.neighbours != 1.0 else "")
        + f")   in {elapsed * 1e6:.0f} us"
    )
    print(f"  table     {table_path}")


def _latency_profile(
    spaces: list[str],
    output: str | None,
    *,
    backend: str,
    batch: int,
    precision: str,
    threads: int | None,
    mode: str | None,
    networks: int,
    block_samples: int | None,
    max_macs: float | None,
    budget: float | None,
    seed: int,
    zoo: bool,
    cache: bool,
    as_json: bool,
) -> None:
    """`nas latency profile --space S --backend B -o TABLE`."""
    import nas.latency
    from nas.predict.profiling import profile

    if not spaces:
        raise NASError("profile needs at least one --space", field="space", hint="e.g. --space residual@3x32x32")
    if output is None:
        raise NASError("profile needs -o TABLE, the file to write", field="output")
    if networks < 0 or (block_samples is not None and block_samples < 0):
        raise NASError("--networks and --block-samples must be >= 0", field="networks")
    name = nas.latency.get_backend(backend).name
    table = profile(
        spaces,
        name,
        networks=networks,
        block_samples=block_samples,
        zoo=zoo,
        seed=seed,
        max_macs=max_macs,
        budget_s=budget,
        threads=threads,
        batch=batch,
        precision=precision,
        mode=mode,
        cache=bool(cache),
        progress=None if as_json else lambda line: print(line, file=sys.stderr),
    )
    path = table.save(output)
    if as_json:
        report = {
            "table": str(path),
            "conditions": table.conditions,
            "blocks": len(table.blocks),
            "networks": len(table.networks),
            "correction": table.correction,
            "profile": table.profile,
        }
        print(json.dumps(report, indent=2))
        return
    print(f"wrote {path}: {table.describe()}")
    fit = table.correction.get("fit", {})
    if fit:
        print(f"  correction fitted on {fit['n']} networks: MAPE {100 * fit['mape']:.1f}% (in sample)")
    if not table.profile.get("complete", True):
        print("  incomplete: the time budget ran out or some measurements failed (see the file's 'profile')")


def _latency_refit(
    path: str, output: str | None, *, backend: str, threads: int | None, cache: bool, as_json: bool
) -> None:
    """`nas latency profile --refit TABLE -o OUT`."""
    from nas.predict.profiling import refit
    from nas.predict.table import LatencyTable

    if output is None:
        raise NASError("--refit needs -o, the file to write (it may be the table itself)", field="output")
    table = LatencyTable.load(path)
    asked = {"backend": None if backend == "auto" else backend, "threads": threads}
    for option, given in asked.items():
        held = table.conditions.get(option)
        if given is not None and given != held:
            raise NASError(
                f"{path} was profiled with --{option} {held}, not {given}",
                file=path,
                field=option,
                hint=f"leave --{option} out: a refit measures in the table's conditions",
            )
    fresh = refit(table, cache=cache, progress=None if as_json else lambda line: print(line, file=sys.stderr))
    saved = fresh.save(output)
    last = fresh.profile["refits"][-1]
    if as_json:
        print(json.dumps({"table": str(saved), "refit": last, "correction": fresh.correction}, indent=2))
        return
    print(f"wrote {saved}: {fresh.describe()}")
    print(
        f"  {last['networks']} networks measured again: {last['median_ratio']:.3f}x the table's times (median); "
        f"correction MAPE {100 * fresh.correction['fit']['mape']:.1f}% (in sample)"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns a command's typer.Exit code
        # instead of raising it.
        code = command.main(args=args, prog_name="nas", standalone_mode=False)
    except NASError as e:
        if debug:
            raise
        print(f"nas: error: {e}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("nas: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as e:  # usage errors: unknown command, missing argument
        e.show()  # type: ignore[attr-defined]
        return int(getattr(e, "exit_code", 2))
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug of ours: still one line, unless --debug
        if debug:
            raise
        print(
            f"nas: internal error: {type(e).__name__}: {e} (run 'nas --debug ...' for the traceback and report it)",
            file=sys.stderr,
        )
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())
