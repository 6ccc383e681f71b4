"""Inception v1 to v3 against torchvision, the papers, and the Caffe model.

* GoogLeNet and Inception v3: parameters exactly, MACs within 1% and outputs
  with copied weights equal to ``torchvision.models.googlenet`` and
  ``inception_v3`` (without auxiliary classifiers and input transform).
* BN-Inception (Ioffe & Szegedy, arXiv:1502.03167, Figure 5): no reference
  library has it. Its widths and output sizes are checked against the
  paper's table, and its layer shapes and parameter count against the
  released Caffe model as ported in Cadene/pretrained-models.pytorch
  (``pretrainedmodels/models/bninception.py``), transcribed below.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torchvision
from torch import nn
from torchvision.models.googlenet import BasicConv2d, Inception

import nas
from tests.reference import assert_same_function, copy_weights, randomize_batch_norm, reference_macs

TORCHVISION: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "googlenet": (
        lambda: torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=True),
        (3, 224, 224),
    ),
    "inception_v3": (
        lambda: torchvision.models.inception_v3(
            weights=None, aux_logits=False, transform_input=False, init_weights=True
        ),
        (3, 299, 299),
    ),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_params_and_macs_equal_torchvision(name: str) -> None:
    make, shape = TORCHVISION[name]
    g = nas.build(name)
    reference = make()
    assert g.summary.inputs["x"] == shape
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert g.macs == pytest.approx(reference_macs(reference, shape), rel=0.01)


@pytest.mark.parametrize(("name", "shape"), [("googlenet", (3, 112, 112)), ("inception_v3", (3, 107, 107))])
def test_same_outputs_as_torchvision_with_its_weights(name: str, shape: tuple[int, int, int]) -> None:
    reference = TORCHVISION[name][0]()
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build(name))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, shape)


def test_inception_v3_grid_sizes_match_the_paper() -> None:
    """Szegedy et al., "Rethinking the Inception Architecture", arXiv:1512.00567,
    Table 1: the three Inception modules work on 35x35x288, the five on
    17x17x768, the two on 8x8x1280, and the final pooling reads 8x8x2048."""
    g = nas.build("inception_v3")
    shape = {node.name: node.meta["shapes"][0] for node in g}
    assert shape["maxpool2"][1:] == (35, 35)
    assert shape["Mixed_5d"] == (288, 35, 35)
    assert shape["Mixed_6e"] == (768, 17, 17)
    assert shape["Mixed_7a"] == (1280, 8, 8)
    assert shape["Mixed_7c"] == (2048, 8, 8)


# BN-Inception, module by module: the columns of the paper's table (#1x1,
# #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool projection; 0 for
# "pass through") and the input channels of each module in the Caffe model.
BN_INCEPTION = {
    # name: (input channels, #1x1, #3x3 reduce, #3x3, dbl reduce, dbl, pool proj)
    "inception_3a": (192, 64, 64, 64, 64, 96, 32),
    "inception_3b": (256, 64, 64, 96, 64, 96, 64),
    "inception_3c": (320, 0, 128, 160, 64, 96, 0),
    "inception_4a": (576, 224, 64, 96, 96, 128, 128),
    "inception_4b": (576, 192, 96, 128, 96, 128, 128),
    "inception_4c": (576, 160, 128, 160, 128, 160, 128),
    "inception_4d": (608, 96, 128, 192, 160, 192, 128),
    "inception_4e": (608, 0, 128, 192, 192, 256, 0),
    "inception_5a": (1056, 352, 192, 320, 160, 224, 128),
    "inception_5b": (1024, 352, 192, 320, 192, 224, 128),
}


def _caffe_conv_shapes() -> list[tuple[int, ...]]:
    """The Caffe model's convolution weights, in the order it declares them."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64, 64, 1, 1), (192, 64, 3, 3)]
    for cin, ch1x1, red, ch3x3, dbl_red, dbl, proj in BN_INCEPTION.values():
        if ch1x1:
            shapes.append((ch1x1, cin, 1, 1))
        shapes += [(red, cin, 1, 1), (ch3x3, red, 3, 3), (dbl_red, cin, 1, 1), (dbl, dbl_red, 3, 3), (dbl, dbl, 3, 3)]
        if proj:
            shapes.append((proj, cin, 1, 1))
    return shapes


def test_bn_inception_layers_equal_the_caffe_model() -> None:
    """Every convolution of the Caffe model (with a bias, then batch norm),
    in order, then the 1024 -> 1000 classifier."""
    params = dict(nas.lower(nas.build("bn_inception")).named_parameters())
    convs = [tuple(p.shape) for p in params.values() if p.dim() == 4]
    assert convs == _caffe_conv_shapes()
    assert sum(key.endswith("conv.bias") for key in params) == len(convs)
    assert tuple(params["fc.weight"].shape) == (1000, 1024)


def test_bn_inception_params_equal_the_caffe_model() -> None:
    """Weights and biases of every convolution, the scale and shift of its
    batch norm, and the classifier."""
    convs = _caffe_conv_shapes()
    expected = sum(o * i * kh * kw + 3 * o for o, i, kh, kw in convs) + 1024 * 1000 + 1000
    assert nas.build("bn_inception").params == expected


def test_bn_inception_output_sizes_match_the_paper() -> None:
    """Ioffe & Szegedy, arXiv:1502.03167, Figure 5: 112x112x64 after the
    first convolution, 56x56x192 after the second, 28x28 modules of 256 and
    320 channels, 14x14 modules of 576, and 7x7x1024 at the end. The table's
    output column also says 576 after 4c and 4d and 1024 after 4e, but its
    branch columns sum to 608, 608 and 1056, which the Caffe model uses (the
    input channels above); the sums are asserted here."""
    g = nas.build("bn_inception")
    shape = {node.name: node.meta["shapes"][0] for node in g}
    assert shape["conv1_7x7_s2"] == (64, 112, 112)
    assert shape["pool1_3x3_s2"] == (64, 56, 56)
    assert shape["conv2_3x3"] == (192, 56, 56)
    assert shape["pool2_3x3_s2"] == (192, 28, 28)
    assert shape["inception_3a"] == (256, 28, 28)
    assert shape["inception_3b"] == (320, 28, 28)
    for name in ("inception_3c", "inception_4a", "inception_4b"):
        assert shape[name] == (576, 14, 14)
    assert shape["inception_4c"] == (160 + 160 + 160 + 128, 14, 14)
    assert shape["inception_4d"] == (96 + 192 + 192 + 128, 14, 14)
    assert shape["inception_4e"] == (192 + 256 + shape["inception_4d"][0], 7, 7)
    assert shape["inception_5a"] == shape["inception_5b"] == (1024, 7, 7)
    assert g.summary.outputs == [(1000,)]


def test_inception_v1_module_with_the_papers_5x5_matches_torchvision_with_5x5() -> None:
    """``kernel_5x5: 5`` is the paper's module: torchvision's ``Inception``
    with its 3x3 swapped for the 5x5 of arXiv:1409.4842, Figure 2(b)."""
    reference = Inception(192, 64, 96, 128, 16, 32, 32)
    reference.branch3[1] = BasicConv2d(16, 32, kernel_size=5, padding=2)
    g = nas.Graph("inception3a")
    x = g.add_input("x", (192, 28, 28))
    g.set_outputs(g.add("inception3a", "inception_v1", x, ch5x5=32, kernel_5x5=5))
    g = nas.build(g)
    ours = nas.lower(g)
    randomize_batch_norm(reference)
    copy_weights(reference, ours)
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert_same_function(ours, reference, (192, 28, 28))
