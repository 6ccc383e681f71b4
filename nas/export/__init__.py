"""Export: a network leaves the toolkit as files other tools load, and comes back identical.

The write side of an export directory (:mod:`nas.io.exported` reads it);
see :mod:`nas.export.writer`.
"""

from nas.export.writer import (
    DEFAULT_FORMATS,
    FORMATS,
    TOLERANCE,
    Exported,
    Format,
    Model,
    Written,
    check_target,
    closest_zoo,
    export,
    from_source,
    model_card,
    parse_formats,
)
from nas.io.exported import CARD, MANIFEST, OnnxModule, load, read_manifest

__all__ = [
    "CARD",
    "DEFAULT_FORMATS",
    "FORMATS",
    "MANIFEST",
    "TOLERANCE",
    "Exported",
    "Format",
    "Model",
    "OnnxModule",
    "Written",
    "check_target",
    "closest_zoo",
    "export",
    "from_source",
    "load",
    "model_card",
    "parse_formats",
    "read_manifest",
]
