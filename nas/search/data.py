"""The data a search trains on: a labelled image set, split once, resized per network.

Three sources, all read into memory (search data sets are small by design):

* ``digits``: scikit-learn's handwritten digits (1,797 grey 8x8 images, 10
  classes; shipped with scikit-learn, no download);
* a ``.npz`` file with arrays ``x`` (``N x H x W``, ``N x C x H x W`` or
  ``N x H x W x C``) and ``y`` (``N`` integer labels);
* a folder with one sub-folder of images per class (needs Pillow).

The split into training and validation sets is fixed (seed 0), whatever the
search's seed, so that accuracies of one study are comparable. A network
gets the images at its own input shape: :meth:`Split.fit` resizes them
(bilinear) and repeats or averages channels, and caches the result per shape.

Example:
    >>> split = load_data("digits")
    >>> split.train.x.shape, split.val.x.shape, split.classes
    (torch.Size([1438, 1, 8, 8]), torch.Size([359, 1, 8, 8]), 10)
    >>> split.fit((1, 32, 32))[0].x.shape
    torch.Size([1438, 1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.ir.errors import NASError, SourceError

VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
"""The split does not follow ``--seed``: every trial of every study sees the same validation set."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass(frozen=True)
class Images:
    """Labelled images: ``x`` is ``N x C x H x W`` float32, ``y`` is ``N`` int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Split:
    """A data set split into training and validation images (at the source's size).

    Attributes:
        name: ``digits``, or the file or folder it was read from.
        classes: the number of classes (labels are ``0 .. classes - 1``).
        class_names: a name per class (folder names, or the digits).
    """

    name: str
    train: Images
    val: Images
    classes: int
    class_names: list[str]
    _fitted: dict[tuple[int, ...], tuple[Images, Images]] = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images as read."""
        c, h, w = self.train.x.shape[1:]
        return (int(c), int(h), int(w))

    def fit(self, shape: Sequence[int]) -> tuple[Images, Images]:
        """Training and validation images at a network's input ``shape``
        (``(C, H, W)``); cached per shape.

        Raises:
            NASError: the shape is not an image shape, or the channels cannot
                be matched (grey images feed any number of channels; colour
                images feed 3 channels or 1, averaged).
        """
        key = tuple(int(s) for s in shape)
        if key not in self._fitted:
            self._fitted[key] = (_resize(self.train, key, self.name), _resize(self.val, key, self.name))
        return self._fitted[key]


def _resize(images: Images, shape: tuple[int, ...], name: str) -> Images:
    if len(shape) != 3:
        raise NASError(
            f"the network's input {list(shape)} is not an image shape (C, H, W)",
            field="input",
            hint=f"search a space whose networks read images, as the data '{name}' holds",
        )
    c, h, w = shape
    x = images.x
    have = x.shape[1]
    if have != c:
        if have == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise NASError(
                f"the data '{name}' has {have} channels and the network reads {c}",
                field="input",
                hint="use grey images, or a space whose input has as many channels as the data",
            )
    if tuple(x.shape[2:]) != (h, w):
        shrinking = h < x.shape[2] or w < x.shape[3]
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrinking)
    return Images(x.contiguous(), images.y)


def load_data(source: str | Path = "digits", *, validation: float = VALIDATION_FRACTION) -> Split:
    """Read a data set and split it (fixed seed); pixel values are scaled to
    mean 0 and standard deviation 1 over the training images.

    Args:
        source: ``"digits"``, a ``.npz`` file, or a folder of class folders.
        validation: the fraction of images held out for validation.

    Raises:
        SourceError: a missing path, a file of another kind, arrays of the
            wrong shape, fewer than two classes, or too few images to split.
    """
    if str(source) == "digits":
        x, y, names = _digits()
        name = "digits"
    else:
        path = Path(source)
        if not path.exists():
            raise SourceError(
                "no such data file or folder",
                file=str(path),
                hint="give 'digits', a .npz file with arrays x and y, or a folder of class folders",
            )
        if path.is_dir():
            x, y, names = _folder(path)
        elif path.suffix == ".npz":
            x, y, names = _npz(path)
        else:
            raise SourceError(
                "data must be a .npz file or a folder of class folders",
                file=str(path),
                hint="save arrays x (images) and y (labels) with numpy.savez",
            )
        name = str(path)
    classes = len(names)
    if classes < 2:
        raise SourceError(f"the data has {classes} class; a classifier needs two or more", file=name)
    n = len(y)
    n_val = round(n * validation)
    if n_val < 1 or n - n_val < 1:
        raise SourceError(f"{n} images are too few to split into training and validation sets", file=name)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    x, y = x[order], y[order]
    train_x, val_x = x[n_val:], x[:n_val]
    mean, std = train_x.mean(), train_x.std().clamp_min(1e-8)
    return Split(
        name,
        Images((train_x - mean) / std, y[n_val:]),
        Images((val_x - mean) / std, y[:n_val]),
        classes,
        names,
    )


def _digits() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NASError(
            "the built-in 'digits' data needs scikit-learn", hint="pip install scikit-learn, or give --data PATH"
        ) from None
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.int64)
    return x, y, [str(c) for c in digits.target_names]


def _npz(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise SourceError(
                    f"a data .npz holds arrays 'x' and 'y', found {', '.join(arrays.files) or 'none'}", file=str(path)
                )
            x, y = np.asarray(arrays["x"]), np.asarray(arrays["y"])
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read the .npz file: {e}", file=str(path)) from None
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise SourceError(
            f"expected x of N x H x W or N x C x H x W and y of N labels, got x {list(x.shape)} and y {list(y.shape)}",
            file=str(path),
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise SourceError(f"labels y must be integers, got {y.dtype}", file=str(path))
    if y.min() < 0:
        raise SourceError("labels y must be 0 or more", file=str(path))
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    images = torch.tensor(x.astype(np.float32) / scale)
    labels = torch.tensor(y.astype(np.int64))
    return images, labels, [str(i) for i in range(int(labels.max()) + 1)]


def _folder(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    try:
        from PIL import Image
    except ImportError:
        raise NASError("reading an image folder needs Pillow", hint="pip install pillow, or give a .npz file") from None
    names = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise SourceError("an image folder holds one sub-folder of images per class; found none", file=str(path))
    files = [
        (f, label)
        for label, name in enumerate(names)
        for f in sorted((path / name).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders", file=str(path))
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as image:
                images.append(image.copy())
        except OSError as e:
            raise SourceError(f"cannot read image: {e}", file=str(f)) from None
    grey = all(i.mode in ("L", "1", "I;16", "I") for i in images)
    size = images[0].size
    arrays = [np.asarray(i.convert("L" if grey else "RGB").resize(size), dtype=np.float32) / 255.0 for i in images]
    x = torch.tensor(np.stack(arrays))
    x = x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return x, y, names
