"""The command line: ``nas``, a thin layer over the public API.

One module per command (``nas.cli.show``, ``nas.cli.latency``, ...), each
imported only when its command runs; the root group, the entry point and the
one-line errors are :mod:`nas.cli.root`.
"""

from nas.cli.root import app, main, run

__all__ = ["app", "main", "run"]
