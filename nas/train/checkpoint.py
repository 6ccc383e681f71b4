"""Weights and training state on disk, as safetensors, written atomically.

A training checkpoint holds everything a resumed run needs to continue as an
uninterrupted one would: the weights, the optimiser's moments, the
scheduler's step, the gradient scaler's scale and torch's random state (the
data's order and augmentation come from ``(seed, epoch)`` and need no
state). The settings the run was started with are stored beside them; a
checkpoint of another run is refused in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from nas.ir.errors import NASError, WriteError


def save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, *, what: str, metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to ``path`` as safetensors, atomically: to a file next
    to it, then a rename, so that a failure (a full disk) leaves the previous
    file whole, or none, and never a truncated one.

    Raises:
        WriteError: the folder or the file could not be written (naming
            ``what`` it is, the file and the cause).
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)  # frees what the failed write took
        raise WriteError.of(path, e, what=what) from None


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state dict that ``safetensors`` can save (on
    the CPU, contiguous, no shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """A short hash of a state dict's names, types, shapes and values: a run
    that starts from weights records which, so that a checkpoint of a run
    from other weights (or none) is not resumed."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class RunState:
    """The parts of a training run that a checkpoint saves and restores."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler | None

    def save(self, path: Path, settings: dict[str, Any], epochs_done: int, curve: list[float]) -> None:
        """Write the run's state after ``epochs_done`` epochs, atomically
        (:func:`save_tensors`): an interruption or a full disk leaves the
        previous checkpoint whole."""
        tensors = {f"model.{k}": v for k, v in state_of(self.model).items()}
        tensors["rng.torch"] = torch.get_rng_state()
        groups: list[dict[str, Any]] = []
        if self.optimizer is not None:
            state = self.optimizer.state_dict()
            for index, values in state["state"].items():
                for key, value in values.items():
                    tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous().clone()
            groups = state["param_groups"]
        meta = {
            "settings": settings,
            "epochs_done": epochs_done,
            "curve": curve,
            "param_groups": groups,
            "scheduler": None if self.scheduler is None else _plain_scheduler(self.scheduler),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }
        save_tensors(tensors, path, what="the training checkpoint", metadata={"nas_checkpoint": json.dumps(meta)})

    def resume(self, path: Path, settings: dict[str, Any], *, extend: bool = False) -> tuple[int, list[float]]:
        """Restore the run from the checkpoint at ``path``; the epochs it had done and its curve.

        With ``extend``, the checkpoint of a run with the same settings but
        fewer ``epochs`` is taken too: the run goes on to ``settings["epochs"]``
        (its schedule, a function of the total, is the caller's to stretch).

        Raises:
            NASError: not a checkpoint, or one of a run with other settings.
        """
        try:
            with safetensors.safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["nas_checkpoint"])
                tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
        except (OSError, KeyError, ValueError, safetensors.SafetensorError) as e:
            raise NASError(
                f"not a nas training checkpoint ({e})", file=str(path), hint="delete it to start over"
            ) from e
        held = meta["settings"]
        if extend and isinstance(held.get("epochs"), int) and held["epochs"] <= settings.get("epochs", 0):
            held = {**held, "epochs": settings["epochs"]}  # the same run, planned for more epochs now
        if held != settings:
            differ = sorted(k for k in settings if held.get(k) != settings[k])
            raise NASError(
                f"the checkpoint is of another run (its {', '.join(differ) or 'format'} differ)",
                file=str(path),
                hint="give the settings it was made with, another --checkpoint, or delete it to start over",
            )
        self.model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        torch.set_rng_state(tensors["rng.torch"])
        if self.optimizer is not None and meta["param_groups"]:
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith("optimizer."):
                    _, index, name = key.split(".", 2)
                    state.setdefault(int(index), {})[name] = value
            self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if self.scheduler is not None and meta["scheduler"] is not None:
            functions = getattr(self.scheduler, "lr_lambdas", [])  # the recipe's, kept: saved as None
            self.scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(functions)})
        if self.scaler is not None and meta["scaler"] is not None:
            self.scaler.load_state_dict(meta["scaler"])
        return int(meta["epochs_done"]), [float(a) for a in meta["curve"]]


def _plain_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """The scheduler's state without its learning-rate functions (they come from the recipe)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
