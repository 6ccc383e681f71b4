"""Inception-v4 and Inception-ResNet-v2 against timm and the paper.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", arXiv:1602.07261. Figure 3 gives
the shapes through the stem (149x149x32, 147x147x32, 147x147x64, 73x73x160,
71x71x192, 35x35x384) and Figure 9 the grid entering each stage of
Inception-v4 (35x35x384, 17x17x1024, 8x8x1536). timm builds both nets as
TF-slim does; its Inception-ResNet-v2 has a different stem than Figure 3,
so it is checked against timm only.
"""

from __future__ import annotations

import pytest
import timm

import nas
from tests.reference import assert_same_function, copy_weights, randomize_batch_norm, reference_macs

NAMES = ["inception_v4", "inception_resnet_v2"]


@pytest.mark.parametrize("name", NAMES)
def test_params_and_macs_equal_timm(name: str) -> None:
    g = nas.build(name)
    reference = timm.create_model(name, pretrained=False)
    assert g.params == sum(p.numel() for p in reference.parameters())
    assert g.macs == pytest.approx(reference_macs(reference, (3, 299, 299)), rel=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_same_outputs_as_timm_with_its_weights(name: str) -> None:
    # 139x139 is the smallest input that leaves a 3x3 grid (not 1x1) for the
    # last modules, so their padding and border pooling are exercised too.
    reference = timm.create_model(name, pretrained=False)
    randomize_batch_norm(reference)
    ours = nas.lower(nas.build(name))
    copy_weights(reference, ours)
    assert_same_function(ours, reference, (3, 139, 139))


def test_inception_v4_shapes_match_figures_3_and_9() -> None:
    g = nas.build("inception_v4")
    shapes = {node.name: node.meta["shapes"][0] for node in g.summary.order}
    assert [shapes[n] for n in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "mixed_3a", "mixed_4a", "mixed_5a")] == [
        (32, 149, 149),
        (32, 147, 147),
        (64, 147, 147),
        (160, 73, 73),
        (192, 71, 71),
        (384, 35, 35),
    ]
    assert [shapes[n] for n in ("inception_a", "reduction_a", "reduction_b", "inception_c")] == [
        (384, 35, 35),
        (1024, 17, 17),
        (1536, 8, 8),
        (1536, 8, 8),
    ]
    assert g.summary.outputs == [(1000,)]
