"""ONNX: one exporter setting for the file a user deploys and the one the latency backend times.

Example:
    >>> import nas, torch
    >>> g = nas.build("inputs: {x: [4]}\\nnodes: {fc: {block: linear, out_features: 2}}")
    >>> data = to_onnx(nas.lower(g), (torch.zeros(2, 4),))
    >>> import onnx                                                    # doctest: +SKIP
    >>> onnx.load_from_string(data).opset_import[0].version           # doctest: +SKIP
    17
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Sequence
from typing import TypeVar

import torch

ONNX_OPSET = 17
"""The ONNX opset of exported models: supported by every ONNX Runtime since 1.14."""

T = TypeVar("T")


def input_name(index: int) -> str:
    """The name :func:`to_onnx` gives the model input at ``index``."""
    return f"input{index}"


def feeds(names: Iterable[str], inputs: Sequence[T]) -> dict[str, T]:
    """The ``inputs`` (in the order :func:`to_onnx` was given them) that a
    session of its model declares, by ``names``.

    The exporter leaves out an input the network never reads: a unit
    holding only a drop-path sampler reads its input's batch size alone,
    which a static export folds into a constant, and its model has no input
    at all, so inputs cannot be paired with the session's in order.

    Raises:
        ValueError: a name that is not one of :func:`to_onnx`'s inputs.
    """
    given = {input_name(i): x for i, x in enumerate(inputs)}
    unknown = [name for name in names if name not in given]
    if unknown:
        offered = ", ".join(given) or "no inputs"
        raise ValueError(f"the ONNX model reads {', '.join(unknown)}, which is not among the inputs given ({offered})")
    return {name: given[name] for name in names}


def to_onnx(module: torch.nn.Module, inputs: Sequence[torch.Tensor], *, dynamic_batch: bool = True) -> bytes:
    """The ONNX model of ``module`` at these inputs' shapes, as bytes.

    Inputs are named ``input0, input1 ...`` (:func:`input_name`; the
    exporter leaves out those the network never reads, see :func:`feeds`)
    and outputs ``output0 ...``;
    with ``dynamic_batch`` their first dimension is the symbol ``batch``,
    otherwise every shape is static (what a latency measurement wants).
    Uses the TorchScript-based exporter (``dynamo=False``), which needs no
    package beyond torch; the torch.export-based one needs ``onnxscript``.

    Raises:
        Exception: whatever the exporter raises for a network it cannot express.
    """
    inputs = tuple(inputs)
    names = [input_name(i) for i in range(len(inputs))]
    with torch.no_grad():
        result = module(*inputs)
    count = len(result) if isinstance(result, (tuple, list)) else 1
    outputs = [f"output{i}" for i in range(count)]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice, per call
        torch.onnx.export(
            module,
            inputs,
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter also writes to file objects
            dynamo=False,
            input_names=names,
            # Named, also because this exporter would read an fx module's graph as its own.
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in names + outputs} if dynamic_batch else None,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    return buffer.getvalue()
