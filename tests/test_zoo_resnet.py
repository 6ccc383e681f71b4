"""ResNets against torchvision (ImageNet) and the paper (CIFAR).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385. Table 6 lists the CIFAR-10 nets' parameters: 0.27M, 0.46M,
0.66M, 0.85M, 1.7M and 19.4M for 20, 32, 44, 56, 110 and 1202 layers.
"""

from __future__ import annotations

import pytest
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
