"""The IR: a network as a graph of registered blocks, and the errors that name where it is wrong.

The bottom layer: it imports no other part of ``nas``. Passes
(:mod:`nas.passes`) compute what a graph knows of itself (shapes, costs,
hash) and register themselves with :func:`nas.ir.graph.computes`.
"""

from nas.ir.errors import GraphError, NASError, ParamError, ShapeError, SourceError, UnknownBlockError, WriteError
from nas.ir.graph import Graph, Node, Ref, computes
from nas.ir.registry import Block, Composite, get_block, list_blocks, register

__all__ = [
    "Block",
    "Composite",
    "Graph",
    "GraphError",
    "NASError",
    "Node",
    "ParamError",
    "Ref",
    "ShapeError",
    "SourceError",
    "UnknownBlockError",
    "WriteError",
    "computes",
    "get_block",
    "list_blocks",
    "register",
]
