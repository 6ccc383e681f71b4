"""Cluttered digits: a harder data set made on the machine from scikit-learn's digits.

The 8x8 digits are too easy to tell networks apart: every reasonable
network scores 97-99% on them, a few of 360 validation images apart, so a
ranking of networks on them is mostly noise. Cluttered digits (after the
cluttered MNIST of Mnih et al. 2014, "Recurrent Models of Visual
Attention") place one digit, scaled, rotated and shifted, on a larger
canvas strewn with fragments of other digits and noise. A network must
find the digit and ignore the fragments: capacity, depth and receptive
field now show in accuracy, and as many images as wanted can be made, so
a validation set is large enough to rank networks by.

Nothing is downloaded: the images are drawn from the 1,797 digits that
scikit-learn ships, with a fixed seed. Training and validation images come
from disjoint sets of source digits (validation handwriting is unseen),
and fragments come from the same side of the split as the digit they
clutter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Clutter:
    """How cluttered digits are drawn.

    Attributes:
        size: the canvas's side in pixels.
        scale: the digit's side on the canvas, least and most, in pixels.
        rotation: the most the digit is turned either way, in degrees.
        fragments: clutter pieces per image.
        fragment: a fragment's side as a fraction of its source digit.
        noise: the deviation of Gaussian pixel noise, on a 0-1 scale.
    """

    size: int = 32
    scale: tuple[float, float] = (12.0, 18.0)
    rotation: float = 30.0
    fragments: int = 4
    fragment: float = 0.5
    noise: float = 0.05


def cluttered(
    digits: torch.Tensor, labels: torch.Tensor, count: int, *, seed: int, clutter: Clutter = Clutter()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``count`` cluttered images from source ``digits``.

    Args:
        digits: ``N x 1 x h x w`` source glyphs, bright strokes on zero, any scale.
        labels: ``N`` labels of the glyphs.
        count: images to draw.
        seed: the generator's seed; the same seed gives the same images.
        clutter: how the images are drawn.

    Returns:
        ``count x 1 x size x size`` ``uint8`` images and their ``int64`` labels.
    """
    generator = torch.Generator().manual_seed(seed)
    glyphs = (digits.to(torch.float32) / digits.amax().clamp_min(1e-8)).clamp(0, 1)
    which = torch.randint(len(glyphs), (count,), generator=generator)
    canvas = _place(glyphs[which], clutter, generator, whole=True)
    for _ in range(clutter.fragments):
        pieces = _fragments(glyphs[torch.randint(len(glyphs), (count,), generator=generator)], clutter, generator)
        canvas = torch.maximum(canvas, _place(pieces, clutter, generator, whole=False))
    canvas = canvas + clutter.noise * torch.randn(canvas.shape, generator=generator)
    images = (canvas.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels[which].to(torch.int64)


def _place(glyphs: torch.Tensor, clutter: Clutter, generator: torch.Generator, *, whole: bool) -> torch.Tensor:
    """Each glyph scaled to a random side within ``clutter.scale``, turned and
    moved to a random place (an inverse affine warp): wholly on the canvas
    if ``whole``, else centred anywhere on it."""
    n, size = len(glyphs), clutter.size
    side = _uniform(n, *clutter.scale, generator)
    angle = torch.deg2rad(_uniform(n, -clutter.rotation, clutter.rotation, generator))
    # the turned glyph's bounding half-width, so that the whole glyph stays on the canvas
    reach = side / 2 * (angle.cos().abs() + angle.sin().abs())
    room = (size / 2 - reach).clamp_min(0) if whole else torch.full((n,), size / 2)
    centre = torch.stack([_uniform(n, -1, 1, generator) * room, _uniform(n, -1, 1, generator) * room], dim=1)
    # canvas coordinates (normalised to -1..1) to glyph coordinates: rotate back, then stretch by size/side
    zoom = (size / side)[:, None, None]
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1) * zoom
    shift = -(rotation @ (centre * 2 / size)[:, :, None])
    theta = torch.cat([rotation, shift], dim=2)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    return F.grid_sample(glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _fragments(glyphs: torch.Tensor, clutter: Clutter, generator: torch.Generator) -> torch.Tensor:
    """A random square window of each glyph (the rest blanked), a fraction ``clutter.fragment`` of its side."""
    n, _, h, w = glyphs.shape
    side = max(1, math.ceil(clutter.fragment * min(h, w)))
    top = torch.randint(h - side + 1, (n,), generator=generator)
    left = torch.randint(w - side + 1, (n,), generator=generator)
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    keep_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
    keep_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
    window = keep_rows[:, :, None] & keep_cols[:, None, :]
    return glyphs * window[:, None]


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)
