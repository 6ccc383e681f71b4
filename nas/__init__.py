"""nas: neural architecture search by block composition.

The public API is small and stable:

* :func:`build` a :class:`Graph` from YAML (a path or a string);
* ``graph.params``, ``graph.macs``, ``graph.hash``, ``graph.summary``,
  ``graph.to_yaml()``;
* :func:`lower` a graph to a ``torch.fx.GraphModule``;
* :func:`load` a model that ``nas export`` wrote (see :mod:`nas.export`);
* :func:`list_blocks` and :func:`get_block` to explore the block registry.

Example:
    >>> import nas
    >>> g = nas.build("examples/resnet18.yaml")          # doctest: +SKIP
    >>> g.params, g.macs                                  # doctest: +SKIP
    (11689512, 1814073344)
"""

from nas import zoo
from nas.build import build
from nas.canonical import flatten
from nas.errors import GraphError, NASError, ParamError, ShapeError, SourceError, UnknownBlockError
from nas.export import load
from nas.graph import Graph, Node, Ref
from nas.lower import lower
from nas.registry import get_block, list_blocks

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "GraphError",
    "NASError",
    "Node",
    "ParamError",
    "Ref",
    "ShapeError",
    "SourceError",
    "UnknownBlockError",
    "build",
    "flatten",
    "get_block",
    "list_blocks",
    "load",
    "lower",
    "zoo",
]
