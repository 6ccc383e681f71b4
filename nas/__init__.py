"""nas: neural architecture search by block composition.

The public API is small and stable:

* :func:`build` a :class:`Graph` from YAML (a path or a string);
* ``graph.params``, ``graph.macs``, ``graph.hash``, ``graph.summary``,
  ``graph.to_yaml()``;
* :func:`lower` a graph to a ``torch.fx.GraphModule``;
* :func:`load` a model that ``nas export`` wrote (see :mod:`nas.export`);
* :func:`from_module` imports a PyTorch module, with its weights;
* :func:`list_blocks` and :func:`get_block` to explore the block registry.

Example:
    >>> import nas
    >>> g = nas.build("examples/resnet18.yaml")          # doctest: +SKIP
    >>> g.params, g.macs                                  # doctest: +SKIP
    (11689512, 1814073344)
"""

# The layers from the bottom up (see README, "Layout"): the IR, the block
# library that registers into it, the passes that register the graph's facts,
# and reading networks. Nothing here imports the search, so that loading an
# exported model needs torch, pyyaml, networkx and safetensors alone.
from nas.ir import GraphError, NASError, ParamError, ShapeError, SourceError, UnknownBlockError, WriteError  # isort: skip
from nas.ir import Graph, Node, Ref, get_block, list_blocks  # isort: skip
import nas.blocks  # isort: skip  # noqa: F401 (registers the block library)
from nas.passes import flatten, lower  # isort: skip
from nas.io import build, load, zoo  # isort: skip
from nas.io.importing import from_module  # isort: skip

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
    "WriteError",
    "build",
    "flatten",
    "from_module",
    "get_block",
    "list_blocks",
    "load",
    "lower",
    "zoo",
]
