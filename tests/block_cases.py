"""Every registered block's declared examples, as small graphs for the tests."""

from __future__ import annotations

import pytest
import torch

import nas
from nas.ir.registry import Block, Example


def example_graph(block: Block, example: Example) -> nas.Graph:
    """A graph that runs ``block`` on one of its declared examples."""
    if example.source is not None:
        return nas.build(example.source)
    g = nas.Graph(f"{block.name}_example")
    inputs = [g.add_input(f"x{i}", shape) for i, shape in enumerate(example.inputs)]
    g.add("node", block, inputs, **example.params)
    g.set_outputs(*(nas.Ref("node", i) for i in range(len(block.output_names(block.check_params(example.params))))))
    return nas.build(g)


def block_examples() -> list[pytest.param]:
    cases = []
    for name in nas.list_blocks():
        block = nas.get_block(name)
        for i, example in enumerate(block.examples):
            cases.append(pytest.param(block, example, id=f"{name}-{i}"))
    return cases


def random_inputs(graph: nas.Graph, batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, *shape) for shape in graph.summary.inputs.values()]
