"""Multi-head self-attention within local windows, shifted every other block,
with a relative position bias: the attention of the Swin Transformer (Liu et
al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
Windows", 2021, Section 3.2) and of Swin Transformer V2 (Liu et al., "Swin
Transformer V2: Scaling Up Capacity and Resolution", 2022, Sections 3.2 and
3.3); and, with the map partitioned into strided grids instead of windows,
MaxViT's grid attention (Tu et al., "MaxViT: Multi-Axis Vision
Transformer", 2022, Section 3.2), whose block attention is the window one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.attention import merge_heads, split_heads
from nas.ir.errors import ParamError, ShapeError
from nas.ir.registry import (
    MAX_CHANNELS,
    MAX_EXTENT,
    Block,
    Cost,
    Example,
    Param,
    Params,
    Shape,
    Window,
    as_pair,
    pair,
    register,
)

CPB_HIDDEN = 512
"""Width of V2's position-bias MLP, fixed by the authors' code and torchvision."""

MAX_LOGIT_SCALE = math.log(100.0)
"""V2 keeps its learned temperature above 0.01 (Section 3.2): the logarithm of its inverse at most log(100)."""

PARTITIONS = ("window", "grid")
"""How the map is cut into groups that attend within themselves (:func:`partition`)."""

SCALES = ("head", "channels")
"""What the dot products are scaled by the inverse square root of: one head's
width (Vaswani et al.; Swin) or all the channels (torchvision's MaxViT)."""

MASKED = -100.0
"""The score added between positions that the cyclic shift brought into one window
but that are not neighbours in the map: small enough that softmax gives them ~0."""


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """For each pair of positions of a ``window`` (row-major), the row of the
    ``(2 Wh - 1) (2 Ww - 1)`` bias table for their offset, flattened to
    ``(Wh Ww)^2`` (Swin, Section 3.2, "Relative position bias")."""
    height, width = window
    grid = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")).flatten(1)
    offsets = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0)  # (N, N, 2), each in -(W - 1)..W - 1
    return ((offsets[..., 0] + height - 1) * (2 * width - 1) + offsets[..., 1] + width - 1).flatten()


def log_spaced_offsets(window: tuple[int, int]) -> torch.Tensor:
    """Every offset of a ``window`` as ``(2 Wh - 1, 2 Ww - 1, 2)`` coordinates,
    scaled to -8..8 and log-spaced, ``sign(x) log2(1 + |x|) / 3``: the input of
    V2's position-bias MLP (Swin V2, Section 3.3, "Log-spaced coordinates";
    the scaling and base as the authors' code and torchvision have them)."""
    height, width = window
    rows = torch.arange(-(height - 1), height, dtype=torch.float32)
    columns = torch.arange(-(width - 1), width, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(rows, columns, indexing="ij")).permute(1, 2, 0).contiguous()
    table[..., 0] /= height - 1
    table[..., 1] /= width - 1
    table *= 8
    return torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0


def shift_mask(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """``(windows, N, N)`` scores to add after a cyclic shift of a ``size`` map
    (a multiple of the window) by ``shift``: 0 between positions of the same
    region of the unshifted map, :data:`MASKED` between positions that only
    the wrap-around made neighbours (Swin, Section 3.2, "Efficient batch
    computation for shifted configuration")."""
    regions = torch.zeros(size)
    # Per axis, as torchvision cuts it: the part no window shared with the wrapped
    # edge, the last window's part before it, and the edge that wrapped round.
    bands = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(window, shift, strict=True)]
    for label, ((top, bottom), (left, right)) in enumerate((h, w) for h in bands[0] for w in bands[1]):
        regions[top:bottom, left:right] = label
    rows, columns = size[0] // window[0], size[1] // window[1]
    regions = regions.view(rows, window[0], columns, window[1]).permute(0, 2, 1, 3).reshape(rows * columns, -1)
    differ = regions.unsqueeze(1) - regions.unsqueeze(2)
    return differ.masked_fill(differ != 0, MASKED).masked_fill(differ == 0, 0.0)


def partition(x: torch.Tensor, window: tuple[int, int], grid: bool) -> torch.Tensor:
    """A ``(B, H, W, C)`` map (a multiple of ``window``) as ``(B G, N, C)``
    groups of ``N = Wh Ww`` tokens, row-major: the ``Wh x Ww`` windows of
    neighbours, or (``grid``) the grids of ``Wh x Ww`` positions spaced ``H /
    Wh`` rows and ``W / Ww`` columns apart, one grid per offset within that
    spacing: MaxViT's block and grid partitions (Section 3.2)."""
    batch, height, width, dim = x.shape
    wh, ww = window
    if grid:
        x = x.view(batch, wh, height // wh, ww, width // ww, dim).permute(0, 2, 4, 1, 3, 5)
    else:
        x = x.view(batch, height // wh, wh, width // ww, ww, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, dim)


def departition(x: torch.Tensor, window: tuple[int, int], grid: bool, size: tuple[int, int]) -> torch.Tensor:
    """The ``(B, H, W, C)`` map of ``size`` back from :func:`partition`'s groups."""
    (wh, ww), (height, width), dim = window, size, x.shape[-1]
    x = x.view(-1, height // wh, width // ww, wh, ww, dim)
    x = x.permute(0, 3, 1, 4, 2, 5) if grid else x.permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, dim)


def effective_shift(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> tuple[int, int]:
    """The shift on each axis, none where one window covers the (padded) map:
    shifting it would only rotate the map inside its single window."""
    padded = (-(-n // w) * w for n, w in zip(size, window, strict=True))
    return tuple(0 if w >= n else s for n, w, s in zip(padded, window, shift, strict=True))  # type: ignore[return-value]


class ShiftedWindowAttention(nn.Module):
    """(Shifted) window multi-head self-attention of a ``(B, C, H, W)`` map
    of the ``size`` it was built for, as torchvision's ``shifted_window_attention``
    computes it: the map (channels last) zero-padded at the bottom and right
    to a multiple of the window, cyclically shifted up and left by ``shift``,
    cut into windows of ``N = Wh Ww`` tokens (or, with ``grid``, into grids
    of ``N`` strided tokens, as :func:`partition`); in each, attention of every
    token to every token with ``heads`` heads, plus a relative position bias
    per head, plus the shift mask; the heads projected, the windows put back,
    the shift undone and the padding cut off.

    ``version=1`` scores dot products scaled by ``scale`` and reads the bias
    from a learned table (``relative_position_bias_table``, ``(2 Wh - 1)(2 Ww
    - 1) x heads``, the table of torchvision's MaxViT attention too);
    ``version=2`` scores the cosine of query and key times a learned
    temperature per head (``logit_scale``) and computes the bias with a
    two-layer MLP (``cpb_mlp``) from log-spaced offsets, bounded to (0, 16);
    its key bias is held at zero, as the authors' code (which has only query
    and value biases) and torchvision do.

    Weights are named as torchvision's ``ShiftedWindowAttention`` and
    ``ShiftedWindowAttentionV2`` name theirs; the index, offsets and mask are
    recomputed buffers, outside the state dict. The attention products are
    matrix products (not ``F.scaled_dot_product_attention``), which a FLOP
    counter sees on every device."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: tuple[int, int],
        shift: tuple[int, int],
        size: tuple[int, int],
        version: int,
        qkv_bias: bool,
        proj_bias: bool,
        grid: bool = False,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.grid = grid
        self.scale = (dim // heads) ** -0.5 if scale is None else scale
        self.shift = effective_shift(size, window, shift)
        self.padded = (-(-size[0] // window[0]) * window[0], -(-size[1] // window[1]) * window[1])
        self.version = version
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        offsets = (2 * window[0] - 1) * (2 * window[1] - 1)
        if version == 1:
            self.relative_position_bias_table = nn.Parameter(torch.zeros(offsets, heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
            self.cpb_mlp = nn.Sequential(
                nn.Linear(2, CPB_HIDDEN), nn.ReLU(inplace=True), nn.Linear(CPB_HIDDEN, heads, bias=False)
            )
            self.register_buffer("relative_coords_table", log_spaced_offsets(window), persistent=False)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        mask = shift_mask(self.padded, window, self.shift) if any(self.shift) else None
        self.register_buffer("mask", mask, persistent=False)

    def position_bias(self) -> torch.Tensor:
        """The ``(1, heads, N, N)`` bias added to the scores of every window."""
        table = self.relative_position_bias_table if self.version == 1 else self.cpb_mlp(self.relative_coords_table)
        tokens = self.window[0] * self.window[1]
        bias = table.view(-1, self.heads)[self.relative_position_index].view(tokens, tokens, -1)
        bias = bias.permute(2, 0, 1).unsqueeze(0)
        return bias if self.version == 1 else 16 * torch.sigmoid(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        _, height, width, dim = x.shape
        (wh, ww), (ph, pw), (sh, sw) = self.window, self.padded, self.shift
        x = F.pad(x, (0, 0, 0, pw - width, 0, ph - height))
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        windows = (ph // wh) * (pw // ww)
        tokens = wh * ww
        x = partition(x, self.window, self.grid)

        qkv_bias = self.qkv.bias
        if self.version == 2 and qkv_bias is not None:
            qkv_bias = torch.cat([qkv_bias[:dim], torch.zeros_like(qkv_bias[dim : 2 * dim]), qkv_bias[2 * dim :]])
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = split_heads(qkv, self.heads)
        if self.version == 1:
            scores = (q * self.scale).matmul(k.transpose(-2, -1))
        else:
            scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            scores = scores * torch.clamp(self.logit_scale, max=MAX_LOGIT_SCALE).exp()
        scores = scores + self.position_bias()
        if self.mask is not None:
            scores = scores.view(-1, windows, self.heads, tokens, tokens) + self.mask.unsqueeze(1).unsqueeze(0)
            scores = scores.view(-1, self.heads, tokens, tokens)
        x = self.proj(merge_heads(scores.softmax(dim=-1).matmul(v)))

        x = departition(x, self.window, self.grid, self.padded)
        if sh or sw:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        return x[:, :height, :width].permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        kind = "grid" if self.grid else "window"
        return f"heads={self.heads}, {kind}={self.window}, shift={self.shift}, version={self.version}"


@register
class WindowAttention(Block):
    """Multi-head self-attention of a ``(C, H, W)`` map within non-overlapping
    windows of ``window_size`` positions, shifted by ``shift_size`` (Swin,
    Section 3.2): local attention, linear in the map's area, whose shifted
    windows in every other block link the windows of the one before. A
    learned relative position bias per head is added to the scores (Eq. 4).
    The map is padded at the bottom and right to a multiple of the window,
    and there is no shift on an axis that one window covers, as torchvision
    does. ``version=2`` is Swin V2's attention: scaled cosine scores
    (Section 3.2) and a continuous, log-spaced position bias from a small MLP
    (Section 3.3). Weights and computation as :class:`ShiftedWindowAttention`.

    ``partition="grid"`` attends within grids of ``window_size`` positions
    spread evenly over the map instead (MaxViT's grid attention, Section
    3.2): the same attention on the map rearranged so that each grid is a
    window, and so global, sparse mixing at the cost of local attention;
    MaxViT alternates it with the window (its "block") attention.
    ``scale="channels"`` divides the scores by the square root of all the
    channels rather than of one head's, as torchvision's MaxViT
    (``RelativePositionalMultiHeadAttention``) does.

    MACs: the query-key-value and output projections, ``4 C^2`` per position
    of the padded map, and the two products of the attention, ``N C`` each
    per position, for windows of ``N`` positions: Eq. 2's ``4hwC^2 +
    2M^2hwC``, whatever the partition. V2 adds its position-bias MLP on each
    of the ``(2 Wh - 1)(2 Ww - 1)`` offsets, ``512 (2 + heads)`` each. The
    softmax, scaling, norms and bias additions are not counted, as a FLOP
    counter does not count them."""

    name = "window_attention"
    rank = 3
    keeps_output = False
    params = (
        Param("heads", int, low=1, high=MAX_CHANNELS, doc="number of heads; must divide the channels"),
        Param("window_size", pair, low=1, high=MAX_EXTENT, doc="window (or grid) [height, width] (Swin, MaxViT: 7)"),
        Param("shift_size", pair, default=0, low=0, high=MAX_EXTENT, doc="cyclic shift, below the window (Swin: 3)"),
        Param("version", int, default=1, choices=(1, 2), doc="1: Swin's attention, 2: Swin V2's cosine attention"),
        Param("qkv_bias", bool, default=True, doc="bias on the query-key-value projection"),
        Param("proj_bias", bool, default=True, doc="bias on the output projection"),
        Param("partition", str, default="window", choices=PARTITIONS, doc="windows of neighbours or strided grids"),
        Param("scale", str, default="head", choices=SCALES, doc="scores over the root of a head's or all channels"),
    )
    examples = (
        Example({"heads": 2, "window_size": 4}, ((8, 8, 8),)),
        Example({"heads": 2, "window_size": 4, "shift_size": 2}, ((8, 9, 10),)),
        Example({"heads": 3, "window_size": [3, 4], "shift_size": [1, 2], "version": 2}, ((12, 7, 9),)),
        Example({"heads": 2, "window_size": 4, "version": 2, "qkv_bias": False, "proj_bias": False}, ((8, 5, 6),)),
        Example({"heads": 2, "window_size": [2, 3], "partition": "grid", "scale": "channels"}, ((8, 6, 9),)),
        Example({"heads": 2, "window_size": 3, "partition": "grid"}, ((8, 7, 5),)),
    )

    def infer(self, p: Params, ins: Sequence[Shape]) -> Shape:
        channels = ins[0][0]
        if channels % p.heads:
            raise ShapeError(
                f"heads={p.heads} must divide the {channels} channels", hint="pick heads that divide the channels"
            )
        window, shift = as_pair(p.window_size), as_pair(p.shift_size)
        if any(s >= w for s, w in zip(shift, window, strict=True)):
            raise ParamError(
                f"shift_size {list(shift)} must be smaller than window_size {list(window)} on each axis",
                field="shift_size",
                hint="shift by half the window (Swin) or by 0",
            )
        if p.partition == "grid" and any(shift):
            raise ParamError(
                "grids are not shifted: each already spans the map", field="shift_size", hint="set shift_size to 0"
            )
        if p.version == 2 and min(window) < 2:
            raise ParamError(
                f"version 2 needs windows of at least 2 x 2, got {list(window)}",
                field="window_size",
                hint="its position bias scales offsets by the window size minus 1",
            )
        if p.version == 2 and p.scale != "head":
            raise ParamError(
                "version 2 scores cosines times a learned temperature, not scaled dot products",
                field="scale",
                hint="leave scale at head with version 2",
            )
        return ins[0]

    def cost(self, p: Params, ins: Sequence[Shape], outs: Sequence[Shape]) -> Cost:
        dim, height, width = ins[0]
        (wh, ww), heads = as_pair(p.window_size), p.heads
        positions = -(-height // wh) * wh * -(-width // ww) * ww
        offsets = (2 * wh - 1) * (2 * ww - 1)
        params = 4 * dim * dim + (3 * dim if p.qkv_bias else 0) + (dim if p.proj_bias else 0)
        macs = positions * (4 * dim * dim + 2 * wh * ww * dim)
        if p.version == 1:
            params += offsets * heads
        else:
            params += heads + 3 * CPB_HIDDEN + CPB_HIDDEN * heads  # logit_scale, cpb_mlp
            macs += offsets * CPB_HIDDEN * (2 + heads)
        return Cost(params=params, macs=macs)

    def window(self, p: Params, ins: Sequence[Shape]) -> Window:
        _, height, width = ins[0]
        wh, ww = as_pair(p.window_size)
        if p.partition == "grid":  # from the first row of a grid to its last, one spacing apart each
            return Window(
                extent=(min((wh - 1) * -(-height // wh) + 1, height), min((ww - 1) * -(-width // ww) + 1, width))
            )
        return Window(extent=(min(wh, height), min(ww, width)))

    def lower(self, p: Params, ins: Sequence[Shape]) -> nn.Module:
        dim, height, width = ins[0]
        window, shift = as_pair(p.window_size), as_pair(p.shift_size)
        scale = dim**-0.5 if p.scale == "channels" else None
        return ShiftedWindowAttention(
            dim,
            p.heads,
            window,
            shift,
            (height, width),
            p.version,
            p.qkv_bias,
            p.proj_bias,
            grid=p.partition == "grid",
            scale=scale,
        )
