"""Building and running a supernet's subnets: a ``Stepped`` module against the flat ``GraphModule``.

A supernet step draws random subnets and builds a module for each, used for
one forward and backward pass and then dropped; on a small network that
building is a large part of the step. This benchmark measures both ways of
lowering a drawn network flat, on the machine it runs on: for random
networks of each space in ``--spaces`` (narrowed as the supernet benchmarks
narrow them, 32x32 inputs), the time to draw one (:func:`nas.space.draw`:
drawn, checked and decoded) and build it, then in turn (A B B A ..., so
that a noisy machine slows both alike) the time to lower it with
:class:`nas.passes.lower.Stepped` (what the supernet builds) and with
``nas.lower(graph, flatten=True)`` (generated code), and one training pass
of each (forward, loss, backward at ``--batch`` images, the same weights).
Printed: each network's medians, then per space the median ratios (flat
``GraphModule`` over ``Stepped``: above 1, ``Stepped`` is faster).

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python examples/bench_subnets.py
    .venv/bin/python examples/bench_subnets.py --spaces mobile --networks 20 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bench_channels_last import alternate, network_arguments, start
from bench_supernet import FIXES

import nas
import nas.space as S
from nas.io.build import build
from nas.passes.lower import Stepped


def lowerings(graph: nas.Graph) -> dict[str, Callable[[], None]]:
    """The two ways of lowering ``graph`` flat, each a call that builds a fresh module."""

    def stepped() -> None:
        Stepped(graph)

    def graph_module() -> None:
        nas.lower(graph, flatten=True)

    return {"stepped": stepped, "graph module": graph_module}


def passes(graph: nas.Graph, batch: int, device: torch.device) -> dict[str, Callable[[], None]]:
    """One training pass (forward, loss, backward) of each lowering, with the same weights."""
    shape = next(iter(graph.summary.inputs.values()))
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    reference = nas.lower(graph, flatten=True).to(device).train()
    stepped = Stepped(graph).to(device).train()
    stepped.load_state_dict(reference.state_dict())

    def step(module: torch.nn.Module) -> None:
        torch.nn.functional.cross_entropy(module(x), y).backward()

    return {"stepped": lambda: step(stepped), "graph module": lambda: step(reference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    network_arguments(parser, spaces="mobile,residual", networks=10, rounds=10)
    args = parser.parse_args()
    device, rng = start(args)
    print(
        f"{'space':<9} {'network':<8} {'modules':>7} {'draw ms':>7} {'build ms: stepped':>17} {'GM':>6} "
        f"{'pass ms: stepped':>16} {'GM':>6}"
    )
    for name in args.spaces.split(","):
        space = S.narrowed(S.load_space(name), FIXES[name])
        build_ratios, pass_ratios, drawn = [], [], []
        for i in range(args.networks):
            started = time.perf_counter()
            graph = build(S.draw(space, rng)[1], classes=10)
            drawn.append(time.perf_counter() - started)
            b = alternate(lowerings(graph), args.rounds, torch.device("cpu"))
            p = alternate(passes(graph, args.batch, device), args.rounds, device)
            build_ratios.append(b["graph module"] / b["stepped"])
            pass_ratios.append(p["graph module"] / p["stepped"])
            print(
                f"{name:<9} {i:<8} {sum(1 for _ in Stepped(graph).children()):>7} {1e3 * drawn[-1]:>7.2f} "
                f"{1e3 * b['stepped']:>17.2f} {1e3 * b['graph module']:>6.2f} "
                f"{1e3 * p['stepped']:>16.2f} {1e3 * p['graph module']:>6.2f}"
            )
        print(
            f"{name}: a Stepped module is built {statistics.median(build_ratios):.2f}x as fast as the flat "
            f"GraphModule ({min(build_ratios):.2f}x to {max(build_ratios):.2f}x) and runs a training pass "
            f"{statistics.median(pass_ratios):.2f}x as fast ({min(pass_ratios):.2f}x to {max(pass_ratios):.2f}x); "
            f"drawing a network takes {1e3 * statistics.median(drawn):.2f} ms"
        )


if __name__ == "__main__":
    main()
