"""``nas.from_module``: bring your own network. Any module ``torch.fx`` can
trace becomes a :class:`~nas.ir.graph.Graph` with its weights, exactly.

The import traces the module (:mod:`nas.io.trace`), maps each call to a
registered block (:mod:`nas.io.torch_table`) and each submodule that matches
a composite block to one node of it (:mod:`nas.io.recognise`), then checks
what it built: the weights load strictly into :func:`nas.lower`'s module,
and that module computes the original's outputs on the example input.

Example:
    >>> import nas, torchvision                                         # doctest: +SKIP
    >>> graph, weights = nas.from_module(torchvision.models.resnet18(), (3, 224, 224))  # doctest: +SKIP
    >>> graph.params                                                    # doctest: +SKIP
    11689512
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.io.exported import fit_weights
from nas.io.recognise import recognise
from nas.io.trace import import_traced, trace
from nas.ir.errors import NASError, SourceError, one_line
from nas.ir.graph import Graph
from nas.passes.lower import lower

TOLERANCE = 1e-4
"""Largest difference from the original's outputs the import accepts, relative
to their magnitude (at least 1): float sums in another order, never a change."""


def from_module(
    module: nn.Module,
    example_input: torch.Tensor | Sequence[int],
    *,
    name: str | None = None,
    composites: bool = True,
) -> tuple[Graph, dict[str, torch.Tensor]]:
    """Import ``module`` into the IR, with its weights, as it computes in eval mode.

    Args:
        module: any module ``torch.fx`` can trace; it is put in eval mode for
            the import and given back in the mode it was in.
        example_input: a tensor with a batch dimension, or a shape without it
            (``(3, 224, 224)``): the input the graph is built for.
        name: the graph's name (by default the module's class name, lower case).
        composites: recognise the submodules that match a composite block
            (torchvision's ``BasicBlock`` as ``basic_block``, a stage of them
            as ``stage``); ``False`` imports every call as a primitive.

    Returns:
        The graph, and its weights keyed as ``nas.lower(graph).state_dict()``.

    Raises:
        UnsupportedOperationError: a call no block computes, in one line with
            the module path, the operation and how much had imported.
        NASError: the module cannot be traced, or (a fault of the table) the
            imported graph computes something else.
    """
    x = example_input if isinstance(example_input, torch.Tensor) else torch.randn(2, *example_input)
    training = module.training
    module.eval()
    try:
        matches = recognise(module, x) if composites else {}
        gm = trace(module, frozenset(matches))
        graph, weights = import_traced(gm, (x,), name or type(module).__name__.lower(), matches)
        graph.meta["imported_from"] = f"{type(module).__module__}.{type(module).__qualname__}"
        _ = graph.summary
        check_import(module, graph, weights, x)
    finally:
        module.train(training)
    return graph, weights


def check_import(module: nn.Module, graph: Graph, weights: dict[str, torch.Tensor], x: torch.Tensor) -> None:
    """The weights load strictly into the lowered graph, and it gives ``module``'s outputs on ``x``.

    Raises:
        NASError: they do not (a converter of the table is wrong).
    """
    lowered = lower(graph).eval()
    fit_weights(lowered, weights)
    with torch.no_grad():
        expected, got = module(x), lowered(x)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for e, g in zip(expected, got, strict=True):
        limit = TOLERANCE * max(1.0, float(e.abs().max()))
        if e.shape != g.shape or float((e - g).abs().max()) > limit:
            raise NASError(
                f"the imported graph does not compute what {type(module).__name__} computes "
                f"(outputs {tuple(g.shape)} vs {tuple(e.shape)})",
                hint="report it: a converter in nas.io.torch_table is wrong",
            )


SPEC_FORMS = "torchvision:NAME, timm:NAME or path/to/file.py:factory"

LIBRARIES = ("torchvision", "timm")
"""The model libraries a spec may name."""


def is_model_spec(source: str) -> bool:
    """Whether ``source`` has the form of a model spec (:data:`SPEC_FORMS`), so
    that everything that reads a network can read a PyTorch model too."""
    kind, sep, what = source.rpartition(":")
    return bool(sep and what and "\n" not in source and (kind in LIBRARIES or kind.endswith(".py")))


def import_spec(
    spec: str, input_shape: Sequence[int] | None = None, *, composites: bool = True
) -> tuple[Graph, dict[str, torch.Tensor]]:
    """The model a spec names, imported at ``input_shape`` (by default the
    model's own, :func:`default_input`) and named after it.

    Raises:
        SourceError: as :func:`module_from_spec`.
        NASError: as :func:`from_module`.
    """
    module, name = module_from_spec(spec)
    shape = tuple(input_shape) if input_shape is not None else default_input(module)
    return from_module(module, shape, name=name, composites=composites)


def module_from_spec(spec: str) -> tuple[nn.Module, str]:
    """The module a spec names, freshly initialised (nothing is downloaded), and a short name for it.

    ``torchvision:NAME`` (``torchvision.models.get_model``), ``timm:NAME``
    (``timm.create_model``), or ``path/to/file.py:factory``, a function of
    that file called without arguments.

    Raises:
        SourceError: a spec of another form, a library that is not installed,
            an unknown model or factory.
    """
    kind, sep, what = spec.rpartition(":")
    if not sep or not kind or not what:
        raise SourceError(f"cannot read the model spec {spec!r}", hint=f"give {SPEC_FORMS}")
    if kind in LIBRARIES:
        return _library_model(kind, what), what
    path = Path(kind)
    if path.suffix != ".py":
        raise SourceError(f"unknown model source '{kind}'", hint=f"give {SPEC_FORMS}")
    factory = _factory(path, what)
    try:
        module = factory()
    except Exception as e:
        raise SourceError(f"{what}() failed: {one_line(e)}", file=str(path)) from None
    if not isinstance(module, nn.Module):
        raise SourceError(f"{what}() returned a {type(module).__name__}, not a torch.nn.Module", file=str(path))
    return module, what


def _library_model(library: str, name: str) -> nn.Module:
    if importlib.util.find_spec(library) is None:
        raise SourceError(f"{library} is not installed", hint=f"pip install {library}")
    try:
        if library == "torchvision":
            import torchvision.models

            return torchvision.models.get_model(name, weights=None)
        import timm

        return timm.create_model(name, pretrained=False)
    except (ValueError, RuntimeError, KeyError) as e:
        raise SourceError(
            f"{library} has no model '{name}' ({one_line(e)})", hint=f"list them with {library}'s list_models()"
        ) from None


def _factory(path: Path, name: str) -> Callable[[], Any]:
    if not path.is_file():
        raise SourceError("no such file", file=str(path))
    module_name = "nas_import_" + re.sub(r"\W", "_", path.stem)
    loader = importlib.util.spec_from_file_location(module_name, path)
    assert loader is not None and loader.loader is not None
    source = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = source  # dataclasses and pickling look their module up
    try:
        loader.loader.exec_module(source)
    except Exception as e:
        raise SourceError(f"cannot run the file: {one_line(e)}", file=str(path)) from None
    factory = getattr(source, name, None)
    if not callable(factory):
        raise SourceError(f"the file has no function '{name}'", file=str(path), hint="give path/to/file.py:function")
    return factory


def default_input(module: nn.Module) -> tuple[int, ...]:
    """The input shape (without batch) a library model was made for: timm's
    ``pretrained_cfg["input_size"]``, else ImageNet's 3x224x224."""
    config = getattr(module, "pretrained_cfg", None) or {}
    return tuple(config.get("input_size", (3, 224, 224)))


__all__ = [
    "LIBRARIES",
    "SPEC_FORMS",
    "TOLERANCE",
    "check_import",
    "default_input",
    "from_module",
    "import_spec",
    "is_model_spec",
    "module_from_spec",
]
