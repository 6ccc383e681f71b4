"""What the measuring machine is: the CPU's name and physical cores, the GPU's name.

Device names go into every measurement's conditions and cache key, so they
must be stable across runs and processes (no clock speeds, no load figures).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> set[int]:
    """The logical CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


@functools.cache
def physical_cores() -> int:
    """Physical cores among the usable CPUs: the default thread count.

    Hyper-threads share a core's arithmetic units, so more threads than
    cores rarely helps inference and makes timings noisier. Read from
    ``/proc/cpuinfo`` (``physical id``, ``core id`` per processor); where
    that is missing, every usable logical CPU counts as a core.
    """
    usable = usable_cpus()
    cores: set[tuple[str, str]] = set()
    processor: int | None = None
    package = core = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return max(1, len(usable))
    for line in [*text.splitlines(), ""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            processor = int(value)
        elif key == "physical id":
            package = value
        elif key == "core id":
            core = value
        elif not key and processor is not None:  # a blank line ends one processor's entry
            if processor in usable and core:
                cores.add((package, core))
            processor, package, core = None, "", ""
    return max(1, len(cores) if cores else len(usable))


def cpu_device_name() -> str:
    """The CPU as named in measurements: model name and usable logical CPUs."""
    return f"{cpu_name()} ({len(usable_cpus())} CPUs)"


@functools.cache
def gpu_name(index: int = 0) -> str:
    """The name CUDA gives GPU ``index`` (call only where CUDA is available)."""
    import torch

    return str(torch.cuda.get_device_name(index))
