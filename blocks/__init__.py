"""The block library: every block type that ``nas`` knows, one family per file.

Installed as ``nas.blocks``; importing it imports every module of this folder,
and each module registers its block types (see :mod:`nas.ir.registry`). To add a
block type, add a class to the file of its family, or a new file here, and
decorate it with ``@register``: nothing else needs to change.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
