"""The block types of modern nets (MobileNet v2/v3, EfficientNet, ShuffleNet,
ViT, ConvNeXt) against the torchvision and timm modules they stand for: the
same parameter count, MACs equal to ``FlopCounterMode`` on the reference, and,
with the reference's weights copied in, the same outputs in eval mode; and
Swin's (shifted) window attention against torchvision's.

Configurations come from the papers' tables:

* Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
  arXiv:1801.04381, Table 2 (t, c, n, s of each bottleneck sequence).
* Howard et al., "Searching for MobileNetV3", arXiv:1905.02244, Table 1
  (MobileNetV3-Large: kernel, exp size, #out, SE, NL, s of each bneck).
* Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
  Networks", arXiv:1905.11946, Table 1 (EfficientNet-B0's MBConv stages).
"""

from __future__ import annotations

from typing import Any

import pytest
import timm.layers
import timm.models._efficientnet_blocks as timm_blocks
import torch
import torchvision
from timm.models.vision_transformer import Attention, VisionTransformer
from torch import nn
from torchvision.models import efficientnet, maxvit, mobilenetv2, mobilenetv3, shufflenetv2, swin_transformer
from torchvision.ops import SqueezeExcitation, StochasticDepth

import nas
from nas.blocks.mobile import make_divisible
from nas.ir.registry import Block, Example
from tests.block_cases import block_examples, example_graph, random_inputs
from tests.reference import assert_same_function, copy_weights, randomize_batch_norm, reference_macs


def single(block: str, shape: tuple[int, ...], **params: Any) -> nas.Graph:
    """A graph of one ``block`` node reading an input of ``shape``."""
    g = nas.Graph(block)
    g.add("node", block, g.add_input("x", shape), **params)
    g.set_outputs("node")
    return nas.build(g)


def chain(shape: tuple[int, ...], units: list[dict[str, Any]]) -> nas.Graph:
    """A graph of ``inverted_residual`` units one after another."""
    g = nas.Graph("chain")
    y = g.add_input("x", shape)
    for i, unit in enumerate(units):
        y = g.add(f"b{i}", "inverted_residual", y, **unit)
    g.set_outputs(y)
    return nas.build(g)


def assert_matches(graph: nas.Graph, reference: nn.Module, shape: tuple[int, ...], atol: float = 1e-5) -> nn.Module:
    """Same parameters, same MACs, same outputs with the reference's weights;
    returns the lowered graph holding those weights."""
    assert graph.params == sum(p.numel() for p in reference.parameters())
    assert graph.macs == reference_macs(reference, shape)
    ours = nas.lower(graph)
    randomize_batch_norm(reference)
    copy_weights(reference, ours)
    assert_same_function(ours, reference, shape, atol=atol)
    return ours


# -- element-wise and normalisation ---------------------------------------------


def test_hardsigmoid_is_torchs() -> None:
    graph = single("hardsigmoid", (6, 4, 4))
    x = torch.randn(2, 6, 4, 4) * 5  # reaches both flat ends, -3 and 3
    torch.testing.assert_close(nas.lower(graph)(x), nn.Hardsigmoid()(x), rtol=0, atol=0)


def test_layer_norm_over_tokens_is_vits() -> None:
    # ViT-B/16's encoder norms: nn.LayerNorm(768, eps=1e-6) (torchvision, timm).
    graph = single("layer_norm", (197, 32), eps=1e-6)
    reference = nn.LayerNorm(32, eps=1e-6)
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    assert_matches(graph, reference, (197, 32))


@pytest.mark.parametrize(
    "reference",
    [torchvision.models.convnext.LayerNorm2d(24, eps=1e-6), timm.layers.LayerNorm2d(24, eps=1e-6)],
    ids=["torchvision", "timm"],
)
def test_layer_norm2d_is_convnexts(reference: nn.Module) -> None:
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    assert_matches(single("layer_norm2d", (24, 7, 5), eps=1e-6), reference, (24, 7, 5))


def test_layer_norm2d_normalises_each_position_over_channels() -> None:
    x = torch.randn(2, 8, 3, 3) * 4 + 1
    y = nas.lower(single("layer_norm2d", (8, 3, 3), affine=False))(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=1, unbiased=False), torch.ones(2, 3, 3), atol=1e-3, rtol=0)


# -- squeeze-and-excitation ------------------------------------------------------


@pytest.mark.parametrize(("act", "gate"), [("relu", "hardsigmoid"), ("silu", "sigmoid")])
def test_squeeze_excitation_is_torchvisions(act: str, gate: str) -> None:
    # MobileNet v3: ReLU and a hard sigmoid; EfficientNet: SiLU and a sigmoid.
    modules = {"relu": nn.ReLU, "silu": nn.SiLU, "sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}
    reference = SqueezeExcitation(72, 24, activation=modules[act], scale_activation=modules[gate])
    graph = single("squeeze_excitation", (72, 9, 9), squeeze_channels=24, act=act, gate=gate)
    assert_matches(graph, reference, (72, 9, 9))
    assert list(nas.lower(graph).state_dict()) == [f"node.{k}" for k in reference.state_dict()]


def test_squeeze_excitation_is_timms() -> None:
    reference = timm_blocks.SqueezeExcite(40, rd_ratio=0.25, act_layer=nn.SiLU)
    assert_matches(single("squeeze_excitation", (40, 6, 6), squeeze_channels=10, act="silu"), reference, (40, 6, 6))


# -- inverted residual -------------------------------------------------------------

# MobileNet v2, Table 2: (t, c, n, s) after the first 32-channel convolution at 112x112.
MOBILENET_V2 = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def test_inverted_residuals_are_mobilenet_v2s() -> None:
    units = [
        {"out_channels": c, "stride": s if i == 0 else 1, "expansion": float(t)}
        for t, c, n, s in MOBILENET_V2
        for i in range(n)
    ]
    reference = torchvision.models.mobilenet_v2().features[1:18]
    assert all(isinstance(m, mobilenetv2.InvertedResidual) for m in reference)
    assert_matches(chain((32, 112, 112), units), reference, (32, 112, 112))


# MobileNetV3-Large, Table 1, after the 16-channel stem at 112x112: kernel, exp size, #out, SE, NL, s.
MOBILENET_V3_LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]


def test_inverted_residuals_are_mobilenet_v3s() -> None:
    # Section 5.2 of the paper: SE squeezes to 1/4 of the expansion layer;
    # torchvision rounds that to a multiple of 8 and gates with a hard sigmoid.
    units = [
        {
            "out_channels": out,
            "stride": s,
            "kernel_size": k,
            "expanded_channels": exp,
            "act": "relu" if nl == "RE" else "hardswish",
            "se_ratio": 0.25 if se else 0.0,
            "se_from": "expanded",
            "se_divisor": 8,
            "se_gate": "hardsigmoid",
            "eps": 1e-3,
        }
        for k, exp, out, se, nl, s in MOBILENET_V3_LARGE
    ]
    reference = torchvision.models.mobilenet_v3_large().features[1:16]
    assert all(isinstance(m, mobilenetv3.InvertedResidual) for m in reference)
    assert_matches(chain((16, 112, 112), units), reference, (16, 112, 112))


# EfficientNet-B0, Table 1, stages 2 to 8: expand ratio, kernel, stride, channels, layers (input 32 at 112x112).
EFFICIENTNET_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3)]
EFFICIENTNET_B0 += [(6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def test_inverted_residuals_are_efficientnet_b0s_mbconv() -> None:
    # Section 4 of the paper: MBConv with squeeze-and-excitation (ratio 0.25
    # of the block's input, as torchvision's MBConv) and SiLU (swish).
    units = [
        {
            "out_channels": c,
            "stride": s if i == 0 else 1,
            "kernel_size": k,
            "expansion": float(t),
            "act": "silu",
            "se_ratio": 0.25,
            "se_act": "silu",
            "drop_path": 0.1,
        }
        for t, k, s, c, n in EFFICIENTNET_B0
        for i in range(n)
    ]
    reference = torchvision.models.efficientnet_b0().features[1:8]
    assert all(isinstance(m, efficientnet.MBConv) for stage in reference for m in stage)
    assert_matches(chain((32, 112, 112), units), reference, (32, 112, 112))


def test_inverted_residual_is_timms_with_se() -> None:
    # timm's MobileNet v3 block: SE on the expanded width, rounded to 8, hard-sigmoid gate.
    reference = timm_blocks.InvertedResidual(
        24,
        40,
        dw_kernel_size=5,
        stride=2,
        exp_ratio=3.0,
        act_layer=nn.ReLU,
        se_layer=lambda c, **kw: timm_blocks.SqueezeExcite(
            c, rd_round_fn=lambda v: mobilenetv3._make_divisible(v, 8), gate_layer=nn.Hardsigmoid
        ),
    )
    graph = single(
        "inverted_residual",
        (24, 14, 14),
        out_channels=40,
        stride=2,
        kernel_size=5,
        expansion=3.0,
        act="relu",
        se_ratio=0.25,
        se_from="expanded",
        se_divisor=8,
        se_gate="hardsigmoid",
    )
    assert_matches(graph, reference, (24, 14, 14))


def test_inverted_residual_keeps_the_residual_only_where_shapes_allow() -> None:
    def has_add(shape: tuple[int, ...], **params: Any) -> bool:
        expansion = single("inverted_residual", shape, **params).node("node").meta["expansion"]
        return any(node.block.name == "add" for node in expansion)

    assert has_add((8, 6, 6), out_channels=8)
    assert not has_add((8, 6, 6), out_channels=8, stride=2)
    assert not has_add((8, 6, 6), out_channels=16)


def test_make_divisible_is_torchvisions() -> None:
    for value in [0.5, 3.0, 7.5, 18.0, 30.0, 36.0, 60.0, 100.3, 168.0, 240.0]:
        for divisor in (1, 4, 8):
            assert make_divisible(value, divisor) == mobilenetv3._make_divisible(value, divisor), (value, divisor)


# -- channel shuffle ---------------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 2, 3, 4])
def test_channel_shuffle_is_shufflenets(groups: int) -> None:
    x = torch.randn(2, 12, 5, 3)
    graph = single("channel_shuffle", (12, 5, 3), groups=groups)
    assert graph.params == graph.macs == 0
    ours = nas.lower(graph)(x)
    torch.testing.assert_close(ours, shufflenetv2.channel_shuffle(x, groups), rtol=0, atol=0)
    torch.testing.assert_close(ours, nn.ChannelShuffle(groups)(x), rtol=0, atol=0)


# -- narrow ------------------------------------------------------------------------


def test_narrow_is_a_channel_slice_and_refuses_channels_that_are_not_there() -> None:
    x = torch.randn(2, 9, 4, 3)
    graph = single("narrow", (9, 4, 3), start=2, length=5)
    assert graph.params == graph.macs == 0
    torch.testing.assert_close(nas.lower(graph)(x), x[:, 2:7], rtol=0, atol=0)
    with pytest.raises(nas.NASError, match="channels 6 to 10 do not exist in 9"):
        single("narrow", (9, 4, 3), start=6, length=4)


# -- stochastic depth --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_is_torchvisions(mode: str) -> None:
    graph = single("stochastic_depth", (4, 3, 3), p=0.3, mode=mode)
    assert graph.params == graph.macs == 0
    ours, reference = nas.lower(graph), StochasticDepth(0.3, mode)
    x = torch.randn(64, 4, 3, 3)
    torch.testing.assert_close(ours.eval()(x), x, rtol=0, atol=0)
    for seed in range(3):
        torch.manual_seed(seed)
        expected = reference.train()(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours.train()(x), expected)


# -- ViT ---------------------------------------------------------------------------


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_self_attention_is_timms(qkv_bias: bool) -> None:
    graph = single("self_attention", (17, 48), heads=4, qkv_bias=qkv_bias)
    reference = Attention(48, num_heads=4, qkv_bias=qkv_bias)
    # The unfused path computes the two products as matrix products, which
    # FlopCounterMode counts; the fused kernel it counts only on a GPU.
    reference.fused_attn = False
    ours = assert_matches(graph, reference, (17, 48))
    reference.fused_attn = True
    assert_same_function(ours, reference, (17, 48))


def test_self_attention_is_torchvisions_multihead_attention() -> None:
    reference = nn.MultiheadAttention(48, 4, batch_first=True)
    graph = single("self_attention", (10, 48), heads=4)
    assert graph.params == sum(p.numel() for p in reference.parameters())
    ours = nas.lower(graph).eval()
    ours.load_state_dict(
        {
            "node.qkv.weight": reference.in_proj_weight,
            "node.qkv.bias": reference.in_proj_bias,
            "node.proj.weight": reference.out_proj.weight,
            "node.proj.bias": reference.out_proj.bias,
        }
    )
    x = torch.randn(3, 10, 48)
    with torch.inference_mode():
        expected, _ = reference.eval()(x, x, x, need_weights=False)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-4)


def test_self_attention_macs_are_the_papers() -> None:
    # Projections 4 N D^2, scores and weighted sum N^2 D each (Vaswani et al., Table 1: O(n^2 d) per layer).
    n, d = 197, 64
    assert single("self_attention", (n, d), heads=8).macs == 4 * n * d * d + 2 * n * n * d


class TimmStem(nn.Module):
    """timm's ViT up to its blocks: patch embedding, class token, position embedding."""

    def __init__(self, vit: VisionTransformer) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit._pos_embed(self.vit.patch_embed(x))


def test_patch_embed_is_timms_vit_stem() -> None:
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=24, depth=0, num_heads=2, num_classes=0)
    nn.init.normal_(vit.cls_token)
    graph = single("patch_embed", (3, 32, 32), embed_dim=24, patch_size=8)
    assert graph.summary.outputs == [(17, 24)]
    stem = TimmStem(vit)
    stem_params = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    assert graph.params == sum(vit.get_parameter(name).numel() for name in stem_params)
    assert graph.macs == reference_macs(stem, (3, 32, 32))
    ours = nas.lower(graph)
    ours.load_state_dict(
        {
            "node.proj.weight": vit.patch_embed.proj.weight,
            "node.proj.bias": vit.patch_embed.proj.bias,
            "node.class_token.token": vit.cls_token,
            "node.pos_embedding.embedding": vit.pos_embed,
        }
    )
    assert_same_function(ours, stem, (3, 32, 32))


def test_patch_embed_is_torchvisions_vit_input() -> None:
    vit = torchvision.models.VisionTransformer(
        image_size=48, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    graph = single("patch_embed", (3, 48, 48), embed_dim=32, patch_size=16)
    stem = [vit.conv_proj.weight, vit.conv_proj.bias, vit.class_token, vit.encoder.pos_embedding]
    assert graph.params == sum(t.numel() for t in stem)
    ours = nas.lower(graph).eval()
    ours.load_state_dict(
        {
            "node.proj.weight": vit.conv_proj.weight,
            "node.proj.bias": vit.conv_proj.bias,
            "node.class_token.token": vit.class_token,
            "node.pos_embedding.embedding": vit.encoder.pos_embedding,
        }
    )
    x = torch.randn(2, 3, 48, 48)
    with torch.inference_mode():
        tokens = vit._process_input(x)
        expected = torch.cat([vit.class_token.expand(2, -1, -1), tokens], dim=1) + vit.encoder.pos_embedding
        torch.testing.assert_close(ours(x), expected)


# -- Swin ----------------------------------------------------------------------------

SWIN_WINDOWS = [
    ((8, 8), [4, 4], [0, 0]),
    ((8, 8), [4, 4], [2, 2]),
    ((9, 10), [4, 4], [0, 0]),  # padded to 12 x 12
    ((9, 10), [4, 4], [2, 2]),  # padded and shifted
    ((3, 10), [4, 4], [2, 2]),  # one window covers the rows: shifted along the columns only
    ((7, 9), [3, 4], [1, 2]),
]
"""Map size, window and shift: every path of torchvision's ``shifted_window_attention``."""


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("size", "window", "shift"), SWIN_WINDOWS)
def test_window_attention_is_torchvisions(
    version: int, size: tuple[int, int], window: list[int], shift: list[int]
) -> None:
    kind = swin_transformer.ShiftedWindowAttention if version == 1 else swin_transformer.ShiftedWindowAttentionV2
    reference = kind(12, window, shift, num_heads=3).eval()
    with torch.no_grad():
        # Random in full: V2 must hold the key bias at zero itself, whatever the weights say.
        reference.qkv.bias.normal_()
        reference.proj.bias.normal_()
    graph = single("window_attention", (12, *size), heads=3, window_size=window, shift_size=shift, version=version)
    assert graph.params == sum(p.numel() for p in reference.parameters())
    assert graph.macs == reference_macs(reference, (*size, 12))
    ours = nas.lower(graph).eval()
    ours.load_state_dict({f"node.{name}": p for name, p in reference.named_parameters()}, strict=True)
    x = torch.randn(2, 12, *size)
    with torch.inference_mode():
        expected = reference(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-4)


def test_window_attention_macs_are_the_papers() -> None:
    # Swin, Eq. 2: 4hwC^2 + 2M^2hwC for windows of M x M on an h x w map.
    h, w, c, m = 56, 56, 96, 7
    graph = single("window_attention", (c, h, w), heads=3, window_size=m)
    assert graph.macs == 4 * h * w * c * c + 2 * m * m * h * w * c


@pytest.mark.parametrize("size", [(6, 8), (5, 7)])
def test_space_to_depth_is_swins_patch_merging_gather(size: tuple[int, int]) -> None:
    graph = single("space_to_depth", (4, *size))
    x = torch.randn(2, 4, *size)
    expected = swin_transformer._patch_merging_pad(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(nas.lower(graph)(x), expected, rtol=0, atol=0)


# -- MaxViT ---------------------------------------------------------------------------


class MaxVitAttention(nn.Module):
    """The attention of torchvision's ``PartitionAttentionLayer`` alone, on a
    ``(B, C, H, W)`` map: its own partition, axis swap (grid), attention and
    departition modules, as its ``forward`` calls them."""

    def __init__(self, channels: int, head_dim: int, partition_size: int, kind: str, size: tuple[int, int]) -> None:
        super().__init__()
        # As PartitionAttentionLayer: windows of the partition size, or as many windows as a grid has positions.
        self.p = partition_size if kind == "window" else size[0] // partition_size
        self.rows, self.columns = size[0] // self.p, size[1] // self.p
        self.partition, self.departition = maxvit.WindowPartition(), maxvit.WindowDepartition()
        self.swap = maxvit.SwapAxes(-2, -3) if kind == "grid" else nn.Identity()
        self.attention = maxvit.RelativePositionalMultiHeadAttention(channels, head_dim, partition_size**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.swap(self.attention(self.swap(self.partition(x, self.p))))
        return self.departition(x, self.p, self.rows, self.columns)


@pytest.mark.parametrize("kind", ["window", "grid"])
@pytest.mark.parametrize(("size", "partition_size"), [((8, 8), 4), ((6, 6), 2), ((6, 6), 3)])
def test_grid_and_window_attention_are_maxvits(kind: str, size: tuple[int, int], partition_size: int) -> None:
    reference = MaxVitAttention(12, 4, partition_size, kind, size).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_()  # biases too, and a bias table far from zero: a wrong index cannot hide
    graph = single(
        "window_attention", (12, *size), heads=3, window_size=partition_size, partition=kind, scale="channels"
    )
    assert graph.params == sum(p.numel() for p in reference.parameters())
    assert graph.macs == reference_macs(reference, (12, *size))
    ours = nas.lower(graph).eval()
    theirs = reference.attention
    names = {"qkv": theirs.to_qkv, "proj": theirs.merge}
    state = {f"node.{n}.{w}": getattr(m, w) for n, m in names.items() for w in ("weight", "bias")}
    ours.load_state_dict(state | {"node.relative_position_bias_table": theirs.relative_position_bias_table})
    assert_same_function(ours, reference, (12, *size))


def test_grid_attention_mixes_across_the_map_and_window_attention_does_not() -> None:
    # A 4 x 4 map in 2 x 2 windows or grids: a change at the top-left position reaches
    # its window (the top-left quarter) or its grid (every other row and column).
    x = torch.randn(1, 4, 4, 4)
    changed = x.clone()
    changed[0, :, 0, 0] += 1
    reached = {}
    for kind in ("window", "grid"):
        ours = nas.lower(single("window_attention", (4, 4, 4), heads=1, window_size=2, partition=kind)).eval()
        with torch.no_grad():
            reached[kind] = (ours(changed) - ours(x)).abs().sum(1)[0] > 0
    window, grid = torch.zeros(4, 4, dtype=torch.bool), torch.zeros(4, 4, dtype=torch.bool)
    window[:2, :2] = True
    grid[::2, ::2] = True
    assert torch.equal(reached["window"], window) and torch.equal(reached["grid"], grid)


# -- aliasing ------------------------------------------------------------------------

PRIMITIVE_CASES = [c for c in block_examples() if not c.values[0].composite and c.values[1].source is None]


@pytest.mark.parametrize(("block", "example"), PRIMITIVE_CASES)
def test_a_block_that_returns_its_input_keeps_it_from_in_place_readers(block: Block, example: Example) -> None:
    """A lowering whose output is its input, or a view of it (identity in eval,
    reshapes), must declare ``keeps_output``: else a reader computes into it
    in place (``add_``) and overwrites the input that other readers still see."""
    graph = example_graph(block, example)
    inputs = random_inputs(graph)
    with torch.no_grad():
        result = nas.lower(graph).eval()(*inputs)
    outputs = result if isinstance(result, tuple) else (result,)
    storages = {x.untyped_storage().data_ptr() for x in inputs}
    if any(t.untyped_storage().data_ptr() in storages for t in outputs):
        assert block.keeps_output


@pytest.mark.parametrize(("block", "params"), [("stochastic_depth", {}), ("channel_shuffle", {"groups": 1})])
def test_an_identity_block_is_not_overwritten_in_place(block: str, params: dict[str, Any]) -> None:
    # d and e are both the conv's output in eval; summing into d in place would change e.
    g = nas.Graph("alias")
    a = g.add("a", "conv2d", g.add_input("x", (4, 3, 3)), out_channels=4, kernel_size=1)
    d, e = (g.add(name, block, a, **params) for name in ("d", "e"))
    s = g.add("s", "add", [d, g.add_input("y", (4, 3, 3))])
    g.set_outputs(g.add("t", "add", [s, e]))
    graph = nas.build(g)
    fast, plain = nas.lower(graph).eval(), nas.lower(graph, inplace=False).eval()
    plain.load_state_dict(fast.state_dict())
    x, y = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, y), plain(x, y))
