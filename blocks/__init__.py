"""The block library: every block type that ``nas`` knows, one family per file.

Installed as ``nas.blocks``; importing it registers every block type (see
:mod:`nas.registry`). To add a block type, add a class to the file of its
family (or a new file imported below) and decorate it with ``@register``.
"""

from nas.blocks import activation, conv, dropout, io, linear, merge, norm, pool, reshape, residual

__all__ = ["activation", "conv", "dropout", "io", "linear", "merge", "norm", "pool", "reshape", "residual"]
