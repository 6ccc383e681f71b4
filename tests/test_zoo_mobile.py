"""The efficient nets (SqueezeNet, MobileNet v1, Xception) against torchvision,
timm and their papers.

* Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer
  parameters and <0.5MB model size", arXiv:1602.07360, Table 1: layer output
  sizes and parameters per layer, 1,248,424 in all (before pruning).
* Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
  Mobile Vision Applications", arXiv:1704.04861, Table 1 (the layers of the
  1.0 net) and Table 6 (width multipliers: 4.2M / 569M mult-adds at 1.0,
  2.6M / 325M at 0.75, 1.3M / 149M at 0.5, 0.5M / 41M at 0.25).
* Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions",
  arXiv:1610.02357, Table 3: 22,855,952 parameters.
"""

from __future__ import annotations

import pytest
import timm
import torchvision

import nas
from tests.reference import assert_same_function, copy_weights, randomize_batch_norm, reference_macs

# -- SqueezeNet --------------------------------------------------------------


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_params_and_macs_equal_torchvision(name: str) -> None:
    g = nas.build(name)
    reference = getattr(torchvision.models, name)()
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert g.macs == pytest.approx(reference_macs(reference, (3, 224, 224)), rel=0.01)


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_same_outputs_as_torchvision_with_its_weights(name: str) -> None:
    reference = getattr(torchvision.models, name)()
    ours = nas.lower(nas.build(name))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 224, 224))


def test_squeezenet1_0_matches_table_1() -> None:
    """Table 1 of the paper, parameters before pruning and output sizes.

    The table's header says 224x224 but its conv1 output, 111x111, is that of
    the 227x227 crop of the Caffe release, so the sizes are checked there.
    """
    g = nas.build("squeezenet1_0")
    g.set_params("x", shape=[3, 227, 227])
    g = nas.build(g)
    params = {
        "conv1": 14_208,
        "fire2": 11_920,
        "fire3": 12_432,
        "fire4": 45_344,
        "fire5": 49_440,
        "fire6": 104_880,
        "fire7": 111_024,
        "fire8": 188_992,
        "fire9": 197_184,
        "conv10": 513_000,
    }
    assert {name: g.node(name).meta["cost"].params for name in params} == params
    assert g.params == 1_248_424
    sizes = {
        "conv1": (96, 111, 111),
        "maxpool1": (96, 55, 55),
        "fire2": (128, 55, 55),
        "fire3": (128, 55, 55),
        "fire4": (256, 55, 55),
        "maxpool4": (256, 27, 27),
        "fire5": (256, 27, 27),
        "fire6": (384, 27, 27),
        "fire7": (384, 27, 27),
        "fire8": (512, 27, 27),
        "maxpool8": (512, 13, 13),
        "fire9": (512, 13, 13),
        "conv10": (1000, 13, 13),
        "avgpool10": (1000, 1, 1),
    }
    assert {name: g.node(name).meta["shapes"][0] for name in sizes} == sizes


# -- MobileNet v1 ------------------------------------------------------------

MOBILENETS = ["mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_050", "mobilenet_v1_025"]


def test_mobilenet_v1_params_and_macs_equal_timm() -> None:
    g = nas.build("mobilenet_v1")
    reference = timm.create_model("mobilenetv1_100", pretrained=False)
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert g.macs == pytest.approx(reference_macs(reference, (3, 224, 224)), rel=0.01)


def test_mobilenet_v1_same_outputs_as_timm_with_its_weights() -> None:
    reference = timm.create_model("mobilenetv1_100", pretrained=False)
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build("mobilenet_v1"))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 128, 128))


def test_mobilenet_v1_is_table_1() -> None:
    """Table 1, row by row: (type, stride, kernel, input channels, filters,
    input size). The table prints "Conv dw / s2" for the last depthwise layer,
    but its input sizes (7x7 before and after) show stride 1, as in the
    authors' TensorFlow release."""
    table = [
        ("conv", 2, 3, 3, 32, 224),
        ("dw", 1, 3, 32, 32, 112),
        ("conv", 1, 1, 32, 64, 112),
        ("dw", 2, 3, 64, 64, 112),
        ("conv", 1, 1, 64, 128, 56),
        ("dw", 1, 3, 128, 128, 56),
        ("conv", 1, 1, 128, 128, 56),
        ("dw", 2, 3, 128, 128, 56),
        ("conv", 1, 1, 128, 256, 28),
        ("dw", 1, 3, 256, 256, 28),
        ("conv", 1, 1, 256, 256, 28),
        ("dw", 2, 3, 256, 256, 28),
        ("conv", 1, 1, 256, 512, 14),
        *[("dw", 1, 3, 512, 512, 14), ("conv", 1, 1, 512, 512, 14)] * 5,
        ("dw", 2, 3, 512, 512, 14),
        ("conv", 1, 1, 512, 1024, 7),
        ("dw", 1, 3, 1024, 1024, 7),
        ("conv", 1, 1, 1024, 1024, 7),
    ]
    flat = nas.flatten(nas.build("mobilenet_v1"))
    rows = []
    for node in flat.summary.order:
        if node.block.name != "conv2d":
            continue
        ref = flat.inputs(node.name)[0]
        channels, size, _ = flat.node(ref.node).meta["shapes"][ref.output]
        p = node.params
        kind = "dw" if p.groups == channels > 1 else "conv"
        rows.append((kind, p.stride, p.kernel_size, channels, p.out_channels, size))
    assert rows == table
    kinds = [n.block.name for n in flat.summary.order]
    # Every convolution is followed by batch norm and an activation; then avg pool 7x7, FC 1024x1000.
    assert kinds.count("batch_norm") == kinds.count("relu6") == 27
    assert kinds[-3:] == ["adaptive_avg_pool2d", "flatten", "linear"]
    assert flat.node(flat.inputs(flat.summary.order[-3].name)[0].node).meta["shapes"][0] == (1024, 7, 7)
    assert flat.summary.outputs == [(1000,)]


@pytest.mark.parametrize(
    ("name", "millions_of_params", "millions_of_macs"),
    [
        ("mobilenet_v1", 4.2, 569),
        ("mobilenet_v1_075", 2.6, 325),
        ("mobilenet_v1_050", 1.3, 149),
        ("mobilenet_v1_025", 0.5, 41),
    ],
)
def test_mobilenet_v1_widths_match_table_6(name: str, millions_of_params: float, millions_of_macs: int) -> None:
    g = nas.build(name)
    assert round(g.params / 1e6, 1) == millions_of_params
    assert round(g.macs / 1e6) == millions_of_macs


# -- Xception ----------------------------------------------------------------


def test_xception_params_and_macs_equal_timm() -> None:
    g = nas.build("xception")
    reference = timm.create_model("legacy_xception", pretrained=False)
    assert g.params == sum(p.numel() for p in reference.parameters()) == 22_855_952
    assert g.macs == pytest.approx(reference_macs(reference, (3, 299, 299)), rel=0.01)


def test_xception_same_outputs_as_timm_with_its_weights() -> None:
    reference = timm.create_model("legacy_xception", pretrained=False)
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build("xception"))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 160, 160))
