"""Export: a network leaves the toolkit as files other tools load, and comes back identical.

An export is a directory::

    model.yaml            the architecture, as canonical IR (always written)
    model.safetensors     the weights
    model.pt2             torch.export (``torch.export.load``)
    model.torchscript.pt  TorchScript (``torch.jit.load``)
    model.onnx            ONNX, checked with onnxruntime
    model.tensorrt.pt2    a TensorRT engine in torch-tensorrt's exported-program form
    model.json            the manifest: every file with its SHA-256, each format's
                          check, and the model card's figures
    MODEL.md              the model card, for people

Every runnable format is loaded back right after it is written and run on
the same seeded input as the lowered IR module; a format whose outputs differ
(or that cannot be written: an operator ONNX cannot express, a missing
library) fails alone, with its reason in the manifest, and the others are
still written. The directory is assembled under a hidden name beside its
target and renamed into place at the end, so an interrupted export leaves
either the previous directory or the new one, never a half-written one that
:func:`load` would accept.

Loading never unpickles: :func:`load` rebuilds the module from ``model.yaml``
and ``model.safetensors``; a pt2, TorchScript or TensorRT file (formats that
may carry pickled data) is read only when the caller names that format.

Example:
    >>> import nas, nas.export
    >>> model = nas.export.from_source("lenet5")                              # doctest: +SKIP
    >>> nas.export.export(model, "out/lenet5", formats=("yaml", "weights"))   # doctest: +SKIP
    >>> nas.load("out/lenet5")(torch.zeros(1, 1, 32, 32)).shape               # doctest: +SKIP
    torch.Size([1, 10])
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

import nas
import nas.space as S
from nas.io import zoo
from nas.io.build import build
from nas.io.exported import (
    CARD,
    EXPORT_VERSION,
    MANIFEST,
    STORED_FORMATS,
    Outputs,
    Runner,
    fit_weights,
    one_line,
    read_manifest,
    read_weights,
    sha256,
    written_formats,
)
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.latency import measure
from nas.passes.lower import lower
from nas.passes.onnx import ONNX_OPSET, to_onnx

TOLERANCE = 1e-4
"""Largest difference from the IR module's outputs a format may show,
relative to the outputs' magnitude (at least 1)."""


# -- what is exported ---------------------------------------------------------------


@dataclass
class Model:
    """A network to export and what is known of it.

    Attributes:
        graph: the architecture.
        weights: its trained weights (a state dict of :func:`nas.passes.lower`'s
            module); ``None`` exports freshly initialised ones, said so.
        name: a short name for the card (zoo name, file stem, study and trial).
        source: where it came from (``kind``: zoo, file, trial, train, graph).
        accuracy: ``{"value", "data", "split", ...}`` where it was measured.
        search: the study it was found by (storage, study, trial, space,
            assignment, sampler, objective, budget, origin).
        latency: latency records known already (the search's measurement).
    """

    graph: Graph
    weights: dict[str, torch.Tensor] | None = None
    name: str = "model"
    source: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    latency: list[dict[str, Any]] = field(default_factory=list)


def from_source(
    source: str | os.PathLike[str] | Graph,
    *,
    weights: str | os.PathLike[str] | None = None,
    input_shape: Sequence[int] | str | None = None,
) -> Model:
    """A :class:`Model` from a zoo name, an IR file, a YAML string, a Graph or
    an export directory (whose weights come along).

    Args:
        weights: a ``.safetensors`` file of weights for it.
        input_shape: another input shape, without the batch (``"3x64x64"``).

    Raises:
        NASError: a bad source, or weights that are not safetensors or do not fit.
    """
    state = None
    if isinstance(source, Graph):
        graph, name, origin = source, source.name or "model", {"kind": "graph"}
    elif Path(source).is_dir():
        manifest = read_manifest(source)
        graph, name = build(source), str(manifest.get("name", Path(source).name))
        origin = {"kind": "export", "path": str(source), "was": manifest.get("source")}
        if "weights" in written_formats(manifest):
            state = read_weights(Path(source) / FORMATS["weights"].file, manifest["formats"]["weights"])
    else:
        graph = build(source)
        text = str(source)
        if not Path(text).is_file() and text in zoo.names():
            name, origin = text, {"kind": "zoo", "name": text}
        elif "\n" in text or text.lstrip().startswith("{"):
            name, origin = graph.name or "model", {"kind": "yaml"}
        else:
            name, origin = Path(text).stem, {"kind": "file", "path": text}
    if input_shape is not None:
        graph = build(graph, input_shape=input_shape)
    if weights is not None:
        state = read_weights(Path(weights))
    if state is not None:
        fit_weights(lower(graph), state)
    return Model(graph, state, name=name, source=origin)


# -- formats ----------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """One file format: its file name, how to write it, how to load it back,
    and what it needs (``missing`` says what is absent, or ``None``)."""

    name: str
    file: str
    write: Callable[[torch.nn.Module, Outputs, Path], dict[str, Any]] | None
    load: Callable[[Path], Runner] | None
    missing: Callable[[], str | None] = lambda: None
    unpickles: bool = False


def _write_pt2(module: torch.nn.Module, inputs: Outputs, path: Path) -> dict[str, Any]:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    dynamic: Any = tuple({0: batch} for _ in inputs)
    try:
        program = torch.export.export(module, inputs, dynamic_shapes=dynamic)
        details = {"batch": "dynamic"}
    except Exception:  # a network whose code specialises on the batch size: export it static
        program = torch.export.export(module, inputs)
        details = {"batch": int(inputs[0].shape[0])}
    torch.export.save(program, str(path))
    return details


def _write_torchscript(module: torch.nn.Module, inputs: Outputs, path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace's deprecation notice
        try:
            scripted = torch.jit.trace(module, inputs, check_trace=False)
            how = "trace"
        except Exception as traced:
            try:
                scripted = torch.jit.script(module)
            except Exception:
                raise traced from None
            how = "script"
    scripted.save(str(path))
    return {"method": how, "batch": "dynamic"}


def _write_onnx(module: torch.nn.Module, inputs: Outputs, path: Path) -> dict[str, Any]:
    path.write_bytes(to_onnx(module, inputs, dynamic_batch=True))
    return {"opset": ONNX_OPSET, "batch": "dynamic"}


def _write_tensorrt(module: torch.nn.Module, inputs: Outputs, path: Path) -> dict[str, Any]:
    import torch_tensorrt

    xs = [x.cuda() for x in inputs]
    with torch.no_grad():
        engine = torch_tensorrt.compile(
            module.cuda(),
            ir="dynamo",
            inputs=xs,
            enabled_precisions={torch.float32},
            require_full_compilation=True,
            min_block_size=1,
            pass_through_build_failures=True,
        )
    torch_tensorrt.save(engine, str(path), output_format="exported_program", inputs=xs)
    module.cpu()
    return {"precision": "fp32", "batch": int(inputs[0].shape[0]), "torch_tensorrt": torch_tensorrt.__version__}


_WRITERS = {"pt2": _write_pt2, "torchscript": _write_torchscript, "onnx": _write_onnx, "tensorrt": _write_tensorrt}

FORMATS: dict[str, Format] = {
    name: Format(name, stored.file, _WRITERS.get(name), stored.load, stored.missing, stored.unpickles)
    for name, stored in STORED_FORMATS.items()
}
"""Every format, in the order they are written."""

DEFAULT_FORMATS = ("yaml", "weights", "pt2", "torchscript", "onnx")
"""What ``nas export`` writes unless told (all but TensorRT, which needs a GPU)."""


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"yaml,onnx"`` or ``["yaml", "onnx"]`` (``all`` for every format) as
    format names in writing order; ``yaml`` is always among them.

    Raises:
        NASError: an unknown format name.
    """
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if "all" in names:
        names = list(FORMATS)
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise NASError(
            f"unknown export format '{unknown[0]}'", field="format", hint=f"choose from {', '.join(FORMATS)} or all"
        )
    return tuple(n for n in FORMATS if n in names or n == "yaml")


# -- writing ----------------------------------------------------------------------


@dataclass
class Written:
    """What became of one format: its file, or why it failed, and its check."""

    format: str
    ok: bool
    file: str | None = None
    reason: str | None = None
    max_abs_error: float | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record = {"ok": self.ok, "file": self.file, "reason": self.reason, "seconds": round(self.seconds, 3)}
        if self.max_abs_error is not None:
            record["max_abs_error"] = self.max_abs_error
        return {**record, **self.details}


@dataclass
class Exported:
    """The result of :func:`export`: the directory, each format's outcome, the manifest."""

    directory: Path
    formats: dict[str, Written]
    manifest: dict[str, Any]

    @property
    def failed(self) -> dict[str, str]:
        """Format name -> reason, for every requested format that was not written."""
        return {name: w.reason or "failed" for name, w in self.formats.items() if not w.ok}


def export(
    model: Model,
    directory: str | os.PathLike[str],
    formats: Sequence[str] | str = DEFAULT_FORMATS,
    *,
    batch: int = 2,
    overwrite: bool = False,
    latency: Sequence[str] = (),
    seed: int = 0,
) -> Exported:
    """Write ``model`` to ``directory`` in ``formats``, with its model card.

    Args:
        formats: names from :data:`FORMATS` (``yaml`` is always written).
        batch: the batch of the example input that traced formats are made
            and checked with. pt2 and ONNX keep the batch dynamic where they
            can (then they are checked at batch 1 too); a batch of 1 would
            make torch.export specialise on it, hence the default of 2.
        overwrite: replace an earlier export at ``directory``. Anything else
            there (not an export) is never replaced.
        latency: backends to measure the model on, at batch 1, for its card
            (``torch``, ``onnxruntime`` ...); a backend that cannot run here
            is recorded with its reason.
        seed: seeds the weights when the model has none, and the example input.

    Returns:
        :class:`Exported`; a format that failed is in ``failed``, with its
        reason, and the others are written.

    Raises:
        NASError: an unusable target directory, or weights that do not fit.
    """
    target = Path(directory)
    chosen = parse_formats(formats)
    check_target(target, overwrite)
    torch.manual_seed(seed)
    module = lower(model.graph).eval()
    trained = model.weights is not None
    if trained:
        fit_weights(module, model.weights)
    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    inputs = tuple(torch.randn((batch, *shape), generator=generator) for shape in model.graph.summary.inputs.values())
    with torch.no_grad():
        cases = [(inputs, _as_tuple(module(*inputs)))]
        if batch > 1:
            single = tuple(x[:1] for x in inputs)
            cases.append((single, _as_tuple(module(*single))))

    results: dict[str, Written] = {}
    with _staging(target, overwrite) as folder:
        for name in chosen:
            started = time.perf_counter()
            results[name] = _write_one(FORMATS[name], model, module, state, cases, folder)
            results[name].seconds = time.perf_counter() - started
        manifest = _manifest(model, results, folder, trained=trained, seed=seed, batch=batch, latency=latency)
        (folder / CARD).write_text(model_card(manifest))
        # The manifest goes last: a folder without it is not an export.
        _write_json(folder / MANIFEST, manifest)
    return Exported(target, results, manifest)


def _write_one(
    fmt: Format,
    model: Model,
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    cases: Sequence[tuple[Outputs, Outputs]],
    folder: Path,
) -> Written:
    """Write one format, load it back and check it on ``cases`` (inputs, the IR module's outputs)."""
    path = folder / fmt.file
    if fmt.name == "yaml":
        path.write_text(model.graph.to_yaml())
        return Written("yaml", True, fmt.file)
    if fmt.name == "weights":
        safetensors.torch.save_file(dict(state), str(path), metadata={"nas_graph_hash": model.graph.hash})
        reloaded = lower(model.graph).eval()
        reloaded.load_state_dict(safetensors.torch.load_file(str(path)))
        return _checked(fmt.name, path, {"batch": "dynamic"}, reloaded, cases)
    missing = fmt.missing()
    if missing is not None:
        return Written(fmt.name, False, reason=missing)
    assert fmt.write is not None and fmt.load is not None
    try:
        with torch.no_grad():
            details = fmt.write(module, cases[0][0], path)
        runner = fmt.load(path)
    except Exception as e:  # each runtime raises its own kinds: the format fails alone
        path.unlink(missing_ok=True)
        return Written(fmt.name, False, reason=f"{fmt.name} export failed: {one_line(e)}")
    return _checked(fmt.name, path, details, runner, cases)


def _checked(
    name: str, path: Path, details: dict[str, Any], runner: Runner, cases: Sequence[tuple[Outputs, Outputs]]
) -> Written:
    """Run what was written on the example inputs (all batches if its batch is
    dynamic, else the first); fail the format if its outputs differ."""
    worst = 0.0
    for inputs, expected in cases if details.get("batch") == "dynamic" else cases[:1]:
        batch = int(inputs[0].shape[0])
        try:
            with torch.no_grad():
                got = _as_tuple(runner(*inputs))
        except Exception as e:
            path.unlink(missing_ok=True)
            return Written(name, False, reason=f"the {name} file does not run at batch {batch}: {one_line(e)}")
        error = _difference(got, expected)
        scale = max([1.0, *(float(y.abs().max()) for y in expected if y.numel())])
        if error is None or error > TOLERANCE * scale:
            path.unlink(missing_ok=True)
            what = "other output shapes" if error is None else f"outputs {error:.3g} away from the IR module's"
            return Written(name, False, reason=f"the {name} file gives {what} at batch {batch}")
        worst = max(worst, error)
    return Written(name, True, path.name, max_abs_error=worst, details=details)


def _difference(got: Outputs, expected: Outputs) -> float | None:
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected, strict=True)):
        return None
    return max(
        (float((g.float().cpu() - e.float()).abs().max()) for g, e in zip(got, expected, strict=True)), default=0
    )


def _as_tuple(value: Any) -> Outputs:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


# -- the directory ----------------------------------------------------------------


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is not a directory, holds something other than an
    export, or holds an export and ``overwrite`` is not set.

    Raises:
        NASError: naming the target and the fix.
    """
    if not target.exists():
        return
    if not target.is_dir():
        raise NASError(f"{target} exists and is not a directory", field="output", hint="choose another -o")
    if not any(target.iterdir()):
        return
    if not (target / MANIFEST).is_file():
        raise NASError(
            f"{target} is not empty and not a nas export: nothing there is replaced",
            field="output",
            hint="choose another -o, or an empty or new directory",
        )
    if not overwrite:
        raise NASError(
            f"{target} holds an export already", field="output", hint="pass --force to replace it, or choose another -o"
        )


@contextlib.contextmanager
def _staging(target: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden folder beside ``target`` to write into, renamed to ``target``
    when the block ends without error (after moving an old export aside),
    and removed otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield folder
        _permissions(folder)
        old = None
        if target.exists() and any(target.iterdir()):
            check_target(target, overwrite)  # the target may have changed while we wrote
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
        elif target.exists():
            target.rmdir()
        os.rename(folder, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _permissions(folder: Path) -> None:
    """The modes a plain ``mkdir`` and ``open`` would have given (mkdtemp
    makes the folder private, and some writers their files)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# -- the model card ---------------------------------------------------------------


def _manifest(
    model: Model,
    results: Mapping[str, Written],
    folder: Path,
    *,
    trained: bool,
    seed: int,
    batch: int,
    latency: Sequence[str],
) -> dict[str, Any]:
    graph = model.graph
    summary = graph.summary
    formats = {}
    for name, written in results.items():
        record = written.to_dict()
        if written.ok and written.file:
            record["sha256"] = sha256(folder / written.file)
            record["bytes"] = (folder / written.file).stat().st_size
        formats[name] = record
    blocks = Counter(node.block.name for node in summary.order if node.block.name != "input")
    return {
        "nas_export": EXPORT_VERSION,
        "name": model.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"nas": nas.__version__, "torch": torch.__version__.split("+")[0]},
        "source": model.source,
        "architecture": {
            "hash": graph.hash,
            "inputs": {name: list(shape) for name, shape in summary.inputs.items()},
            "outputs": [list(shape) for shape in summary.outputs],
            "params": graph.params,
            "macs": graph.macs,
            "nodes": sum(blocks.values()),
            "blocks": dict(sorted(blocks.items(), key=lambda kv: (-kv[1], kv[0]))),
        },
        "weights": {
            "trained": trained,
            "note": "trained weights" if trained else f"not trained: initialised with torch.manual_seed({seed})",
        },
        "accuracy": model.accuracy,
        "latency": [*model.latency, *_measure(graph, latency)],
        "search": model.search,
        "closest_zoo": closest_zoo(graph, model.search),
        "check": {"batch": batch, "seed": seed, "tolerance": TOLERANCE},
        "formats": formats,
    }


def _measure(graph: Graph, backends: Sequence[str]) -> list[dict[str, Any]]:
    records = []
    for backend in backends:
        try:
            m = measure(graph, backend, batch=1)
        except NASError as e:  # a backend that cannot run here: say so on the card
            records.append({"backend": backend, "median_ms": None, "reason": str(e), "source": "measured at export"})
            continue
        record = m.to_dict()
        keep = ("backend", "mode", "device", "precision", "batch", "threads", "versions", "median_ms", "p10_ms")
        entry = {k: record[k] for k in (*keep, "p90_ms", "runs", "cv") if k in record}
        entry["source"] = "measured at export" if m.ok else f"failed: {m.reason}"
        records.append(entry)
    return records


def closest_zoo(graph: Graph, search: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The zoo net nearest to ``graph`` by decision distance in a search
    space: in the space it was searched in (``search["space"]`` and
    ``search["assignment"]``), else in every shipped space that can express
    it. ``None`` where no space can."""
    candidates: list[tuple[S.Space, Mapping[str, Any]]] = []
    if search and search.get("space") and search.get("assignment") is not None:
        with contextlib.suppress(NASError):
            space = S.load_space(str(search["space"]))
            candidates.append((space, S.assignment_from_plain(space, search["assignment"])))
    if not candidates:
        for name in S.space_names():
            space = S.load_space(name)
            if list(space.inputs) != list(graph.summary.inputs):
                continue
            with contextlib.suppress(NASError):
                candidates.append((space, S.encode(space, graph)))
    best: dict[str, Any] | None = None
    for space, assignment in candidates:
        for name in S.fixed_points(space):
            d = S.distance(assignment, S.encode(space, zoo.load(name)))
            if best is None or d < best["distance"]:
                best = {"name": name, "distance": d, "space": space.name, "decisions": len(S.active(space, assignment))}
    return best


def model_card(manifest: Mapping[str, Any]) -> str:
    """``MODEL.md``: the manifest as a page for people."""
    arch = manifest["architecture"]
    lines = [f"# {manifest['name']}", ""]
    source = manifest.get("source") or {}
    lines += [
        f"Exported by nas {manifest['versions']['nas']} (torch {manifest['versions']['torch']}) on "
        f"{manifest['created']}, from {_describe_source(source)}.",
        "",
    ]
    lines += ["## Architecture", ""]
    shapes = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in arch["inputs"].items())
    outs = ", ".join("x".join(map(str, s)) for s in arch["outputs"])
    lines += [
        "| | |",
        "|---|---|",
        f"| input | {shapes} |",
        f"| output | {outs} |",
        f"| parameters | {arch['params']:,} |",
        f"| MACs (batch 1) | {arch['macs']:,} |",
        f"| nodes | {arch['nodes']} ({', '.join(f'{k} {v}' for k, v in list(arch['blocks'].items())[:8])}) |",
        f"| canonical hash | `{arch['hash'][:16]}` |",
        "",
        "The architecture is `model.yaml` (nas IR); `nas show` and `nas draw` read it.",
        "",
    ]
    closest = manifest.get("closest_zoo")
    if closest:
        same = (
            "it is" if closest["distance"] == 0 else f"{closest['distance']} of {closest['decisions']} decisions from"
        )
        lines += [f"Closest classic net: {same} `{closest['name']}`, in the `{closest['space']}` search space.", ""]
    lines += ["## Accuracy", ""]
    acc = manifest.get("accuracy")
    if acc:
        shown = ("value", "data", "split", "curve")
        extra = ", ".join(f"{k} {v}" for k, v in acc.items() if k not in shown and v is not None)
        lines += [
            f"{acc['value']:.4f} on the {acc.get('split', 'validation')} split of `{acc.get('data')}`"
            f"{f' ({extra})' if extra else ''}.",
            "",
        ]
    else:
        lines += ["Not measured.", ""]
    lines += [f"Weights: {manifest['weights']['note']}.", "", "## Latency", ""]
    records = [r for r in manifest.get("latency", []) if r.get("median_ms") is not None]
    if records:
        lines += ["| backend | device | batch | precision | threads | median ms | p10 ms | p90 ms | source |"]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        for r in records:
            cells = [r.get("backend"), r.get("device", ""), r.get("batch"), r.get("precision"), r.get("threads")]
            figures = [_ms(r.get("median_ms")), _ms(r.get("p10_ms")), _ms(r.get("p90_ms")), r.get("source")]
            lines.append("| " + " | ".join("" if c is None else str(c) for c in (*cells, *figures)) + " |")
    else:
        lines += ["Not measured."]
    for r in manifest.get("latency", []):
        if r.get("median_ms") is None:
            lines += ["", f"{r.get('backend')}: {r.get('reason') or r.get('source')}"]
    search = manifest.get("search")
    if search:
        lines += ["", "## Search", ""]
        budget = search.get("latency_budget_ms")
        lines += [
            f"Trial {search['trial']} of study `{search['study']}` ({search.get('storage')}): space "
            f"`{search.get('space')}`, sampler {search.get('sampler')}, objective {search.get('objective')}, "
            f"latency budget {budget} ms; origin: {search.get('origin')}."
        ]
    lines += ["", "## Files", "", "| format | file | check |", "|---|---|---|"]
    for name, record in manifest["formats"].items():
        if record.get("ok"):
            check = "" if record.get("max_abs_error") is None else f"max abs error {record['max_abs_error']:.2g}"
            extra = ", ".join(f"{k} {record[k]}" for k in ("opset", "batch", "method") if k in record)
            lines.append(f"| {name} | `{record['file']}` | {'; '.join(x for x in (check, extra) if x)} |")
        else:
            lines.append(f"| {name} | not written | {record.get('reason')} |")
    lines += [
        "",
        "Load it with `nas.load(DIR)` (architecture and safetensors weights; nothing is unpickled), or with plain",
        "torch (`torch.export.load`, `torch.jit.load`) and onnxruntime for the other files.",
        "",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _describe_source(source: Mapping[str, Any]) -> str:
    kind = source.get("kind")
    if kind == "zoo":
        return f"the zoo net `{source.get('name')}`"
    if kind == "file":
        return f"`{source.get('path')}`"
    if kind == "trial":
        return f"trial {source.get('trial')} of the study `{source.get('study')}`"
    if kind == "train":
        return f"training `{source.get('from')}` on `{source.get('data')}`"
    if kind == "export":
        return f"the export `{source.get('path')}`"
    return "a graph"


# -- weights ------------------------------------------------------------------------


# -- loading ------------------------------------------------------------------------


__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "Exported",
    "Format",
    "Model",
    "Written",
    "closest_zoo",
    "export",
    "from_source",
    "model_card",
    "parse_formats",
    "read_manifest",
]
