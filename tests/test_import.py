"""Importing PyTorch modules (``nas.from_module``, ``nas import``) against the
originals: torchvision's and timm's classifiers must come back with the same
parameter count, MACs within 1% of ``FlopCounterMode`` on the original, and,
with the imported weights loaded strictly into ``nas.lower(graph)``, the
original's outputs in eval mode."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.cli.root import main
from nas.io.trace import UnsupportedOperationError
from tests.reference import randomize_batch_norm


def reference_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs by PyTorch's counter at batch 1, with attention on its unfused path
    (the fused CPU kernels are invisible to the counter)."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.eval()(x[:1])
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops() // 2


def assert_exact(model: nn.Module, shape: tuple[int, ...], **options: Any) -> nas.Graph:
    model.eval()
    randomize_batch_norm(model)
    graph, weights = nas.from_module(model, shape, **options)
    x = torch.randn(2, *shape)
    assert graph.params == sum(p.numel() for p in model.parameters())
    assert graph.macs == pytest.approx(reference_macs(model, x), rel=0.01)
    lowered = nas.lower(graph).eval()
    lowered.load_state_dict(weights, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(lowered(x), model(x), atol=1e-5, rtol=1e-4)
    return graph


TORCHVISION = [
    "resnet18",
    "resnet50",
    "vgg11",
    "alexnet",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "squeezenet1_0",
    "squeezenet1_1",
    "googlenet",
    "densenet121",
    "efficientnet_b0",
    "shufflenet_v2_x1_0",
    "convnext_tiny",
    "swin_t",
    "swin_v2_t",
]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_import_exactly(name: str) -> None:
    options = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    assert_exact(torchvision.models.get_model(name, **options), (3, 64, 64))


def test_torchvision_models_import_exactly_call_by_call() -> None:
    graph = assert_exact(torchvision.models.mobilenet_v2(), (3, 64, 64), composites=False)
    assert not any(node.block.composite for node in graph)


def test_vision_transformer_imports_exactly() -> None:
    # torchvision's ViT at a small size: the class token, position embedding,
    # encoder blocks of nn.MultiheadAttention and the x[:, 0] readout.
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    )
    nn.init.normal_(vit.class_token)
    graph = assert_exact(vit, (3, 32, 32))
    blocks = [node.block.name for node in graph]
    assert blocks.count("self_attention") == 2 and {"class_token", "position_embedding", "select"} <= set(blocks)


def test_maxvit_imports_exactly_as_window_and_grid_attention() -> None:
    # torchvision's MaxViT at a small size (maxvit_t needs maps divisible by 7):
    # two stages of MBConv, block (window) and grid attention, the LayerNorm + Tanh head.
    model = torchvision.models.MaxVit(
        input_size=(64, 64),
        stem_channels=16,
        partition_size=4,
        block_channels=[16, 32],
        block_layers=[1, 1],
        head_dim=8,
        stochastic_depth_prob=0.2,
        num_classes=10,
    )
    for name, p in model.named_parameters():
        if "attn_layer.1." in name:  # the attention: scores far from uniform, so a wrong scale or bias must show
            nn.init.normal_(p, std=0.5)
    graph = assert_exact(model, (3, 64, 64))
    attention = [node.params for node in graph if node.block.name == "window_attention"]
    assert [(p["partition"], p["window_size"], p["scale"]) for p in attention] == 2 * [
        ("window", 4, "channels"),
        ("grid", 4, "channels"),
    ]
    assert not any(node.block.name in ("reshape", "permute") for node in graph)


def test_resnet18_reads_like_the_zoo() -> None:
    # torchvision's ResNet-18: layers of [2, 2, 2, 2] BasicBlocks, widths 64 to 512.
    graph, _ = nas.from_module(torchvision.models.resnet18(), (3, 64, 64))
    stages = [graph.node(f"layer{i}").params for i in range(1, 5)]
    assert [(p["unit"], p["depth"], p["stride"], p["args"]["out_channels"]) for p in stages] == [
        ("basic_block", 2, 1, 64),
        ("basic_block", 2, 2, 128),
        ("basic_block", 2, 2, 256),
        ("basic_block", 2, 2, 512),
    ]
    assert len(graph) == 12


def test_mobilenet_v2_units_are_inverted_residuals() -> None:
    graph, _ = nas.from_module(torchvision.models.mobilenet_v2(), (3, 64, 64))
    blocks = [node.block.name for node in graph]
    # MobileNetV2, Table 2: 17 bottlenecks between the first and the last convolution.
    assert blocks.count("inverted_residual") == 17
    assert blocks.count("conv_bn_act") == 2


def test_mobilenet_v3_units_keep_their_batch_norm_momentum() -> None:
    graph, _ = nas.from_module(torchvision.models.mobilenet_v3_small(), (3, 64, 64))
    units = [node for node in graph if node.block.name == "inverted_residual"]
    # MobileNet v3-Small, Table 2: 11 bneck rows; torchvision's batch norms keep momentum 0.01.
    assert len(units) == 11
    assert {node.params["momentum"] for node in units} == {0.01}
    assert [node.params["kernel_size"] for node in units] == [3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5]


def test_every_command_reads_a_model_spec() -> None:
    graph = nas.build("torchvision:squeezenet1_1", input_shape="3x64x64")
    assert graph.name == "squeezenet1_1"
    assert graph.params == sum(p.numel() for p in torchvision.models.squeezenet1_1().parameters())
    assert graph.summary.inputs == {"x": (3, 64, 64)}
    with pytest.raises(nas.NASError, match="torchvision has no model 'resnet19'"):
        nas.build("torchvision:resnet19")


class Spectrum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.fft.fft2(self.conv(x)).abs())


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.spectrum = Spectrum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spectrum(x)


def test_an_operation_without_a_block_is_one_line_with_the_module_path() -> None:
    with pytest.raises(UnsupportedOperationError) as caught:
        nas.from_module(Net(), (3, 8, 8))
    text = str(caught.value)
    assert "\n" not in text
    assert "node 'spectrum'" in text and "torch.fft.fft2" in text
    assert "1 of 5 operations imported before it" in text
    assert "register a block" in text
    assert caught.value.operation == "torch.fft.fft2"  # what a coverage count groups by


class FunctionalPools(nn.Module):
    """Pooling called as functions, positionally and by keyword, as Inception v3 and timm do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv(x), 3, 2, 1)
        x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return F.avg_pool2d(x, 2, ceil_mode=True) + F.max_pool2d(x, kernel_size=2, stride=[], ceil_mode=True)


def test_functional_pooling_imports_exactly() -> None:
    graph = assert_exact(FunctionalPools(), (3, 15, 15))
    kinds = sorted(node.block.name for node in graph if "pool" in node.block.name)
    assert kinds == ["avg_pool2d", "avg_pool2d", "max_pool2d", "max_pool2d"]


class Slices(nn.Module):
    """Channel slices and splits as DPN, GhostNet, ReXNet, Res2Net and MixNet take them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        a, b = torch.split(x, [3, 5], dim=1)
        parts = b.split(2, dim=1)  # parts of 2, 2 and 1 channels
        c = torch.cat([parts[0].relu(), parts[1], parts[2]], dim=1)
        return torch.cat([a + x[:, 5:], c[:, :4, :, :], x[:, -1:]], dim=1)


def test_channel_slices_and_splits_import_exactly() -> None:
    graph = assert_exact(Slices(), (3, 9, 9))
    assert sum(node.block.name == "narrow" for node in graph) == 8  # 2 + 3 parts and 3 slices


class Arithmetic(nn.Module):
    """Numbers and differences: a scale, a mean of two heads, a difference of maps, a group norm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.norm = nn.GroupNorm(3, 6)
        self.scale, self.shift = nn.Parameter(torch.rand(6) + 0.5), nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        y = F.group_norm(x, 2, self.scale, self.shift, 1e-6)
        return (0.5 * x - F.avg_pool2d(y, 3, 1, 1)) / 3 + torch.sub(x, y) * 2


def test_numbers_differences_and_group_norms_import_exactly() -> None:
    graph = assert_exact(Arithmetic(), (3, 9, 9))
    assert sorted(node.params["factor"] for node in graph if node.block.name == "scale") == pytest.approx(
        [-1, -1, 1 / 3, 0.5, 2]
    )
    assert [node.params.get("groups", 1) for node in graph if node.block.name == "group_norm"] == [3, 2]


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_an_untraceable_module_is_one_error() -> None:
    with pytest.raises(nas.NASError, match=r"torch\.fx cannot trace Branchy"):
        nas.from_module(Branchy(), (3, 4, 4))


def test_the_module_keeps_its_training_mode() -> None:
    model = torchvision.models.resnet18().train()
    nas.from_module(model, (3, 32, 32))
    assert model.training


def test_nas_import_writes_an_export_that_loads(tmp_path: Path) -> None:
    torch.manual_seed(3)
    assert main(["import", "torchvision:resnet18", "-o", str(tmp_path / "r18"), "--input", "3x64x64"]) == 0
    torch.manual_seed(3)
    reference = torchvision.models.resnet18().eval()  # the same random weights
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(nas.load(tmp_path / "r18")(x), reference(x), atol=1e-5, rtol=1e-4)
    assert {p.name for p in (tmp_path / "r18").iterdir()} >= {"model.yaml", "model.safetensors", "MODEL.md"}
    assert nas.build(str(tmp_path / "r18")).params == 11_689_512  # torchvision's ResNet-18
    assert "from the import of `torchvision:resnet18`" in (tmp_path / "r18" / "MODEL.md").read_text()


def test_nas_import_reads_a_factory_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "tiny.py"
    source.write_text(
        "from torch import nn\n\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))\n"
    )
    code = main(["import", f"{source}:make", "-o", str(tmp_path / "out"), "--input", "1x8x8"])
    assert code == 0, capsys.readouterr().err
    assert nas.build(str(tmp_path / "out")).params == (4 * 9 + 4) + (144 * 3 + 3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("resnet18", "cannot read the model spec"),
        ("torchvision:no_such_net", "torchvision has no model 'no_such_net'"),
        ("missing.py:make", "no such file"),
    ],
)
def test_nas_import_refuses_a_bad_spec_in_one_line(
    spec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", spec, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("resnet18", 64),
        ("vit_tiny_patch16_224", 224),
        ("convnext_atto", 64),
        ("deit_tiny_distilled_patch16_224", 224),  # two learned tokens, the mean of two heads
        ("poolformer_s12", 64),  # group norm, pool(x) - x
        ("cspresnet50", 64),  # batch norm with a leaky ReLU in one module
        ("dpn68", 64),  # channel slices
        ("mixnet_s", 64),  # torch.split
        ("tf_mobilenetv3_small_100", 65),  # TensorFlow's SAME padding, uneven at stride 2
        ("convnextv2_atto", 64),  # global response norm, channels-last
    ],
)
def test_timm_models_import_exactly(name: str, size: int) -> None:
    import timm

    model = timm.create_model(name, pretrained=False)
    for token in ("cls_token", "dist_token"):
        if hasattr(model, token):
            nn.init.normal_(getattr(model, token))
    for name, p in model.named_parameters():
        if "grn" in name:  # zero at the start: the block would be the identity whatever it computes
            nn.init.normal_(p)
    assert_exact(model, (3, size, size))


def timm_swin(image: int) -> nn.Module:
    """timm's Swin at a small size: windows of 7, two stages, the second
    after a patch merging; the attention's weights far from their init, so
    that a wrong bias index or mask shows in the outputs."""
    from timm.models.swin_transformer import SwinTransformer

    model = SwinTransformer(
        img_size=image, patch_size=4, window_size=7, embed_dim=32, depths=(2, 2), num_heads=(2, 4), num_classes=10
    )
    for name, p in model.named_parameters():
        if ".attn." in name:
            nn.init.normal_(p, std=0.5)
    return model


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_swin_imports_exactly_as_window_attention() -> None:
    # 56 x 56 images: a 14 x 14 map (two windows a side, shifted in every other
    # block), then 7 x 7, which one window covers (no shift).
    graph = assert_exact(timm_swin(56), (3, 56, 56))
    attention = [node.params for node in graph if node.block.name == "window_attention"]
    assert [(p["window_size"], p["shift_size"]) for p in attention] == [(7, 0), (7, 3), (7, 0), (7, 0)]
    assert [node.block.name for node in graph].count("space_to_depth") == 1


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_swin_refuses_a_shifted_map_it_would_pad() -> None:
    # 16 x 16 maps in windows of 7: timm shifts before it pads, torchvision (and the block) after.
    with pytest.raises(UnsupportedOperationError, match="shifted window attention of a \\(16, 16\\) map"):
        nas.from_module(timm_swin(64), (3, 64, 64))
