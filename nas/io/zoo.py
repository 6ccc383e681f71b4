"""The zoo: the classic CNNs as IR graphs, found by name.

One YAML file per family under ``search_spaces/zoo/`` (package data of
``nas.search_spaces``, read through ``importlib.resources``)::

    family: resnet
    meta:                         # shared by every net of the family
      paper: He et al., Deep Residual Learning for Image Recognition, 2015
      year: 2015
      task: image classification
    nets:
      resnet18:
        meta: {dataset: ImageNet, reference: torchvision.models.resnet18}
        inputs: {x: [3, 224, 224]}
        nodes: {...}              # the IR, as in any network file
        outputs: [fc]

A net's metadata is the family's, updated by its own, plus ``family``; every
net states at least :data:`REQUIRED_META`.

Example:
    >>> import nas
    >>> "resnet50" in nas.zoo.names()
    True
    >>> nas.build("resnet18").params
    11689512
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.io.parse import graph_from_mapping, read_yaml
from nas.ir.errors import SourceError
from nas.ir.graph import Graph

REQUIRED_META = ("paper", "year", "task", "dataset", "reference")
"""Metadata every zoo net carries: where it comes from and what checks it."""

_FAMILY_KEYS = ("family", "meta", "nets")


@dataclass(frozen=True)
class ZooEntry:
    """One net of the zoo, before it is built."""

    name: str
    family: str
    file: str
    meta: Mapping[str, Any]
    spec: Mapping[str, Any]


def names() -> list[str]:
    """The names of all zoo nets, sorted."""
    return sorted(_index())


def entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; unknown names suggest close ones."""
    index = _index()
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "run 'nas zoo' to list them"
        raise SourceError(f"no zoo net named '{name}'", hint=hint)
    return index[name]


def load(name: str) -> Graph:
    """Build the zoo net ``name`` (not yet analysed; see :func:`nas.io.build`)."""
    zoo_entry = entry(name)
    graph = graph_from_mapping(zoo_entry.spec, file=zoo_entry.file, name=name)
    graph.meta = dict(zoo_entry.meta)
    return graph


@functools.cache
def _index() -> dict[str, ZooEntry]:
    index: dict[str, ZooEntry] = {}
    root = importlib.resources.files("nas.search_spaces").joinpath("zoo")
    for resource in sorted(root.iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".yaml"):
            continue
        file = str(resource)
        data = read_yaml(resource.read_bytes(), file)
        if not isinstance(data, Mapping) or not isinstance(data.get("nets"), Mapping):
            raise SourceError("a zoo file is a mapping with 'family:', 'meta:' and 'nets:'", file=file)
        unknown = [k for k in data if k not in _FAMILY_KEYS]
        if unknown:
            raise SourceError(
                f"unknown key '{unknown[0]}' in a zoo file", file=file, hint=f"allowed: {', '.join(_FAMILY_KEYS)}"
            )
        family = str(data.get("family", resource.name.removesuffix(".yaml")))
        family_meta = dict(data.get("meta") or {})
        for name, spec in data["nets"].items():
            if name in index:
                raise SourceError(f"zoo net '{name}' is defined twice (also in {index[name].file})", file=file)
            if not isinstance(spec, Mapping):
                raise SourceError(f"zoo net '{name}' must be an IR mapping", file=file)
            meta = {**family_meta, **(spec.get("meta") or {}), "family": family}
            index[name] = ZooEntry(name, family, file, meta, spec)
    return index


def table() -> list[dict[str, Any]]:
    """One row per zoo net, for ``nas zoo``: name, family, year, input
    shape, params, MACs, and the reference it is checked against."""
    rows = []
    for name in names():
        graph = load(name)
        summary = graph.summary
        rows.append(
            {
                "name": name,
                "family": graph.meta["family"],
                "year": graph.meta.get("year"),
                "input": list(next(iter(summary.inputs.values()))),
                "params": summary.params,
                "macs": summary.macs,
                "reference": graph.meta.get("reference"),
            }
        )
    return rows
