"""The bank: one tensor per shared parameter, at the largest shape any subnet asks of it.

A subnet is an ordinary graph, lowered as any other; its parameters are
windows of the bank's tensors, found by name. A parameter's bank entry is
named after the lowered module's parameter (``layer2.b1.conv1.weight``)
with the owning node's block type put in (``layer2@stage/basic_block``):
two block types chosen at one node have separate entries, while the first
``d`` units of a stage, and any width, kernel size or expansion of one
block type, share one.

A window takes the leading rows and columns (output and input channels,
features) and the centred part of the remaining dimensions (a 3x3 kernel
inside a 5x5), as in Once-for-All (Cai et al. 2020). Windows are views:
a gradient through a subnet's forward pass lands in the bank.

A new bank starts the units after a stage's first as the identity
(:func:`identity_start`): a stage of ``d`` units then computes at the start
what its first unit computes, whatever ``d``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import torch
from torch import nn

from nas.ir.graph import Graph, Node

NORMS = frozenset({"batch_norm", "group_norm", "layer_norm", "layer_norm2d"})
"""Blocks a residual unit's branch may end in whose scale (``weight``) starts at zero."""
PROJECTIONS = frozenset({"conv2d", "linear"})
"""Blocks a residual unit's branch may end in without a norm (Inception-ResNet's
linear 1x1): their ``weight`` and ``bias`` start at zero."""
ENDINGS = NORMS | PROJECTIONS
"""The layers that start at zero where they end a residual unit's branch."""
ZERO_KEEPING = frozenset({"dropout", "stochastic_depth", "scale", "layer_scale"})
"""One-input blocks that pass a zero on as zero: a branch may end in a norm or
a projection, then one of these."""


def window(tensor: torch.Tensor, shape: Iterable[int]) -> torch.Tensor:
    """The view of ``tensor`` a parameter of ``shape`` takes: leading in the
    first two dimensions, centred in the others."""
    index = []
    for dim, (big, small) in enumerate(zip(tensor.shape, shape, strict=True)):
        start = 0 if dim < 2 else (big - small) // 2
        index.append(slice(start, start + small))
    return tensor[tuple(index)]


def entry_name(graph: Graph, parameter: str) -> str:
    """The bank entry of a lowered graph's parameter ``parameter``."""
    top, dot, rest = parameter.partition(".")
    if top not in graph:
        return parameter
    node = graph.node(top)
    kind = node.block.name
    unit = node.params.get("unit") if kind == "stage" else None
    return f"{top}@{kind}{'/' + unit if isinstance(unit, str) else ''}{dot}{rest}"


def identity_start(bank: Bank, graphs: Iterable[Graph], names: Collection[str]) -> list[str]:
    """Start the entries ``names`` (new ones) of the repeated units of the
    stages of ``graphs`` (``b1`` onwards) so that each unit starts as the
    identity. Returns the entries set.

    * a plain unit, a chain (no merge inside it): its square weights, a
      Dirac kernel for a convolution from and to the same channels or a
      depthwise one, the identity matrix for a linear layer (Zagoruyko &
      Komodakis 2017, "DiracNets");
    * a residual unit, whose identity shortcut is added to a branch that
      ends in a norm: that norm's scale, at zero, so the branch adds
      nothing (Goyal et al. 2017; BigNAS, Yu et al. 2020); a branch that
      ends in a projection without a norm (Inception-ResNet): its weight
      and bias, at zero (Fixup, Zhang et al. 2019). A layer that ends the
      branch in one network but not in another (a unit of elastic length)
      keeps its start: after a zeroed norm, the next norm would rescale a
      zero input by its epsilon alone.

    Why: a subnet keeps a stage's first ``d`` units, so the next stage reads
    the output of whichever unit came last. Started at random, each depth
    computes a different function, and training all of them from one bank
    stalls (in a plain chain, near chance). Started as the identity, every
    depth computes the same function at first, and the depths grow apart as
    they train.
    """
    plain: set[str] = set()
    ends: set[str] = set()
    inside: set[str] = set()
    for graph in graphs:
        _ = graph.summary  # the analysis writes each composite node's expansion
        for node in graph:
            if node.block.name != "stage":
                continue
            for unit in node.meta["expansion"]:
                if unit.block.name == "input" or unit.name == "b0":
                    continue
                prefix = entry_name(graph, f"{node.name}.{unit.name}.")
                if _chain(unit):
                    plain.add(prefix)
                    continue
                last, others = _branch_ends(unit)
                ends.update(prefix + parameter for parameter in last)
                inside.update(prefix + parameter for parameter in others)
    residual, chains = ends - inside, tuple(plain)
    started = []
    for name in sorted(names):  # nn.init writes without recording gradients
        if name in residual:
            nn.init.zeros_(bank[name])
            started.append(name)
        elif name.startswith(chains) and name.endswith(".weight") and _start_as_identity(bank[name]):
            started.append(name)
    return started


def _chain(node: Node) -> bool:
    """Whether ``node`` computes a chain of one-input steps (no merge inside it, at any depth)."""
    inner = node.meta.get("expansion")
    if inner is None:
        return True
    return all(len(inner.inputs(n.name)) <= 1 and _chain(n) for n in inner)


def _branch_ends(node: Node) -> tuple[set[str], set[str]]:
    """The parameters (dotted paths) that start at zero so that a branch of
    ``node`` added to its own input (an identity shortcut) adds nothing, and
    those of every other norm and projection inside ``node``."""
    inner = node.meta.get("expansion")
    if inner is None:
        return set(), set()
    entry = {n.name for n in inner.input_nodes}
    last = set()
    for merge in inner:
        refs = [ref.node for ref in inner.inputs(merge.name)]
        if merge.block.name == "add" and len(refs) == 2 and len(entry & set(refs)) == 1:
            end = _ending_layer(inner, next(r for r in refs if r not in entry))
            if end is not None:
                last.add(end)
    return _zeroed(last), _zeroed(_layers(inner) - last)


def _zeroed(layers: set[tuple[str, str]]) -> set[str]:
    """The parameters that start ``layers`` (path and block) at zero: a norm's scale, a projection's weight and bias."""
    return {f"{path}.{p}" for path, block in layers for p in (("weight",) if block in NORMS else ("weight", "bias"))}


def _ending_layer(graph: Graph, name: str) -> tuple[str, str] | None:
    """The norm or projection (dotted path and block) whose output is
    ``name``'s, through the end of a composite node or steps that pass a zero
    on as zero; ``None`` where there is none."""
    node = graph.node(name)
    if node.block.name in ENDINGS:
        return name, node.block.name
    if node.block.name in ZERO_KEEPING:
        return _ending_layer(graph, graph.inputs(name)[0].node)
    inner = node.meta.get("expansion")
    if inner is None or len(inner.outputs) != 1:
        return None
    end = _ending_layer(inner, inner.outputs[0].node)
    return None if end is None else (f"{name}.{end[0]}", end[1])


def _layers(graph: Graph) -> set[tuple[str, str]]:
    """Every norm and projection in ``graph`` and the expansions of its nodes (dotted path and block)."""
    found = set()
    for node in graph:
        if node.block.name in ENDINGS:
            found.add((node.name, node.block.name))
        inner = node.meta.get("expansion")
        if inner is not None:
            found |= {(f"{node.name}.{path}", block) for path, block in _layers(inner)}
    return found


def _start_as_identity(weight: torch.Tensor) -> bool:
    """Write the identity into a square weight (eye or Dirac kernel); ``False`` for any other."""
    shape = tuple(weight.shape)
    if len(shape) == 2 and shape[0] == shape[1]:
        nn.init.eye_(weight)
        return True
    if 3 <= len(shape) <= 5 and all(k % 2 for k in shape[2:]) and shape[1] in (1, shape[0]):
        nn.init.dirac_(weight, groups=shape[0] if shape[1] == 1 else 1)
        return True
    return False


class Bank(nn.Module):
    """The supernet's weights: a tensor per entry, grown to the largest shape seen.

    Module attributes cannot hold dots: an entry is kept under its name with
    ``:`` for ``.``. Entries are kept sorted by name, so that an optimiser's
    state saved in a checkpoint finds its parameters again after a resume.
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries = nn.ParameterDict()

    @staticmethod
    def key(name: str) -> str:
        return name.replace(".", ":")

    @property
    def names(self) -> list[str]:
        return [k.replace(":", ".") for k in self.entries]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) in self.entries

    def __getitem__(self, name: str) -> nn.Parameter:
        return self.entries[self.key(name)]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(self[name].shape) for name in self.names}

    def grow(self, graph: Graph, parameters: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
        """Make room for every parameter of ``graph`` lowered (``parameters``,
        by their names in ``nas.lower(graph)``):
        a new entry starts as the module's own initialisation; an entry too
        small for it is enlarged, keeping what it holds in its window and
        taking the module's values where only they reach. Returns the
        entries created or enlarged.

        Raises:
            ValueError: a parameter whose rank differs from its entry's.
        """
        changed: dict[str, torch.Tensor] = {}
        for parameter, value in parameters:
            name = entry_name(graph, parameter)
            if name not in self:
                changed[name] = value.detach().clone()
                continue
            held = changed.get(name, self[name].detach())
            if held.ndim != value.ndim:
                raise ValueError(f"bank entry {name} has {held.ndim} dimensions, a subnet asks for {value.ndim}")
            shape = tuple(max(a, b) for a, b in zip(held.shape, value.shape))
            if shape == tuple(held.shape):
                continue
            grown = torch.zeros(shape, dtype=held.dtype, device=held.device)
            window(grown, value.shape).copy_(value.detach())
            window(grown, held.shape).copy_(held)
            changed[name] = grown
        if changed:
            merged = {name: self[name].detach() for name in self.names}
            merged.update(changed)
            self._replace(merged)
        return sorted(changed)

    def views(self, graph: Graph, parameters: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The windows of the bank that are the parameters of ``graph``
        lowered (``parameters``, by their names in ``nas.lower(graph)``).

        Raises:
            KeyError: a parameter with no entry, or one larger than its
                entry (grow the bank first).
        """
        views = {}
        for parameter, value in parameters:
            name = entry_name(graph, parameter)
            held = self[name]
            if any(v > h for v, h in zip(value.shape, held.shape)):
                raise KeyError(f"{parameter}: {tuple(value.shape)} exceeds the bank's {tuple(held.shape)}")
            views[parameter] = window(held, value.shape)
        return views

    def load(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Replace the entries with ``tensors`` (by entry name)."""
        self._replace(dict(tensors))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The entries by name, for saving (on the CPU, contiguous)."""
        return {name: self[name].detach().to("cpu").contiguous().clone() for name in self.names}

    def _replace(self, tensors: dict[str, torch.Tensor]) -> None:
        device = next(iter(self.entries.values())).device if len(self.entries) else None
        self.entries = nn.ParameterDict(
            {self.key(n): nn.Parameter(tensors[n].to(device) if device else tensors[n]) for n in sorted(tensors)}
        )
