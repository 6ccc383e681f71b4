"""Tracing a PyTorch module into the IR, one call at a time.

``torch.fx`` traces the module into a graph of calls (modules, functions,
tensor methods); ``ShapeProp`` runs it once on the example input so that
every call's tensor shapes are known; then each call is looked up in
:mod:`nas.io.torch_table` and becomes the blocks that compute the same
thing, with the module's weights. Calls that only compute sizes
(``x.size()``, ``x.shape[0] // 2``) and checks (``torch._assert``) carry no
tensor and are passed over. The first call that no block computes stops the
import with one line: the module path, the operation, why, and how much of
the model had imported by then.

Submodules that :mod:`nas.io.recognise` matched to a composite block are
leaves of the trace and become one node of that block.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from nas.io.torch_table import (
    CHANNELS_LAST,
    METHODS,
    SPATIAL_FLAT,
    Unsupported,
    Value,
    library_tables,
    wrapped_functions,
)
from nas.ir.errors import GraphError, NASError, one_line
from nas.ir.graph import Graph, Ref
from nas.ir.registry import Shape


class UnsupportedOperationError(NASError):
    """A call of the module that no registered block computes exactly.

    Attributes:
        operation: the operation as PyTorch names it (``nn.Conv3d``,
            ``torch.fft.fft2``), to count what a set of models lacks.
    """

    def __init__(self, message: str, *, operation: str, **where: Any) -> None:
        super().__init__(message, **where)
        self.operation = operation


@dataclass(frozen=True)
class Match:
    """A submodule recognised as one composite block: its parameters and its
    weights under the lowered block's names."""

    block: str
    params: Mapping[str, Any]
    weights: Mapping[str, torch.Tensor]


class _Tracer(fx.Tracer):
    """``torch.fx``'s tracer with the table's module types and the
    recognised submodules as leaves."""

    def __init__(self, leaf_types: frozenset[type], leaf_paths: frozenset[str]) -> None:
        super().__init__(autowrap_functions=tuple(wrapped_functions()))
        self.leaf_types = leaf_types
        self.leaf_paths = leaf_paths

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (
            type(m) in self.leaf_types
            or module_qualified_name in self.leaf_paths
            or super().is_leaf_module(m, module_qualified_name)
        )


def trace(module: nn.Module, leaves: frozenset[str] = frozenset()) -> fx.GraphModule:
    """``module`` as a ``torch.fx.GraphModule`` whose calls the table can read.

    Raises:
        NASError: ``torch.fx`` cannot trace it (control flow that depends on tensor values).
    """
    modules, _ = library_tables()
    tracer = _Tracer(frozenset(modules), leaves)
    try:
        graph = tracer.trace(module)
    except Exception as e:  # fx raises TraceError, TypeError, AttributeError ... from user code
        raise NASError(
            f"torch.fx cannot trace {type(module).__name__}: {one_line(e)}",
            hint="make forward() traceable (no Python control flow on tensor values), or wrap that part in a module",
        ) from None
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def import_traced(
    gm: fx.GraphModule, inputs: Sequence[torch.Tensor], name: str, composites: Mapping[str, Match] = {}
) -> tuple[Graph, dict[str, torch.Tensor]]:
    """The graph and weights of a traced module, run on ``inputs`` (with batch) for shapes.

    Raises:
        UnsupportedOperationError: a call no block computes (one line, with the module path).
    """
    with torch.no_grad():
        ShapeProp(gm).propagate(*inputs)
    importer = Importer(gm, Graph(name), composites)
    importer.run()
    return importer.graph, importer.weights


class Importer:
    """Builds the graph call by call; converters call back :meth:`emit`,
    :meth:`value`, :meth:`tensor` and :meth:`ref`."""

    def __init__(self, gm: fx.GraphModule, graph: Graph, composites: Mapping[str, Match]) -> None:
        self.gm = gm
        self.graph = graph
        self.composites = composites
        self.modules, self.functions = library_tables()
        self.values: dict[fx.Node, Value] = {}
        self.weights: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[Shape, ...]] = {}
        self.node: fx.Node | None = None

    # -- the walk ---------------------------------------------------------------

    def run(self) -> None:
        live = _live(self.gm.graph)
        total = sum(1 for n in live if _computes(n))
        done = 0
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder" and "tensor_meta" not in node.meta:
                continue  # an argument left at its default (timm's forward options)
            if node.op == "placeholder":
                shape = _shape(node)
                ref = self._add(node.name, "input", [], {"shape": shape})
                self.values[node] = Value(ref, shape)
            elif node.op == "get_attr":
                attr = functools.reduce(getattr, node.target.split("."), self.gm)
                if isinstance(attr, torch.Tensor):
                    self.values[node] = Value(param=attr)
            elif node.op == "output":
                self._outputs(node)
            elif _computes(node) and node in live:
                try:
                    self.values[node] = self._convert(node)
                except Unsupported as e:
                    raise self._failure(node, str(e), done, total) from None
                done += 1
            elif _computes(node) and isinstance(node.target, str) and node.target.endswith("_"):
                raise self._failure(node, "an in-place change whose result is never read", done, total)

    def _convert(self, node: fx.Node) -> Value:
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            match = self.composites.get(node.target)
            if match is not None:
                return self.emit(match.block, [self.tensor(node.args[0])], weights=match.weights, **match.params)
            convert = self.modules.get(type(module))
            if convert is None:
                raise Unsupported("no block for it")
            return convert(self, node, module)
        convert = self.functions.get(node.target) if node.op == "call_function" else METHODS.get(node.target)
        if convert is None:
            raise Unsupported("no block for it")
        return convert(self, node, None)

    def _outputs(self, node: fx.Node) -> None:
        result = node.args[0]
        items = list(result) if isinstance(result, (tuple, list)) else [result]
        refs = []
        for item in items:
            try:
                refs.append(self.tensor(item))
            except Unsupported as e:
                raise self._failure(node, f"an output that is not a tensor of the graph ({e})", 0, 0) from None
        self.graph.set_outputs(*refs)

    def _failure(self, node: fx.Node, reason: str, done: int, total: int) -> UnsupportedOperationError:
        share = f"; {done} of {total} operations imported before it" if total else ""
        operation = describe(node, self.gm)
        return UnsupportedOperationError(
            f"no block computes {operation}: {reason}{share}",
            operation=operation,
            node=module_path(node, self.gm),
            hint="register a block for it (nas.ir.registry.register) and its converter in nas.io.torch_table",
        )

    # -- what converters call --------------------------------------------------

    def value(self, arg: Any) -> Value:
        """The value of an argument that must be a tensor of the module."""
        if not isinstance(arg, fx.Node):
            raise Unsupported(f"the constant {arg!r} where a tensor is read")
        value = self.values.get(arg)
        if value is None:
            raise Unsupported(f"'{arg.name}' is not a tensor the graph computes")
        return value

    def ref(self, value: Value) -> Ref:
        """The graph tensor behind ``value``, in whatever layout."""
        if value.ref is None:
            raise Unsupported("a parameter or a tuple where a computed tensor is read")
        return value.ref

    def tensor(self, arg: Any) -> Ref:
        """The graph tensor of an argument that the module sees as the graph does."""
        value = self.value(arg)
        if value.layout:
            raise Unsupported(f"a tensor seen as {self.seen_shape(value)} ({value.layout.replace('_', ' ')})")
        return self.ref(value)

    def emit(
        self,
        block: str,
        inputs: Sequence[Ref],
        *,
        weights: Mapping[str, torch.Tensor] | None = None,
        suffix: str = "",
        **params: Any,
    ) -> Value:
        """Add one node for the current call (named after it, plus ``suffix``) and its weights."""
        assert self.node is not None
        name = _identifier(self.node.name if not suffix else f"{self.node.name}_{suffix}")
        ref = self._add(name, block, inputs, params)
        for key, tensor in (weights or {}).items():
            self.weights[f"{ref.node}.{key}"] = tensor.detach().clone()
        return Value(ref, self.shapes[ref.node][0])

    def output(self, name: str, index: int) -> Value:
        """Output ``index`` of node ``name`` as a value."""
        return Value(Ref(name, index), self.shapes[name][index])

    def out_shape(self, node: fx.Node) -> Shape:
        """The shape (without batch) the module's call gives."""
        return _shape(node)

    def seen_shape(self, value: Value) -> Shape:
        """The shape (without batch) the module sees ``value`` in."""
        if value.layout == CHANNELS_LAST:
            c, h, w = value.shape
            return (h, w, c)
        if value.layout == SPATIAL_FLAT:
            c, h, w = value.shape
            return (c, h * w)
        return tuple(value.param.shape) if value.param is not None else value.shape

    def _add(self, name: str, block: str, inputs: Sequence[Ref], params: Mapping[str, Any]) -> Ref:
        """Add a node under a free name and infer its shapes (through the block, or the trace for composites)."""
        base, k = name, 1
        while name in self.graph:
            k += 1
            name = f"{base}_{k}"
        try:
            ref = self.graph.add(name, block, list(inputs), **params)
            node = self.graph.node(name)
            ins = [self.shapes[r.node][r.output] for r in inputs]
            if node.block.rank is not None and any(len(s) != node.block.rank for s in ins):
                raise Unsupported(f"{block} reads rank-{node.block.rank} tensors, not {[tuple(s) for s in ins]}")
            if node.block.composite or node.block.placeholder:
                shapes: tuple[Shape, ...] = (
                    (tuple(params["shape"]),) if node.block.placeholder else (_shape(self.node),)
                )
            else:
                out = node.block.infer(node.params, ins)
                shapes = out if out and isinstance(out[0], tuple) else (out,)  # type: ignore[assignment]
        except NASError as e:
            if name in self.graph:
                self.graph.remove(name)
            if isinstance(e, GraphError) and "name" in e.message:
                return self._add(f"n_{base}", block, inputs, params)
            raise Unsupported(f"{block}: {e.message}") from None
        self.shapes[name] = shapes
        return ref


def _shape(node: fx.Node | None) -> Shape:
    meta = node.meta.get("tensor_meta") if node is not None else None
    if meta is None or not hasattr(meta, "shape"):
        raise Unsupported("a call whose result is not one tensor")
    return tuple(int(d) for d in meta.shape[1:])


def _computes(node: fx.Node) -> bool:
    """A call that produces tensors (not sizes or checks)."""
    if node.op not in ("call_module", "call_function", "call_method"):
        return False
    meta = node.meta.get("tensor_meta")
    if meta is None:
        return False
    # TensorMetadata is itself a named tuple: a tuple of results is a tuple of those.
    items = (meta,) if hasattr(meta, "shape") else meta if isinstance(meta, (tuple, list)) else ()
    return any(hasattr(item, "shape") for item in items)


def _live(graph: fx.Graph) -> set[fx.Node]:
    """The nodes the output depends on."""
    live: set[fx.Node] = set()
    for node in reversed(graph.nodes):
        if node.op == "output" or any(user in live for user in node.users):
            live.add(node)
    return live


def _identifier(name: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in name).lstrip("_") or "node"
    if text[0].isdigit() or keyword.iskeyword(text):
        text = f"n_{text}"
    return text


def module_path(node: fx.Node, gm: fx.GraphModule) -> str:
    """The dotted path of the module that makes the call (``layer1.0.conv1``), or the model's class name."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    for entry in reversed(list(stack.values())):
        path = entry[0] if isinstance(entry, tuple) else entry
        if path:
            return str(path)
    return type(gm).__name__ if type(gm).__name__ != "GraphModule" else gm.__class__.__name__


def describe(node: fx.Node, gm: fx.GraphModule) -> str:
    """The operation of a call, as one names it in PyTorch (``nn.Conv3d``, ``torch.fft.fft2``, ``Tensor.unfold``)."""
    if node.op == "call_module":
        cls = type(gm.get_submodule(node.target))
        prefix = "nn." if cls.__module__.startswith("torch.nn") else f"{cls.__module__}."
        return prefix + cls.__qualname__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    for space in (torch, torch.nn.functional, torch.fft, torch.linalg, torch.special):
        # Functions bound from torch._C: name them as users call them (torch.fft.fft2, not fft_fft2).
        public = next((n for n in dir(space) if not n.startswith("_") and getattr(space, n, None) is target), None)
        if public is not None:
            return f"{space.__name__}.{public}"
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', str(target))}".lstrip(".")


__all__ = ["Importer", "Match", "UnsupportedOperationError", "describe", "import_traced", "module_path", "trace"]
