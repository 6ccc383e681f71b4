"""Reading and writing networks: IR YAML, the zoo, export directories, and :func:`build`.

Sits on the passes (a network is validated and analysed as it is built; an
exported model is lowered as it is loaded) and below everything that takes a
network from a user.
"""

from nas.io import zoo
from nas.io.build import build, classifier, parse_shape
from nas.io.exported import load, read_manifest

__all__ = ["build", "classifier", "load", "parse_shape", "read_manifest", "zoo"]
