"""The file formats of an export: how each is written, and which are asked for.

Each :class:`Format` pairs a writer with the loader of
:data:`nas.io.exported.STORED_FORMATS`, which reads the same file back; the
writer of :mod:`nas.export.writer` writes every format the same way (write,
load back, run) and knows no format by name.

Writers that serialise through torch (pt2, TorchScript) do so into memory
and write the bytes with one plain file write, so a full disk surfaces as
the ``OSError`` it is (``ENOSPC``), not as a C++ stream error without an
errno, and the export can report it as a full disk rather than as a format
that failed.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from nas.io.exported import STORED_FORMATS, Outputs, StoredFormat
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.passes.onnx import ONNX_OPSET, to_onnx


@dataclass(frozen=True)
class Subject:
    """What every writer is given: the architecture, its lowered module (eval
    mode, holding the weights to export) and the example inputs that traced
    formats are made with (one tensor per graph input, with the batch)."""

    graph: Graph
    module: torch.nn.Module
    inputs: Outputs


Writer = Callable[[Subject, Path], dict[str, Any]]
"""Writes one format's file at the path; returns the details the manifest
records for it (``{"batch": "dynamic"}`` asks for the check at every batch)."""


@dataclass(frozen=True)
class Format(StoredFormat):
    """A stored format (its file, loader and needs) with its writer."""

    write: Writer = field(kw_only=True)


def _write_yaml(subject: Subject, path: Path) -> dict[str, Any]:
    path.write_text(subject.graph.to_yaml())
    return {}


def _write_weights(subject: Subject, path: Path) -> dict[str, Any]:
    state = {k: v.detach().contiguous().clone() for k, v in subject.module.state_dict().items()}
    path.write_bytes(safetensors.torch.save(state, metadata={"nas_graph_hash": subject.graph.hash}))
    return {"batch": "dynamic"}


def _write_pt2(subject: Subject, path: Path) -> dict[str, Any]:
    module, inputs = subject.module, subject.inputs
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    dynamic: Any = tuple({0: batch} for _ in inputs)
    try:
        program = torch.export.export(module, inputs, dynamic_shapes=dynamic)
        details: dict[str, Any] = {"batch": "dynamic"}
    except Exception:  # a network whose code specialises on the batch size: export it static
        program = torch.export.export(module, inputs)
        details = {"batch": int(inputs[0].shape[0])}
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())
    return details


def _write_torchscript(subject: Subject, path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace's deprecation notice
        try:
            scripted = torch.jit.trace(subject.module, subject.inputs, check_trace=False)
            how = "trace"
        except Exception as traced:
            try:
                scripted = torch.jit.script(subject.module)
            except Exception:
                raise traced from None
            how = "script"
    path.write_bytes(scripted.save_to_buffer())
    return {"method": how, "batch": "dynamic"}


def _write_onnx(subject: Subject, path: Path) -> dict[str, Any]:
    path.write_bytes(to_onnx(subject.module, subject.inputs, dynamic_batch=True))
    return {"opset": ONNX_OPSET, "batch": "dynamic"}


def _write_tensorrt(subject: Subject, path: Path) -> dict[str, Any]:
    import torch_tensorrt

    module = subject.module
    xs = [x.cuda() for x in subject.inputs]
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
    return {"precision": "fp32", "batch": int(xs[0].shape[0]), "torch_tensorrt": torch_tensorrt.__version__}


_WRITERS: dict[str, Writer] = {
    "yaml": _write_yaml,
    "weights": _write_weights,
    "pt2": _write_pt2,
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
    "tensorrt": _write_tensorrt,
}

FORMATS: dict[str, Format] = {
    name: Format(**vars(stored), write=_WRITERS[name]) for name, stored in STORED_FORMATS.items()
}
"""Every format, in the order they are written: the architecture first, since
the weights are loaded back through it."""

DEFAULT_FORMATS = ("yaml", "weights", "pt2", "torchscript", "onnx")
"""What ``nas export`` writes unless told (all but TensorRT, which needs a GPU)."""


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"yaml,onnx"`` or ``["yaml", "onnx"]`` (``all`` for every format) as
    format names in writing order; ``yaml`` is always among them.

    Raises:
        NASError: an unknown format name.

    Example:
        >>> parse_formats("onnx, weights")
        ('yaml', 'weights', 'onnx')
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


__all__ = ["DEFAULT_FORMATS", "FORMATS", "Format", "Subject", "Writer", "parse_formats"]
