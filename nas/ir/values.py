"""Parameter values in their two forms: frozen (hashable, as the IR holds them) and plain (JSON/YAML data).

One place for the conversion that the registry, the YAML reader and writer,
search spaces, the samplers' stored assignments and the latency units all do.

Example:
    >>> v = freeze({"out_channels": 64, "kernel_size": [3, 3]})
    >>> v["kernel_size"], hash(v) == hash(freeze({"kernel_size": (3, 3), "out_channels": 64}))
    ((3, 3), True)
    >>> plain(v, sort_keys=True)
    {'kernel_size': [3, 3], 'out_channels': 64}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FrozenMapping(dict):  # type: ignore[type-arg]
    """A read-only, hashable ``dict``: the frozen form of a mapping value (it
    still dumps to YAML and JSON as a plain mapping)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("parameters are read-only")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _readonly  # type: ignore[assignment]


def freeze(value: Any) -> Any:
    """``value`` made hashable, recursively: lists become tuples, mappings
    :class:`FrozenMapping`; anything else is returned as it is."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping) and not isinstance(value, FrozenMapping):
        return FrozenMapping((k, freeze(v)) for k, v in value.items())
    return value


def plain(value: Any, *, sort_keys: bool = False) -> Any:
    """``value`` as JSON data, recursively: tuples become lists, mappings
    (frozen, or the YAML reader's located ones) plain ``dict``s with string
    keys, sorted where ``sort_keys`` (for digests that must not depend on order)."""
    if isinstance(value, (list, tuple)):
        return [plain(v, sort_keys=sort_keys) for v in value]
    if isinstance(value, Mapping):
        items = sorted(value.items()) if sort_keys else value.items()
        return {str(k): plain(v, sort_keys=sort_keys) for k, v in items}
    return value


def comparable(value: Any) -> Any:
    """A key under which two values are equal exactly when a space means the
    same value: sequences of either kind compare alike, mappings whatever
    their order, and ``True`` never equals ``1``."""
    if isinstance(value, (list, tuple)):
        return tuple(comparable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, comparable(v)) for k, v in value.items()))
    if isinstance(value, bool):
        return ("bool", value)
    return value


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same value (see :func:`comparable`)."""
    return comparable(a) == comparable(b)
