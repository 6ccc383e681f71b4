"""Zero-cost proxies: a score of an untrained network that ranks architectures.

Each proxy takes the lowered network at initialisation and a batch of
training images; higher is better for all three.

* :func:`naswot`: Mellor et al., "Neural Architecture Search without
  Training", ICML 2021. Every activation unit gives a binary code per image
  (on: the activation's output is positive); the kernel ``K[i, j]`` counts
  the units on which images ``i`` and ``j`` agree (``N_A`` minus the Hamming
  distance of their codes); the score is ``log |det K|``. A network that
  cannot tell the images apart has a singular kernel: ``-inf``.
* :func:`synflow`: Tanaka et al., "Pruning neural networks without any data
  by iteratively conserving synaptic flow", NeurIPS 2020, as used for NAS by
  Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021:
  with every parameter replaced by its absolute value, an all-ones input
  (double precision), ``R = sum(output)``; the score is
  ``sum |theta * dR/dtheta|`` over the weights. Returned as its natural
  log, since the sum overflows for deep networks; ``-inf`` when it is 0.
* :func:`grad_norm`: Abdelfattah et al. 2021: the sum over parameter
  tensors of the Euclidean norm of the cross-entropy loss's gradient on one
  batch at initialisation.

Example:
    >>> import nas, torch
    >>> g = nas.build("lenet5")
    >>> x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    >>> math.isfinite(score("naswot", g, x, y))
    True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx

from nas.blocks.activation import Activation
from nas.ir.graph import Graph
from nas.passes.lower import lower
from nas.train import logits

BATCH = 64
"""Images per proxy evaluation (the NASWOT paper uses 128; 64 keeps the
kernel's determinant well conditioned for the small nets of the early space)."""


class _ActivationCodes(fx.Interpreter):
    """Runs a lowered graph and records, after every activation block, which
    units are on; composite blocks (submodules lowered from their expansion)
    are entered, so their inner activations count too."""

    def __init__(self, module: fx.GraphModule, graph: Graph, sink: list[torch.Tensor]) -> None:
        super().__init__(module)
        self.ir = graph
        self.sink = sink

    def _block(self, name: str) -> Any:
        return self.ir.node(name).block if name in self.ir else None

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        key = n.target if n.op == "call_module" else n.name
        if n.op != "placeholder" and isinstance(key, str) and isinstance(self._block(key), Activation):
            self.sink.append((result > 0).flatten(1))
        return result

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        sub = self.fetch_attr(target)
        block = self._block(target)
        if isinstance(sub, fx.GraphModule) and block is not None and block.composite:
            expansion = self.ir.node(target).meta["expansion"]
            return _ActivationCodes(sub, expansion, self.sink).run(*args)
        return super().call_module(target, args, kwargs)


def naswot(graph: Graph, model: fx.GraphModule, x: torch.Tensor, y: torch.Tensor) -> float:
    """NASWOT score: ``log |det K|`` of the activation-pattern kernel."""
    codes: list[torch.Tensor] = []
    model.eval()
    with torch.no_grad():
        _ActivationCodes(model, graph, codes).run(x)
    if not codes:
        return -math.inf
    c = torch.cat(codes, dim=1).to(torch.float64)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


def synflow(graph: Graph, model: fx.GraphModule, x: torch.Tensor, y: torch.Tensor) -> float:
    """SynFlow score (natural log of the synaptic-flow sum)."""
    linear = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in linear.parameters():
            p.abs_()
    linear.zero_grad()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    torch.sum(linear(ones)).backward()
    with torch.no_grad():
        # Weights only (tensors of two or more dimensions), as Abdelfattah
        # et al. sum over convolution and linear weights: SynFlow prunes
        # weights, and biases carry flow that no input contributes to.
        total = sum(float((p * p.grad).abs().sum()) for p in linear.parameters() if p.grad is not None and p.ndim > 1)
    return math.log(total) if total > 0 else -math.inf


def grad_norm(graph: Graph, model: fx.GraphModule, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum of the per-tensor gradient norms of the loss at initialisation."""
    model.train()
    model.zero_grad()
    F.cross_entropy(logits(graph, model(x)), y).backward()
    return float(sum(float(p.grad.norm()) for p in model.parameters() if p.grad is not None))


PROXIES: dict[str, Callable[[Graph, fx.GraphModule, torch.Tensor, torch.Tensor], float]] = {
    "naswot": naswot,
    "synflow": synflow,
    "grad_norm": grad_norm,
}
"""The proxies by name, as ``--objective proxy:NAME`` takes them."""

DEGENERATE = {
    "naswot": "the network does not tell its inputs apart",
    "synflow": "no synaptic flow reaches the output (saturated activations zero every gradient)",
    "grad_norm": "the loss has no gradient",
}
"""What a score of ``-inf`` means, per proxy."""


def score(name: str, graph: Graph, x: torch.Tensor, y: torch.Tensor, *, model: fx.GraphModule | None = None) -> float:
    """The proxy ``name`` of ``graph`` (lowered now unless ``model`` is given,
    with whatever initialisation the caller seeded) on images ``x``, labels ``y``."""
    model = model if model is not None else lower(graph)
    return PROXIES[name](graph, model, x, y)
