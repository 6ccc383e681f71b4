"""YAML <-> IR, with line numbers for every error and an exact round trip.

The file format (``examples/*.yaml`` are real ones)::

    name: tiny                        # optional, not hashed
    meta: {paper: ..., year: 1998}    # optional, free-form, not hashed
    inputs:
      x: [3, 32, 32]                  # shape without the batch dimension
    nodes:
      conv1: {block: conv2d, in: x, out_channels: 8, kernel_size: 3}
      pool1: {block: max_pool2d, in: conv1, kernel_size: 2, return_indices: true}
      up1: {block: max_unpool2d, in: [pool1, pool1.indices], kernel_size: 2}
    outputs: [up1]

Each node names its ``block`` and its inputs ``in`` (one name or a list, in
port order; ``node.output`` picks a named output); every other key is a
parameter. ``in`` may be left out to read the previous node in the file, and
``outputs`` to return the last node. :func:`dump_yaml` writes the canonical
form: one line per node, ``in`` always written, parameters that equal their
defaults left out, in declared order. ``dump_yaml(load_yaml(text)) == text``
for every canonical text.

Only safe YAML is read: no Python tags, and no aliases (``*name``), which
architectures never need and which a "YAML bomb" abuses.
"""

from __future__ import annotations

import difflib
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nas.ir.errors import NASError, SourceError
from nas.ir.graph import Graph, computes
from nas.ir.values import plain

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 64 << 20
"""Larger files are refused before reading: no architecture is that big."""


def read_file(path: Path) -> bytes:
    """The bytes of a nas file (an architecture or a search space), refused
    before reading where that would not end well: a directory, a FIFO, a
    device or a socket (reading a FIFO blocks until a writer comes), or more
    than :data:`MAX_FILE_BYTES`.

    Raises:
        FileNotFoundError: no such file (callers add their own hint).
        SourceError: anything else, naming the file.
    """
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SourceError(
                "is a directory, expected a YAML file",
                file=str(path),
                hint="give an IR YAML file, or a directory that 'nas export' wrote (it has a model.json)",
            )
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(
                "is not a regular file (a pipe, device or socket), which nas does not read",
                file=str(path),
                hint="save the YAML to a file first",
            )
        if info.st_size > MAX_FILE_BYTES:
            raise SourceError(
                f"file is {info.st_size} bytes, more than the {MAX_FILE_BYTES} a nas file may have", file=str(path)
            )
        with path.open("rb") as f:  # the file may have grown since stat: read no more than the limit
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise SourceError(f"cannot read: {e.strerror}", file=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise SourceError(f"more than the {MAX_FILE_BYTES} bytes a nas file may have", file=str(path))
    return data


TOP_LEVEL_KEYS = ("name", "meta", "inputs", "nodes", "outputs")


class _Located(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line of each key."""

    line: int
    lines: dict[Any, int]


class _AliasError(yaml.constructor.ConstructorError):
    """An alias (``*name``): refused, see :func:`read_yaml`."""


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # An alias is a node constructed a second time (or, for a recursive
        # one, while it is being constructed); refusing it keeps the cost of
        # reading a file linear in its size.
        if node in self.constructed_objects or node in self.recursive_objects:
            raise _AliasError(None, None, "aliases (*name) are not allowed in nas files", node.start_mark)
        return super().construct_object(node, deep=deep)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Located:
    if any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value):
        raise yaml.constructor.ConstructorError(None, None, "merge keys (<<) are not allowed", node.start_mark)
    data = _Located()
    data.line = node.start_mark.line + 1
    data.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise SourceError(f"a key must be a plain name, got {key!r}", line=line)
        if key in data:
            raise SourceError(f"duplicate key '{key}'", line=line, hint="each name may appear once")
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = line
    return data


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)

# YAML 1.1 reads 1e-5 as a string (it wants 1.0e-5); accept YAML 1.2 floats.
# The resolver table is copied first: PyYAML's add_implicit_resolver appends
# to lists that SafeLoader shares with its subclasses.
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(text: str | bytes, file: str | None = None) -> Any:
    """Parse YAML safely; errors become :class:`SourceError` with file and line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except NASError as e:
        raise e.located(file=file) from None
    except _AliasError as e:
        # The composed node is shared by the anchor and its aliases and only
        # knows the anchor's line; point at the first '*name' instead.
        line = _first_alias_line(text) or e.problem_mark.line + 1
        raise SourceError(
            e.problem, file=file, line=line, hint="write the value out in full instead of '*name'"
        ) from None
    except yaml.constructor.ConstructorError as e:
        # Well-formed YAML that asks for more than plain data: tags such as
        # !!python/object, merge keys.
        line = e.problem_mark.line + 1 if e.problem_mark is not None else None
        raise SourceError(
            f"unsupported YAML: {e.problem}",
            file=file,
            line=line,
            hint="write plain mappings, lists, numbers and strings: no tags like !!python/..., no merge keys <<",
        ) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        context = e.context
        if context and e.context_mark is not None and mark is not e.context_mark and e.context_mark.line + 1 != line:
            context += f" (started at line {e.context_mark.line + 1})"
        what = " ".join(str(part) for part in (context, e.problem) if part)
        raise SourceError(
            f"malformed YAML: {what}", file=file, line=line, hint="check the indentation and brackets there"
        ) from None
    except yaml.YAMLError as e:
        position = getattr(e, "position", None)
        raise SourceError(
            f"not a readable YAML text: {getattr(e, 'reason', e)}"
            + (f" at byte {position}" if position is not None else ""),
            file=file,
            hint="nas files are UTF-8 YAML text",
        ) from None
    except RecursionError:
        raise SourceError("the YAML nests too deeply", file=file, hint="flatten the structure") from None


def _first_alias_line(text: str | bytes) -> int | None:
    try:
        for token in yaml.scan(text, Loader=_BaseLoader):
            if isinstance(token, yaml.AliasToken):
                return int(token.start_mark.line) + 1
    except yaml.YAMLError:
        pass
    return None


def load_yaml(text: str | bytes, file: str | None = None) -> Graph:
    """Build a :class:`Graph` from IR YAML text.

    Args:
        text: the YAML document.
        file: where it came from, for error messages.

    Raises:
        SourceError: malformed YAML or a layout that is not an IR file.
        NASError: any error of the graph it describes, with file and line.
    """
    data = read_yaml(text, file)
    if data is None:
        raise SourceError(
            "the file is empty", file=file, hint="write a mapping with 'inputs:', 'nodes:' and 'outputs:'"
        )
    if not isinstance(data, _Located):
        raise SourceError(
            f"expected a mapping with 'inputs:', 'nodes:' and 'outputs:', got a {type(data).__name__}",
            file=file,
            line=1,
            hint="see examples/*.yaml for the layout",
        )
    return graph_from_mapping(data, file)


def graph_from_mapping(data: Mapping[str, Any], file: str | None = None, name: str | None = None) -> Graph:
    """Build a :class:`Graph` from an IR mapping read by :func:`read_yaml`
    (which keeps the lines that errors cite). The zoo uses it for each net of
    a family file.

    Args:
        data: the mapping with ``inputs``, ``nodes`` and ``outputs``.
        file: where it came from, for error messages.
        name: the graph's name when ``data`` has no ``name:``.
    """
    if not isinstance(data, _Located):
        raise SourceError("expected a mapping with 'inputs:', 'nodes:' and 'outputs:'", file=file)
    graph = _empty_graph(data, file, name)
    inputs = _section(data, "inputs", file)
    nodes = _section(data, "nodes", file)
    for input_name, shape in inputs.items():
        try:
            graph.add_input(input_name, shape, line=inputs.lines[input_name])
        except NASError as e:
            raise e.located(field="shape" if e.node else None) from None
    # Two passes: create every node, then connect, so that a file may name
    # its nodes in any order.
    wiring = _add_nodes(graph, nodes, next(iter(inputs), None), file)
    for node_name, refs, line in wiring:
        if refs is None:
            continue
        if not isinstance(refs, list):
            refs = [refs]
        if not all(isinstance(r, str) for r in refs):
            raise SourceError(
                "'in' must be a node name or a list of names", file=file, line=line, node=node_name, field="in"
            )
        graph.set_inputs(node_name, refs)

    outputs = data.get("outputs", wiring[-1][0])
    if not isinstance(outputs, list):
        outputs = [outputs]
    if not outputs or not all(isinstance(r, str) for r in outputs):
        raise SourceError("'outputs' must be a node name or a list of names", file=file, line=data.lines.get("outputs"))
    try:
        graph.set_outputs(*outputs)
    except NASError as e:
        raise e.located(line=data.lines.get("outputs")) from None
    return graph


def _empty_graph(data: _Located, file: str | None, name: str | None) -> Graph:
    """The graph of the file's top level (name and meta), refusing unknown keys."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
            raise SourceError(
                f"unknown top-level key '{key}'",
                file=file,
                line=data.lines[key],
                hint=f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(TOP_LEVEL_KEYS)}",
            )
    name = data.get("name", name or (Path(file).stem if file and not file.startswith("<") else "net"))
    if not isinstance(name, str):
        raise SourceError("'name' must be a string", file=file, line=data.lines["name"])
    meta = data.get("meta", {})
    if not isinstance(meta, Mapping):
        raise SourceError("'meta' must be a mapping", file=file, line=data.lines["meta"])
    return Graph(name, plain(meta), source=file)


def _add_nodes(graph: Graph, nodes: _Located, previous: str | None, file: str | None) -> list[tuple[str, Any, int]]:
    """Add every node of ``nodes:`` to ``graph`` unconnected; return
    ``(node, its 'in', line)`` for each, ``in`` defaulting to the node before."""
    wiring: list[tuple[str, Any, int]] = []
    for node_name, spec in nodes.items():
        line = nodes.lines[node_name]
        if not isinstance(spec, _Located):
            raise SourceError(
                f"node '{node_name}' must be a mapping like {{block: relu, in: x}}, got {spec!r}",
                file=file,
                line=line,
            )
        params = {k: v for k, v in spec.items() if k not in ("block", "in")}
        if "block" not in spec:
            raise SourceError(
                "missing 'block:'",
                file=file,
                line=line,
                node=str(node_name),
                hint="name its block type, e.g. 'block: conv2d'",
            )
        try:
            graph.add(node_name, spec["block"], (), line=line, **params)
        except NASError as e:
            if e.field in spec.lines:
                e.line = spec.lines[e.field]
            raise
        wiring.append((node_name, spec.get("in", previous), spec.lines.get("in", line)))
        previous = node_name
    return wiring


def _section(data: _Located, key: str, file: str | None) -> _Located:
    value = data.get(key)
    if not isinstance(value, _Located) or not value:
        raise SourceError(
            f"'{key}' must be a non-empty mapping",
            file=file,
            line=data.lines.get(key, data.line),
            hint="inputs: {x: [3, 224, 224]}" if key == "inputs" else "nodes: {conv1: {block: conv2d, in: x, ...}}",
        )
    return value


# --------------------------------------------------------------------------
# Dumping


def _flow(value: Any) -> str:
    return yaml.safe_dump(plain(value), default_flow_style=True, sort_keys=False, width=1 << 30).rstrip("\n")


@computes("yaml")
def dump_yaml(graph: Graph) -> str:
    """The canonical YAML text of ``graph`` (nodes in insertion order)."""
    out = [yaml.safe_dump({"name": graph.name}, sort_keys=False, width=1 << 30)]
    if graph.meta:
        out.append(yaml.safe_dump({"meta": plain(graph.meta)}, sort_keys=False, width=1 << 30))
    out.append("inputs:\n")
    for node in graph.input_nodes:
        out.append(f"  {node.name}: {_flow(node.params['shape'])}\n")
    out.append("nodes:\n")
    for node in graph:
        if node.block.name == "input":
            continue
        refs = [graph.ref_text(ref) for ref in graph.inputs(node.name)]
        entry: dict[str, Any] = {"block": node.block.name}
        if refs:
            entry["in"] = refs[0] if len(refs) == 1 else refs
        entry.update(node.block.explicit_params(node.params))
        out.append(f"  {node.name}: {_flow(entry)}\n")
    out.append(f"outputs: {_flow([graph.ref_text(ref) for ref in graph.outputs])}\n")
    return "".join(out)
