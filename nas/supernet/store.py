"""The supernet directory: what ``nas supernet train`` writes and ``nas supernet search`` reads.

::

    DIR/space.yaml              the space, as it was given (a copy)
    DIR/supernet.json           the fixed decisions, the data, classes, recipe, rule and epochs
    DIR/bank.safetensors        the bank, by entry name
    DIR/log.json                loss and the extremes' accuracy per epoch
    DIR/checkpoint.safetensors  the training run's state (resume)

Decisions are fixed with ``LABEL=VALUE`` texts (``x.shape=3x32x32``,
``unit=basic_block``, ``layer1.depth=[1,2,3]`` for a subset), kept as
given, so that the space is narrowed the same way when it is read back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch

from nas.ir.errors import NASError
from nas.space import load_space, narrowed
from nas.supernet.net import Supernet
from nas.supernet.training import LOG, write_text
from nas.train.checkpoint import save_tensors

SPACE = "space.yaml"
META = "supernet.json"
BANK = "bank.safetensors"


@dataclass
class SupernetInfo:
    """What ``supernet.json`` holds."""

    space: str
    fixed: list[str]
    data: str
    classes: int
    training: dict[str, Any] = field(default_factory=dict)


def save_supernet(directory: Path, supernet: Supernet, info: SupernetInfo, source: Path) -> None:
    """Write the supernet's space (a copy of ``source``), its description and its bank.

    Raises:
        WriteError: a file could not be written.
    """
    write_text(directory / SPACE, source.read_text(), what="the supernet's space")
    write_text(directory / META, json.dumps(info.__dict__, indent=2) + "\n", what="the supernet's description")
    save_tensors(supernet.bank.tensors(), directory / BANK, what="the supernet's bank")


def read_info(directory: Path) -> SupernetInfo:
    """The description of the supernet in ``directory``.

    Raises:
        NASError: not a supernet directory, or a damaged description.
    """
    path = directory / META
    if not path.is_file():
        raise NASError(
            f"no {META}: not a supernet directory",
            file=str(directory),
            hint="give a directory that `nas supernet train -o DIR` wrote",
        )
    try:
        return SupernetInfo(**json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise NASError(f"damaged supernet description: {e}", file=str(path), hint="train the supernet again") from None


def load_supernet(directory: Path, *, trained: bool = True) -> tuple[Supernet, SupernetInfo]:
    """The supernet stored in ``directory``, its bank loaded (``trained``), and its description.

    Raises:
        NASError: not a supernet directory, a damaged file, or (``trained``)
            no bank yet (a training run that has not finished).
    """
    info = read_info(directory)
    space = narrowed(load_space(str(directory / SPACE)), info.fixed)
    supernet = Supernet(space, info.classes)
    if trained:
        path = directory / BANK
        if not path.is_file():
            raise NASError(
                f"no {BANK}: the supernet's training has not finished",
                file=str(directory),
                hint="run `nas supernet train` again with the same settings to resume it",
            )
        try:
            supernet.bank.load(safetensors.torch.load_file(str(path)))
        except (OSError, safetensors.SafetensorError) as e:
            raise NASError(f"damaged bank: {e}", file=str(path), hint="train the supernet again") from None
    return supernet, info


def training_log(directory: Path) -> list[Mapping[str, Any]]:
    path = directory / LOG
    return json.loads(path.read_text()) if path.is_file() else []
