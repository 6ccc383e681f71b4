"""ResNets against torchvision (ImageNet) and the paper (CIFAR).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385. Table 6 lists the CIFAR-10 nets' parameters: 0.27M, 0.46M,
0.66M, 0.85M, 1.7M and 19.4M for 20, 32, 44, 56, 110 and 1202 layers.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import nas
from tests.reference import assert_same_function, copy_weights, randomize_batch_norm, reference_macs

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


@pytest.mark.parametrize("name", IMAGENET)
def test_params_and_macs_equal_torchvision(name: str) -> None:
    g = nas.build(name)
    reference = getattr(torchvision.models, name)()
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert g.macs == pytest.approx(reference_macs(reference, (3, 224, 224)), rel=0.01)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_same_outputs_as_torchvision_with_its_weights(name: str) -> None:
    reference = getattr(torchvision.models, name)()
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build(name))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 160, 160))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet34", "resnet101", "resnet152"])
def test_deeper_resnets_same_outputs_as_torchvision(name: str) -> None:
    reference = getattr(torchvision.models, name)()
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build(name))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 96, 96), batch=1)


@pytest.mark.parametrize(
    ("name", "millions"),
    [
        ("resnet20", 0.27),
        ("resnet32", 0.46),
        ("resnet44", 0.66),
        ("resnet56", 0.85),
        ("resnet110", 1.7),
        ("resnet1202", 19.4),
    ],
)
def test_cifar_params_match_the_paper(name: str, millions: float) -> None:
    g = nas.build(name)
    digits = 1 if millions >= 1 else 2
    assert round(g.params / 1e6, digits) == millions
    assert g.summary.inputs["x"] == (3, 32, 32) and g.summary.outputs == [(10,)]
    # Option A shortcuts have no parameters: only 3x3 convolutions, batch norms and the classifier.
    assert "conv_down" not in g.to_yaml()


# The paper's own ImageNet nets (He et al., Table 1): the stride-2 bottlenecks
# subsample on their first 1x1, so every 3x3 of a stage runs on the stage's
# grid. Table 1's bottom row gives 3.8, 7.6 and 11.3 x 10^9 FLOPs (which the
# paper counts as multiply-adds) for 50, 101 and 152 layers; torchvision's
# nets, which subsample on the 3x3 ("ResNet v1.5"), have 4.09, 7.80 and 11.51.
PAPER_V1 = {
    "resnet50_v1": ((3, 4, 6, 3), 3.8),
    "resnet101_v1": ((3, 4, 23, 3), 7.6),
    "resnet152_v1": ((3, 8, 36, 3), 11.3),
}


def _hand_count_v1(depths: tuple[int, ...]) -> int:
    """Table 1's layers counted by hand: the 7x7 stem, then per bottleneck a
    1x1, 3x3 and 1x1 convolution all on the stage's output grid, plus the
    first block's 1x1 projection, and the 1000-way classifier."""
    macs = 7 * 7 * 3 * 64 * 112 * 112
    channels = 64
    for stage, depth in enumerate(depths):
        width, grid = 64 << stage, 56 >> stage
        for block in range(depth):
            macs += grid * grid * (channels * width + 9 * width * width + width * 4 * width)
            if block == 0:
                macs += grid * grid * channels * 4 * width
            channels = 4 * width
    return macs + channels * 1000


@pytest.mark.parametrize("name", PAPER_V1)
def test_paper_v1_nets_match_table_1(name: str) -> None:
    depths, table_gmacs = PAPER_V1[name]
    g = nas.build(name)
    assert g.macs == _hand_count_v1(depths)
    assert abs(g.macs / 1e9 - table_gmacs) < 0.06  # Table 1 gives one decimal
    v15 = nas.build(name.removesuffix("_v1"))
    assert abs(v15.macs / 1e9 - table_gmacs) > 0.19  # torchvision's v1.5 is not the paper's net
    assert g.params == v15.params


def _torchvision_v1(name: str) -> torch.nn.Module:
    """torchvision's net with each stride moved from the 3x3 to the first 1x1."""
    reference = getattr(torchvision.models, name)()
    for module in reference.modules():
        if isinstance(module, torchvision.models.resnet.Bottleneck) and module.conv2.stride != (1, 1):
            module.conv1.stride, module.conv2.stride = module.conv2.stride, (1, 1)
    return reference


def test_resnet50_v1_same_outputs_as_torchvision_with_the_papers_strides() -> None:
    reference = _torchvision_v1("resnet50")
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build("resnet50_v1"))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 160, 160))
