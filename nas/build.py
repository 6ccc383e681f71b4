"""``nas.build``: one entry point from any description of a network to a Graph."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from nas import zoo
from nas.errors import SourceError
from nas.graph import Graph
from nas.parse import load_yaml

MAX_FILE_BYTES = 64 << 20
"""Larger files are refused before reading: no architecture is that big."""


def build(source: str | os.PathLike[str] | Graph) -> Graph:
    """Build a :class:`Graph` from a YAML path, a YAML string, a zoo name
    (``"resnet50"``, see :mod:`nas.zoo`), an export directory (its
    ``model.yaml``, see :mod:`nas.export`) or a Graph.

    The graph is validated and analysed (shapes, costs) before it is returned,
    so every error surfaces here with its file, line and node.

    Example:
        >>> g = build('''
        ... inputs: {x: [1, 28, 28]}
        ... nodes:
        ...   flat: {block: flatten}
        ...   fc: {block: linear, out_features: 10}
        ... ''')
        >>> g.params, g.summary.outputs
        (7850, [(10,)])

    Raises:
        SourceError: the source is missing, unreadable or not an IR file.
        NASError: the network it describes is invalid (see :mod:`nas.errors`).
    """
    if isinstance(source, Graph):
        graph = source
    elif isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        graph = load_yaml(source, file="<string>")
    elif isinstance(source, str) and not Path(source).is_file() and source in zoo.names():
        graph = zoo.load(source)
    elif Path(source).is_dir() and (Path(source) / "model.json").is_file():
        from nas.export import graph_file

        path = graph_file(Path(source))
        graph = load_yaml(_read(path), file=str(path))
    else:
        graph = load_yaml(_read(Path(source)), file=str(source))
    _ = graph.summary  # validate and analyse now, where the caller can handle errors
    return graph


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise SourceError(
                "is a directory, expected a YAML file",
                file=str(path),
                hint="give an IR YAML file, or a directory that 'nas export' wrote (it has a model.json)",
            )
        if size > MAX_FILE_BYTES:
            raise SourceError(
                f"file is {size} bytes, more than the {MAX_FILE_BYTES} a nas file may have", file=str(path)
            )
        # Devices and pipes report size 0 (/dev/zero, /dev/stdin): read no
        # more than the limit either way.
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise SourceError(f"more than the {MAX_FILE_BYTES} bytes a nas file may have", file=str(path))
        return data
    except FileNotFoundError:
        close = difflib.get_close_matches(str(path), zoo.names(), n=1, cutoff=0.6)
        raise SourceError(
            "no such file or zoo net",
            file=str(path),
            hint=f"did you mean the zoo net '{close[0]}'?"
            if close
            else "give an IR YAML file, a YAML string or a zoo name",
        ) from None
    except OSError as e:
        raise SourceError(f"cannot read: {e.strerror}", file=str(path)) from None
