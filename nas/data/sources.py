"""Where a data set comes from: the ``--data`` spellings, read into a :class:`DataSet`.

A data set is two parts, training and validation, each either
:class:`Arrays` (images held in memory as they are stored, ``uint8`` where
the source is) or :class:`Files` (paths and labels only: each image is
decoded when a batch needs it, in a data-loader worker). Nothing is resized
or converted to float here; :mod:`nas.data.loader` does that per network
and per batch, so memory does not grow with a network's input size, and a
folder's memory does not grow with its number of images.

The spellings:

* ``digits``: scikit-learn's handwritten digits (1,797 grey 8x8 images,
  shipped with scikit-learn: no download);
* ``cluttered``: those digits placed, scaled and turned, on 32x32 canvases
  strewn with fragments of other digits (:mod:`nas.data.synthetic`): a
  harder task, made on the machine, that tells networks apart;
  ``cluttered:N`` draws ``N`` training images (default
  :data:`CLUTTERED_IMAGES`) and a quarter as many for validation;
* ``path/to/file.npz`` with arrays ``x`` (``N x H x W``, ``N x C x H x W`` or
  ``N x H x W x C``) and ``y`` (``N`` integer labels);
* ``path/to/folder`` with one sub-folder of images per class, or with
  ``train/`` and ``val/`` sub-folders of class folders (the splits are kept
  as given);
* ``torchvision:NAME:ROOT``: one of torchvision's data sets already on disk
  under ``ROOT``, read with ``download=False`` (nothing is downloaded).

A split that the source does not give is made once, with a fixed seed,
whatever the search's seed, so that every trial of every study sees the same
validation images. For torchvision's sets, validation images are held out of
the official training split; the test split is left unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data.synthetic import cluttered
from nas.ir.errors import NASError, SourceError

VALIDATION_FRACTION = 0.2
CLUTTERED_IMAGES = 10_000
"""Training images of ``cluttered``; validation gets a quarter as many, from unseen source digits."""
SPLIT_SEED = 0
"""The split does not follow ``--seed``: every trial of every study sees the same validation set."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
VALIDATION_FOLDERS = ("val", "valid", "validation")
STATS_IMAGES = {"arrays": 10_000, "files": 256}
"""Training images that the per-channel mean and deviation are estimated from."""
SMALL = 64
"""Images at most this many pixels high are augmented as CIFAR's are (padded crops); larger ones as ImageNet's."""

AUGMENTATIONS = ("none", "crop", "crop-flip", "resized-crop-flip")
"""Training augmentations: none; a random crop of the image padded by an
eighth of its size (CIFAR's); the same and a horizontal flip; a random
crop of 8-100% of the area at 3/4-4/3 aspect, resized, and a flip (ImageNet's)."""


@dataclass(frozen=True)
class Arrays:
    """Images in memory, ``x`` of ``N x C x H x W`` (``uint8`` in 0-255, or
    float as stored) and ``y`` of ``N`` ``int64`` labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Files:
    """Images on disk: ``paths`` (a numpy array of strings, so that forked
    loader workers share it without copying) and ``y`` of ``N`` labels."""

    paths: np.ndarray
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


Part = Arrays | Files


@dataclass(frozen=True)
class DataSet:
    """A labelled image data set, split into training and validation parts.

    Attributes:
        name: the ``--data`` spelling it was read from.
        train, val: the two parts.
        class_names: a name per class (labels are ``0 .. classes - 1``).
        channels: channels of the images as stored (1 or 3).
        mean, std: per channel, of pixel values scaled to ``0 .. 1``
            (``uint8``) or as stored (float arrays), over training images.
        augmentation: the training augmentation that suits the data (one of
            :data:`AUGMENTATIONS`).
        kind: ``digits`` (centred grey glyphs) or ``natural`` (photographs);
            it picks the default augmentation and training recipe.
    """

    name: str
    train: Part
    val: Part
    class_names: list[str]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: str
    kind: str

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def stem(self) -> str:
        """A short name for studies and folders: ``digits``, ``cifar10``, the file's stem."""
        if self.name.startswith("torchvision:"):
            return self.name.split(":")[1].lower()
        if self.name in ("digits", "cluttered") or self.name.startswith("cluttered:"):
            return self.name.replace(":", "-")
        return Path(self.name).stem


def load_data(source: str | Path = "digits", *, validation: float = VALIDATION_FRACTION) -> DataSet:
    """Read a data set (lazily, for folders) and split it with a fixed seed.

    Args:
        source: ``"digits"``, ``"cluttered[:N]"``, a ``.npz`` file, a folder of class folders (or
            of ``train/`` and ``val/`` folders of class folders), or
            ``torchvision:NAME:ROOT``.
        validation: the fraction of images held out for validation, where
            the source does not give a validation split.

    Raises:
        SourceError: a missing path, a file of another kind, arrays of the
            wrong shape, a data set missing or damaged under its root, fewer
            than two classes, or too few images to split.
    """
    spec = str(source)
    if spec == "digits":
        return _from_arrays(spec, *_digits(), validation=validation, kind="digits")
    if spec == "cluttered" or spec.startswith("cluttered:"):
        return _cluttered(spec, validation)
    if spec.startswith("torchvision:"):
        return _torchvision(spec, validation)
    path = Path(source)
    if not path.exists():
        raise SourceError(
            "no such data file or folder",
            file=str(path),
            hint="give 'digits', 'cluttered', a .npz file with arrays x and y, a folder of class folders, "
            "or torchvision:NAME:ROOT",
        )
    if path.is_dir():
        return _folder(path, validation)
    if path.suffix != ".npz":
        raise SourceError(
            "data must be a .npz file, a folder of class folders or torchvision:NAME:ROOT",
            file=str(path),
            hint="save arrays x (images) and y (labels) with numpy.savez",
        )
    return _from_arrays(spec, *_npz(path), validation=validation, kind="natural")


# -- in memory --------------------------------------------------------------------


def _split(n: int, validation: float, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation indices of ``n`` images: a fixed shuffle, the first ``validation`` held out."""
    n_val = round(n * validation)
    if n_val < 1 or n - n_val < 1:
        raise SourceError(f"{n} images are too few to split into training and validation sets", file=name)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[n_val:], order[:n_val]


def _check_classes(names: Sequence[str], where: str) -> None:
    if len(names) < 2:
        raise SourceError(f"the data has {len(names)} class; a classifier needs two or more", file=where)


def _from_arrays(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    names: list[str],
    *,
    validation: float,
    kind: str,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    augmentation: str | None = None,
) -> DataSet:
    """A data set of arrays ``x`` (``N x C x H x W``) and labels ``y``, split
    with the fixed seed unless ``val`` gives the validation arrays."""
    _check_classes(names, name)
    if val is None:
        train_index, val_index = _split(len(y), validation, name)
        train, held = Arrays(x[train_index], y[train_index]), Arrays(x[val_index], y[val_index])
    else:
        train, held = Arrays(x, y), Arrays(*val)
    mean, std = _array_stats(train.x[: STATS_IMAGES["arrays"]])
    if augmentation is None:
        augmentation = "none" if kind == "digits" else "crop-flip" if x.shape[2] <= SMALL else "resized-crop-flip"
    return DataSet(name, train, held, names, int(x.shape[1]), mean, std, augmentation, kind)


def _array_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and deviation of ``x`` (``uint8`` scaled to 0-1), in float64."""
    values = x.to(torch.float64) / (255.0 if x.dtype == torch.uint8 else 1.0)
    per_channel = values.transpose(0, 1).reshape(x.shape[1], -1)
    mean = per_channel.mean(dim=1)
    std = per_channel.std(dim=1).clamp_min(1e-8)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


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


def _cluttered(spec: str, validation: float) -> DataSet:
    """Cluttered digits drawn from the split source digits: training images
    from training digits, validation images from held-out ones."""
    count = spec.partition(":")[2]
    if count and not (count.isdigit() and int(count) > 0):
        raise SourceError(
            f"'{count}' is not a number of images", file=spec, hint="give cluttered or cluttered:N, e.g. cluttered:5000"
        )
    n = int(count) if count else CLUTTERED_IMAGES
    x, y, names = _digits()
    train_index, val_index = _split(len(y), validation, spec)
    train = cluttered(x[train_index], y[train_index], n, seed=SPLIT_SEED)
    held = cluttered(x[val_index], y[val_index], max(1, n // 4), seed=SPLIT_SEED + 1)
    return _from_arrays(spec, *train, names, validation=validation, kind="digits", val=held)


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
    images = torch.from_numpy(np.ascontiguousarray(x if x.dtype == np.uint8 else x.astype(np.float32)))
    labels = torch.from_numpy(y.astype(np.int64))
    return images, labels, [str(i) for i in range(int(labels.max()) + 1)]


# -- torchvision's data sets --------------------------------------------------------


@dataclass(frozen=True)
class _Known:
    """How one of torchvision's data sets is read: what it holds under its root, and how it is augmented."""

    expected: str
    kind: str
    augmentation: str
    train_args: tuple[tuple[str, Any], ...] = (("train", True),)


TORCHVISION: dict[str, _Known] = {
    "MNIST": _Known("MNIST/raw/ with train-images-idx3-ubyte and the three other IDX files", "digits", "none"),
    "FashionMNIST": _Known(
        "FashionMNIST/raw/ with train-images-idx3-ubyte and the three other IDX files", "digits", "none"
    ),
    "KMNIST": _Known("KMNIST/raw/ with train-images-idx3-ubyte and the three other IDX files", "digits", "none"),
    "CIFAR10": _Known("cifar-10-batches-py/ as torchvision downloads it", "natural", "crop-flip"),
    "CIFAR100": _Known("cifar-100-python/ as torchvision downloads it", "natural", "crop-flip"),
    # House numbers: a flip makes another digit.
    "SVHN": _Known("train_32x32.mat (read with scipy)", "natural", "crop", (("split", "train"),)),
}
"""The data sets that ``torchvision:NAME:ROOT`` reads, as held in memory by torchvision."""


def _torchvision(spec: str, validation: float) -> DataSet:
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise SourceError(
            f"'{spec}' is not torchvision:NAME:ROOT",
            field="data",
            hint="for example torchvision:CIFAR10:~/data (the folder torchvision downloaded it to)",
        )
    _, name, root = parts
    if name not in TORCHVISION:
        raise SourceError(
            f"torchvision data set '{name}' is not one nas reads",
            field="data",
            hint=f"use one of {', '.join(TORCHVISION)}, or an image folder (ImageFolder layout) as --data PATH",
        )
    known = TORCHVISION[name]
    try:
        import torchvision.datasets
    except ImportError:
        raise NASError(f"--data {spec} needs torchvision", hint="pip install 'nas[data]'") from None
    folder = Path(root).expanduser()
    try:
        raw = getattr(torchvision.datasets, name)(str(folder), download=False, **dict(known.train_args))
    except (RuntimeError, OSError, ValueError, ImportError) as e:
        raise SourceError(
            f"torchvision's {name} is missing or damaged here ({str(e).strip().splitlines()[0]}); "
            f"expected {known.expected}",
            file=str(folder),
            hint=f"download it once with torchvision.datasets.{name}(ROOT, download=True), or give the folder it is in",
        ) from None
    x, y, names = _torchvision_arrays(raw)
    return _from_arrays(spec, x, y, names, validation=validation, kind=known.kind, augmentation=known.augmentation)


def _torchvision_arrays(raw: Any) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The images (``N x C x H x W`` ``uint8``), labels and class names of a torchvision data set object."""
    x = torch.as_tensor(np.asarray(raw.data))
    if x.ndim == 3:  # MNIST's N x H x W
        x = x.unsqueeze(1)
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # CIFAR's N x H x W x C
        x = x.permute(0, 3, 1, 2)
    labels = getattr(raw, "targets", None)
    if labels is None:
        labels = raw.labels  # SVHN
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    names = list(getattr(raw, "classes", None) or [str(i) for i in range(int(y.max()) + 1)])
    return x.contiguous(), y, names


# -- folders ------------------------------------------------------------------------


def _folder(path: Path, validation: float) -> DataSet:
    """A folder of class folders (split with the fixed seed), or of ``train/``
    and ``val/`` folders of class folders (kept as given)."""
    val_dir = next((path / v for v in VALIDATION_FOLDERS if (path / v).is_dir()), None)
    if (path / "train").is_dir() and val_dir is not None:
        names = _class_names(path / "train")
        train = _listing(path / "train", names)
        val_names = _class_names(val_dir)
        unknown = sorted(set(val_names) - set(names))
        if unknown:
            raise SourceError(f"validation classes {', '.join(unknown[:5])} have no training folder", file=str(val_dir))
        held = _listing(val_dir, names, only=val_names)
    else:
        names = _class_names(path)
        files = _listing(path, names)
        train_index, val_index = _split(len(files), validation, str(path))
        train = Files(files.paths[train_index.numpy()], files.y[train_index])
        held = Files(files.paths[val_index.numpy()], files.y[val_index])
    _check_classes(names, str(path))
    channels, size, mean, std = _file_stats(train)
    augmentation = "crop-flip" if size[0] <= SMALL else "resized-crop-flip"
    return DataSet(str(path), train, held, names, channels, mean, std, augmentation, "natural")


def _class_names(path: Path) -> list[str]:
    names = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise SourceError("an image folder holds one sub-folder of images per class; found none", file=str(path))
    return names


def _listing(path: Path, names: list[str], *, only: Sequence[str] | None = None) -> Files:
    """The images of the class folders of ``path`` (sorted, so the order never depends on the file system)."""
    labels = {name: i for i, name in enumerate(names)}
    found = [
        (str(f), labels[name])
        for name in (only or names)
        for f in sorted((path / name).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]
    if not found:
        raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders", file=str(path))
    return Files(np.array([f for f, _ in found]), torch.tensor([label for _, label in found], dtype=torch.int64))


def open_image(path: str) -> Any:
    """A decoded PIL image (loaded, file closed); a one-line error naming the file if it cannot be read."""
    try:
        from PIL import Image
    except ImportError:
        raise NASError("reading an image folder needs Pillow", hint="pip install pillow, or give a .npz file") from None
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except OSError as e:
        raise SourceError(f"cannot read image: {e}", file=path) from None


GREY_MODES = ("L", "1", "I;16", "I", "LA")


def _file_stats(part: Files) -> tuple[int, tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """Channels (1 if every sampled image is grey, else 3), the first image's
    ``(H, W)``, and per-channel mean and deviation over a fixed sample of
    training images, decoded at a small size (the statistics barely depend on it)."""
    n = len(part)
    picks = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))[: STATS_IMAGES["files"]]
    images = [open_image(str(part.paths[int(i)])) for i in picks]
    grey = all(image.mode in GREY_MODES for image in images)
    first = open_image(str(part.paths[0]))
    size = (first.height, first.width)
    mode = "L" if grey else "RGB"
    pixels = np.concatenate(
        [
            np.asarray(image.convert(mode).resize((32, 32)), dtype=np.float64).reshape(-1, 1 if grey else 3)
            for image in images
        ]
    )
    mean, std = pixels.mean(axis=0) / 255.0, np.maximum(pixels.std(axis=0) / 255.0, 1e-8)
    return (1 if grey else 3), size, tuple(float(m) for m in mean), tuple(float(s) for s in std)
