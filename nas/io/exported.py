"""The export directory, read side: its manifest, its files, and :func:`load`.

An export directory (written by :mod:`nas.export`) holds ``model.yaml``, the
architecture as canonical IR; ``model.json``, the manifest with every file's
SHA-256 and check; and the formats that were asked for. Reading one needs
torch, pyyaml, networkx and safetensors alone: never the search library.

Loading never unpickles: :func:`load` rebuilds the module from ``model.yaml``
and ``model.safetensors``; a pt2, TorchScript or TensorRT file (formats that
may carry pickled data) is read only when the caller names that format.

Example:
    >>> import nas
    >>> nas.load("out/lenet5")(torch.zeros(1, 1, 32, 32)).shape               # doctest: +SKIP
    torch.Size([1, 10])
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from nas.io.parse import load_yaml, read_file
from nas.ir.errors import NASError, SourceError, one_line
from nas.ir.graph import Graph
from nas.passes.lower import lower
from nas.passes.onnx import feeds

EXPORT_VERSION = 1
"""The layout version written to ``model.json`` (``nas_export``)."""


MANIFEST = "model.json"


CARD = "MODEL.md"


Outputs = tuple[torch.Tensor, ...]


Runner = Callable[..., Any]


@dataclass(frozen=True)
class StoredFormat:
    """One file format of an export directory: its file name, how to load it
    back, and what loading it needs (``missing`` says what is absent, or
    ``None``; ``load`` is ``None`` for a file that does not run, the
    architecture). :mod:`nas.export` pairs each with its writer."""

    name: str
    file: str
    load: Callable[[Path], Runner] | None = None
    missing: Callable[[], str | None] = lambda: None
    unpickles: bool = False


def _load_weights(path: Path) -> torch.nn.Module:
    """The architecture beside ``path`` (``model.yaml``) lowered by
    :func:`nas.passes.lower`, with the weights of ``path``: nothing is unpickled."""
    architecture = path.with_name(STORED_FORMATS["yaml"].file)
    graph = load_yaml(read_file(architecture), file=str(architecture))
    module = lower(graph)
    fit_weights(module, read_weights(path))
    return module.eval()


def _load_pt2(path: Path) -> Runner:
    return torch.export.load(str(path)).module()


def _load_torchscript(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu")


def _onnx_missing() -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed, so the ONNX file cannot be checked (pip install 'nas[onnx]')"
    return None


class OnnxModule(torch.nn.Module):
    """An ONNX Runtime session (CPU provider) behind a ``torch.nn.Module`` call:
    tensors in, tensors out, so an ONNX export runs where the IR module ran."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        given = feeds(self.names, [x.detach().cpu().numpy() for x in inputs])
        outputs = tuple(torch.from_numpy(y) for y in self.session.run(None, given))
        return outputs[0] if len(outputs) == 1 else outputs


def _tensorrt_missing() -> str | None:
    if importlib.util.find_spec("torch_tensorrt") is None:
        return "torch_tensorrt is not installed (pip install 'nas[tensorrt]', on a machine with an NVIDIA GPU)"
    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU, and torch sees none here"
    return None


def _load_tensorrt(path: Path) -> Runner:
    import torch_tensorrt  # noqa: F401 (registers the TensorRT runtime ops the program calls)

    program = torch.export.load(str(path)).module()

    def run(*inputs: torch.Tensor) -> Any:
        return program(*(x.cuda() for x in inputs))

    return run


STORED_FORMATS: dict[str, StoredFormat] = {
    f.name: f
    for f in (
        StoredFormat("yaml", "model.yaml"),
        StoredFormat("weights", "model.safetensors", _load_weights),
        StoredFormat("pt2", "model.pt2", _load_pt2, unpickles=True),
        StoredFormat("torchscript", "model.torchscript.pt", _load_torchscript, unpickles=True),
        StoredFormat("onnx", "model.onnx", OnnxModule, _onnx_missing),
        StoredFormat("tensorrt", "model.tensorrt.pt2", _load_tensorrt, _tensorrt_missing, unpickles=True),
    )
}
"""Every format, in the order they are written."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def written_formats(manifest: Mapping[str, Any]) -> set[str]:
    return {name for name, record in manifest.get("formats", {}).items() if record.get("ok")}


def read_weights(path: Path, record: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt", ".pkl"):
        raise SourceError(
            "weights must be a .safetensors file: pickled checkpoints are not read",
            file=str(path),
            hint="convert it where it was made: safetensors.torch.save_file(model.state_dict(), 'w.safetensors')",
        )
    if record is not None and record.get("sha256") and sha256(path) != record["sha256"]:
        raise SourceError("the weights file does not match its manifest (changed or damaged)", file=str(path))
    try:
        return safetensors.torch.load_file(str(path))
    except FileNotFoundError:
        raise SourceError("no such weights file", file=str(path)) from None
    except (OSError, safetensors.SafetensorError) as e:
        raise SourceError(f"not a safetensors file ({one_line(e)})", file=str(path)) from None


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest (``model.json``) of an export directory.

    Raises:
        SourceError: not a directory, no manifest (an incomplete or foreign
            folder), or a manifest of another layout version.
    """
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise SourceError("no such export directory", file=str(directory), hint="give a folder 'nas export' wrote")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise SourceError(
            f"not a nas export: no {MANIFEST} (an export that did not finish has none)",
            file=str(directory),
            hint="export again: nas export SOURCE -o DIR",
        ) from None
    except (OSError, ValueError) as e:
        raise SourceError(f"unreadable {MANIFEST}: {one_line(e)}", file=str(path)) from None
    if not isinstance(manifest, dict) or manifest.get("nas_export") != EXPORT_VERSION:
        version = manifest.get("nas_export") if isinstance(manifest, dict) else None
        raise SourceError(
            f"export layout {version!r}, this nas reads {EXPORT_VERSION}",
            file=str(path),
            hint="export it again with this version of nas",
        )
    return manifest


def load(directory: str | os.PathLike[str], format: str = "weights") -> torch.nn.Module | Runner:
    """The model of an export directory, ready to run (eval mode, CPU).

    Args:
        format: ``weights`` (default): ``model.yaml`` lowered by
            :func:`nas.passes.lower`, with ``model.safetensors``; nothing is
            unpickled. ``onnx``: an ONNX Runtime session behind a module call.
            ``pt2``, ``torchscript``, ``tensorrt``: those files, read by torch
            (they may hold pickled data: load only exports you trust).

    Raises:
        SourceError: not an export, the format was not written, or a file
            that does not match its SHA-256 in the manifest.
        NASError: a library the format needs is missing.
    """
    folder = Path(directory)
    manifest = read_manifest(folder)
    runnable = [name for name, stored in STORED_FORMATS.items() if stored.load is not None]
    if format not in runnable:
        raise NASError(f"cannot load format '{format}'", field="format", hint=f"choose from {', '.join(runnable)}")
    written = written_formats(manifest)
    if format not in written:
        reason = manifest.get("formats", {}).get(format, {}).get("reason") or "it was not asked for"
        raise SourceError(
            f"this export has no {format} file ({reason})",
            file=str(folder),
            hint=f"export again with --format {format}" if written != {"yaml"} else "export with --format weights",
        )
    record = manifest["formats"][format]
    path = folder / record["file"]
    fmt = STORED_FORMATS[format]
    missing = fmt.missing()
    if missing is not None:
        raise NASError(missing, field="format")
    if sha256(path) != record.get("sha256"):
        raise SourceError(f"{record['file']} does not match its manifest (changed or damaged)", file=str(path))
    assert fmt.load is not None
    return fmt.load(path)


def fit_weights(module: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Load ``weights`` into ``module`` strictly, or say in one line which tensor does not fit.

    Raises:
        NASError: a tensor missing, unexpected or of another shape.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or extra or wrong:
        what = (
            f"missing {missing[0]}"
            if missing
            else f"unexpected {extra[0]}"
            if extra
            else f"{wrong[0]} is {tuple(weights[wrong[0]].shape)}, not {tuple(expected[wrong[0]].shape)}"
        )
        count = len(missing) + len(extra) + len(wrong)
        raise NASError(
            f"the weights do not fit the architecture ({count} tensors differ: {what})",
            field="weights",
            hint="give the weights this architecture was trained with",
        )
    module.load_state_dict(weights)


def copy_fitting(targets: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy each tensor of ``weights`` into the tensor of ``targets`` of its
    name and shape, in place (a module's state dict, a supernet bank's
    windows): training that starts from trained weights where they fit, a
    classifier fitted to other classes left new. Returns the names of
    ``targets`` left as they were."""
    left = []
    with torch.no_grad():
        for name, target in targets.items():
            value = weights.get(name)
            if value is None or tuple(value.shape) != tuple(target.shape):
                left.append(name)
                continue
            target.copy_(value.to(target.device, target.dtype))
    return left


def read_graph(directory: str | os.PathLike[str]) -> Graph:
    """The architecture of an export directory (its ``model.yaml``), validated and analysed.

    Raises:
        SourceError: not an export directory.
        NASError: an architecture that does not validate.
    """
    path = graph_file(Path(directory))
    graph = load_yaml(read_file(path), file=str(path))
    _ = graph.summary
    return graph


def graph_file(directory: Path) -> Path:
    """The IR file of an export directory."""
    read_manifest(directory)
    return directory / STORED_FORMATS["yaml"].file
