"""What ``nas space`` shows of a space: its decisions, its fixed points in
the zoo, a listing row, a full report, and sample architectures written out."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nas.io import zoo
from nas.ir.errors import NASError
from nas.space.encode import encode, may_hold
from nas.space.model import Space, short
from nas.space.operations import decode, sample, size


def describe(space: Space) -> Iterator[tuple[str, str, str]]:
    """``(label, domain, condition)`` for every decision, in order."""
    for d in space.decisions:
        condition = ", ".join(f"{label} = {short(v)}" for label, v in d.when)
        yield d.label, d.describe(), condition


def fixed_points(space: Space, names: Sequence[str] | None = None) -> list[str]:
    """The zoo nets that are fixed points of ``space``: ``decode(encode(net))``
    has the net's canonical hash."""

    found = []
    for name in zoo.names() if names is None else names:
        graph = zoo.load(name)
        if not may_hold(space, graph):
            continue
        try:
            encode(space, graph)
        except NASError:
            continue
        found.append(name)
    return found


def overview(space: Space) -> dict[str, Any]:
    """Name, size and description of a space, for listings."""
    return {
        "name": space.name,
        "size": size(space),
        "decisions": len(space.decisions),
        "description": re.split(r"(?<!\bal)\.\s", space.description, maxsplit=1)[0].strip(),
    }


def report(space: Space, *, samples: int = 20, seed: int = 0) -> dict[str, Any]:
    """What ``nas space NAME`` prints: decisions, size (exact and as a power
    of ten), the zoo nets that are fixed points, and the params and MACs
    range over ``samples`` random architectures."""
    rng = random.Random(seed)
    graphs = [decode(space, sample(space, rng)) for _ in range(samples)]
    n = size(space)
    return {
        "name": space.name,
        "description": space.description,
        "file": space.file,
        "size": n,
        "size_log10": round(math.log10(n), 2),
        "decisions": [{"label": label, "choices": domain, "when": when} for label, domain, when in describe(space)],
        "fixed_points": fixed_points(space),
        "sample": {
            "n": samples,
            "seed": seed,
            "params": [min(g.params for g in graphs), max(g.params for g in graphs)],
            "macs": [min(g.macs for g in graphs), max(g.macs for g in graphs)],
        },
    }


def write_samples(space: Space, count: int, directory: str | Path, *, seed: int = 0) -> list[Path]:
    """Draw ``count`` architectures and write each as canonical IR YAML.

    Existing files are never overwritten: the directory must not already
    hold files of the names this writes.
    """
    rng = random.Random(seed)
    folder = Path(directory)
    targets = [folder / f"{space.name}_{seed}_{i:04d}.yaml" for i in range(count)]
    clash = [t for t in targets if t.exists()]
    if clash:
        raise NASError(
            "would overwrite an existing file", file=str(clash[0]), hint="choose an empty directory or another --seed"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for target in targets:
        graph = decode(space, sample(space, rng))
        graph.name = target.stem
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(graph.to_yaml())
        tmp.replace(target)
    return targets
