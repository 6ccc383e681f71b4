"""Data sets for training and searching: read lazily, split once, fed per network.

* :mod:`nas.data.sources`: the ``--data`` spellings (built-in digits,
  ``.npz`` arrays, image folders, torchvision's data sets on disk), read
  into a :class:`DataSet` of two parts, held in memory as stored or listed
  as files;
* :mod:`nas.data.transforms`: augmentation and resizing, batched on the
  device for images in memory, per image in loader workers for files;
* :mod:`nas.data.loader`: the batches of one part at one network's input
  shape (:func:`loader`).

Example:
    >>> from nas.data import load_data, loader
    >>> data = load_data("digits")
    >>> data.classes, len(data.train), len(data.val), data.augmentation
    (10, 1438, 359, 'none')
"""

from nas.data.loader import Loader, augmentation_of, default_workers, loader
from nas.data.sources import AUGMENTATIONS, TORCHVISION, Arrays, DataSet, Files, load_data

__all__ = [
    "AUGMENTATIONS",
    "TORCHVISION",
    "Arrays",
    "DataSet",
    "Files",
    "Loader",
    "augmentation_of",
    "default_workers",
    "load_data",
    "loader",
]
