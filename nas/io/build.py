"""``nas.build``: one entry point from any description of a network to a Graph.

A source is a YAML path, a YAML string, a zoo name, an export directory or a
Graph; ``input_shape`` and ``classes`` fit the network to a data set or a
measurement, as timm's ``create_model`` takes its overrides. Every other
module that needs a reshaped network calls this one function.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nas.io.zoo as zoo
from nas.io.exported import MANIFEST, read_graph
from nas.io.importing import SPEC_FORMS, import_spec, is_model_spec
from nas.io.parse import load_yaml, read_file
from nas.ir.errors import NASError, SourceError
from nas.ir.graph import Graph
from nas.ir.registry import Shape

CLASS_PARAMS = ("out_features", "out_channels")
"""The parameters that set how many values a classifier produces."""


def build(
    source: str | os.PathLike[str] | Graph,
    input_shape: Sequence[int] | str | None = None,
    classes: int | None = None,
) -> Graph:
    """Build a :class:`Graph` from a YAML path, a YAML string, a zoo name
    (``"resnet50"``, see :mod:`nas.io.zoo`), an export directory (its
    ``model.yaml``, see :mod:`nas.io.exported`), a PyTorch model spec
    (``"torchvision:resnet18"``, imported by :func:`nas.io.importing.import_spec`
    at ``input_shape``) or a Graph.

    The graph is validated and analysed before it is returned, so every error
    surfaces here with its file, line and node.

    Args:
        input_shape: the shape of the (single) input, without the batch
            (``(3, 32, 32)`` or ``"3x32x32"``).
        classes: the number of values the classifier (:func:`classifier`)
            produces.

    With either, the result is a new graph and ``source`` (if a Graph) is
    left alone.

    Example:
        >>> g = build('''
        ... inputs: {x: [1, 28, 28]}
        ... nodes:
        ...   flat: {block: flatten}
        ...   fc: {block: linear, out_features: 10}
        ... ''')
        >>> g.params, g.summary.outputs
        (7850, [(10,)])
        >>> build(g, input_shape="1x14x14", classes=3).params
        591

    Raises:
        SourceError: the source is missing, unreadable or not an IR file.
        NASError: the network it describes is invalid, has several inputs
            for ``input_shape``, no classifier for ``classes``, or does not
            fit the new input shape (naming the node).
    """
    if isinstance(source, str) and is_model_spec(source):
        # Imported at the asked input: a traced model need not be shape-generic (ViT's position embedding).
        source = import_spec(source, None if input_shape is None else parse_shape(input_shape))[0]
        input_shape = None
    with collector_paused():
        graph = _graph(source)
        if input_shape is not None or classes is not None:
            graph = _reshaped(graph, input_shape, classes)
        _ = graph.summary  # validate and analyse now, where the caller can handle errors
    return graph


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a network is read and analysed.

    Reading allocates a few small objects per node and keeps them all, which
    makes the collector walk the ever older generations again and again: on
    long networks it took about half of the build. The objects form no
    cycles worth collecting meanwhile; the collector resumes after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _graph(source: str | os.PathLike[str] | Graph) -> Graph:
    if isinstance(source, Graph):
        return source
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        return load_yaml(source, file="<string>")
    if isinstance(source, str) and not Path(source).is_file() and source in zoo.names():
        return zoo.load(source)
    path = Path(source)
    if path.is_dir() and (path / MANIFEST).is_file():
        return read_graph(path)
    try:
        data = read_file(path)
    except FileNotFoundError:
        close = difflib.get_close_matches(str(path), zoo.names(), n=1, cutoff=0.6)
        raise SourceError(
            "no such file or zoo net",
            file=str(path),
            hint=f"did you mean the zoo net '{close[0]}'?"
            if close
            else f"give an IR YAML file, a YAML string, a zoo name or a PyTorch model ({SPEC_FORMS})",
        ) from None
    return load_yaml(data, file=str(source))


def _reshaped(graph: Graph, input_shape: Sequence[int] | str | None, classes: int | None) -> Graph:
    new = graph.copy()
    if input_shape is not None:
        inputs = new.input_nodes
        if len(inputs) != 1:
            raise NASError(
                f"the network has {len(inputs)} inputs; an input shape applies to a network with one", field="input"
            )
        new.set_params(inputs[0].name, shape=parse_shape(input_shape))
    if classes is not None:
        name = classifier(new)
        param = next(p for p in CLASS_PARAMS if p in new.node(name).params)
        if new.node(name).params[param] != classes:
            new.set_params(name, **{param: int(classes)})
    return new


def parse_shape(text: str | Sequence[int]) -> Shape:
    """``"3x224x224"`` (or a sequence of ints) as a shape without the batch dimension."""
    parts: list[Any] = list(text) if not isinstance(text, str) else text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise NASError(
            f"bad input shape {text!r}", field="input", hint="give positive sizes without the batch, e.g. 3x160x160"
        )
    return shape


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
        if len(inputs) != 1 or graph.node(inputs[0].node).block.placeholder:
            raise NASError(
                f"no node with {' or '.join(CLASS_PARAMS)} feeds the output",
                node=graph.outputs[0].node,
                hint="end the network with a linear or convolutional classifier",
            )
        name = inputs[0].node
