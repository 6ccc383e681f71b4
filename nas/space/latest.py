"""The latest networks made (or what is made of them), kept by key for reuse.

A search and a supernet ask for the same few networks again and again
within a few steps (a sampler's child, then its trial; the sandwich
rule's ends every step), and building one costs a decode, an analysis and
a hash: :class:`Latest` keeps the most recent few, keyed by
:func:`nas.space.assignment_key` or a graph's hash.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class Latest(Generic[V]):
    """Up to ``size`` values by key, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str, make: Callable[[], V]) -> V:
        """The value kept under ``key``, else ``make()`` kept there."""
        value = self._items.pop(key) if key in self._items else make()
        return self.put(key, value)

    def put(self, key: str, value: V) -> V:
        """Keep ``value`` under ``key`` as the most recent; returns it."""
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
