"""A supernet: a search space, the decisions fixed for it, and one bank of weights.

Any assignment of the space is a plain graph (:meth:`Supernet.network`)
whose weights are windows of the bank (:meth:`Supernet.weights`): the
subnet is an ordinary network, exported like any other. Running a subnet
lowers its graph once (the latest modules are kept) and calls it with the
bank's windows in place of its own parameters
(:func:`torch.func.functional_call`), so that training a subnet trains
the bank.

Batch-norm statistics are not shared: they depend on the subnet, so they
are measured again for each one (:meth:`Supernet.recalibrate`) before it
is evaluated or extracted, as Once-for-All and BigNAS do.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nas.data import Loader
from nas.io.build import build
from nas.io.exported import copy_fitting
from nas.ir.errors import NASError
from nas.ir.graph import Graph
from nas.passes.lower import Stepped
from nas.space import Assignment, Latest, Space, assignment_key, decode, draw, end, extreme, numeric, restrict
from nas.supernet.bank import Bank, identity_start
from nas.train import logits

CACHED_MODULES = 32
"""Lowered subnets kept for reuse, the most recently used."""
CENSUS_SAMPLES = 64
"""Random subnets that size the bank before training, beside the extremes."""
RECALIBRATION_BATCHES = 8
"""Training batches that measure a subnet's batch-norm statistics."""


@dataclass
class Subnet:
    """One assignment of the supernet's space: its graph and its lowered
    module, whose own parameters are unused (the bank's windows replace them).

    The module is the graph lowered flat and run node by node
    (:class:`nas.passes.lower.Stepped`: no code generated, no flat graph
    built, for a supernet builds one per random subnet); ``names`` maps its
    parameter and buffer names to those of ``nas.lower(graph)``, under
    which the bank and the extracted weights know them.
    """

    assignment: Assignment
    graph: Graph
    module: nn.Module = field(repr=False)
    names: dict[str, str] = field(repr=False)

    def parameters(self) -> list[tuple[str, torch.Tensor]]:
        """The module's parameters under the names ``nas.lower(graph)`` gives them."""
        return [(self.names[name], p) for name, p in self.module.named_parameters()]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The module's parameters and buffers under the names ``nas.lower(graph)`` gives them."""
        return {self.names[name]: value for name, value in self.module.state_dict().items()}


@dataclass(frozen=True)
class Started:
    """The parameters :meth:`Supernet.start_from` took from a trained network,
    and those it left to their initialisation (``fresh``: another shape)."""

    taken: list[str]
    fresh: list[str]


class Supernet:
    """A space whose every network shares one bank of weights.

    Args:
        space: the space, with :func:`nas.space.restrict` applied for the
            decisions the user fixed.
        classes: the data's classes (every subnet's classifier is fitted to them).

    Raises:
        NASError: a decision that weights cannot be shared across (an input
            shape with more than one value), naming it and the fix.
    """

    def __init__(self, space: Space, classes: int) -> None:
        for name in space.inputs:
            d = space.by_label.get(f"{name}.shape")
            if d is not None and d.size > 1:
                shapes = " or ".join("x".join(map(str, c)) for c in d.choices)
                raise NASError(
                    f"a supernet has one input shape; '{d.label}' is {shapes}",
                    file=space.file,
                    field=d.label,
                    hint=f"fix it: --fix {d.label}={'x'.join(map(str, d.choices[-1]))}",
                )
        self.space = space
        self.classes = classes
        self.bank = Bank()
        self._modules: Latest[tuple[nn.Module, dict[str, str]]] = Latest(CACHED_MODULES)
        self._graphs: Latest[Graph] = Latest(CACHED_MODULES)
        self._largest: Assignment | None = None
        self._smallest: Assignment | None = None
        self.device = torch.device("cpu")

    # Subnets ----------------------------------------------------------------

    def network(self, assignment: Mapping[str, Any]) -> Graph:
        """The assignment's network, fitted to the classes (kept for reuse: the extremes are asked for every step)."""
        return self._graphs.get(
            assignment_key(assignment), lambda: build(decode(self.space, assignment), classes=self.classes)
        )

    def subnet(self, assignment: Mapping[str, Any]) -> Subnet:
        """The assignment's network and its lowered module (kept for reuse, by assignment)."""
        graph = self.network(assignment)
        return Subnet(dict(assignment), graph, *self._lowered(assignment_key(assignment), graph))

    def of_graph(self, graph: Graph) -> Subnet:
        """A network of the space (built as :meth:`network` builds it) as a subnet
        (kept for reuse, by hash); its assignment is not known here."""
        return Subnet({}, graph, *self._lowered(graph.hash, graph))

    def _lowered(self, key: str, graph: Graph) -> tuple[nn.Module, dict[str, str]]:
        def lower() -> tuple[nn.Module, dict[str, str]]:
            module = Stepped(graph).to(self.device)
            for p in module.parameters():
                p.requires_grad_(False)
            return module, nested_names(module)

        return self._modules.get(key, lower)

    def largest(self) -> Assignment:
        """The network of the most MACs (:func:`nas.space.end`): the sandwich rule's teacher."""
        if self._largest is None:
            self._largest = end(self.space, largest=True)
        return dict(self._largest)

    def smallest(self) -> Assignment:
        """The network of the fewest MACs (:func:`nas.space.end`)."""
        if self._smallest is None:
            self._smallest = end(self.space, largest=False)
        return dict(self._smallest)

    def sample(self, rng: random.Random, space: Space | None = None) -> Assignment:
        """A random network of the space, or of ``space`` (the space narrowed:
        :func:`nas.space.restrict`, :func:`nas.space.near`); its network is
        kept for :meth:`network`, which need not decode it again."""
        assignment, decoded = draw(space or self.space, rng)
        self._graphs.put(assignment_key(assignment), build(decoded, classes=self.classes))
        return assignment

    def census(self, rng: random.Random, samples: int = CENSUS_SAMPLES) -> int:
        """Size the bank for the space: the largest and smallest networks, the
        largest with each value of each choice of names (block types), and
        ``samples`` random ones; the entries it creates for the repeated
        units of stages start as the identity (:func:`nas.supernet.bank.identity_start`).
        Returns the number of entries."""
        seen: list[Assignment] = [self.largest(), self.smallest()]
        top = seen[0]
        for d in self.space.decisions:
            if d.kind == "choice" and d.label in top and not numeric(d.choices):
                for value in d.choices:
                    try:
                        seen.append(_largest_with(self.space, d.label, value))
                    except NASError:
                        continue
        seen += [self.sample(rng) for _ in range(samples)]
        held = set(self.bank.names)
        graphs = []
        for assignment in seen:
            net = self.subnet(assignment)
            self.bank.grow(net.graph, net.parameters())
            graphs.append(net.graph)
        # each block type a choice offers is in some network seen
        identity_start(self.bank, graphs, set(self.bank.names) - held)
        self.bank.to(self.device)
        return len(self.bank.names)

    def start_from(self, assignment: Mapping[str, Any], weights: Mapping[str, torch.Tensor]) -> Started:
        """Write a trained network of the space into the bank, each of its
        parameters into its window (the bank grown to hold them first), so
        that training starts from it: Once-for-All's supernet starts from its
        trained largest network, and Model Optimizer's from the user's model.
        A parameter whose tensor has another shape in ``weights`` (a
        classifier fitted to other classes) keeps its own initialisation.
        Batch-norm statistics are not in the bank: they are measured again.

        Args:
            assignment: the network's assignment (:func:`nas.space.encode`).
            weights: its state dict, named as ``nas.lower`` of its graph names it.

        Raises:
            NASError: weights that name none of the network's parameters.
        """
        net = self.subnet(assignment)
        self.bank.grow(net.graph, net.parameters())
        views = self.bank.views(net.graph, net.parameters())
        fresh = copy_fitting(views, weights)
        left = set(fresh)
        taken = [name for name in views if name not in left]
        if not taken:
            raise NASError(
                f"the weights name none of the network's {len(fresh)} parameters (such as {fresh[0]})",
                field="init",
                hint="give a network exported from this space, or write the space around it: nas space --around DIR",
            )
        return Started(taken, fresh)

    def to(self, device: torch.device) -> Supernet:
        self.device = device
        self.bank.to(device)
        self._modules.clear()
        return self

    # Running ----------------------------------------------------------------

    def forward(self, net: Subnet, x: torch.Tensor) -> torch.Tensor:
        """The subnet's class scores on ``x``, computed with the bank's weights."""
        views = self.bank.views(net.graph, net.parameters())
        own = {name: views[nested] for name, nested in net.names.items() if nested in views}
        return logits(net.graph, functional_call(net.module, own, (x,)))

    def recalibrate(self, net: Subnet, feed: Loader, batches: int = RECALIBRATION_BATCHES) -> None:
        """Measure the subnet's batch-norm statistics on ``batches`` training
        batches (a cumulative average), leaving the module in eval mode."""
        norms = [m for m in net.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            saved = [m.momentum for m in norms]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
            net.module.train()
            with torch.no_grad():
                for i, (x, _) in enumerate(feed.epoch(0, seed=0)):
                    if i == batches:
                        break
                    self.forward(net, x)
            for m, momentum in zip(norms, saved):
                m.momentum = momentum
        net.module.eval()

    def accuracy(self, net: Subnet, feed: Loader) -> float:
        """The fraction of ``feed``'s images the subnet classifies right (eval mode, statistics as they are)."""
        net.module.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in feed.epoch():
                correct += int((self.forward(net, x).argmax(1) == y).sum())
                total += len(y)
        return correct / max(1, total)

    def weights(self, net: Subnet) -> dict[str, torch.Tensor]:
        """The subnet's own state dict: the bank's windows copied, with the
        module's (recalibrated) buffers; ``nas.lower(net.graph)`` loads it strictly."""
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
        for name, view in self.bank.views(net.graph, net.parameters()).items():
            state[name] = view.detach().to("cpu").contiguous().clone()
        return state


def nested_names(module: Stepped) -> dict[str, str]:
    """The state-dict names of ``module`` mapped to those of the nested
    lowering of its graph: a flat submodule ``unit1_b0_conv`` is
    ``unit1.b0.conv`` there."""
    names = {}
    for name in module.state_dict():
        top, dot, rest = name.partition(".")
        names[name] = module.paths[top] + dot + rest if top in module.paths else name
    return names


def _largest_with(space: Space, label: str, value: Any) -> Assignment:
    """The largest network of ``space`` with decision ``label`` at ``value``."""
    return extreme(restrict(space, {label: value}), largest=True)
