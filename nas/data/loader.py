"""Batches for one network: a data set's images at the network's input shape,
augmented (training) or not (validation), normalised, on the device.

Images in memory are indexed, moved to the device as stored (``uint8``
where they are) and transformed there as whole batches; images on disk are
decoded, augmented and resized in :class:`torch.utils.data.DataLoader`
workers and cross to the main process as ``uint8``. Either way no copy of
the data set at the network's shape is ever made: memory is bounded by the
batch, the workers' prefetch and the model, not by the number of images.

Every epoch's order and augmentation come from ``(seed, epoch)``, so that a
run is repeatable and a resumed run sees the batches an uninterrupted one
would have.

Example:
    >>> from nas.data import load_data, loader
    >>> data = load_data("digits")
    >>> feed = loader(data, "train", (3, 32, 32), batch_size=64)
    >>> x, y = next(iter(feed.epoch(0, seed=0)))
    >>> tuple(x.shape), tuple(y.shape), len(feed)
    ((64, 3, 32, 32), (64,), 23)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from nas.data.sources import AUGMENTATIONS, SMALL, Arrays, DataSet, Files, open_image
from nas.data.transforms import DecodedImages, flip, pad_crop, resize, resized_crop
from nas.ir.errors import NASError, SourceError

MAX_WORKERS = 8


def default_workers() -> int:
    """Loader workers for images on disk: one per CPU this process may use, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's order and augmentation."""
    return seed * 1_000_003 + epoch


@dataclass(frozen=True)
class Loader:
    """The batches of one part of a data set at one network's input shape.

    Attributes:
        shape: the network's input ``(C, H, W)``.
        augmentation: one of :data:`~nas.data.sources.AUGMENTATIONS`
            (``none`` for validation).
        shuffle: a new order every epoch (training) or the stored order.
        workers: decoding processes for images on disk (0: in this process).
        channels_last: batches in channels-last memory format (faster
            convolutions on recent GPUs).
    """

    data: DataSet
    part: str
    shape: tuple[int, int, int]
    batch_size: int
    augmentation: str
    shuffle: bool
    device: torch.device
    workers: int
    channels_last: bool = False

    @property
    def images(self) -> Arrays | Files:
        return self.data.train if self.part == "train" else self.data.val

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def epoch(self, epoch: int = 0, *, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches ``(x, y)`` of one epoch, on the device: ``x`` float,
        normalised, at :attr:`shape`; ``y`` the labels."""
        images = self.images
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(len(images), generator=generator) if self.shuffle else torch.arange(len(images))
        batches = order.split(self.batch_size)
        source = (
            self._in_memory(images, batches, generator)
            if isinstance(images, Arrays)
            else self._from_disk(images, batches, epoch_seed(seed, epoch))
        )
        for x, y in source:
            x = self._normalise(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)

    def _in_memory(
        self, images: Arrays, batches: Sequence[torch.Tensor], generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.shape[1:]
        for index in batches:
            x = images.x[index].to(self.device, non_blocking=True)
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            if self.augmentation == "resized-crop-flip":
                x = flip(resized_crop(x, size, generator), generator)
            elif self.augmentation in ("crop", "crop-flip"):
                x = pad_crop(x, generator)
                if self.augmentation == "crop-flip":
                    x = flip(x, generator)
            yield resize(x, size), images.y[index]

    def _from_disk(
        self, images: Files, batches: Sequence[torch.Tensor], seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        decoded = DecodedImages(
            images,
            self.shape[1:],
            grey=self.data.channels == 1,
            augmentation=self.augmentation,
            small=self.shape[1] <= SMALL,
            seed=seed,
        )
        feed = torch.utils.data.DataLoader(
            decoded,
            batch_sampler=[b.tolist() for b in batches],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in feed:
            if bool((y < 0).any()):
                unreadable = str(images.paths[-1 - int(y[y < 0][0])])
                open_image(unreadable)  # raises the reason, in one line
                raise SourceError("cannot read image", file=unreadable)
            yield x.to(self.device, non_blocking=True).float().div_(255.0), y

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` less the mean, over the deviation, in place: every batch is a
        tensor of the loader's own (the float copy of the stored or decoded
        images), and a new one the size of a batch costs more than the arithmetic
        (at 3x224x224 and batch 64 it is larger than the allocator reuses, so
        each is fresh pages that the kernel must zero)."""
        mean = torch.tensor(self.data.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.data.std, device=x.device).view(1, -1, 1, 1)
        x = x.sub_(mean).div_(std)
        want = self.shape[0]
        if x.shape[1] == want:
            return x
        if x.shape[1] == 1:
            return x.expand(-1, want, -1, -1).contiguous()
        return x.mean(dim=1, keepdim=True)


def loader(
    data: DataSet,
    part: str,
    shape: Sequence[int],
    *,
    batch_size: int,
    augment: bool | str = True,
    shuffle: bool | None = None,
    device: str | torch.device = "cpu",
    workers: int | None = None,
    channels_last: bool = False,
) -> Loader:
    """The batches of ``data``'s ``part`` (``"train"`` or ``"val"``) for a network reading ``shape``.

    Args:
        augment: for the training part, ``True`` for the data's own
            augmentation, ``False`` for none, or one of
            :data:`~nas.data.sources.AUGMENTATIONS`; validation is never augmented.
        shuffle: a new order every epoch (default: for training only).
        workers: decoding processes for images on disk (default:
            :func:`default_workers`); images in memory need none.

    Raises:
        NASError: ``shape`` is not an image shape, the channels cannot be
            matched (grey images feed any number of channels; colour images
            feed 3 channels or 1, averaged), or an unknown augmentation.
    """
    if part not in ("train", "val"):
        raise ValueError(f"part is 'train' or 'val', not {part!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise NASError(
            f"the network's input {list(shape)} is not an image shape (C, H, W)",
            field="input",
            hint=f"search a space whose networks read images, as the data '{data.name}' holds",
        )
    if shape[0] != data.channels and 1 not in (shape[0], data.channels):
        raise NASError(
            f"the data '{data.name}' has {data.channels} channels and the network reads {shape[0]}",
            field="input",
            hint="use grey images, or a space whose input has as many channels as the data",
        )
    augmentation = augmentation_of(data, augment) if part == "train" else "none"
    return Loader(
        data,
        part,
        shape,  # type: ignore[arg-type]  # checked to be three long above
        batch_size,
        augmentation,
        part == "train" if shuffle is None else shuffle,
        torch.device(device),
        default_workers() if workers is None else workers,
        channels_last,
    )


def augmentation_of(data: DataSet, augment: bool | str) -> str:
    """The training augmentation that ``augment`` asks for on ``data``."""
    if augment is True or augment == "auto":
        return data.augmentation
    if augment is False:
        return "none"
    if augment not in AUGMENTATIONS:
        raise NASError(
            f"unknown augmentation '{augment}'",
            field="augment",
            hint=f"use auto or one of {', '.join(AUGMENTATIONS)}",
        )
    return augment
