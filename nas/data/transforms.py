"""Augmentations and resizing: on whole batches for images in memory, per
image (in a loader worker) for images on disk.

Both paths draw their randomness from a generator the caller seeds per
epoch, so that a run's batches are the same whenever it is repeated or
resumed. Pixel values stay as stored here (``uint8`` where they are);
:mod:`nas.data.loader` scales and normalises them on the device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.sources import Files, open_image
from nas.ir.errors import SourceError

CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
"""The random resized crop's area fraction and aspect range (Szegedy et al. 2015, as torchvision's)."""
CENTRE_CROP = 0.875
"""Validation images larger than :data:`nas.data.sources.SMALL` are resized
so that the network's input is this fraction of their shorter side, then
centre-cropped (224 of 256, as torchvision's reference recipes)."""


def padding(height: int) -> int:
    """Pixels of padding for a random crop: an eighth of the height (4 for CIFAR's 32)."""
    return max(1, round(height / 8))


# -- batches in memory ----------------------------------------------------------------


def pad_crop(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random crop of each image of ``x`` (``B x C x H x W``), zero-padded
    by :func:`padding`: every image shifted by its own offset."""
    b, _, h, w = x.shape
    pad = padding(h)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` mirrored left-right with probability 1/2."""
    mirrored = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
    return torch.where(mirrored[:, None, None, None], x.flip(3), x)


def resized_crop(x: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A random resized crop of each float image of ``x`` to ``size``, in one
    ``grid_sample``: each image's own crop box as an affine map."""
    b = len(x)
    area = torch.empty(b).uniform_(*CROP_SCALE, generator=generator)
    log_ratio = torch.empty(b).uniform_(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=generator)
    ratio = torch.exp(log_ratio) * (x.shape[2] / x.shape[3])  # width / height, in the image's own units
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (torch.rand(b, generator=generator) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(b, generator=generator) * 2 - 1) * (1 - height)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta.to(x.device, x.dtype), [b, x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float images ``x`` resized to ``size`` (bilinear, antialiased when shrinking)."""
    if tuple(x.shape[2:]) == size:
        return x
    shrinking = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


# -- images on disk ----------------------------------------------------------------------


class DecodedImages(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Images of a :class:`~nas.data.sources.Files` part, decoded, augmented
    and resized to a network's ``size`` when the loader asks for them: each
    item is a ``uint8`` tensor ``C x H x W`` and its label.

    Each image draws its randomness from its own generator, seeded by
    ``seed`` and its index: an epoch's images are the same whichever worker
    decodes them and however many workers there are.
    """

    def __init__(
        self, part: Files, size: tuple[int, int], *, grey: bool, augmentation: str, small: bool, seed: int = 0
    ) -> None:
        self.paths = part.paths
        self.seed = seed
        self.labels = part.y.numpy()
        self.size = size
        self.mode = "L" if grey else "RGB"
        self.augmentation = augmentation
        self.small = small

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """The image at ``index`` and its label; an image that cannot be read
        comes back blank with the label ``-1 - index``, for the main process
        to report in one line (an exception raised in a worker reaches it as
        a multi-line traceback)."""
        from PIL import Image  # optional: only folders of images need Pillow, and open_image checked it

        try:
            image = open_image(str(self.paths[index])).convert(self.mode)
        except SourceError:
            return torch.zeros((1 if self.mode == "L" else 3, *self.size), dtype=torch.uint8), -1 - index
        generator = torch.Generator().manual_seed(self.seed * len(self.labels) + index)
        h, w = self.size
        if self.augmentation == "resized-crop-flip":
            box = _crop_box(image.width, image.height, generator)
            image = image.resize((w, h), Image.Resampling.BILINEAR, box=box)
            # Mirrored by Pillow, before the one copy into a tensor: the same
            # pixels as flipping the tensor, without two more copies of it.
            if torch.rand((), generator=generator) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif self.small or self.augmentation != "none":
            image = image.resize((w, h), Image.Resampling.BILINEAR)
        else:
            image = _centre_crop(image, h, w)
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # a copy of its own, writable
        pixels = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)
        if self.augmentation in ("crop", "crop-flip"):
            pixels = pad_crop(pixels[None], generator)[0]
        if self.augmentation == "crop-flip" and torch.rand((), generator=generator) < 0.5:
            pixels = pixels.flip(2)
        return pixels.contiguous(), int(self.labels[index])


def _crop_box(width: int, height: int, generator: torch.Generator) -> tuple[float, float, float, float]:
    """A random crop box of 8-100% of the area at 3/4-4/3 aspect (the whole image after ten misses)."""
    area = width * height
    for _ in range(10):
        draws = torch.rand(4, generator=generator).tolist()
        target = area * (CROP_SCALE[0] + draws[0] * (CROP_SCALE[1] - CROP_SCALE[0]))
        low, high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
        ratio = math.exp(low + draws[1] * (high - low))
        w, h = math.sqrt(target * ratio), math.sqrt(target / ratio)
        if w <= width and h <= height:
            left, top = draws[2] * (width - w), draws[3] * (height - h)
            return (left, top, left + w, top + h)
    return (0.0, 0.0, float(width), float(height))


def _centre_crop(image: Any, h: int, w: int) -> Any:
    """Resize so that ``(h, w)`` is :data:`CENTRE_CROP` of the shorter side, then crop the centre."""
    from PIL import Image

    scale = max(h / image.height, w / image.width) / CENTRE_CROP
    half_w, half_h = w / (2 * scale), h / (2 * scale)
    box = (image.width / 2 - half_w, image.height / 2 - half_h, image.width / 2 + half_w, image.height / 2 + half_h)
    return image.resize((w, h), Image.Resampling.BILINEAR, box=box)
