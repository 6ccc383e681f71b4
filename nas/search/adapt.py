"""Fit a network to a data set: its input shape and its number of classes.

A transform in the torch.fx sense: it returns a new, validated graph and
leaves its argument alone.

Example:
    >>> import nas
    >>> g = adapt(nas.build("resnet18"), input_shape=(3, 32, 32), classes=10)
    >>> g.summary.outputs
    [(10,)]
"""

from __future__ import annotations

from collections.abc import Sequence

from nas.build import build
from nas.errors import NASError
from nas.graph import Graph

CLASS_PARAMS = ("out_features", "out_channels")
"""The parameters that set how many values a classifier produces."""


def classifier(graph: Graph) -> str:
    """The node whose width is the number of classes: walking back from the
    first output over nodes that have none of :data:`CLASS_PARAMS` (softmax,
    flatten, pooling), the first node that has one.

    Raises:
        NASError: no such node before a merge or an input.
    """
    name = graph.outputs[0].node
    while True:
        node = graph.node(name)
        if any(p in node.params for p in CLASS_PARAMS):
            return name
        inputs = graph.inputs(name)
        if len(inputs) != 1 or graph.node(inputs[0].node).block.name == "input":
            raise NASError(
                f"no node with {' or '.join(CLASS_PARAMS)} feeds the output",
                node=graph.outputs[0].node,
                hint="end the network with a linear or convolutional classifier",
            )
        name = inputs[0].node


def adapt(graph: Graph, input_shape: Sequence[int] | None = None, classes: int | None = None) -> Graph:
    """A copy of ``graph`` with its (single) input of ``input_shape`` and its
    classifier (:func:`classifier`) producing ``classes`` values; either may
    be left out. The copy is validated and analysed.

    Raises:
        NASError: several inputs, no classifier, or a network that the new
            input shape does not fit (naming the node).
    """
    new = graph.copy()
    if input_shape is not None:
        inputs = new.input_nodes
        if len(inputs) != 1:
            raise NASError(f"the network has {len(inputs)} inputs; adapt() sets the shape of one", field="input")
        new.set_params(inputs[0].name, shape=tuple(int(s) for s in input_shape))
    if classes is not None:
        name = classifier(new)
        param = next(p for p in CLASS_PARAMS if p in new.node(name).params)
        if new.node(name).params[param] != classes:
            new.set_params(name, **{param: int(classes)})
    return build(new)
