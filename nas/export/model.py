"""What is exported: a network with what is known of it, and where it came from."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.io import zoo
from nas.io.build import build
from nas.io.exported import STORED_FORMATS, fit_weights, read_manifest, read_weights, written_formats
from nas.ir.graph import Graph
from nas.passes.lower import lower


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

    Example:
        >>> from_source("lenet5").source
        {'kind': 'zoo', 'name': 'lenet5'}
    """
    state = None
    if isinstance(source, Graph):
        graph, name, origin = source, source.name or "model", {"kind": "graph"}
    elif Path(source).is_dir():
        manifest = read_manifest(source)
        graph, name = build(source), str(manifest.get("name", Path(source).name))
        origin = {"kind": "export", "path": str(source), "was": manifest.get("source")}
        if "weights" in written_formats(manifest):
            state = read_weights(Path(source) / STORED_FORMATS["weights"].file, manifest["formats"]["weights"])
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


__all__ = ["Model", "from_source"]
