"""The early classic nets against torchvision, the papers' own figures, and
PyTorch transcriptions of the papers' layer tables.

* LeNet-5: LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied
  to Document Recognition", Proc. IEEE 1998. Section II.B gives each layer's
  maps, sizes, trainable parameters and connections (C1: 6@28x28, 156
  parameters, 122,304 connections; S2: 6@14x14, 12 parameters; C3: 16@10x10,
  1,516 parameters, 151,600 connections; S4: 16@5x5, 32 parameters; C5: 120
  units, 48,120 connections; F6: 84 units, 10,164 parameters); Table I wires
  C3; the paper counts 60,000 trainable parameters in all.
* Ciresan et al. 2010, "Deep, Big, Simple Neural Nets for Handwritten Digit
  Recognition", Table 1: the 2500-2000-1500-1000-500-10 MLP has 12.11 million
  weights. Ciresan et al. 2012, "Multi-column Deep Neural Networks for Image
  Classification", section 3.1: 1x29x29-20C4-MP2-40C5-MP3-150N-10N.
* AlexNet: torchvision.models.alexnet; the original of Krizhevsky et al. 2012
  against section 3.5 ("60 million parameters"; layer outputs of 186,624,
  64,896, 64,896, 43,264, 4096, 4096 and 1000 neurons after conv1) and a
  two-tower transcription with the LRN formula of section 3.3.
* OverFeat (Sermanet et al. 2013): Table 1 (fast model) and Table 3 (145
  million parameters).
* VGG: torchvision.models.vgg*, and Table 2 of Simonyan & Zisserman 2015
  (133, 133, 138 and 144 million parameters for A, B, D and E).
* NiN (Lin et al. 2013): transcriptions of the authors' Caffe definitions.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import nas
from tests.reference import assert_same_function, copy_weights, randomize_batch_norm, reference_macs


def _shape(g: nas.Graph, name: str) -> tuple[int, ...]:
    return g.node(name).meta["shapes"][0]


# --------------------------------------------------------------------------
# LeNet-5

# Table I of the paper as printed: one row per S2 map, one column per C3 map,
# an X where they are connected.
TABLE_I = (
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)


def test_lenet5_c3_is_wired_by_table_i() -> None:
    columns = tuple(tuple(i for i, row in enumerate(TABLE_I) if row[j] == "X") for j in range(16))
    assert nas.build("lenet5").node("c3").params["table"] == columns


def test_lenet5_layers_match_the_paper() -> None:
    g = nas.build("lenet5")
    params = {name: g.node(name).meta["cost"].params for name in ("c1", "s2", "c3", "s4", "c5", "f6")}
    assert params == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    assert g.params == 60_000  # the RBF centres are fixed, not trained
    shapes = {name: _shape(g, name) for name in ("c1", "s2", "c3", "s4", "c5", "f6", "output")}
    assert shapes == {
        "c1": (6, 28, 28),
        "s2": (6, 14, 14),
        "c3": (16, 10, 10),
        "s4": (16, 5, 5),
        "c5": (120, 1, 1),
        "f6": (84,),
        "output": (10,),
    }
    # The paper's connections of a weighted layer: multiply-accumulates plus
    # one bias connection per output.
    connections = {
        name: g.node(name).meta["cost"].macs + torch.Size(_shape(g, name)).numel() for name in ("c1", "c3", "c5", "f6")
    }
    assert connections == {"c1": 122_304, "c3": 151_600, "c5": 48_120, "f6": 10_164}


def test_scaled_tanh_maps_one_to_one() -> None:
    """Appendix A: the constants are chosen so that f(1) = 1 and f(-1) = -1."""
    module = nas.lower(nas.build("inputs: {x: [2]}\nnodes:\n  f: {block: scaled_tanh, in: x}\noutputs: [f]\n"))
    torch.testing.assert_close(module(torch.tensor([[1.0, -1.0]])), torch.tensor([[1.0, -1.0]]), atol=1e-4, rtol=0)


def test_partial_conv2d_is_a_convolution_with_unconnected_kernels_zeroed() -> None:
    g = nas.build("lenet5")
    ours = nas.lower(g)
    c3 = ours.get_submodule("c3")
    table = g.node("c3").params["table"]
    dense = torch.zeros(16, 6, 5, 5)
    kernels = iter(c3.weight)
    for j, row in enumerate(table):
        for i in row:
            dense[j, i] = next(kernels)
    x = torch.randn(2, 6, 14, 14)
    with torch.no_grad():
        torch.testing.assert_close(c3(x), F.conv2d(x, dense, c3.bias))


def test_subsampling_adds_four_inputs_then_scales_and_shifts() -> None:
    """Section II.B: "the four inputs to a unit in S2 are added, then
    multiplied by a trainable coefficient, and added to a trainable bias"."""
    s2 = nas.lower(nas.build("lenet5")).get_submodule("s2")
    with torch.no_grad():
        s2.weight.copy_(torch.randn(6))
        s2.bias.copy_(torch.randn(6))
        x = torch.randn(2, 6, 28, 28)
        total = x[:, :, ::2, ::2] + x[:, :, 1::2, ::2] + x[:, :, ::2, 1::2] + x[:, :, 1::2, 1::2]
        torch.testing.assert_close(s2(x), total * s2.weight.view(1, 6, 1, 1) + s2.bias.view(1, 6, 1, 1))


def test_rbf_outputs_are_squared_distances_to_the_centres() -> None:
    rbf = nas.lower(nas.build("lenet5")).get_submodule("output")
    x = torch.randn(3, 84)
    expected = ((x[:, None, :] - rbf.centres[None]) ** 2).sum(-1)
    torch.testing.assert_close(rbf(x), expected, atol=1e-4, rtol=1e-5)


def test_rbf_centres_are_fixed_codes_nested_across_widths() -> None:
    """The same +-1 codes at every lowering, a narrower input's the leading
    columns of a wider one's (a supernet's windows are leading features)."""
    torch.manual_seed(0)
    narrow = nas.lower(nas.build("lenet5")).get_submodule("output").centres
    torch.manual_seed(1)
    again = nas.lower(nas.build("lenet5")).get_submodule("output").centres
    text = "inputs: {x: [100]}\nnodes:\n  rbf: {block: euclidean_rbf, in: x, out_features: 10}\noutputs: [rbf]\n"
    wide = nas.lower(nas.build(text))
    assert torch.equal(narrow, again) and set(narrow.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(wide.get_submodule("rbf").centres[:, :84], narrow)


# --------------------------------------------------------------------------
# Ciresan


def test_ciresan_mlp_has_the_weights_of_table_1() -> None:
    g = nas.build("ciresan_mlp")
    assert [_shape(g, f"fc{i}") for i in range(1, 7)] == [(2500,), (2000,), (1500,), (1000,), (500,), (10,)]
    assert 12.11e6 <= g.params < 12.12e6  # "12.11" million weights, to two decimals


def _scaled_tanh(x: torch.Tensor) -> torch.Tensor:
    return 1.7159 * torch.tanh(2 / 3 * x)


class _Lambda(nn.Module):
    def __init__(self, fn: object) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)  # type: ignore[operator]


def test_ciresan_cnn_matches_its_notation() -> None:
    """1x29x29-20C4-MP2-40C5-MP3-150N-10N, transcribed layer by layer."""
    act = _Lambda(_scaled_tanh)
    reference = nn.Sequential(
        nn.Conv2d(1, 20, 4), act, nn.MaxPool2d(2),
        nn.Conv2d(20, 40, 5), act, nn.MaxPool2d(3),
        nn.Flatten(), nn.Linear(40 * 3 * 3, 150), act, nn.Linear(150, 10),
    )  # fmt: skip
    g = nas.build("ciresan_cnn")
    assert [_shape(g, n) for n in ("conv1", "pool1", "conv2", "pool2", "fc1", "fc2")] == [
        (20, 26, 26),
        (20, 13, 13),
        (40, 9, 9),
        (40, 3, 3),
        (150,),
        (10,),
    ]
    assert g.params == sum(p.numel() for p in reference.parameters())
    ours = nas.lower(g)
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (1, 29, 29))


# --------------------------------------------------------------------------
# AlexNet


def test_alexnet_equals_torchvision() -> None:
    g = nas.build("alexnet")
    reference = torchvision.models.alexnet()
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert g.macs == pytest.approx(reference_macs(reference, (3, 224, 224)), rel=0.01)
    ours = nas.lower(g)
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 64, 64))


def test_alexnet_paper_matches_section_3_5() -> None:
    g = nas.build("alexnet_paper")
    assert 60e6 <= g.params < 61e6  # "60 million parameters"
    neurons = [torch.Size(_shape(g, n)).numel() for n in ("conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")]
    assert neurons == [186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert _shape(g, "conv1") == (96, 55, 55)  # Figure 2


def _paper_lrn(a: torch.Tensor, k: float = 2, n: int = 5, alpha: float = 1e-4, beta: float = 0.75) -> torch.Tensor:
    """Section 3.3: b_i = a_i / (k + alpha * sum over the n maps around i of a_j^2) ** beta."""
    squares = F.pad(a.pow(2), (0, 0, 0, 0, n // 2, n // 2))
    sums = sum(squares[:, j : j + a.shape[1]] for j in range(n))
    return a / (k + alpha * sums) ** beta


class _TwoTowerAlexNet(nn.Module):
    """Figure 2 with its two GPUs made explicit: conv2, conv4 and conv5 of
    each tower see only their own tower's maps; conv1, conv3 and the fully
    connected layers see everything, so they are single layers here."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, 4)
        self.conv2 = nn.ModuleList(nn.Conv2d(48, 128, 5, padding=2) for _ in range(2))
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.ModuleList(nn.Conv2d(192, 192, 3, padding=1) for _ in range(2))
        self.conv5 = nn.ModuleList(nn.Conv2d(192, 128, 3, padding=1) for _ in range(2))
        self.fc6, self.fc7, self.fc8 = nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000)

    @staticmethod
    def _towers(x: torch.Tensor, convs: nn.ModuleList) -> torch.Tensor:
        return torch.cat([conv(half) for conv, half in zip(convs, x.chunk(2, dim=1))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.MaxPool2d(3, 2)
        x = pool(_paper_lrn(F.relu(self.conv1(x))))
        x = pool(_paper_lrn(F.relu(self._towers(x, self.conv2))))
        x = F.relu(self.conv3(x))
        x = F.relu(self._towers(x, self.conv4))
        x = pool(F.relu(self._towers(x, self.conv5)))
        x = F.relu(self.fc6(x.flatten(1)))
        return self.fc8(F.relu(self.fc7(x)))


def test_alexnet_paper_equals_two_towers_with_the_papers_lrn() -> None:
    reference = _TwoTowerAlexNet()
    g = nas.build("alexnet_paper")
    assert g.params == sum(p.numel() for p in reference.parameters())
    ours = nas.lower(g)
    state = {}
    for name, module in reference.named_children():
        key = f"{name}.conv" if name.startswith("conv") else name
        for kind in ("weight", "bias"):
            tensors = (
                [getattr(m, kind) for m in module] if isinstance(module, nn.ModuleList) else [getattr(module, kind)]
            )
            state[f"{key}.{kind}"] = torch.cat(tensors)
    ours.load_state_dict(state)
    # Pixel-scale inputs (the paper feeds raw, mean-centred RGB values), so
    # that the normalisation is far from the identity and a wrong alpha shows.
    x = torch.randn(1, 3, 227, 227) * 64
    with torch.inference_mode():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------
# OverFeat


def test_overfeat_fast_matches_tables_1_and_3() -> None:
    g = nas.build("overfeat_fast")
    layers = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    assert [_shape(g, n)[0] for n in layers] == [96, 256, 512, 1024, 1024, 3072, 4096, 1000]
    kernels = [g.node(n).params["kernel_size"] for n in layers[:5]]
    assert kernels == [11, 5, 3, 3, 3]
    assert [_shape(g, n)[1:] for n in ("conv2", "conv3", "conv4", "conv5", "pool5")] == [
        (24, 24),
        (12, 12),
        (12, 12),
        (12, 12),
        (6, 6),
    ]
    assert 145e6 <= g.params < 146e6  # Table 3: 145 million parameters


# --------------------------------------------------------------------------
# VGG

VGG = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


@pytest.mark.parametrize("name", VGG)
def test_vgg_equals_torchvision(name: str) -> None:
    g = nas.build(name)
    reference = getattr(torchvision.models, name)()
    assert g.params == sum(p.numel() for p in reference.parameters())
    randomize_batch_norm(reference)
    ours = nas.lower(g)
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 64, 64), batch=1)


@pytest.mark.parametrize(("name", "millions"), [("vgg11", 133), ("vgg13", 133), ("vgg16", 138), ("vgg19", 144)])
def test_vgg_params_match_table_2_of_the_paper(name: str, millions: int) -> None:
    assert round(nas.build(name).params / 1e6) == millions


@pytest.mark.slow
@pytest.mark.parametrize("name", VGG)
def test_vgg_macs_equal_torchvision(name: str) -> None:
    reference = getattr(torchvision.models, name)()
    assert nas.build(name).macs == pytest.approx(reference_macs(reference, (3, 224, 224)), rel=0.01)


# --------------------------------------------------------------------------
# NiN


def _caffe_nin(layers: list[tuple[int, int, int, int] | str], channels: int) -> nn.Sequential:
    """A Caffe definition as a list of (maps, kernel, stride, pad) convolutions,
    each followed by ReLU, and pooling layers ("max", "ave", "drop",
    "global")."""
    modules: list[nn.Module] = []
    for layer in layers:
        if layer == "max":
            modules.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        elif layer == "ave":
            modules.append(nn.AvgPool2d(3, 2, ceil_mode=True))
        elif layer == "drop":
            modules.append(nn.Dropout(0.5))
        elif layer == "global":
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            maps, kernel, stride, pad = layer  # type: ignore[misc]
            modules += [nn.Conv2d(channels, maps, kernel, stride, pad), nn.ReLU()]
            channels = maps
    return nn.Sequential(*modules)


def test_nin_equals_the_caffe_model_zoo_definition() -> None:
    """nin_imagenet: conv1 96 11x11/4, cccp1 96, cccp2 96, pool0 3x3/2,
    conv2 256 5x5 pad 2, cccp3 256, cccp4 256, pool2, conv3 384 3x3 pad 1,
    cccp5 384, cccp6 384, pool3, drop, conv4-1024 1024 3x3 pad 1, cccp7-1024
    1024, cccp8-1024 1000, pool4 6x6 average."""
    reference = _caffe_nin(
        [(96, 11, 4, 0), (96, 1, 1, 0), (96, 1, 1, 0), "max",
         (256, 5, 1, 2), (256, 1, 1, 0), (256, 1, 1, 0), "max",
         (384, 3, 1, 1), (384, 1, 1, 0), (384, 1, 1, 0), "max", "drop",
         (1024, 3, 1, 1), (1024, 1, 1, 0), (1000, 1, 1, 0), "global"],
        3,
    )  # fmt: skip
    g = nas.build("nin")
    assert [_shape(g, n)[1] for n in ("mlpconv1", "pool1", "pool2", "pool3")] == [54, 27, 13, 6]
    assert g.params == sum(p.numel() for p in reference.parameters())
    ours = nas.lower(g)
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 224, 224), batch=1)


def test_nin_cifar_equals_the_released_definition() -> None:
    """Section 4.1: three mlpconv layers, global average pooling, dropout
    after the first two; widths from the released CIFAR-10 definition."""
    reference = _caffe_nin(
        [(192, 5, 1, 2), (160, 1, 1, 0), (96, 1, 1, 0), "max", "drop",
         (192, 5, 1, 2), (192, 1, 1, 0), (192, 1, 1, 0), "ave", "drop",
         (192, 3, 1, 1), (192, 1, 1, 0), (10, 1, 1, 0), "global"],
        3,
    )  # fmt: skip
    g = nas.build("nin_cifar")
    assert [_shape(g, n)[1] for n in ("mlpconv1", "pool1", "pool2")] == [32, 16, 8]
    assert g.params == sum(p.numel() for p in reference.parameters())
    ours = nas.lower(g)
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 32, 32))
