"""One network taken out of a trained supernet, to export like any other.

A user names the network as Once-for-All's ``set_active_subnet`` and NNI's
``freeze`` let one: a zoo net the space holds, or a few decisions set and
the rest of the largest (or smallest) network with them
(:func:`choose`). :func:`extract` gives its plain graph with the bank's
windows as its own weights and its batch-norm statistics measured again,
and its accuracy so; :func:`supernet_model` makes the exportable model,
fine-tuned or not, with a card that names the supernet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.data import DataSet
from nas.export import Model
from nas.io import zoo
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.space import Assignment, Space, encode, end, fixed_points, restrict
from nas.supernet.net import Supernet
from nas.supernet.store import SupernetInfo
from nas.supernet.training import Inheritance
from nas.train import Recipe, TrainResult


def choose(
    space: Space, *, net: str | None = None, values: Mapping[str, Any] | None = None, largest: bool = True
) -> Assignment:
    """The assignment of the zoo net ``net`` in ``space``, or else of the
    largest (``largest=False``: smallest, by MACs) network of ``space`` with
    the decisions ``values`` names at those values.

    Raises:
        NASError: both a net and values; a zoo net the space does not hold
            (naming those it does); values outside their domains.
    """
    if net is not None:
        if values:
            raise NASError("give a zoo net or decisions to set, not both", field="net", hint="drop --net or --fix")
        graph = zoo.load(net)
        try:
            return encode(space, graph)
        except NASError:
            held = fixed_points(space)
            raise NASError(
                f"'{net}' is not a network of the supernet's space",
                file=space.file,
                field="net",
                hint=f"its zoo nets: {', '.join(held)}" if held else "it holds none: fix decisions (--fix LABEL=VALUE)",
            ) from None
    return end(restrict(space, dict(values or {})), largest=largest)


@dataclass
class Extracted:
    """A network of the supernet with its inherited weights.

    Attributes:
        assignment: its decisions.
        graph: the plain network (fitted to the data's classes).
        weights: the bank's windows and the recalibrated statistics, a
            state dict that ``nas.lower(graph)`` loads strictly.
        inherited: its validation accuracy with those weights.
    """

    assignment: Assignment
    graph: Graph
    weights: dict[str, torch.Tensor] = field(repr=False)
    inherited: float


def extract(
    supernet: Supernet,
    assignment: Mapping[str, Any],
    data: DataSet,
    *,
    recipe: str | Recipe | None = None,
    workers: int | None = None,
) -> Extracted:
    """The network of ``assignment`` with its inherited weights, its statistics
    measured on ``data``'s training batches and its accuracy on the validation
    part (images on disk decoded by ``workers`` processes)."""
    graph = supernet.network(assignment)
    accuracy, weights = Inheritance(supernet, data, recipe, workers=workers)(graph)
    return Extracted(dict(assignment), graph, weights, accuracy)


def supernet_model(
    graph: Graph,
    inherited: float,
    *,
    directory: str | Path,
    info: SupernetInfo,
    data: DataSet,
    source: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor] | None = None,
    finetuned: TrainResult | None = None,
    seed: int = 0,
    accuracy: Mapping[str, Any] | None = None,
) -> Model:
    """A network of the supernet in ``directory`` as a model to export: with
    the fine-tuning's weights and accuracy where ``finetuned`` is given, else
    the inherited ``weights`` and accuracy; the card's source is the
    supernet (``source`` adds what names the network in it) and its
    accuracy records the inherited figure beside (``accuracy`` adds more)."""
    if finetuned is not None:
        state: Mapping[str, torch.Tensor] | None = finetuned.state
        figures = {
            "value": finetuned.accuracy,
            "epochs": len(finetuned.curve),
            "seed": seed,
            "curve": finetuned.curve,
            "recipe": finetuned.recipe,
        }
    else:
        state, figures = weights, {"value": inherited, "epochs": 0}
    return Model(
        graph,
        None if state is None else dict(state),
        name=f"{info.space}-supernet",
        source={"kind": "supernet", "path": str(directory), **source},
        accuracy={**figures, "data": data.name, "split": "validation", "inherited": inherited, **(accuracy or {})},
    )


__all__ = ["Extracted", "choose", "extract", "supernet_model"]
