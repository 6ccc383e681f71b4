"""What an export says about its model: the manifest (``model.json``), for
programs, and the model card (``MODEL.md``), the same facts for people.

The manifest holds the architecture's figures, where the model came from,
its accuracy and latency where known, the classic net it is closest to, and
each format's outcome with its SHA-256; :func:`model_card` renders it.
"""

from __future__ import annotations

import contextlib
import datetime
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

import nas
import nas.space as S
from nas.export.model import Model
from nas.io import zoo
from nas.io.exported import EXPORT_VERSION
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.latency import measure


def describe(
    model: Model,
    formats: Mapping[str, Mapping[str, Any]],
    *,
    trained: bool,
    seed: int,
    batch: int,
    tolerance: float,
    latency: Sequence[str],
    seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """The manifest of ``model`` exported in ``formats`` (name -> record).

    Args:
        trained: whether the weights are trained (else seeded with ``seed``).
        seed, batch, tolerance, seeds: how the formats were checked (on the
            inputs of ``seeds``, at ``batch`` and at batch 1).
        latency: backends to measure the model on, at batch 1.
    """
    graph = model.graph
    summary = graph.summary
    blocks = Counter(node.block.name for node in summary.order if not node.block.placeholder)
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
        "check": {"batch": batch, "seed": seed, "tolerance": tolerance, "input_seeds": list(seeds or [seed])},
        "formats": dict(formats),
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


# -- the model card ---------------------------------------------------------------


def model_card(manifest: Mapping[str, Any]) -> str:
    """``MODEL.md``: the manifest as a page for people."""
    versions = manifest["versions"]
    lines = [
        f"# {manifest['name']}",
        "",
        f"Exported by nas {versions['nas']} (torch {versions['torch']}) on "
        f"{manifest['created']}, from {_describe_source(manifest.get('source') or {})}.",
        "",
    ]
    lines += _architecture(manifest["architecture"], manifest.get("closest_zoo"))
    lines += _accuracy(manifest.get("accuracy"))
    lines += [f"Weights: {manifest['weights']['note']}.", ""]
    lines += _latency(manifest.get("latency", []))
    lines += _search(manifest.get("search"))
    lines += _files(manifest["formats"])
    return "\n".join(lines)


def _architecture(arch: Mapping[str, Any], closest: Mapping[str, Any] | None) -> list[str]:
    shapes = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in arch["inputs"].items())
    outs = ", ".join("x".join(map(str, s)) for s in arch["outputs"])
    lines = [
        "## Architecture",
        "",
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
    if closest:
        same = (
            "it is" if closest["distance"] == 0 else f"{closest['distance']} of {closest['decisions']} decisions from"
        )
        lines += [f"Closest classic net: {same} `{closest['name']}`, in the `{closest['space']}` search space.", ""]
    return lines


def _accuracy(acc: Mapping[str, Any] | None) -> list[str]:
    if not acc:
        return ["## Accuracy", "", "Not measured.", ""]
    shown = ("value", "data", "split", "curve", "recipe")
    extra = ", ".join(f"{k} {_figure(v)}" for k, v in acc.items() if k not in shown and v is not None)
    lines = [
        "## Accuracy",
        "",
        f"{acc['value']:.4f} on the {acc.get('split', 'validation')} split of `{acc.get('data')}`"
        f"{f' ({extra})' if extra else ''}.",
        "",
    ]
    recipe = acc.get("recipe")
    if recipe:
        lines += [f"Trained with {_recipe_text(recipe)}.", ""]
    return lines


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _recipe_text(r: Mapping[str, Any]) -> str:
    """A training recipe in one sentence (the fields of ``nas.train.Recipe``, its epochs and precision)."""
    optimizer = str(r.get("optimizer"))
    if optimizer == "sgd":
        optimizer = f"SGD (momentum {r.get('momentum')}{', Nesterov' if r.get('nesterov') else ''})"
    parts = [
        f"{optimizer} at a peak rate of {r.get('lr')} for batches of {r.get('batch_size')}",
        f"a {r.get('schedule')} schedule"
        + (f" after a {r.get('warmup', 0):.0%} linear warm-up" if r.get("warmup") else ""),
        f"weight decay {r.get('weight_decay')}"
        + ("" if r.get("decay_norms_and_biases") else " (not on norms and biases)"),
        f"label smoothing {r.get('label_smoothing')}",
        f"augmentation {r.get('augmentation', 'none')}",
        f"{r.get('epochs')} epochs",
        f"{r.get('amp') or 'float32'} arithmetic" + (", channels-last" if r.get("channels_last") else ""),
    ]
    return f"the `{r.get('name')}` recipe: " + ", ".join(parts)


def _latency(latency: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Latency", ""]
    records = [r for r in latency if r.get("median_ms") is not None]
    if records:
        lines += ["| backend | device | batch | precision | threads | median ms | p10 ms | p90 ms | source |"]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        for r in records:
            cells = [r.get("backend"), r.get("device", ""), r.get("batch"), r.get("precision"), r.get("threads")]
            figures = [_ms(r.get("median_ms")), _ms(r.get("p10_ms")), _ms(r.get("p90_ms")), r.get("source")]
            lines.append("| " + " | ".join("" if c is None else str(c) for c in (*cells, *figures)) + " |")
    else:
        lines += ["Not measured."]
    for r in latency:
        if r.get("median_ms") is None:
            lines += ["", f"{r.get('backend')}: {r.get('reason') or r.get('source')}"]
    return lines


def _search(search: Mapping[str, Any] | None) -> list[str]:
    if not search:
        return []
    return [
        "",
        "## Search",
        "",
        f"Trial {search['trial']} of study `{search['study']}` ({search.get('storage')}): space "
        f"`{search.get('space')}`, sampler {search.get('sampler')}, objective {search.get('objective')}, "
        f"latency budget {search.get('latency_budget_ms')} ms; origin: {search.get('origin')}.",
    ]


def _files(formats: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["", "## Files", "", "| format | file | check |", "|---|---|---|"]
    for name, record in formats.items():
        if record.get("ok"):
            check = "" if record.get("max_abs_error") is None else f"max abs error {record['max_abs_error']:.2g}"
            extra = ", ".join(f"{k} {record[k]}" for k in ("opset", "batch", "method") if k in record)
            lines.append(f"| {name} | `{record['file']}` | {'; '.join(x for x in (check, extra) if x)} |")
        else:
            lines.append(f"| {name} | not written | {record.get('reason')} |")
    return [
        *lines,
        *_tie_breaks(formats),
        "",
        "Load it with `nas.load(DIR)` (architecture and safetensors weights; nothing is unpickled), or with plain",
        "torch (`torch.export.load`, `torch.jit.load`) and onnxruntime for the other files.",
        "",
    ]


def _tie_breaks(formats: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The differences a format shows where it breaks a tie the other way: kept, and said."""
    lines = []
    for name, record in formats.items():
        for tie in record.get("tie_breaks") or ():
            lines.append(
                f"- {name}, input seed {tie['seed']} at batch {tie['batch']}: {tie['outputs']} of {tie['of']} "
                f"outputs differ, by up to {tie['max_abs_error']:.2g}"
            )
    if not lines:
        return []
    return [
        "",
        "Ties broken the other way (a max-pooling window with equal maxima, or maxima equal up to the rounding",
        "of a fused operator, picked differently; measured, not a disagreement):",
        "",
        *lines,
    ]


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
    if kind == "supernet" and "trial" in source:
        return (
            f"trial {source.get('trial')} of the study `{source.get('study')}` over the supernet `{source.get('path')}`"
        )
    if kind == "supernet":
        network = str(source.get("network", "a network"))
        zoo_net = network.removeprefix("zoo:")
        named = f"the zoo net `{zoo_net}`" if zoo_net != network else f"the {network} network"
        if source.get("fixed"):
            named += " with " + ", ".join(f"`{fix}`" for fix in source["fixed"])
        return f"{named} of the supernet `{source.get('path')}`"
    if kind == "import":
        return f"the import of `{source.get('spec')}`"
    return "a graph"


__all__ = ["closest_zoo", "describe", "model_card"]
