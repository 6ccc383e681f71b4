"""A training step in both memory formats: NCHW (PyTorch's default) against channels-last.

``nas train``, ``nas search`` and ``nas supernet train`` put batches and
weights in channels-last on every device (``--no-channels-last`` turns it
off). This benchmark measures why, on the machine it runs on: for random
networks of each space in ``--spaces`` (narrowed as the supernet benchmarks
narrow them, 32x32 inputs), one training step (forward, loss, backward, an
SGD step) at ``--batch`` images, timed in each format in turn (A B B A ...,
so that a noisy machine slows both alike), and for each space's supernet one
step of the sandwich rule (the largest, the smallest and two random subnets
on the bank's windows). Printed: each network's median step time in both
formats and their ratio (NCHW over channels-last: above 1, channels-last is
faster), then per space the median, least and greatest ratio.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python examples/bench_channels_last.py
    .venv/bin/python examples/bench_channels_last.py --spaces mobile --networks 20 --device cuda
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from collections.abc import Callable

import torch
from bench_supernet import FIXES

import nas
import nas.space as S
from nas.data import load_data
from nas.io.build import build
from nas.supernet import Supernet, SupernetRun
from nas.supernet.training import step_rng
from nas.train import resolve_device

FORMATS = {"nchw": torch.contiguous_format, "channels-last": torch.channels_last}


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``step``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def alternate(steps: dict[str, Callable[[], None]], rounds: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each step, after one warm-up call each, called in A B B A order."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(timed(steps[name], device))
    return {name: statistics.median(t) for name, t in times.items()}


def network_steps(graph: nas.Graph, batch: int, device: torch.device) -> dict[str, Callable[[], None]]:
    """A training step of ``graph`` lowered, in each memory format (one model each, same weights)."""
    shape = next(iter(graph.summary.inputs.values()))
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model = nas.lower(graph).to(device)
    steps = {}
    for name, memory_format in FORMATS.items():
        m = copy.deepcopy(model).to(memory_format=memory_format)
        optimizer = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        xf = x.contiguous(memory_format=memory_format)

        def step(m: torch.nn.Module = m, optimizer: torch.optim.Optimizer = optimizer, xf: torch.Tensor = xf) -> None:
            optimizer.zero_grad(set_to_none=True)
            out = m(xf)
            out = out if isinstance(out, torch.Tensor) else out[0]
            torch.nn.functional.cross_entropy(out.flatten(1), y).backward()
            optimizer.step()

        steps[name] = step
    return steps


def supernet_steps(space: S.Space, batch: int, device: torch.device) -> dict[str, Callable[[], None]]:
    """A sandwich-rule step of the space's supernet, its batch in each memory format."""
    data = load_data("digits")
    supernet = Supernet(space, data.classes).to(device)
    run = SupernetRun(supernet, data, recipe="digits", epochs=1)
    supernet.census(random.Random(0))
    run.optimise()
    shape = next(iter(supernet.network(supernet.smallest()).summary.inputs.values()))
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, data.classes, (batch,), device=device)
    calls = dict.fromkeys(FORMATS, 0)

    def step(name: str) -> None:  # the n-th step of each format draws the same subnets (kept lowered: 4 kinds)
        calls[name] += 1
        run.step(x.contiguous(memory_format=FORMATS[name]), y, step_rng(0, 0, calls[name] % 4), 0)

    return {name: (lambda name=name: step(name)) for name in FORMATS}


def network_arguments(parser: argparse.ArgumentParser, *, spaces: str, networks: int, rounds: int) -> None:
    """The options of a benchmark over random networks of some spaces, each timed ``--rounds`` times a way."""
    parser.add_argument("--spaces", default=spaces)
    parser.add_argument("--networks", type=int, default=networks, help="random networks per space")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=rounds, help="timed calls per way and network")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)


def start(args: argparse.Namespace) -> tuple[torch.device, random.Random]:
    """The device and the draws of a run with :func:`network_arguments`, seeded; the machine printed."""
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, torch {torch.__version__}")
    return device, random.Random(args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    network_arguments(parser, spaces="mobile,residual,early", networks=8, rounds=6)
    args = parser.parse_args()
    device, rng = start(args)
    print(f"{'space':<10} {'network':<9} {'MACs':>8} {'NCHW ms':>8} {'CL ms':>7} {'ratio':>6}")
    for name in args.spaces.split(","):
        space = S.narrowed(S.load_space(name), FIXES[name])
        ratios = []
        for i in range(args.networks):
            graph = build(S.decode(space, S.sample(space, rng)), classes=10)
            t = alternate(network_steps(graph, args.batch, device), args.rounds, device)
            ratios.append(t["nchw"] / t["channels-last"])
            print(
                f"{name:<10} {i:<9} {graph.macs / 1e6:>7.1f}M {1e3 * t['nchw']:>8.1f} "
                f"{1e3 * t['channels-last']:>7.1f} {ratios[-1]:>6.2f}"
            )
        t = alternate(supernet_steps(space, args.batch, device), args.rounds, device)
        print(
            f"{name:<10} {'supernet':<9} {'':>8} {1e3 * t['nchw']:>8.1f} {1e3 * t['channels-last']:>7.1f} "
            f"{t['nchw'] / t['channels-last']:>6.2f}"
        )
        print(
            f"{name}: channels-last is {statistics.median(ratios):.2f}x as fast as NCHW at the median network "
            f"({min(ratios):.2f}x to {max(ratios):.2f}x), the supernet step {t['nchw'] / t['channels-last']:.2f}x"
        )


if __name__ == "__main__":
    main()
