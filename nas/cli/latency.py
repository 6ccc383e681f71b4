"""``nas latency``: measure a network, predict it from a table, or profile a table.

``nas latency NET [OPTIONS]`` measures (or, with ``--predict TABLE``,
predicts) a network; ``nas latency profile ...`` and ``nas latency refit
...`` make and renew latency tables. The command is a group whose first
word, when it is not one of its sub-commands, is the network
(:class:`NetworkGroup`).
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

import nas
import nas.latency
from nas.cli.console import NETWORK_HELP, Json
from nas.cli.root import as_command
from nas.ir.errors import NASError
from nas.predict import LatencyTable, Predictor
from nas.predict import profile as profile_table
from nas.predict import refit as refit_table

Backend = Annotated[
    str, typer.Option("--backend", help="auto, tensorrt, cuda, onnxruntime or torch (auto: the best here).")
]
Batch = Annotated[int, typer.Option("--batch", help="Batch size.")]
Precision = Annotated[str, typer.Option("--precision", help="fp32, fp16 or bf16.")]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: the physical cores).")]
Mode = Annotated[
    str | None, typer.Option("--mode", help="Backend variant: torch eager|compile, cuda cuda_graph|eager, ...")
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the latency store.")]
Output = Annotated[str | None, typer.Option("-o", "--output", help="The table file to write.")]


def latency(
    source: Annotated[str, typer.Argument(help=NETWORK_HELP)],
    backend: Backend = "auto",
    batch: Batch = 1,
    precision: Precision = "fp32",
    input_shape: Annotated[
        str | None, typer.Option("--input", help="Input shape without the batch, e.g. 3x160x160.")
    ] = None,
    threads: Threads = None,
    mode: Mode = None,
    no_cache: NoCache = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again even if the store has it.")] = False,
    with_roofline: Annotated[
        bool, typer.Option("--roofline/--no-roofline", help="Show the analytic lower bound beside the measurement.")
    ] = True,
    predict: Annotated[
        str | None, typer.Option("--predict", help="Predict from this latency table instead of measuring.")
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
    plus whole networks that fit the correction; `nas latency refit TABLE -o
    TABLE` (or `nas latency profile --refit TABLE -o TABLE`) measures those
    networks again (a table goes stale as the machine's load changes; its
    blocks much less).
    """
    # Built at the asked shape once, here: the name, the roofline and the
    # prediction need the reshaped graph, and measure() is given it as is.
    graph = nas.build(source, input_shape=input_shape)
    if predict is not None:
        asked = {"backend": None if backend == "auto" else backend, "batch": batch, "precision": precision}
        _predict(graph, predict, **asked, threads=threads, mode=mode, as_json=as_json)
        return
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
    if not result.ok:  # after the JSON, so that scripts see the record of the failure too
        others = [b for b in nas.latency.available_backends() if b != result.conditions.backend]
        raise NASError(
            f"measurement failed: {result.reason}", hint=f"try another backend: {', '.join(others)}" if others else None
        )
    if not as_json:
        _print_measurement(graph, result, bound, with_roofline=with_roofline)


def _print_measurement(
    graph: nas.Graph, result: nas.latency.Measurement, bound: nas.latency.Roofline | None, *, with_roofline: bool
) -> None:
    """The conditions, the measured distribution, the roofline and the library versions."""
    c = result.conditions
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


def _predict(graph: nas.Graph, table_path: str, *, as_json: bool, **asked: Any) -> None:
    """`nas latency NET --predict TABLE`: a prediction under the table's
    conditions; ``asked`` (backend, batch, precision, threads, mode; None:
    not asked) must be the table's."""
    predictor = Predictor(table_path)
    predictor.check(**asked)
    c = predictor.table.conditions
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


def profile(
    spaces: Annotated[
        list[str] | None,
        typer.Option("--space", help="A space to profile, as NAME or NAME@CxHxW (repeatable)."),
    ] = None,
    output: Output = None,
    backend: Backend = "auto",
    batch: Batch = 1,
    precision: Precision = "fp32",
    threads: Threads = None,
    mode: Mode = None,
    networks: Annotated[
        int, typer.Option("--networks", help="Whole networks measured per space (fit the correction).")
    ] = 30,
    block_samples: Annotated[
        int | None,
        typer.Option("--block-samples", help="More networks per space, blocks only (default 3x --networks)."),
    ] = None,
    max_macs: Annotated[
        float, typer.Option("--max-macs", help="Redraw sampled networks above this many MACs (0: no cap).")
    ] = 300e6,
    budget: Annotated[float | None, typer.Option("--budget", help="Stop measuring after this many seconds.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampled networks.")] = 0,
    no_zoo: Annotated[
        bool, typer.Option("--no-zoo", help="Leave out the blocks of the spaces' zoo fixed points.")
    ] = False,
    refit: Annotated[
        str | None,
        typer.Option(
            "--refit",
            help="Measure this table's whole networks again, now, and refit its correction (as 'nas latency refit').",
        ),
    ] = None,
    no_cache: NoCache = False,
    as_json: Json = False,
) -> None:
    """Measure a latency table: the blocks of networks sampled from the spaces
    (and their zoo fixed points), timed one by one, plus whole networks that
    fit the correction. `nas latency NET --predict TABLE` predicts from it.
    """
    if refit is not None:
        if spaces:
            raise NASError("--refit measures the table's own networks; it takes no --space", field="space")
        refit_command(refit, output, backend=backend, threads=threads, no_cache=no_cache, as_json=as_json)
        return
    if not spaces:
        raise NASError("profile needs at least one --space", field="space", hint="e.g. --space residual@3x32x32")
    if output is None:
        raise NASError("profile needs -o TABLE, the file to write", field="output")
    if networks < 0 or (block_samples is not None and block_samples < 0):
        raise NASError("--networks and --block-samples must be >= 0", field="networks")
    table = profile_table(
        spaces,
        nas.latency.get_backend(backend).name,
        networks=networks,
        block_samples=block_samples,
        zoo=not no_zoo,
        seed=seed,
        max_macs=max_macs or None,
        budget_s=budget,
        threads=threads,
        batch=batch,
        precision=precision,
        mode=mode,
        cache=not no_cache,
        progress=None if as_json else lambda line: print(line, file=sys.stderr),
    )
    _print_profiled(table, table.save(output), as_json=as_json)


def _print_profiled(table: LatencyTable, path: Path, *, as_json: bool) -> None:
    """What a profile wrote: its size, its correction's fit, whether it is complete."""
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


def refit_command(
    table_path: Annotated[str, typer.Argument(metavar="TABLE", help="A latency table made by 'nas latency profile'.")],
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="The table file to write (it may be TABLE itself).")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="The table's backend, or auto (a refit measures in its conditions).")
    ] = "auto",
    threads: Annotated[
        int | None, typer.Option("--threads", help="The table's threads (a refit measures in its conditions).")
    ] = None,
    no_cache: NoCache = False,
    as_json: Json = False,
) -> None:
    """Measure a table's whole networks again, now, and refit its correction (blocks kept).

    A table goes stale as the machine's load changes; its blocks much less.
    """
    if output is None:
        raise NASError("refit needs -o, the file to write (it may be the table itself)", field="output")
    table = LatencyTable.load(table_path)
    progress = None if as_json else lambda line: print(line, file=sys.stderr)
    fresh = refit_table(
        table,
        backend=None if backend == "auto" else backend,
        threads=threads,
        cache=not no_cache,
        progress=progress,
    )
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


class NetworkGroup(typer.core.TyperGroup):
    """A group whose first word, when it is not one of its commands, is the
    network of ``network``, a command of its own: ``nas latency resnet18
    --backend torch`` runs ``network``, ``nas latency profile ...`` the
    command ``profile``. Its help shows both."""

    def __init__(self, *, network: typer.core.TyperCommand, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network

    def make_context(  # type: ignore[override]
        self, info_name: str | None, args: list[str], parent: typer.Context | None = None, **extra: Any
    ) -> typer.Context:
        if args and args[0] not in self.commands and args[0] != "--help":
            # The network's own context under the group's name: its usage
            # line and errors read 'nas latency [OPTIONS] SOURCE'.
            return self.network.make_context(info_name, args, parent=parent, **extra)  # type: ignore[return-value]
        return super().make_context(info_name, args, parent=parent, **extra)  # type: ignore[return-value]

    def format_usage(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        formatter.write_usage(ctx.command_path, " ".join(self.network.collect_usage_pieces(ctx)))  # type: ignore[arg-type]
        formatter.write_usage(ctx.command_path, self.subcommand_metavar, prefix="       ")

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        self.network.format_options(ctx, formatter)  # type: ignore[arg-type]
        self.format_commands(ctx, formatter)  # type: ignore[arg-type]


command = NetworkGroup(
    name="latency",
    network=as_command(latency, "latency"),
    commands=[as_command(profile, "profile"), as_command(refit_command, "refit")],
    help=inspect.getdoc(latency),
    no_args_is_help=True,
    rich_markup_mode=None,
)
