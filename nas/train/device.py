"""Where a run trains, and in which precision.

``--device`` takes ``cpu``, ``cuda``, ``cuda:N`` or ``auto``. ``auto``
claims a GPU that no other process of this machine has claimed (a lock file
per GPU, held for the life of the process and released by the kernel when
it ends, even by a crash), so that search workers started side by side on a
machine with N GPUs take one each: N trials at once on one study. With no
GPU left (or none at all), ``auto`` trains on the CPU.

On a GPU, automatic mixed precision (bf16 where the GPU has it, else fp16
with a gradient scaler) is on by default. Channels-last batches are on by
default everywhere: on a GPU for its tensor cores, and on the CPU because
oneDNN's convolutions, and above all the weight gradients of depthwise
ones, are several times slower in the default (NCHW) layout
(``examples/bench_channels_last.py`` measures a training step both ways).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from nas.ir.errors import NASError

_CLAIMS: list[IO[Any]] = []
"""The lock files this process holds (kept open for its life)."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(spelling: str | torch.device | None = None, *, claims: Path | None = None) -> torch.device:
    """The device that ``--device`` names.

    Args:
        spelling: ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (a GPU no other
            process claimed, else the CPU) or ``None`` (the first GPU, else the CPU).
        claims: the folder of the per-GPU lock files (default: the temporary folder).

    Raises:
        NASError: an unknown spelling, or a GPU this machine does not have.
    """
    if spelling is None:
        return default_device()
    if isinstance(spelling, torch.device):
        return spelling
    if spelling == "auto":
        return claim_gpu(claims) or torch.device("cpu")
    try:
        device = torch.device(spelling)
    except RuntimeError:
        raise NASError(f"unknown device '{spelling}'", field="device", hint="use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise NASError(
                f"device '{spelling}' is not here: this machine has {count} GPU{'s' if count != 1 else ''} visible",
                field="device",
                hint="use cpu, or a GPU index below the count (CUDA_VISIBLE_DEVICES limits the visible ones)",
            )
    elif device.type != "cpu":
        raise NASError(f"unknown device '{spelling}'", field="device", hint="use cpu, cuda, cuda:N or auto")
    return device


def claim_gpu(folder: Path | None = None) -> torch.device | None:
    """The first visible GPU that no other live process of this machine has
    claimed, now claimed by this one; ``None`` when every GPU is taken or there is none."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    base = folder or Path(tempfile.gettempdir()) / f"nas-gpu-claims-{os.getuid()}"
    base.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    for index in range(count):
        handle = open(base / f"gpu{index}-{visible or 'all'}.lock", "w")  # noqa: SIM115 (held for the process's life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _CLAIMS.append(handle)
        return torch.device("cuda", index)
    return None


@dataclass(frozen=True)
class Precision:
    """How a training step computes: ``dtype`` under autocast (``None``:
    float32 throughout), with a gradient scaler for fp16, and channels-last."""

    dtype: torch.dtype | None
    channels_last: bool

    @property
    def scaled(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    def plain(self) -> dict[str, Any]:
        return {
            "amp": None if self.dtype is None else str(self.dtype).removeprefix("torch."),
            "channels_last": self.channels_last,
        }


def precision_for(device: torch.device, *, amp: bool | None = None, channels_last: bool | None = None) -> Precision:
    """Mixed precision (by default on a GPU only) and channels-last (by default everywhere).

    Raises:
        NASError: mixed precision asked for on the CPU.
    """
    gpu = device.type == "cuda"
    if amp and not gpu:
        raise NASError(
            "mixed precision (--amp) trains on a GPU only", field="amp", hint="drop --amp, or give --device cuda"
        )
    dtype = None
    if gpu and amp is not False:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision(dtype, channels_last is not False)
