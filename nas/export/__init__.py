"""Export: a network leaves the toolkit as files other tools load, and comes back identical.

The write side of an export directory (:mod:`nas.io.exported` reads it), one
job per module: :mod:`~nas.export.model` (what is exported, from where),
:mod:`~nas.export.formats` (each file format and its writer),
:mod:`~nas.export.card` (the manifest and the model card),
:mod:`~nas.export.staging` (the target directory, replaced whole or not at
all) and :mod:`~nas.export.writer` (:func:`export`, which writes and checks
every format).
"""

from nas.export.card import closest_zoo, model_card
from nas.export.formats import DEFAULT_FORMATS, FORMATS, Format, Subject, parse_formats
from nas.export.model import Model, from_source
from nas.export.staging import check_target
from nas.export.writer import CHECK_SEEDS, TIE_SHARE, TOLERANCE, Exported, Written, export
from nas.io.exported import CARD, MANIFEST, OnnxModule, load, read_manifest

__all__ = [
    "CARD",
    "CHECK_SEEDS",
    "DEFAULT_FORMATS",
    "FORMATS",
    "MANIFEST",
    "TIE_SHARE",
    "TOLERANCE",
    "Exported",
    "Format",
    "Model",
    "OnnxModule",
    "Subject",
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
