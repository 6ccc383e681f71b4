"""An analytic lower bound on latency: the roofline of a whole network.

No device runs a network faster than its arithmetic at the device's peak
rate, nor faster than moving its bytes at the device's peak bandwidth::

    bound = max(2 * MACs * batch / peak FLOP/s,  bytes moved / peak bytes/s)

Bytes moved are counted at their least: every weight read once, the input
read once, every intermediate tensor written once (reads of activations
are left out: fused kernels and caches can avoid them). The gap between
this bound and a measurement shows how far a network is from its limit;
MobileNet's depthwise convolutions, for example, sit far from it.

Peaks: for GPUs, a small table of published datasheet figures by device
name (dense, no sparsity); for the CPU, measured here, once, with a large
matrix multiply and a large copy in torch at the stated thread count, and
cached in the latency store. Each :class:`Peaks` says which. A peak measured
while the machine was busy is too low, and a runtime may have a faster path
than a datasheet's figure; a bound above a measurement would then not be a
bound, so :func:`attained` raises the peaks to what any measured network
attained (and the CPU's stored peaks with them).

Example:
    >>> peaks = Peaks("toy", "fp32", flops_per_s=1e12, bytes_per_s=1e11, source="made up")
    >>> import nas
    >>> g = nas.build("resnet18")
    >>> round(roofline(g, peaks).bound_ms, 2)   # 3.63 GFLOP at 1 TFLOP/s
    3.63
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from nas.ir.graph import Graph
from nas.latency.backends import DTYPES, torch_threads
from nas.latency.cache import LatencyCache
from nas.passes.analysis import BYTES_PER_ELEMENT

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


@dataclass(frozen=True)
class Peaks:
    """A device's peak arithmetic rate at one precision and its memory bandwidth."""

    device: str
    precision: str
    flops_per_s: float
    bytes_per_s: float
    source: str
    """Where the figures come from: "published: ..." or "measured: ..."."""


@dataclass(frozen=True)
class Roofline:
    """The roofline bound of one network at one batch size and precision."""

    flops: float
    bytes: float
    compute_ms: float
    memory_ms: float
    bound_ms: float
    limit: str
    """``"compute"`` or ``"memory"``: whichever term sets the bound."""
    peaks: Peaks

    def fraction_of(self, measured_ms: float) -> float:
        """How close a measurement is to the bound (1.0: at the limit)."""
        return self.bound_ms / measured_ms if measured_ms > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def roofline(graph: Graph, peaks: Peaks, *, batch: int = 1) -> Roofline:
    """The lower bound on ``graph``'s latency at ``batch`` on a device with ``peaks``."""
    summary = graph.summary
    size = BYTES[peaks.precision]
    input_elements = sum(math.prod(shape) for shape in summary.inputs.values())
    activation_elements = summary.activation_bytes // BYTES_PER_ELEMENT  # the analysis counts float32 at batch 1
    flops = 2.0 * summary.macs * batch
    moved = float(size * (summary.params + batch * (input_elements + activation_elements)))
    compute_ms = flops / peaks.flops_per_s * 1e3
    memory_ms = moved / peaks.bytes_per_s * 1e3
    return Roofline(
        flops=flops,
        bytes=moved,
        compute_ms=compute_ms,
        memory_ms=memory_ms,
        bound_ms=max(compute_ms, memory_ms),
        limit="compute" if compute_ms >= memory_ms else "memory",
        peaks=peaks,
    )


RAISED = "raised to what a measured network attained"


def attained(peaks: Peaks, graph: Graph, measured_ms: float, *, batch: int = 1) -> Peaks:
    """``peaks`` raised, where needed, so that ``graph``'s bound at ``batch``
    is not above ``measured_ms``: the measurement proves the device does at
    least ``flops / time`` and ``bytes / time``. The same peaks when the
    measurement is at or above the bound."""
    bound = roofline(graph, peaks, batch=batch)
    if not measured_ms > 0 or bound.bound_ms <= measured_ms:
        return peaks
    seconds = measured_ms / 1e3
    source = peaks.source if RAISED in peaks.source else f"{peaks.source}; {RAISED}"
    return replace(
        peaks,
        flops_per_s=max(peaks.flops_per_s, bound.flops / seconds),
        bytes_per_s=max(peaks.bytes_per_s, bound.bytes / seconds),
        source=source,
    )


# -- GPUs: published peaks -----------------------------------------------------

# (pattern on torch.cuda.get_device_name(), product, fp32, fp16, bf16 in
# TFLOP/s, memory TB/s). fp32 is the TF32 tensor-core rate where the GPU has
# one, because cuDNN and TensorRT run fp32 convolutions in TF32 by default: a
# lower bound must use the fastest rate the runtime may use. Dense figures
# (no 2:4 sparsity), from NVIDIA's datasheet of each product; 0: no such
# arithmetic worth the name (bf16 before Ampere).
_GPU_PEAKS: tuple[tuple[str, str, float, float, float, float], ...] = (
    (r"H200", "H200 SXM", 494.7, 989.4, 989.4, 4.8),
    (r"H100.*PCIe", "H100 PCIe", 378.0, 756.0, 756.0, 2.0),
    (r"H100", "H100 SXM", 494.7, 989.4, 989.4, 3.35),
    (r"A100.*80GB.*PCIe", "A100 80GB PCIe", 156.0, 312.0, 312.0, 1.935),
    (r"A100.*80GB", "A100 80GB SXM", 156.0, 312.0, 312.0, 2.039),
    (r"A100", "A100 40GB", 156.0, 312.0, 312.0, 1.555),
    (r"L40S", "L40S", 183.0, 362.0, 362.0, 0.864),
    (r"\bL4\b", "L4", 60.0, 121.0, 121.0, 0.3),
    (r"\bA10\b", "A10", 62.5, 125.0, 125.0, 0.6),
    (r"RTX 4090", "GeForce RTX 4090", 82.6, 165.2, 165.2, 1.008),
    (r"\bT4\b", "T4", 8.1, 65.0, 0.0, 0.32),
    (r"V100", "V100 SXM2", 15.7, 125.0, 0.0, 0.9),
    (r"TITAN Xp", "TITAN Xp", 12.1, 0.19, 0.0, 0.548),
)


def published_gpu_peaks(device: str, precision: str) -> Peaks | None:
    """Datasheet peaks for a GPU named like ``torch.cuda.get_device_name()``,
    or ``None`` for a GPU (or a precision) the table does not know."""
    for pattern, product, fp32, fp16, bf16, tb_s in _GPU_PEAKS:
        if re.search(pattern, device, re.IGNORECASE):
            tflops = {"fp32": fp32, "fp16": fp16, "bf16": bf16}[precision]
            if tflops <= 0:
                return None
            tf32 = precision == "fp32" and fp32 > 20  # the GPUs with TF32 tensor cores
            return Peaks(
                device=device,
                precision=precision,
                flops_per_s=tflops * 1e12,
                bytes_per_s=tb_s * 1e12,
                source=f"published: NVIDIA {product} datasheet, dense" + (", fp32 as TF32" if tf32 else ""),
            )
    return None


# -- CPUs: measured peaks -----------------------------------------------------

MATMUL_N = 2048
COPY_BYTES = 256 << 20


def measure_cpu_peaks(device: str, precision: str, threads: int, *, repeats: int = 5) -> Peaks:
    """Peak FLOP/s from an ``n x n`` matrix multiply and bandwidth from a
    256 MiB copy, in torch at ``threads`` threads; the best of ``repeats``.

    A large matmul is the fastest arithmetic a CPU library reaches (the
    oneDNN/MKL kernels convolutions use), and a large copy the fastest
    streaming; both are what this machine can do, not what a datasheet says.
    """
    dtype = DTYPES[precision]
    with torch_threads(threads), torch.inference_mode():
        a = torch.randn(MATMUL_N, MATMUL_N).to(dtype)
        b = torch.randn(MATMUL_N, MATMUL_N).to(dtype)
        matmul = _best(lambda: torch.mm(a, b), repeats)
        src = torch.ones(COPY_BYTES // 4)
        dst = torch.empty_like(src)
        copy = _best(lambda: dst.copy_(src), repeats)
    return Peaks(
        device=device,
        precision=precision,
        flops_per_s=2 * MATMUL_N**3 / matmul,
        bytes_per_s=2 * COPY_BYTES / copy,  # read and write
        source=(
            f"measured: {MATMUL_N}x{MATMUL_N} {precision} matmul and a {COPY_BYTES >> 20} MiB copy, "
            f"torch {torch.__version__}, {threads} threads"
        ),
    )


def _best(fn: Any, repeats: int) -> float:
    fn()  # warm: page faults, thread pool start-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cpu_key(device: str, precision: str, threads: int) -> str:
    return f"cpu-peaks|{device}|{precision}|{threads}|torch {torch.__version__}"


def store_cpu_peaks(peaks: Peaks, threads: int, cache: LatencyCache) -> None:
    """Keep ``peaks`` (raised by :func:`attained`) as the CPU's peaks at ``threads``."""
    cache.put_fact(_cpu_key(peaks.device, peaks.precision, threads), asdict(peaks))


def cpu_peaks(device: str, precision: str, threads: int, cache: LatencyCache | None = None) -> Peaks:
    """Measured CPU peaks, from ``cache`` when it has them (measuring takes about a second)."""
    key = _cpu_key(device, precision, threads)
    if cache is not None:
        stored = cache.get_fact(key)
        if stored is not None:
            return Peaks(**stored)
    peaks = measure_cpu_peaks(device, precision, threads)
    if cache is not None:
        cache.put_fact(key, asdict(peaks))
    return peaks
