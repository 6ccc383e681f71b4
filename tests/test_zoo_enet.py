"""ENet against its paper.

Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network
Architecture for Real-Time Semantic Segmentation", arXiv:1606.02147.
Table 1 gives the output size of every stage for a 512x512 input: 16x256x256
after the initial block, 64x128x128 after stage 1, 128x64x64 after stages 2
and 3, 64x128x128 after stage 4, 16x256x256 after stage 5 and Cx512x512
after the full convolution. Table 3 gives 0.37M parameters. Section 3: the
decoder's max unpooling uses the indices of the encoder's max pooling, so
the upsampling bottlenecks read the downsampling ones' ``indices`` outputs.
"""

from __future__ import annotations

import pytest
import torch

import nas

TABLE_1 = {
    "initial": (16, 256, 256),
    "bottleneck1_x": (64, 128, 128),
    "bottleneck2_8": (128, 64, 64),
    "bottleneck3_8": (128, 64, 64),
    "bottleneck4_2": (64, 128, 128),
    "bottleneck5_1": (16, 256, 256),
    "fullconv": (19, 512, 512),
}


@pytest.fixture(scope="module")
def enet() -> nas.Graph:
    return nas.build("enet")


@pytest.mark.parametrize(("node", "shape"), TABLE_1.items())
def test_stage_outputs_match_table_1(enet: nas.Graph, node: str, shape: tuple[int, ...]) -> None:
    assert enet.node(node).meta["shapes"][0] == shape


def test_params_match_table_3(enet: nas.Graph) -> None:
    assert round(enet.params / 1e6, 2) == 0.37


def test_decoder_unpools_to_the_encoders_pooling_indices(enet: nas.Graph) -> None:
    pairs = {up: [enet.ref_text(r) for r in enet.inputs(up)] for up in ("bottleneck4_0", "bottleneck5_0")}
    assert pairs == {
        "bottleneck4_0": ["bottleneck3_8", "bottleneck2_0.indices"],
        "bottleneck5_0": ["bottleneck4_2", "bottleneck1_0.indices"],
    }


def test_upsampling_puts_the_shortcut_back_where_the_maxima_were() -> None:
    """With the main branch and the shortcut's batch norm silenced, an
    upsampling bottleneck's output is nonzero only where the downsampling
    one's pooling found its maxima: the indices travel through the graph."""
    g = nas.build("""
inputs: {x: [4, 8, 8]}
nodes:
  down: {block: enet_bottleneck, in: x, out_channels: 8, downsample: true, act: relu}
  up: {block: enet_upsample, in: [down, down.indices], out_channels: 4, act: relu, dropout: 0}
outputs: [up, down.indices]
""")
    model = nas.lower(g, flatten=True).eval()
    with torch.no_grad():
        model.up_expand_bn.weight.zero_()
        model.up_expand_bn.bias.zero_()
        model.up_shortcut_conv.weight.fill_(1.0)
    x = torch.randn(2, 4, 8, 8)
    with torch.inference_mode():
        out, indices = model(x)
    hit = torch.zeros_like(out, dtype=torch.bool).flatten(2).scatter_(2, indices.flatten(2), True).view_as(out)
    assert (out[~hit] == 0).all() and (out[hit] != 0).any()


def test_trains_with_spatial_dropout_and_returns_a_class_map() -> None:
    text = nas.build("enet").to_yaml().replace("x: [3, 512, 512]", "x: [3, 64, 96]")
    g = nas.build(text)
    assert g.summary.outputs == [(19, 64, 96)]
    model = nas.lower(g).train()
    out = model(torch.randn(2, 3, 64, 96))
    out.pow(2).mean().backward()
    assert out.shape == (2, 19, 64, 96)
    assert all(p.grad is not None for p in model.parameters())
