"""The command line: ``nas``, a thin layer over the public API (see :mod:`nas.cli.app`)."""

from nas.cli.app import app, main, run

__all__ = ["app", "main", "run"]
