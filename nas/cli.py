"""The ``nas`` command: a thin layer over the public API.

Every error a user can cause is one line on stderr and exit code 2; ``nas
--debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import nas
import nas.draw
import nas.space
from nas.analysis import node_table
from nas.errors import NASError

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


def _console() -> Console:
    """A console for tables: as wide as the terminal, or roomy when piped
    (rich's default of 80 columns would cut node names in files and logs)."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


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
                        "default": None if p.default is nas.registry.REQUIRED else p.default,
                        "required": p.default is nas.registry.REQUIRED,
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
        nas.draw.plot_zoo(rows, plot)
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
        Console(stderr=True).print(f"wrote {plot}", highlight=False)


@app.command()
def draw(
    source: Annotated[str, typer.Argument(help="A zoo name, an IR YAML file or a YAML string.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The picture: .svg, .png, .pdf or .dot.")],
    expand: Annotated[bool, typer.Option("--expand", help="Draw composite blocks with their inner blocks.")] = False,
) -> None:
    """Draw a network: blocks as boxes, tensor shapes on the edges (Graphviz)."""
    path = nas.draw.render(nas.draw.to_dot(nas.build(source), expand=expand), output)
    print(f"wrote {path}")


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
    as_json: Json = False,
) -> None:
    """Measure a network's latency on a backend (cached), with its roofline lower bound.

    A measurement the backend cannot make (an export or engine build that
    fails) is a one-line error, exit 2; with --json its record is printed first.
    """
    import nas.latency

    graph = nas.build(source)
    if input_shape is not None:
        graph = nas.latency.with_input_shape(graph, input_shape)
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
        peaks = nas.latency.device_peaks(result, store)
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


if __name__ == "__main__":
    run()
