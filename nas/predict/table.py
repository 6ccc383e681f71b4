"""The portable latency table: per-unit latencies measured on one device and
runtime, the whole networks that fitted the correction, and the fitted
models, in one plain JSON file.

A table is measured once per (device, runtime, threads, precision, batch) by
:func:`nas.predict.profile` (``nas latency profile``), copied to
wherever a search runs, and read by :class:`nas.predict.predictor.Predictor`.
It holds no pickled objects: every field is JSON, checked on loading, and a
bad file is a one-line :class:`~nas.ir.errors.NASError` naming the file and
the field.

Layout (``version`` 2; version 1 files, whose correction is always linear,
are still read)::

    {"format": "nas-latency-table", "version": 2,
     "conditions": {backend, mode, device, precision, batch, threads, versions},
     "profile": {what was profiled: spaces and input shapes, counts, seed,
                 cost cap, timing policies, budget, elapsed, complete, note},
     "blocks": [{key, kind, members, inputs, wiring, macs, params, bytes,
                 median_ms, p10_ms, p90_ms, runs, count}, ...],
     "networks": [{name, hash, source, median_ms, p10_ms, p90_ms}, ...],
     "fallback": {"variants": {...}, "kinds": {kind: [a, b, c]}, "heads": {...}, "global": [a, b, c],
                  "spatial_weight": w (optional, 1 if absent)},
     "correction": {"features": [...], "coef": [...], "target": "linear" | "log", "fit": {...},
                    "neighbours": {features, k, shrink, scale, points, residuals, ...} (optional)}}

``target`` (new in version 2) says whether the correction predicts ``ms``
or ``log ms`` from its features; nas releases that read version 1 only
refuse version 2 files with a one-line error rather than misread them.
``neighbours`` (optional) holds the profiled networks' positions and
residuals, which move a prediction towards the errors of its nearest
networks (:class:`nas.predict.nearest.Neighbours`). ``spatial_weight``
(optional) is how much the map size counts in finding the entries nearest
to a unit the table lacks (:data:`nas.predict.nearest.SPATIAL_WEIGHTS`).

Block entries are keyed by :attr:`nas.passes.fusion.Unit.key`. The table
holds the unit configurations met in the profiled networks, not every
configuration a space can produce (that set is infinite for most spaces);
the predictor models the others from their kind, MACs and bytes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.ir.errors import NASError
from nas.predict.features import FEATURES

FORMAT = "nas-latency-table"
VERSION = 2
READS = (1, 2)
"""Table versions this nas reads (1: no ``correction.target``, linear)."""

_CONDITION_FIELDS = {
    "backend": str,
    "mode": str,
    "device": str,
    "precision": str,
    "batch": int,
    "threads": (int, type(None)),
    "versions": dict,
}
_BLOCK_FIELDS = {
    "key": str,
    "kind": str,
    "members": list,
    "inputs": list,
    "wiring": list,
    "macs": int,
    "params": int,
    "bytes": int,
    "median_ms": float,
    "p10_ms": float,
    "p90_ms": float,
    "runs": int,
    "count": int,
}
_NETWORK_FIELDS = {"name": str, "hash": str, "source": str, "median_ms": float, "p10_ms": float, "p90_ms": float}


@dataclass
class LatencyTable:
    """A latency table in memory (see the module doc for the fields).

    ``path`` is where it was read from or written to, for messages and for
    the ``table`` field of predictions.
    """

    conditions: dict[str, Any]
    blocks: list[dict[str, Any]]
    networks: list[dict[str, Any]]
    fallback: dict[str, Any] = field(default_factory=dict)
    correction: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "conditions": self.conditions,
            "profile": self.profile,
            "blocks": self.blocks,
            "networks": self.networks,
            "fallback": self.fallback,
            "correction": self.correction,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON (atomically: a temporary file, then a rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, sort_keys=False)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text + "\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.path = str(target)
        return target

    @classmethod
    def from_dict(cls, data: Any, path: str | None = None) -> LatencyTable:
        """Check and read a table's JSON object.

        Raises:
            NASError: naming the file and the first bad field.
        """
        where = path or "<table>"

        def bad(field_name: str, message: str, hint: str | None = None) -> NASError:
            return NASError(message, file=where, field=field_name, hint=hint)

        if not isinstance(data, Mapping):
            raise bad("format", "a latency table is a JSON object", "write it with 'nas latency profile'")
        if data.get("format") != FORMAT:
            raise bad("format", f"not a latency table (format {data.get('format')!r})", f"expected '{FORMAT}'")
        version = data.get("version")
        if isinstance(version, bool) or version not in READS:
            raise bad(
                "version",
                f"table version {version!r} is not one this nas reads ({', '.join(map(str, READS))})",
                "profile again with this nas",
            )
        conditions = _record(data.get("conditions"), _CONDITION_FIELDS, "conditions", bad)
        if conditions["batch"] < 1:
            raise bad("conditions.batch", f"batch must be >= 1, got {conditions['batch']}")
        blocks = _records(data.get("blocks"), _BLOCK_FIELDS, "blocks", bad)
        networks = _records(data.get("networks"), _NETWORK_FIELDS, "networks", bad)
        for name, rows in (("blocks", blocks), ("networks", networks)):
            for i, row in enumerate(rows):
                if not (row["median_ms"] > 0 and math.isfinite(row["median_ms"])):
                    raise bad(f"{name}[{i}].median_ms", f"must be a positive number, got {row['median_ms']!r}")
        seen: set[str] = set()
        for i, row in enumerate(blocks):
            if row["key"] in seen:
                raise bad(f"blocks[{i}].key", f"duplicate block key {row['key']}")
            seen.add(row["key"])
        fallback = data.get("fallback", {})
        if not isinstance(fallback, Mapping):
            raise bad("fallback", "must be an object")
        for group in ("variants", "kinds", "heads"):
            models = fallback.get(group, {})
            if not isinstance(models, Mapping):
                raise bad(f"fallback.{group}", "must be an object of kind -> [a, b, c]")
            for kind, coef in models.items():
                _coefficients(coef, 3, f"fallback.{group}.{kind}", bad)
        if "global" in fallback:
            _coefficients(fallback["global"], 3, "fallback.global", bad)
        weight = fallback.get("spatial_weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (0 < weight < math.inf):
            raise bad("fallback.spatial_weight", f"must be a positive number, got {weight!r}")
        correction = data.get("correction", {})
        if not isinstance(correction, Mapping):
            raise bad("correction", "must be an object")
        if correction:
            names = correction.get("features")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise bad("correction.features", "must be a list of feature names")
            unknown = [n for n in names if n not in FEATURES]
            if unknown:
                raise bad("correction.features", f"unknown feature '{unknown[0]}'", f"known: {', '.join(FEATURES)}")
            _coefficients(correction.get("coef"), len(names), "correction.coef", bad)
            target = correction.get("target", "linear")
            if target not in ("linear", "log") or (version == 1 and target != "linear"):
                raise bad("correction.target", f"must be 'linear' or 'log' (version 2), got {target!r}")
            if correction.get("neighbours") is not None:
                _neighbours(correction["neighbours"], FEATURES, bad)
        profile = data.get("profile", {})
        if not isinstance(profile, Mapping):
            raise bad("profile", "must be an object")
        return cls(
            conditions=dict(conditions),
            blocks=blocks,
            networks=networks,
            fallback=dict(fallback),
            correction=dict(correction),
            profile=dict(profile),
            path=path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        """Read and check a table file.

        Raises:
            NASError: a missing or unreadable file, bad JSON, or a bad field
                (one line naming the file and the field).
        """
        where = str(path)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise NASError("no such latency table", file=where, hint="write one with 'nas latency profile'") from None
        except (OSError, UnicodeDecodeError) as e:
            raise NASError(f"cannot read the latency table: {e}", file=where) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise NASError(f"not valid JSON: {e.msg}", file=where, line=e.lineno) from None
        return cls.from_dict(data, where)

    def describe(self) -> str:
        """One line: what the table was measured on."""
        c = self.conditions
        threads = "" if c.get("threads") is None else f", {c['threads']} threads"
        return (
            f"{c['backend']} ({c['mode']}) on {c['device']}, {c['precision']}, batch {c['batch']}{threads}: "
            f"{len(self.blocks)} blocks, {len(self.networks)} networks"
        )


def _record(value: Any, fields: Mapping[str, Any], name: str, bad: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise bad(name, "missing or not an object")
    row = dict(value)
    for key, kind in fields.items():
        if key not in row:
            raise bad(f"{name}.{key}", "missing")
        v = row[key]
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad(f"{name}.{key}", f"must be a number, got {v!r}")
            row[key] = float(v)
        elif kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad(f"{name}.{key}", f"must be an integer, got {v!r}")
        elif not isinstance(v, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise bad(f"{name}.{key}", f"must be of type {expected}, got {v!r}")
    return row


def _records(value: Any, fields: Mapping[str, Any], name: str, bad: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad(name, "missing or not a list")
    return [_record(v, fields, f"{name}[{i}]", bad) for i, v in enumerate(value)]


def _finite(values: Any, n: int | None = None) -> bool:
    """Whether ``values`` is a list (of ``n``) finite numbers."""
    return (
        isinstance(values, list)
        and (n is None or len(values) == n)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )


def _coefficients(value: Any, n: int, name: str, bad: Any) -> None:
    if not _finite(value, n):
        raise bad(name, f"must be a list of {n} finite numbers, got {value!r}")


def _neighbours(spec: Any, features: Mapping[str, Any], bad: Any) -> None:
    """Check ``correction.neighbours`` (:class:`nas.predict.nearest.Neighbours`)."""
    name = "correction.neighbours"
    if not isinstance(spec, Mapping):
        raise bad(name, "must be an object")
    names = spec.get("features")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in features for n in names):
        raise bad(f"{name}.features", "must be a list of known feature names", f"known: {', '.join(features)}")
    points, residuals = spec.get("points"), spec.get("residuals")
    if not isinstance(points, list) or not points or not all(_finite(p, len(names)) for p in points):
        raise bad(f"{name}.points", f"must be a non-empty list of lists of {len(names)} finite numbers")
    if not _finite(residuals, len(points)):
        raise bad(f"{name}.residuals", f"must be a list of {len(points)} finite numbers, one per point")
    if not _finite(spec.get("scale"), len(names)) or min(spec["scale"]) <= 0:
        raise bad(f"{name}.scale", f"must be a list of {len(names)} positive numbers")
    k = spec.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(points):
        raise bad(f"{name}.k", f"must be a whole number from 1 to {len(points)} (the points), got {k!r}")
    if not _finite([spec.get("shrink")]):
        raise bad(f"{name}.shrink", f"must be a finite number, got {spec.get('shrink')!r}")


def load_table(path: str | os.PathLike[str]) -> LatencyTable:
    """:meth:`LatencyTable.load`."""
    return LatencyTable.load(path)


__all__ = ["FORMAT", "READS", "VERSION", "LatencyTable", "load_table"]
