"""The table from PyTorch operations to blocks, which :mod:`nas.io.trace` reads.

Three tables, one per kind of ``torch.fx`` call: :data:`MODULES` by module
type (``nn.Conv2d``), :data:`FUNCTIONS` by function (``torch.flatten``,
``operator.add``) and :data:`METHODS` by tensor method name (``"mean"``).
Each entry is a converter: it reads the call's arguments and the module's
attributes, adds the blocks that compute the same thing to the graph, with
the module's weights under the lowered module's names, and returns the
result. A call that the block cannot express exactly (a reflect-padded
convolution, a GELU with the tanh approximation) raises :class:`Unsupported`
with the reason: an import is exact or it fails, never approximate.

Values carry a layout besides the tensor, so that the channels-last detours
of transformers and ConvNeXt map onto channels-first blocks: a ``(C, H, W)``
map permuted to ``(H, W, C)`` stays the same tensor of the graph, seen
channels-last, and a ``Linear`` on it is the 1x1 convolution with the same
weights; the permutation back is free. Model libraries' own modules
(torchvision's) join the tables where the library is installed.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from nas.blocks.window_attention import CPB_HIDDEN, effective_shift
from nas.ir.graph import Ref
from nas.ir.registry import Shape

if TYPE_CHECKING:
    from nas.io.trace import Importer

CHANNELS_LAST = "channels_last"
"""Layout of a ``(C, H, W)`` tensor that the module sees permuted to ``(H, W, C)``."""

SPATIAL_FLAT = "spatial_flat"
"""Layout of a ``(C, H, W)`` tensor that the module sees reshaped to ``(C, H * W)``."""


class Unsupported(Exception):
    """A call that no block computes exactly; the message says why."""


@dataclass(frozen=True)
class Value:
    """What an ``fx`` node computes, seen from the graph being built.

    ``ref`` is a tensor of the graph of shape ``shape`` (without batch), seen
    by the module in ``layout`` (empty: as it is). ``param`` is a module
    parameter read directly (ViT's class token); ``parts`` a tuple of values
    (a ``chunk``, attention's output and weights)."""

    ref: Ref | None = None
    shape: Shape = ()
    layout: str = ""
    param: torch.Tensor | None = None
    parts: tuple[Value | None, ...] | None = None


Converter = Callable[["Importer", fx.Node, Any], Value]


def argument(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    """Argument ``index`` of the call, or keyword ``name``, or ``default``."""
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _single(value: Any) -> int:
    """``3`` from ``3`` or ``(3, 3)``; a pair of unequal ints is kept."""
    if isinstance(value, (tuple, list)):
        return value[0] if len(set(value)) == 1 else tuple(value)  # type: ignore[return-value]
    return value


# -- modules --------------------------------------------------------------------


def conv2d(imp: Importer, node: fx.Node, m: nn.Conv2d) -> Value:
    if m.padding_mode != "zeros":
        raise Unsupported(f"padding_mode='{m.padding_mode}' (conv2d pads with zeros)")
    if isinstance(m.padding, str):
        raise Unsupported(f"padding='{m.padding}' (give the padding as numbers)")
    return _conv(imp, imp.tensor(node.args[0]), m, m.padding)


def _conv(imp: Importer, x: Ref, m: nn.Conv2d, padding: Any) -> Value:
    params = {
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": padding,
        "dilation": m.dilation,
        "groups": m.groups,
        "bias": m.bias is not None,
    }
    return imp.emit("conv2d", [x], weights=m.state_dict(), **params)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding of one axis (before, after): the output has
    ``ceil(size / stride)`` positions, and an odd total puts the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d_same(imp: Importer, node: fx.Node, m: nn.Conv2d) -> Value:
    """timm's ``Conv2dSame``: ``SAME`` padding computed from the input size at
    run time, fixed here from the input the import sees; a ``pad`` block
    where it is uneven, else the convolution's own padding."""
    value = imp.value(node.args[0])
    if value.layout or len(value.shape) != 3:
        raise Unsupported("a SAME-padded convolution of other than a (C, H, W) map")
    rows, columns = (same_padding(n, *args) for n, *args in zip(value.shape[1:], m.kernel_size, m.stride, m.dilation))
    if rows[0] == rows[1] and columns[0] == columns[1]:
        return _conv(imp, imp.ref(value), m, (rows[0], columns[0]))
    sides = {"top": rows[0], "bottom": rows[1], "left": columns[0], "right": columns[1]}
    padded = imp.emit("pad", [imp.ref(value)], suffix="pad", **sides)
    return _conv(imp, imp.ref(padded), m, 0)


def linear(imp: Importer, node: fx.Node, m: nn.Linear) -> Value:
    value = imp.value(node.args[0])
    if value.layout == CHANNELS_LAST:
        return _linear_per_position(imp, value, m)
    return imp.emit(
        "linear",
        [imp.tensor(node.args[0])],
        weights=m.state_dict(),
        out_features=m.out_features,
        bias=m.bias is not None,
    )


def _linear_per_position(imp: Importer, value: Value, m: nn.Linear, suffix: str = "") -> Value:
    """``m`` on the channels of each position of a map: the 1x1 convolution with its weights."""
    state = m.state_dict()
    state["weight"] = state["weight"].reshape(m.out_features, m.in_features, 1, 1)
    params = {"out_channels": m.out_features, "kernel_size": 1, "bias": m.bias is not None}
    out = imp.emit("conv2d", [imp.ref(value)], weights=state, suffix=suffix, **params)
    return Value(out.ref, out.shape, value.layout)


def batch_norm(imp: Importer, node: fx.Node, m: nn.modules.batchnorm._BatchNorm) -> Value:
    if not m.track_running_stats or m.momentum is None:
        raise Unsupported("batch norm without running statistics or with a cumulative average (momentum=None)")
    x = imp.tensor(node.args[0])
    return imp.emit("batch_norm", [x], weights=m.state_dict(), eps=m.eps, momentum=m.momentum, affine=m.affine)


def layer_norm(imp: Importer, node: fx.Node, m: nn.LayerNorm) -> Value:
    value = imp.value(node.args[0])
    if value.layout == CHANNELS_LAST:  # over the channels of each position: ConvNeXt's channels-first norm
        return _layer_norm_per_position(imp, value, m)
    return imp.emit("layer_norm", [imp.tensor(node.args[0])], weights=m.state_dict(), **_layer_norm_params(m))


def _layer_norm_params(m: nn.LayerNorm) -> dict[str, Any]:
    if len(m.normalized_shape) != 1:
        raise Unsupported(f"normalized_shape={tuple(m.normalized_shape)} (layer_norm normalises the last dimension)")
    if m.elementwise_affine and m.bias is None:
        raise Unsupported("a layer norm with a scale but no shift (bias=False)")
    return {"eps": m.eps, "affine": m.elementwise_affine}


def _layer_norm_per_position(imp: Importer, value: Value, m: nn.LayerNorm, suffix: str = "") -> Value:
    """``m`` over the channels of each position of a map: ``layer_norm2d``."""
    params = _layer_norm_params(m)
    out = imp.emit("layer_norm2d", [imp.ref(value)], weights=m.state_dict(), suffix=suffix, **params)
    return Value(out.ref, out.shape, value.layout)


def group_norm(imp: Importer, node: fx.Node, m: nn.GroupNorm) -> Value:
    x = imp.tensor(node.args[0])
    return imp.emit("group_norm", [x], weights=m.state_dict(), groups=m.num_groups, eps=m.eps, affine=m.affine)


def group_norm_function(imp: Importer, node: fx.Node, _: Any) -> Value:
    """``F.group_norm(x, num_groups, weight, bias, eps)``, the weight and bias read from the module's parameters."""
    x = imp.tensor(node.args[0])
    groups, eps = argument(node, 1, "num_groups"), argument(node, 4, "eps", 1e-5)
    scale, shift = (argument(node, i, name) for i, name in ((2, "weight"), (3, "bias")))
    if scale is None and shift is None:
        return imp.emit("group_norm", [x], groups=groups, eps=eps, affine=False)
    weight, bias = (imp.value(a).param if isinstance(a, fx.Node) else None for a in (scale, shift))
    if weight is None or bias is None:
        raise Unsupported("a group norm with only one of its scale and shift, or computed ones")
    return imp.emit("group_norm", [x], weights={"weight": weight, "bias": bias}, groups=groups, eps=eps)


def global_response_norm(imp: Importer, node: fx.Node, m: nn.Module) -> Value:
    """timm's ``GlobalResponseNorm`` on a channels-first map or a channels-last view of one."""
    value = imp.value(node.args[0])
    expected = CHANNELS_LAST if m.channel_dim == -1 else ""
    if value.layout != expected or len(value.shape) != 3:
        raise Unsupported("a global response norm of other than a feature map in its own layout")
    out = imp.emit("global_response_norm", [imp.ref(value)], weights=m.state_dict(), eps=m.eps)
    return Value(out.ref, out.shape, value.layout)


def layer_norm2d(imp: Importer, node: fx.Node, m: nn.LayerNorm) -> Value:
    x = imp.tensor(node.args[0])
    return imp.emit("layer_norm2d", [x], weights=m.state_dict(), eps=m.eps, affine=m.elementwise_affine)


def activation_module(imp: Importer, node: fx.Node, m: nn.Module) -> Value:
    return _activation(imp, imp.value(node.args[0]), m)


def _activation(imp: Importer, value: Value, m: nn.Module, suffix: str = "") -> Value:
    """An activation module (:data:`ACTIVATIONS`, :data:`PARAMETRIC_ACTIVATIONS`) on ``value``, in its layout."""
    if type(m) in ACTIVATIONS:
        block, params = ACTIVATIONS[type(m)], {}
    elif type(m) in PARAMETRIC_ACTIVATIONS:
        block, read = PARAMETRIC_ACTIVATIONS[type(m)]
        params = {k: getattr(m, attr) for k, attr in read.items()}
    else:
        raise Unsupported(f"the activation {type(m).__name__}, which has no block")
    if block == "gelu" and getattr(m, "approximate", "none") != "none":
        raise Unsupported("GELU with approximate='tanh' (gelu is the exact one)")
    return _elementwise(imp, value, block, suffix, **params)


def _pointwise(imp: Importer, arg: Any, block: str, **params: Any) -> Value:
    """An element-wise block, in whatever layout its input is seen."""
    return _elementwise(imp, imp.value(arg), block, **params)


def _elementwise(imp: Importer, value: Value, block: str, suffix: str = "", **params: Any) -> Value:
    """An element-wise block on ``value``, in its layout."""
    out = imp.emit(block, [imp.ref(value)], suffix=suffix, **params)
    return Value(out.ref, out.shape, value.layout)


def max_pool2d(imp: Importer, node: fx.Node, m: nn.MaxPool2d) -> Value:
    if m.return_indices:
        raise Unsupported("max pooling that returns its indices to the module")
    return _sliding_pool(imp, node, "max_pool2d", m.kernel_size, m.stride, m.padding, m.ceil_mode, dilation=m.dilation)


def avg_pool2d(imp: Importer, node: fx.Node, m: nn.AvgPool2d) -> Value:
    if m.divisor_override is not None:
        raise Unsupported("average pooling with a divisor_override")
    return _sliding_pool(
        imp, node, "avg_pool2d", m.kernel_size, m.stride, m.padding, m.ceil_mode, count_include_pad=m.count_include_pad
    )


def max_pool2d_function(imp: Importer, node: fx.Node, _: Any) -> Value:
    """``F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)``."""
    if argument(node, 6, "return_indices", False):
        raise Unsupported("max pooling that returns its indices to the module")
    kernel, stride, padding = (
        argument(node, 1, "kernel_size"),
        argument(node, 2, "stride"),
        argument(node, 3, "padding", 0),
    )
    ceil, dilation = argument(node, 5, "ceil_mode", False), argument(node, 4, "dilation", 1)
    return _sliding_pool(imp, node, "max_pool2d", kernel, stride, padding, ceil, dilation=dilation)


def avg_pool2d_function(imp: Importer, node: fx.Node, _: Any) -> Value:
    """``F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)``."""
    if argument(node, 6, "divisor_override") is not None:
        raise Unsupported("average pooling with a divisor_override")
    kernel, stride, padding = (
        argument(node, 1, "kernel_size"),
        argument(node, 2, "stride"),
        argument(node, 3, "padding", 0),
    )
    ceil, include = argument(node, 4, "ceil_mode", False), argument(node, 5, "count_include_pad", True)
    return _sliding_pool(imp, node, "avg_pool2d", kernel, stride, padding, ceil, count_include_pad=include)


def _sliding_pool(
    imp: Importer, node: fx.Node, block: str, kernel: Any, stride: Any, padding: Any, ceil: bool, **extra: Any
) -> Value:
    # The functional forms take stride None or [] for "the kernel size".
    kernel, stride, padding = _single(kernel), _single(stride or None), _single(padding)
    params = {"kernel_size": kernel, "stride": None if stride in (None, kernel) else stride, "padding": padding}
    return imp.emit(block, [imp.tensor(node.args[0])], ceil_mode=ceil, **params, **extra)


def _adaptive(block: str) -> Converter:
    def convert(imp: Importer, node: fx.Node, m: nn.Module | None) -> Value:
        size = m.output_size if m is not None else argument(node, 1, "output_size")
        if size is None or (isinstance(size, (tuple, list)) and None in size):
            raise Unsupported("an adaptive pooling that keeps a dimension (output_size None)")
        if m is not None and getattr(m, "return_indices", False):
            raise Unsupported("adaptive max pooling that returns its indices")
        return imp.emit(block, [imp.tensor(node.args[0])], output_size=size)

    return convert


def dropout(imp: Importer, node: fx.Node, m: nn.Dropout | None) -> Value:
    p = m.p if m is not None else argument(node, 1, "p", 0.5)
    return _pointwise(imp, node.args[0], "dropout", p=p)


def _dropout(imp: Importer, value: Value, m: nn.Dropout, suffix: str = "") -> Value:
    return _elementwise(imp, value, "dropout", suffix, p=m.p)


def _unchanged(imp: Importer, value: Value, m: nn.Module, suffix: str = "") -> Value:
    return value


def _per_position(imp: Importer, value: Value, layers: Sequence[tuple[str, nn.Module]]) -> Value:
    """``layers`` one after another on the channels of each position of a map,
    each a block named with the suffix given with it (:data:`PER_POSITION`):
    the branches of transformers, whose tokens are the map's positions."""
    for suffix, layer in layers:
        convert = PER_POSITION.get(type(layer))
        if convert is None:
            raise Unsupported(f"{type(layer).__name__} ({suffix}) where a layer per position is expected")
        value = convert(imp, value, layer, suffix)
    return value


def flatten_module(imp: Importer, node: fx.Node, m: nn.Flatten) -> Value:
    return _flatten(imp, node.args[0], m.start_dim, m.end_dim)


def identity(imp: Importer, node: fx.Node, m: Any) -> Value:
    return imp.value(node.args[0])


def self_attention(imp: Importer, node: fx.Node, m: nn.MultiheadAttention) -> Value:
    query, key, value = (argument(node, i, n) for i, n in enumerate(("query", "key", "value")))
    if not (query is key is value):
        raise Unsupported(
            "attention whose queries, keys and values differ (self_attention attends a sequence to itself)"
        )
    masks = [argument(node, i, n) for i, n in ((3, "key_padding_mask"), (5, "attn_mask"))]
    if any(mask is not None for mask in masks) or argument(node, 7, "is_causal", False):
        raise Unsupported("attention with a mask")
    if not m.batch_first or not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn or m.dropout:
        raise Unsupported("attention other than batch_first with one embedding width, no added keys and no dropout")
    if (m.in_proj_bias is None) != (m.out_proj.bias is None):
        raise Unsupported("attention with a bias on one projection only")
    weights = {"qkv.weight": m.in_proj_weight, "proj.weight": m.out_proj.weight}
    if m.in_proj_bias is not None:
        weights |= {"qkv.bias": m.in_proj_bias, "proj.bias": m.out_proj.bias}
    bias = m.in_proj_bias is not None
    out = imp.emit(
        "self_attention", [imp.tensor(query)], weights=weights, heads=m.num_heads, qkv_bias=bias, proj_bias=bias
    )
    # nn.MultiheadAttention returns (output, attention weights); reading the weights is refused in getitem.
    return Value(parts=(out, None))


def batch_norm_act(imp: Importer, node: fx.Node, m: nn.modules.batchnorm._BatchNorm) -> Value:
    """timm's ``BatchNormAct2d``: batch norm, then its activation (``drop`` is the identity in eval and in its nets)."""
    known = isinstance(m.act, nn.Identity) or type(m.act) in ACTIVATIONS or type(m.act) in PARAMETRIC_ACTIVATIONS
    if not isinstance(m.drop, nn.Identity) or not known:
        raise Unsupported("a BatchNormAct2d with dropout or an activation that has no block")
    out = batch_norm(imp, node, m)
    return out if isinstance(m.act, nn.Identity) else _activation(imp, out, m.act, suffix="act")


def timm_attention(imp: Importer, node: fx.Node, m: nn.Module) -> Value:
    """timm's ViT ``Attention``, whose ``qkv`` and ``proj`` layout ``self_attention`` lowers to."""
    plain = all(isinstance(getattr(m, name, nn.Identity()), nn.Identity) for name in ("q_norm", "k_norm", "norm"))
    if not plain or m.attn_drop.p or m.proj_drop.p or m.qkv.out_features != 3 * m.proj.in_features:
        raise Unsupported("an attention with query/key norms, dropout or another head width")
    if getattr(m, "gate", None) is not None or m.proj.in_features != m.proj.out_features:
        raise Unsupported("a gated attention or one that changes the width")
    params = {"heads": m.num_heads, "qkv_bias": m.qkv.bias is not None, "proj_bias": m.proj.bias is not None}
    return imp.emit("self_attention", [imp.tensor(node.args[0])], weights=m.state_dict(), **params)


def stochastic_depth(imp: Importer, node: fx.Node, m: nn.Module) -> Value:
    return _drop_branch(imp, imp.value(node.args[0]), m)


def _drop_branch(imp: Importer, value: Value, m: nn.Module, suffix: str = "") -> Value:
    # Per sample or per batch: the same in any layout (Swin drops its channels-last branches).
    return _elementwise(imp, value, "stochastic_depth", suffix, p=m.p, mode=m.mode)


def window_attention(imp: Importer, node: fx.Node, m: nn.Module, *, version: int) -> Value:
    """torchvision's ``ShiftedWindowAttention`` (``version=1``) and
    ``ShiftedWindowAttentionV2`` (``version=2``) on Swin's channels-last map,
    whose weights ``window_attention`` names as they do."""
    value = imp.value(node.args[0])
    if value.layout != CHANNELS_LAST:
        raise Unsupported(f"window attention of a tensor seen as {imp.seen_shape(value)}, not (B, H, W, C)")
    if m.attention_dropout or m.dropout:
        raise Unsupported("window attention with dropout")
    if version == 2 and tuple(m.cpb_mlp[0].weight.shape) != (CPB_HIDDEN, 2):
        raise Unsupported(f"a position-bias MLP other than 2 -> {CPB_HIDDEN} -> heads")
    params = {
        "heads": m.num_heads,
        "window_size": list(m.window_size),
        "shift_size": list(m.shift_size),
        "version": version,
        "qkv_bias": m.qkv.bias is not None,
        "proj_bias": m.proj.bias is not None,
    }
    # Parameters only: the index and offsets buffers are recomputed by the lowered module.
    out = imp.emit("window_attention", [imp.ref(value)], weights=dict(m.named_parameters()), **params)
    return Value(out.ref, out.shape, CHANNELS_LAST)


def patch_merging_gather(imp: Importer, node: fx.Node, _: Any) -> Value:
    """torchvision's ``_patch_merging_pad``: the 2x2 neighbourhoods of Swin's
    channels-last map on its channels, before ``PatchMerging``'s norm and
    linear reduction (which import as ``layer_norm2d`` and a 1x1 ``conv2d``)."""
    value = imp.value(node.args[0])
    if value.layout != CHANNELS_LAST:
        raise Unsupported(f"patch merging of a tensor seen as {imp.seen_shape(value)}, not (B, H, W, C)")
    out = imp.emit("space_to_depth", [imp.ref(value)], size=2)
    return Value(out.ref, out.shape, CHANNELS_LAST)


def partition_attention(imp: Importer, node: fx.Node, m: nn.Module) -> Value:
    """torchvision's MaxViT ``PartitionAttentionLayer`` as blocks of the map
    itself. The layer cuts the map into windows (``partition_type="window"``)
    or grids, and every operation in it but the attention acts on each
    position alone, so only the attention sees the cut: the norms become
    ``layer_norm2d``, the MLP's linear layers 1x1 convolutions, and the
    attention a ``window_attention`` with the layer's partition, its weights
    renamed (``to_qkv`` -> ``qkv``, ``merge`` -> ``proj``)."""
    value = imp.value(node.args[0])
    if value.layout or len(value.shape) != 3:
        raise Unsupported(f"partition attention of a tensor seen as {imp.seen_shape(value)}, not (B, C, H, W)")
    if len(m.attn_layer) != 3:
        raise Unsupported("an attention branch of other layers than norm, attention and dropout")
    norm, attention, attention_drop = m.attn_layer
    _, height, width = value.shape
    # The grid partition cuts the map into p x p windows and swaps windows and tokens.
    window = [m.p, m.p] if m.partition_type == "window" else [height // m.p, width // m.p]
    if window != [attention.size, attention.size]:
        raise Unsupported(f"a {m.partition_type} partition into {window}, not the attention's {attention.size}")
    renamed = {"qkv": attention.to_qkv, "proj": attention.merge}
    weights = {f"{name}.{key}": w for name, linear in renamed.items() for key, w in linear.state_dict().items()}
    weights["relative_position_bias_table"] = attention.relative_position_bias_table
    params = {"heads": attention.n_heads, "window_size": window, "partition": m.partition_type, "scale": "channels"}

    y = _per_position(imp, value, [("attn_norm", norm)])
    y = imp.emit("window_attention", [imp.ref(y)], weights=weights, suffix="attn", **params)
    y = _drop_branch(imp, _per_position(imp, y, [("attn_drop", attention_drop)]), m.stochastic_dropout, "attn_path")
    x = _sum(imp, value, y, suffix="attn_add")
    y = _per_position(imp, x, [(f"mlp_{name}", layer) for name, layer in m.mlp_layer.named_children()])
    return _sum(imp, x, _drop_branch(imp, y, m.stochastic_dropout, "mlp_path"), suffix="mlp_add")


def timm_swin_block(imp: Importer, node: fx.Node, m: nn.Module, *, mlp: type) -> Value:
    """timm's ``SwinTransformerBlock`` on Swin's channels-last map: norm,
    ``window_attention`` (its weights named as ours), drop path and sum, then
    norm, ``mlp`` (timm's ``Mlp``), drop path and sum, each but the
    attention per position. timm shifts the map before padding it where
    torchvision pads first, so a shifted block must see a multiple of its
    window; and its mask is built for the resolution it was made for."""
    value = imp.value(node.args[0])
    if value.layout != CHANNELS_LAST:
        raise Unsupported(f"a Swin block on a tensor seen as {imp.seen_shape(value)}, not (B, H, W, C)")
    attention, (_, height, width) = m.attn, value.shape
    size, window, shift = (height, width), tuple(m.window_size), tuple(m.shift_size)
    if type(m.mlp) is not mlp or attention.attn_drop.p or attention.proj_drop.p:
        raise Unsupported("a Swin block with another MLP than timm's Mlp, or with attention dropout")
    if attention.qkv.out_features != 3 * attention.proj.out_features:
        raise Unsupported("a window attention whose heads are narrower or wider than the channels")
    if any(shift) and (any(n % w for n, w in zip(size, window, strict=True)) or size != tuple(m.input_resolution)):
        raise Unsupported(
            f"a shifted window attention of a {size} map: timm shifts before it pads, so only a multiple "
            f"of the window {window}, of the size the block was built for, imports"
        )
    if effective_shift(size, window, shift) != shift:
        raise Unsupported(f"a shift of {shift} inside a window that covers the {size} map (always_partition)")
    params = {
        "heads": attention.num_heads,
        "window_size": list(window),
        "shift_size": list(shift),
        "qkv_bias": attention.qkv.bias is not None,
        "proj_bias": attention.proj.bias is not None,
    }
    y = _per_position(imp, value, [("norm1", m.norm1)])
    y = imp.emit("window_attention", [imp.ref(y)], weights=dict(attention.named_parameters()), suffix="attn", **params)
    y = _drop_path(imp, Value(y.ref, y.shape, CHANNELS_LAST), m.drop_path1, "drop_path1")
    x = _sum(imp, value, y, suffix="attn_add")
    y = _per_position(imp, x, [("norm2", m.norm2), *((f"mlp_{n}", c) for n, c in m.mlp.named_children())])
    return _sum(imp, x, _drop_path(imp, y, m.drop_path2, "drop_path2"), suffix="mlp_add")


def timm_patch_merging(imp: Importer, node: fx.Node, m: nn.Module) -> Value:
    """timm's Swin ``PatchMerging``: the 2x2 neighbourhoods of the channels-last
    map on its channels (in torchvision's order, and padded as it pads), then
    its norm and linear reduction per position."""
    value = imp.value(node.args[0])
    if value.layout != CHANNELS_LAST:
        raise Unsupported(f"patch merging of a tensor seen as {imp.seen_shape(value)}, not (B, H, W, C)")
    out = imp.emit("space_to_depth", [imp.ref(value)], size=2)
    merged = Value(out.ref, out.shape, CHANNELS_LAST)
    return _per_position(imp, merged, [("norm", m.norm), ("reduction", m.reduction)])


def _drop_path(imp: Importer, value: Value, m: nn.Module, suffix: str) -> Value:
    """timm's ``DropPath`` (or the ``Identity`` timm puts where its rate is 0)
    as ``stochastic_depth`` per sample."""
    if isinstance(m, nn.Identity):
        return value
    if not getattr(m, "scale_by_keep", False):
        raise Unsupported("a drop path that does not rescale what it keeps")
    return _elementwise(imp, value, "stochastic_depth", suffix, p=m.drop_prob, mode="row")


# -- functions and methods -------------------------------------------------------


def _activation_function(block: str, **read: tuple[int, str, Any]) -> Converter:
    """A converter for an activation function; ``read`` maps block parameters
    to (position, keyword, default) of the function's arguments."""

    def convert(imp: Importer, node: fx.Node, _: Any) -> Value:
        if block == "gelu" and argument(node, 1, "approximate", "none") != "none":
            raise Unsupported("GELU with approximate='tanh' (gelu is the exact one)")
        params = {k: argument(node, i, name, default) for k, (i, name, default) in read.items()}
        return _pointwise(imp, node.args[0], block, **params)

    return convert


def flatten(imp: Importer, node: fx.Node, _: Any) -> Value:
    return _flatten(imp, node.args[0], argument(node, 1, "start_dim", 0), argument(node, 2, "end_dim", -1))


def _flatten(imp: Importer, arg: fx.Node, start: int, end: int) -> Value:
    value = imp.value(arg)
    rank = len(value.shape) + 1
    start, end = start % rank, end % rank
    if value.layout == "" and start == 1 and end == rank - 1:
        return value if rank == 2 else imp.emit("flatten", [imp.tensor(arg)])
    if value.layout == "" and rank == 4 and (start, end) == (2, 3):
        return Value(value.ref, value.shape, SPATIAL_FLAT)
    raise Unsupported(f"flattening dimensions {start} to {end} of a {rank}-d tensor")


def reshape(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    if value.param is not None:  # a parameter shaped for broadcasting (timm's ConvNeXt gamma)
        return Value(param=value.param.reshape(node.meta["tensor_meta"].shape))
    target = imp.out_shape(node)
    if value.layout == "" and target == value.shape:
        return value
    if value.layout == "" and target == (math.prod(value.shape),):
        return imp.emit("flatten", [imp.tensor(node.args[0])])
    if value.layout == "" and len(value.shape) == 3 and target == (value.shape[0], value.shape[1] * value.shape[2]):
        return Value(value.ref, value.shape, SPATIAL_FLAT)
    raise Unsupported(f"reshaping {imp.seen_shape(value)} to {target}")


def permute(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    dims = node.args[1:] if node.op == "call_method" else (argument(node, 1, "dims"),)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return _reordered(imp, value, tuple(d % (len(dims)) for d in dims))


def transpose(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    rank = len(imp.seen_shape(value)) + 1
    a, b = (argument(node, 1, "dim0") % rank, argument(node, 2, "dim1") % rank)
    dims = list(range(rank))
    dims[a], dims[b] = dims[b], dims[a]
    return _reordered(imp, value, tuple(dims))


def _reordered(imp: Importer, value: Value, dims: tuple[int, ...]) -> Value:
    """A permutation of the dimensions that a block or a layout expresses."""
    if value.layout == "" and len(value.shape) == 3 and dims == (0, 2, 3, 1):
        return Value(value.ref, value.shape, CHANNELS_LAST)
    if value.layout == CHANNELS_LAST and dims == (0, 3, 1, 2):
        return Value(value.ref, value.shape)
    if value.layout == SPATIAL_FLAT and dims == (0, 2, 1):
        return imp.emit("tokens", [imp.ref(value)])
    raise Unsupported(f"permuting a tensor seen as {imp.seen_shape(value)} to dimensions {dims}")


def contiguous(imp: Importer, node: fx.Node, _: Any) -> Value:
    return imp.value(node.args[0])


def mean(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    dims = argument(node, 1, "dim")
    dims = {d % 4 for d in (dims if isinstance(dims, (tuple, list)) else (dims,))} if dims is not None else None
    spatial = {CHANNELS_LAST: {1, 2}, "": {2, 3}}.get(value.layout)
    if len(value.shape) != 3 or dims != spatial:
        raise Unsupported(f"a mean over dimensions {dims} (global average pooling is a mean over 2 and 3)")
    if value.layout and argument(node, 2, "keepdim", False):
        raise Unsupported("a mean that keeps the pooled dimensions of a channels-last view")
    pooled = imp.emit("adaptive_avg_pool2d", [imp.ref(value)])
    if argument(node, 2, "keepdim", False):
        return pooled
    return imp.emit("flatten", [pooled.ref], suffix="flat")


def add(imp: Importer, node: fx.Node, _: Any) -> Value:
    if argument(node, 2, "alpha", 1) != 1:
        raise Unsupported("a sum with alpha")
    a, b = (imp.value(x) if isinstance(x, fx.Node) else None for x in node.args[:2])
    if a is None or b is None:
        raise Unsupported("a tensor plus a number (add sums tensors)")
    if a.param is not None or b.param is not None:
        tokens, embedding = (b, a) if a.param is not None else (a, b)
        expected = (1, *tokens.shape)
        if tokens.layout or len(tokens.shape) != 2 or tuple(embedding.param.shape) != expected:  # type: ignore[union-attr]
            raise Unsupported("a parameter added to a tensor, other than a position embedding (1, N, D) on tokens")
        return imp.emit("position_embedding", [imp.ref(tokens)], weights={"embedding": embedding.param})
    return _sum(imp, a, b)


def _sum(imp: Importer, a: Value, b: Value, suffix: str = "") -> Value:
    """``a + b``, two tensors of one shape seen in one layout."""
    if a.layout != b.layout or a.shape != b.shape:
        raise Unsupported(f"a sum of {imp.seen_shape(a)} and {imp.seen_shape(b)} (add sums tensors of one shape)")
    out = imp.emit("add", [imp.ref(a), imp.ref(b)], suffix=suffix)
    return Value(out.ref, out.shape, a.layout)


def _scale(imp: Importer, arg: Any, factor: float) -> Value:
    """A tensor times a constant, in whatever layout it is seen."""
    return _pointwise(imp, arg, "scale", factor=float(factor))


def mul(imp: Importer, node: fx.Node, _: Any) -> Value:
    first, second = node.args[:2]
    if isinstance(second, (int, float)) and isinstance(first, fx.Node):
        return _scale(imp, first, second)
    if isinstance(first, (int, float)) and isinstance(second, fx.Node):
        return _scale(imp, second, first)
    a, b = (imp.value(x) if isinstance(x, fx.Node) else None for x in node.args[:2])
    if a is None or b is None:
        raise Unsupported("a product of other than tensors and numbers")
    if a.param is not None or b.param is not None:
        x, scale = (b, a) if a.param is not None else (a, b)
        channels = x.shape[0] if len(x.shape) == 3 else x.shape[-1]
        assert scale.param is not None
        if scale.param.numel() != channels or x.param is not None:
            raise Unsupported("a parameter times a tensor, other than a scale per channel (layer scale)")
        shape = (channels, 1, 1) if len(x.shape) == 3 else (channels,)
        out = imp.emit("layer_scale", [imp.ref(x)], weights={"scale": scale.param.reshape(shape)})
        return Value(out.ref, out.shape, x.layout)
    if a.layout or b.layout:
        raise Unsupported("a product of tensors seen in another layout")
    return imp.emit("mul", [imp.ref(a), imp.ref(b)])


def sub(imp: Importer, node: fx.Node, _: Any) -> Value:
    """``a - b`` of two tensors, as ``a + (-1 * b)`` (negation is exact); PoolFormer's ``pool(x) - x``."""
    a, b = node.args[:2]
    if not isinstance(a, fx.Node) or not isinstance(b, fx.Node) or node.kwargs.get("alpha", 1) != 1:
        raise Unsupported("a subtraction other than of two tensors")
    return _sum(imp, imp.value(a), _scale(imp, b, -1.0), suffix="sub")


def truediv(imp: Importer, node: fx.Node, _: Any) -> Value:
    """A tensor divided by a number (DeiT's mean of its two heads), as the product with its inverse."""
    x, divisor = node.args[:2]
    exact = node.kwargs.get("rounding_mode") is None
    if not exact or not isinstance(x, fx.Node) or not isinstance(divisor, (int, float)) or divisor == 0:
        raise Unsupported("a division other than of a tensor by a non-zero number")
    return _scale(imp, x, 1.0 / divisor)


def cat(imp: Importer, node: fx.Node, _: Any) -> Value:
    tensors = list(argument(node, 0, "tensors"))
    values = [imp.value(t) for t in tensors]
    dim = argument(node, 1, "dim", 0)
    if len(values) >= 2 and all(v.param is not None for v in values[:-1]) and values[-1].param is None:
        # Learned tokens before the patches: ViT's class token, DeiT's class and distillation tokens.
        *tokens, x = values
        if x.layout or len(x.shape) != 2 or dim % 3 != 1:
            raise Unsupported("a parameter concatenated to a tensor, other than tokens (1, 1, D) before tokens")
        for token in reversed(tokens):
            if tuple(token.param.shape) != (1, 1, x.shape[1]):  # type: ignore[union-attr]
                raise Unsupported("a parameter concatenated to tokens, other than a token (1, 1, D)")
            x = imp.emit("class_token", [imp.ref(x)], weights={"token": token.param})
        return x
    rank = len(values[0].shape) + 1
    if any(v.layout or v.param is not None for v in values) or dim % rank != 1:
        raise Unsupported(f"a concatenation along dimension {dim} (concat joins channels, dimension 1)")
    return imp.emit("concat", [imp.ref(v) for v in values])


def expand(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    if value.param is None or value.param.shape[0] != 1:
        raise Unsupported("an expand of anything but a parameter along the batch")
    return value


def getitem(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    index = node.args[1]
    if value.parts is not None and isinstance(index, int):
        part = value.parts[index]
        if part is None:
            raise Unsupported(f"reading output {index} (attention weights are not computed by the block)")
        return part
    plain = value.ref is not None and not value.layout
    second = index[1] if isinstance(index, tuple) and len(index) >= 2 and index[0] == slice(None) else None
    whole_rest = isinstance(index, tuple) and all(i == slice(None) for i in index[2:])
    if plain and isinstance(second, int) and second >= 0 and len(index) == 2:
        return imp.emit("select", [imp.ref(value)], index=second)
    if plain and isinstance(second, slice) and whole_rest and second.step in (None, 1):
        start, stop, _ = second.indices(value.shape[0])
        if stop > start:
            return _narrow(imp, value, start, stop - start)
    raise Unsupported(f"indexing with {index!r}")


def _narrow(imp: Importer, value: Value, start: int, length: int) -> Value:
    """Channels ``start`` to ``start + length``; the whole tensor where that is all of it."""
    if start == 0 and length == value.shape[0]:
        return value
    return imp.emit("narrow", [imp.ref(value)], start=start, length=length)


def split(imp: Importer, node: fx.Node, _: Any) -> Value:
    """``torch.split(x, size or sizes, dim)`` along the channels: one ``narrow`` per part."""
    value = imp.value(node.args[0])
    sizes, dim = argument(node, 1, "split_size_or_sections"), argument(node, 2, "dim", 0)
    if value.layout or value.ref is None or dim % (len(value.shape) + 1) != 1:
        raise Unsupported(f"a split along dimension {dim} (it splits channels, dimension 1)")
    channels = value.shape[0]
    if isinstance(sizes, int):
        sizes = [min(sizes, channels - start) for start in range(0, channels, sizes)]
    if not all(isinstance(n, int) for n in sizes) or sum(sizes) != channels:
        raise Unsupported(f"split sizes {sizes!r} of {channels} channels")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return Value(parts=tuple(_narrow(imp, value, start, n) for start, n in zip(starts, sizes, strict=True)))


def chunk(imp: Importer, node: fx.Node, _: Any) -> Value:
    value = imp.value(node.args[0])
    chunks, dim = argument(node, 1, "chunks"), argument(node, 2, "dim", 0)
    rank = len(value.shape) + 1
    if value.layout or dim % rank != 1:
        raise Unsupported(f"a chunk along dimension {dim} (chunk splits channels, dimension 1)")
    out = imp.emit("chunk", [imp.ref(value)], chunks=chunks)
    assert out.ref is not None
    return Value(parts=tuple(imp.output(out.ref.node, i) for i in range(chunks)))


def channel_shuffle(imp: Importer, node: fx.Node, _: Any) -> Value:
    return imp.emit("channel_shuffle", [imp.tensor(node.args[0])], groups=argument(node, 1, "groups"))


# -- the tables ---------------------------------------------------------------------

PerPosition = Callable[["Importer", Value, Any, str], Value]


ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
}
"""Activation modules without parameters -> their block."""

PARAMETRIC_ACTIVATIONS: dict[type, tuple[str, dict[str, str]]] = {
    nn.LeakyReLU: ("leaky_relu", {"negative_slope": "negative_slope"}),
    nn.ELU: ("elu", {"alpha": "alpha"}),
}
"""Activation modules with parameters -> their block and its parameters' attributes."""

PER_POSITION: dict[type, PerPosition] = {
    nn.LayerNorm: _layer_norm_per_position,
    nn.Linear: _linear_per_position,
    nn.Dropout: _dropout,
    nn.Identity: _unchanged,
    **dict.fromkeys([*ACTIVATIONS, *PARAMETRIC_ACTIVATIONS], _activation),
}
"""Module type -> what emits it on each position of a map, keeping the map's
layout: the layers of a transformer branch that a module converter walks
(:func:`_per_position`)."""

MODULES: dict[type, Converter] = {
    **dict.fromkeys(ACTIVATIONS, activation_module),
    nn.Conv2d: conv2d,
    nn.Linear: linear,
    nn.BatchNorm1d: batch_norm,
    nn.BatchNorm2d: batch_norm,
    nn.LayerNorm: layer_norm,
    nn.GroupNorm: group_norm,
    **dict.fromkeys(PARAMETRIC_ACTIVATIONS, activation_module),
    nn.MaxPool2d: max_pool2d,
    nn.AvgPool2d: avg_pool2d,
    nn.AdaptiveAvgPool2d: _adaptive("adaptive_avg_pool2d"),
    nn.AdaptiveMaxPool2d: _adaptive("adaptive_max_pool2d"),
    nn.Dropout: dropout,
    nn.Flatten: flatten_module,
    nn.Identity: identity,
    nn.MultiheadAttention: self_attention,
}
"""Module type -> converter. Every type here is a leaf of the trace."""

FUNCTIONS: dict[Callable[..., Any], Converter] = {
    torch.relu: _activation_function("relu"),
    F.relu: _activation_function("relu"),
    F.relu6: _activation_function("relu6"),
    F.leaky_relu: _activation_function("leaky_relu", negative_slope=(1, "negative_slope", 0.01)),
    F.elu: _activation_function("elu", alpha=(1, "alpha", 1.0)),
    torch.tanh: _activation_function("tanh"),
    torch.sigmoid: _activation_function("sigmoid"),
    F.gelu: _activation_function("gelu"),
    F.silu: _activation_function("silu"),
    F.hardswish: _activation_function("hardswish"),
    F.hardsigmoid: _activation_function("hardsigmoid"),
    F.adaptive_avg_pool2d: _adaptive("adaptive_avg_pool2d"),
    F.adaptive_max_pool2d: _adaptive("adaptive_max_pool2d"),
    F.group_norm: group_norm_function,
    F.max_pool2d: max_pool2d_function,
    F.avg_pool2d: avg_pool2d_function,
    F.dropout: dropout,
    torch.flatten: flatten,
    torch.reshape: reshape,
    torch.permute: permute,
    torch.transpose: transpose,
    torch.mean: mean,
    operator.add: add,
    operator.iadd: add,
    torch.add: add,
    operator.mul: mul,
    operator.imul: mul,
    torch.mul: mul,
    operator.truediv: truediv,
    operator.sub: sub,
    torch.sub: sub,
    torch.div: truediv,
    torch.cat: cat,
    torch.concat: cat,
    torch.chunk: chunk,
    torch.split: split,
    operator.getitem: getitem,
}
"""Function -> converter."""

METHODS: dict[str, Converter] = {
    "relu": _activation_function("relu"),
    "relu_": _activation_function("relu"),
    "sigmoid": _activation_function("sigmoid"),
    "tanh": _activation_function("tanh"),
    "flatten": flatten,
    "view": reshape,
    "reshape": reshape,
    "permute": permute,
    "transpose": transpose,
    "contiguous": contiguous,
    "mean": mean,
    "add": add,
    "add_": add,
    "mul": mul,
    "mul_": mul,
    "div": truediv,
    "sub": sub,
    "chunk": chunk,
    "split": split,
    "expand": expand,
}
"""Tensor method name -> converter."""


@functools.cache
def library_tables() -> tuple[Mapping[type, Converter], Mapping[Callable[..., Any], Converter]]:
    """The tables with the modules and functions of installed model libraries
    (torchvision, timm): each is a leaf of the trace or a wrapped function, so the
    import sees ``StochasticDepth`` rather than the random mask it draws."""
    modules: dict[type, Converter] = dict(MODULES)
    functions: dict[Callable[..., Any], Converter] = dict(FUNCTIONS)
    try:
        import torchvision.models.convnext
        import torchvision.models.maxvit
        import torchvision.models.shufflenetv2
        import torchvision.models.swin_transformer as swin
        import torchvision.ops
    except ImportError:
        return modules, functions
    modules.update(_timm_modules())
    modules[torchvision.ops.StochasticDepth] = stochastic_depth
    modules[torchvision.models.convnext.LayerNorm2d] = layer_norm2d
    functions[torchvision.models.shufflenetv2.channel_shuffle] = channel_shuffle
    modules[swin.ShiftedWindowAttention] = functools.partial(window_attention, version=1)
    modules[swin.ShiftedWindowAttentionV2] = functools.partial(window_attention, version=2)
    functions[swin._patch_merging_pad] = patch_merging_gather
    modules[torchvision.models.maxvit.PartitionAttentionLayer] = partition_attention
    return modules, functions


def _timm_modules() -> dict[type, Converter]:
    try:
        import timm.layers
        import timm.layers.grn
        import timm.models.swin_transformer as timm_swin
        import timm.models.vision_transformer
    except ImportError:
        return {}
    return {
        timm.layers.Conv2dSame: conv2d_same,
        timm.layers.grn.GlobalResponseNorm: global_response_norm,
        timm.layers.Linear: linear,
        timm.layers.LayerNorm: layer_norm,
        timm.layers.LayerNorm2d: layer_norm2d,
        timm.layers.BatchNormAct2d: batch_norm_act,
        timm.models.vision_transformer.Attention: timm_attention,
        timm_swin.SwinTransformerBlock: functools.partial(timm_swin_block, mlp=timm.layers.Mlp),
        timm_swin.PatchMerging: timm_patch_merging,
    }


def wrapped_functions() -> Sequence[Callable[..., Any]]:
    """Functions of model libraries that the trace keeps as one call (not torch's own)."""
    _, functions = library_tables()
    return [f for f in functions if f not in FUNCTIONS]


__all__ = [
    "ACTIVATIONS",
    "CHANNELS_LAST",
    "FUNCTIONS",
    "METHODS",
    "MODULES",
    "SPATIAL_FLAT",
    "Converter",
    "Unsupported",
    "Value",
    "argument",
    "library_tables",
    "wrapped_functions",
]
