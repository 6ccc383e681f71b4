"""One exception family for everything a user can get wrong.

Every error carries where it happened (file, line, node, field) and, where we
know it, how to fix it. The command line prints ``str(error)``, which is always
a single line, and exits with code 2.
"""

from __future__ import annotations

import errno
import os
from typing import Any


class NASError(Exception):
    """Base class of the errors that ``nas`` reports to users.

    Args:
        message: what is wrong, in one sentence.
        file: the file the problem is in.
        line: the 1-based line in ``file``.
        node: the graph node (a path ``outer > inner`` inside composite blocks).
        field: the field or parameter of that node.
        hint: what to do about it.

    Example:
        >>> str(NASError("expected an int", file="net.yaml", line=3, node="conv1", field="stride"))
        "net.yaml:3: node 'conv1', field 'stride': expected an int"
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        node: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.node = node
        self.field = field
        self.hint = hint

    def located(self, **where: Any) -> NASError:
        """Fill in location fields that are still unknown; returns ``self``.

        Errors are raised deep inside passes that know the node but not the
        file; callers higher up add what they know without overwriting it.
        """
        for key, value in where.items():
            if value is not None and getattr(self, key) is None:
                setattr(self, key, value)
        return self

    def inside(self, node: str) -> NASError:
        """Prefix the node path with an enclosing composite node."""
        self.node = node if self.node is None else f"{node} > {self.node}"
        return self

    @property
    def where(self) -> str:
        # "file:line: node 'n', field 'f'": the "file:line:" prefix that
        # compilers print and editors jump to.
        place = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        parts = []
        if self.node is not None:
            parts.append(f"node '{self.node}'")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        return ": ".join(p for p in (place, ", ".join(parts)) if p)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" (fix: {self.hint})"
        # One line, always: the CLI contract and log parsers rely on it. Names
        # and keys come from user files and may hold any line break (\r,
        # \u2028 ...), not only \n.
        return " ".join(text.splitlines())

    def __reduce__(self) -> tuple[Any, ...]:
        fields = {f: getattr(self, f) for f in ("file", "line", "node", "field", "hint")}
        return (_rebuild, (type(self), self.message, fields))


def _rebuild(cls: type[NASError], message: str, fields: dict[str, Any]) -> NASError:
    return cls(message, **fields)


def one_line(error: BaseException, limit: int = 300) -> str:
    """What ``error`` says, on one line of at most ``limit`` characters (its
    type's name where it says nothing): for the reason of a library's error
    inside one of ours.

    Example:
        >>> one_line(ValueError("two\\nlines"))
        'two lines'
    """
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SourceError(NASError):
    """The input could not be read: missing file, malformed YAML, wrong layout."""


class UnknownBlockError(NASError):
    """A block type that the registry does not know."""


class ParamError(NASError):
    """A block parameter of the wrong type, out of range, unknown or missing."""


class GraphError(NASError):
    """A structural problem: cycle, missing or dangling input, wrong arity."""


class ShapeError(NASError):
    """Tensor shapes that a block cannot accept."""


class WriteError(NASError):
    """A file could not be written: a full disk, a quota, a read-only file
    system, no permission. ``file`` names it; nothing stored before is lost."""

    @classmethod
    def of(cls, path: str | os.PathLike[str], error: OSError, *, what: str | None = None) -> WriteError:
        """``error``, met in writing ``path`` (``what`` it is, for the message), as one line with the system's reason.

        Example:
            >>> str(WriteError.of("out/model.onnx", OSError(errno.ENOSPC, "No space left on device")))
            'out/model.onnx: cannot write: No space left on device (fix: free space on that disk, or write elsewhere)'
        """
        reason = error.strerror or one_line(error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            hint = "free space on that disk, or write elsewhere"
        elif error.errno == errno.EROFS:
            hint = "write elsewhere"
        else:
            hint = "check that the directory can be written, or write elsewhere"
        return cls(f"cannot write{f' {what}' if what else ''}: {reason}", file=os.fspath(path), hint=hint)


__all__ = [
    "GraphError",
    "NASError",
    "ParamError",
    "ShapeError",
    "SourceError",
    "UnknownBlockError",
    "WriteError",
    "one_line",
]
