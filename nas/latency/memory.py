"""Will it fit? The memory a measurement or a training run of a network needs, against what the device has.

The analysis knows every activation's size (``graph.summary``), so a network
that cannot fit is refused in one line before anything is allocated, instead
of swapping the machine for a minute and failing deep inside an exporter.
The figure is a lower bound (weights, gradients in training, and the
activations alive at once); runtimes add workspace on top, so a network
refused here would certainly not have run.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.passes.analysis import BYTES_PER_ELEMENT

ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
"""Bytes per element of each precision (the analysis counts float32)."""

TRAINING_COPIES = 2
"""Copies of the weights a training step holds at least: the weights and
their gradients (an optimizer's moments come on top: Adam holds two more)."""

GIB = 1 << 30


def needed_bytes(graph: Graph, *, batch: int, training: bool = False, precision: str = "fp32") -> int:
    """A lower bound of the memory that running ``graph`` at ``batch`` takes:
    its weights (and their gradients in training), plus the activations alive
    at once at the peak of the forward pass (the input, or the largest set of
    tensors some node still reads). Training keeps more activations for the
    backward pass, but how many depends on the runtime (in-place activations,
    recomputation), so only the peak is counted: the bound stays a bound."""
    summary = graph.summary
    scale = ELEMENT_BYTES.get(precision, 4) / BYTES_PER_ELEMENT
    inputs = sum(_elements(shape) for shape in summary.inputs.values()) * BYTES_PER_ELEMENT
    activations = max(summary.peak_activation_bytes, inputs)
    weights = summary.params * 4 * (TRAINING_COPIES if training else 1)
    return int(weights + batch * activations * scale)


def available_bytes(device: str | torch.device = "cpu") -> int | None:
    """Memory free for a new allocation on ``device``: for the CPU the
    kernel's ``MemAvailable``, capped by this process's cgroup limit; for a
    CUDA device what CUDA reports free. ``None`` where it cannot be known."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    known = [x for x in (_meminfo_available(), _cgroup_headroom()) if x is not None]
    if not known:
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(known)


def check_fits(
    graph: Graph,
    *,
    batch: int,
    device: str | torch.device = "cpu",
    training: bool = False,
    precision: str = "fp32",
    what: str | None = None,
) -> None:
    """Refuse, in one line with both figures, a run of ``graph`` that would
    need more memory than ``device`` has free (see :func:`needed_bytes`).

    Raises:
        NASError: naming the input shape and batch, with the fix.
    """
    available = available_bytes(device)
    if available is None:
        return
    needed = needed_bytes(graph, batch=batch, training=training, precision=precision)
    if needed <= available:
        return
    shape = "x".join(str(d) for d in next(iter(graph.summary.inputs.values()), ()))
    doing = what or ("training" if training else "running")
    raise NASError(
        f"{doing} {graph.name} at input {shape}, batch {batch} needs at least {needed / GIB:.1f} GiB, "
        f"but {torch.device(device).type} memory has {available / GIB:.1f} GiB free",
        field="input",
        hint="use a smaller input shape or batch",
    )


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """What the cgroup (v2) this process is in still allows, if it sets a limit."""
    try:
        group = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        base = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text()))
    except (OSError, ValueError, IndexError):
        return None
