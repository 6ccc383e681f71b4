"""Writing an export: every format written, loaded back and checked, into a
directory that appears whole or not at all.

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

Every runnable format (the weights too, through the architecture beside
them) is loaded back right after it is written and run on the same seeded
inputs as the lowered IR module: several seeds, at the export's batch and at
batch 1, since one input can hide a disagreement that another shows. ONNX is
run by ONNX Runtime at its default, full graph optimisation, the level the
latency backend measures at. A format whose outputs differ (or that cannot
be written: an operator ONNX cannot express, a missing library) fails alone,
with its reason in the manifest, and the others are still written.

A format may break a tie differently: where two values of a max-pooling
window are equal, or equal up to the rounding of a fused operator, it picks
the other one, and an unpooling that uses the indices writes it elsewhere
(ENet under ONNX Runtime). Such a difference touches a few outputs, where a
real disagreement touches most of them; the check tells them apart by the
share of outputs beyond the tolerance (:data:`TIE_SHARE`), keeps the format
and records every such difference in the manifest and the model card. A
disk that cannot take the files (full, read-only) fails the whole export
with one line naming the file, and leaves the target as it was (see
:mod:`nas.export.staging`).

Example:
    >>> import nas, nas.export
    >>> model = nas.export.from_source("lenet5")                              # doctest: +SKIP
    >>> nas.export.export(model, "out/lenet5", formats=("yaml", "weights"))   # doctest: +SKIP
    >>> nas.load("out/lenet5")(torch.zeros(1, 1, 32, 32)).shape               # doctest: +SKIP
    torch.Size([1, 10])
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.export.card import describe, model_card
from nas.export.formats import DEFAULT_FORMATS, FORMATS, Format, Subject, parse_formats
from nas.export.model import Model
from nas.export.staging import Staging, check_target, disk_error, staging
from nas.io.exported import CARD, MANIFEST, Outputs, Runner, fit_weights, sha256
from nas.ir.errors import WriteError, one_line
from nas.ir.registry import Shape
from nas.passes.lower import lower

TOLERANCE = 1e-4
"""Largest difference from the IR module's outputs a format may show,
relative to the outputs' magnitude (at least 1)."""

CHECK_SEEDS = 3
"""Seeded inputs each format is checked on (seeds ``seed``, ``seed + 1`` ...)."""

TIE_SHARE = 1e-3
"""Largest share of outputs beyond :data:`TOLERANCE` that is read as ties
broken differently rather than a disagreement: a tie moves one value of a
pooling window, and the layers after it spread it over a few neighbours."""

Case = tuple[int, Outputs, Outputs]
"""One check: the seed of the inputs, the inputs, the IR module's outputs."""


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
    tie_breaks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = {"ok": self.ok, "file": self.file, "reason": self.reason, "seconds": round(self.seconds, 3)}
        if self.max_abs_error is not None:
            record["max_abs_error"] = self.max_abs_error
        if self.tie_breaks:
            record["tie_breaks"] = self.tie_breaks
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
    check_seeds: Sequence[int] | None = None,
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
        check_seeds: the seeds of the inputs every format is checked on, each
            at ``batch`` and at batch 1; by default :data:`CHECK_SEEDS` seeds
            from ``seed``.

    Returns:
        :class:`Exported`; a format that failed is in ``failed``, with its
        reason, and the others are written.

    Raises:
        NASError: an unusable target directory, weights that do not fit, or
            a disk that cannot take the files (naming the file; an earlier
            export at ``directory`` is kept whole).
    """
    target = Path(directory)
    chosen = parse_formats(formats)
    check_target(target, overwrite)
    torch.manual_seed(seed)
    module = lower(model.graph).eval()
    trained = model.weights is not None
    if trained:
        fit_weights(module, model.weights)
    shapes = list(model.graph.summary.inputs.values())
    generator = torch.Generator().manual_seed(seed)
    inputs = tuple(torch.randn((batch, *shape), generator=generator) for shape in shapes)
    seeds = list(check_seeds) if check_seeds is not None else [seed + i for i in range(CHECK_SEEDS)]
    cases = _cases(module, shapes, batch, seeds)
    subject = Subject(model.graph, module, inputs)

    results: dict[str, Written] = {}
    with staging(target, overwrite) as stage:
        for name in chosen:
            started = time.perf_counter()
            results[name] = _write_one(FORMATS[name], subject, cases, stage)
            results[name].seconds = time.perf_counter() - started
        records = _records(results, stage)
        manifest = describe(
            model, records, trained=trained, seed=seed, batch=batch, tolerance=TOLERANCE, latency=latency, seeds=seeds
        )
        stage.write_text(CARD, model_card(manifest))
        # The manifest goes last: a folder without it is not an export.
        stage.write_text(MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
    return Exported(target, results, manifest)


def _cases(module: torch.nn.Module, shapes: Sequence[Shape], batch: int, seeds: Sequence[int]) -> list[Case]:
    """For each seed, the inputs at ``batch`` and their first sample at batch
    1, with the IR module's outputs: the cases at ``batch`` first."""
    cases: list[Case] = []
    singles: list[Case] = []
    with torch.no_grad():
        for s in seeds:
            generator = torch.Generator().manual_seed(s)
            inputs = tuple(torch.randn((batch, *shape), generator=generator) for shape in shapes)
            cases.append((s, inputs, _as_tuple(module(*inputs))))
            if batch > 1:
                single = tuple(x[:1] for x in inputs)
                singles.append((s, single, _as_tuple(module(*single))))
    return [*cases, *singles]


def _write_one(fmt: Format, subject: Subject, cases: Sequence[Case], stage: Staging) -> Written:
    """Write one format, load it back and check it on ``cases`` (seed, inputs,
    the IR module's outputs); a format without a loader is only written.

    Raises:
        NASError: the disk cannot take the file (any other error fails this format alone).
    """
    path = stage.folder / fmt.file
    missing = fmt.missing()
    if missing is not None:
        return Written(fmt.name, False, reason=missing)
    try:
        with torch.no_grad():
            details = fmt.write(subject, path)
        runner = None if fmt.load is None else fmt.load(path)
    except Exception as e:  # each runtime raises its own kinds: the format fails alone
        path.unlink(missing_ok=True)
        disk = disk_error(e)
        if disk is not None:  # but a full disk fails the export, whichever file met it
            raise WriteError.of(stage.target / fmt.file, disk) from None
        return Written(fmt.name, False, reason=f"{fmt.name} export failed: {one_line(e)}")
    if runner is None:
        return Written(fmt.name, True, fmt.file, details=details)
    return _checked(fmt.name, path, details, runner, cases)


def _checked(name: str, path: Path, details: dict[str, Any], runner: Runner, cases: Sequence[Case]) -> Written:
    """Run what was written on the check inputs (every batch if its batch is
    dynamic, else the export's batch); fail the format if its outputs differ
    beyond ties broken the other way, which are recorded."""
    static = int(cases[0][1][0].shape[0])
    worst, ties = 0.0, []
    for seed, inputs, expected in cases:
        batch = int(inputs[0].shape[0])
        if details.get("batch") != "dynamic" and batch != static:
            continue
        try:
            with torch.no_grad():
                got = _as_tuple(runner(*inputs))
        except Exception as e:
            path.unlink(missing_ok=True)
            return Written(name, False, reason=f"the {name} file does not run at batch {batch}: {one_line(e)}")
        limit = TOLERANCE * max([1.0, *(float(y.abs().max()) for y in expected if y.numel())])
        error = _difference(got, expected)
        if error is not None and error <= limit:
            worst = max(worst, error)
            continue
        beyond = None if error is None else _beyond(got, expected, limit)
        if beyond is None or beyond[0] > TIE_SHARE * beyond[1]:
            path.unlink(missing_ok=True)
            what = "other output shapes" if error is None else f"outputs {error:.3g} away from the IR module's"
            where = (
                f"at batch {batch}"
                if beyond is None
                else f"at batch {batch} (input seed {seed}, {beyond[0]} of {beyond[1]} outputs)"
            )
            return Written(name, False, reason=f"the {name} file gives {what} {where}")
        ties.append({"seed": seed, "batch": batch, "max_abs_error": error, "outputs": beyond[0], "of": beyond[1]})
    return Written(name, True, path.name, max_abs_error=worst, details=details, tie_breaks=ties)


def _beyond(got: Outputs, expected: Outputs, limit: float) -> tuple[int, int] | None:
    """How many outputs differ by more than ``limit``, and how many there are;
    ``None`` where a value is not finite (never a tie)."""
    if not all(bool(torch.isfinite(g.float()).all()) for g in got):
        return None
    count = sum(int(((g.float().cpu() - e.float()).abs() > limit).sum()) for g, e in zip(got, expected, strict=True))
    return count, sum(e.numel() for e in expected)


def _difference(got: Outputs, expected: Outputs) -> float | None:
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected, strict=True)):
        return None
    return max(
        (float((g.float().cpu() - e.float()).abs().max()) for g, e in zip(got, expected, strict=True)), default=0
    )


def _as_tuple(value: Any) -> Outputs:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _records(results: Mapping[str, Written], stage: Staging) -> dict[str, dict[str, Any]]:
    """Each format's manifest record; a written file's with its SHA-256 and size."""
    records = {}
    for name, written in results.items():
        record = written.to_dict()
        if written.ok and written.file:
            record["sha256"] = sha256(stage.folder / written.file)
            record["bytes"] = (stage.folder / written.file).stat().st_size
        records[name] = record
    return records


__all__ = ["CHECK_SEEDS", "TIE_SHARE", "TOLERANCE", "Exported", "Written", "export"]
