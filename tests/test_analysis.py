"""Shape inference, costs and receptive fields, checked against PyTorch
(the shapes it actually produces), torchvision (parameter and FLOP counts)
and autograd (which input pixels an output actually depends on)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.ir.errors import ShapeError


def one_node(block: str, shape: tuple[int, ...], **params: object) -> nas.Graph:
    g = nas.Graph()
    g.add("node", block, g.add_input("x", shape), **params)
    g.set_outputs("node")
    return g


@settings(max_examples=300, deadline=None)
@given(
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 3]),
)
def test_conv2d_shape_rule_agrees_with_torch(
    size: tuple[int, int], kernel: int, stride: int, padding: int, dilation: int, groups: int
) -> None:
    channels = 6
    try:
        torch_shape = nn.Conv2d(channels, 6, kernel, stride, padding, dilation, groups)(
            torch.zeros(1, channels, *size)
        ).shape[1:]
    except RuntimeError:
        torch_shape = None
    g = one_node(
        "conv2d",
        (channels, *size),
        out_channels=6,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    if torch_shape is None:
        with pytest.raises(ShapeError):
            g.summary  # noqa: B018
    else:
        assert g.summary.outputs == [tuple(torch_shape)]


@settings(max_examples=300, deadline=None)
@given(
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    kernel=st.integers(1, 6),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    ceil_mode=st.booleans(),
    kind=st.sampled_from(["max_pool2d", "avg_pool2d"]),
)
def test_pooling_shape_rule_agrees_with_torch(
    size: tuple[int, int], kernel: int, stride: int, padding: int, ceil_mode: bool, kind: str
) -> None:
    module = (nn.MaxPool2d if kind == "max_pool2d" else nn.AvgPool2d)(kernel, stride, padding, ceil_mode=ceil_mode)
    try:
        torch_shape = module(torch.zeros(1, 2, *size)).shape[1:]
    except RuntimeError:
        torch_shape = None
    g = one_node(kind, (2, *size), kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if torch_shape is None or 0 in torch_shape:
        with pytest.raises(ShapeError):
            g.summary  # noqa: B018
    else:
        assert g.summary.outputs == [tuple(torch_shape)]


def stack(*layers: dict[str, object], size: int = 64) -> nas.Graph:
    g = nas.Graph()
    x = g.add_input("x", (1, size, size))
    for i, layer in enumerate(layers):
        params = dict(layer)
        x = g.add(f"l{i}", str(params.pop("block")), x, **params)
    g.set_outputs(x)
    return g


def conv(k: int, s: int = 1, d: int = 1) -> dict[str, object]:
    return {"block": "conv2d", "out_channels": 1, "kernel_size": k, "stride": s, "dilation": d}


def empirical_receptive_field(g: nas.Graph) -> tuple[int, int]:
    """Count the input pixels the centre output depends on, by autograd,
    with all weights positive so that no contribution cancels."""
    m = nas.lower(g).eval()
    for p in m.parameters():
        nn.init.constant_(p, 0.1)
    x = torch.ones(1, *g.summary.inputs["x"], requires_grad=True)
    y = m(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows, cols = x.grad[0, 0].nonzero(as_tuple=True)  # type: ignore[index]
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_stacked_3x3_convolutions_see_as_far_as_5x5_and_7x7() -> None:
    # Simonyan & Zisserman 2014, section 2.3.
    assert stack(conv(3), conv(3)).summary.receptive_field == (5, 5) == stack(conv(5)).summary.receptive_field
    assert stack(conv(3), conv(3), conv(3)).summary.receptive_field == (7, 7) == stack(conv(7)).summary.receptive_field


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(conv, st.integers(1, 5), st.integers(1, 2), st.integers(1, 2)),
            st.builds(
                lambda k, s: {"block": "avg_pool2d", "kernel_size": k, "stride": s},
                st.integers(1, 3),
                st.integers(1, 2),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_receptive_field_agrees_with_autograd(layers: list[dict[str, object]]) -> None:
    g = stack(*layers, size=96)
    try:
        rf = g.summary.receptive_field
    except ShapeError:
        assume(False)  # the stack shrinks the map below its next window: no network to compare
    assert rf == empirical_receptive_field(g)


def test_resnet18_costs_equal_torchvision() -> None:
    g = nas.build("examples/resnet18.yaml")
    reference = torchvision.models.resnet18()
    assert g.params == sum(p.numel() for p in reference.parameters()) == 11_689_512
    with FlopCounterMode(display=False) as counter:
        reference(torch.zeros(1, 3, 224, 224))
    assert 2 * g.macs == counter.get_total_flops()
    assert g.summary.outputs == [(1000,)]
    # Araujo et al., "Computing Receptive Fields of CNNs" (Distill 2019): 435 for ResNet-18's last conv layer.
    last = g.node("layer4_1").meta["receptive_field"]
    assert tuple(last) == (435, 435)


def test_activation_memory() -> None:
    g = stack(conv(3), conv(3), size=10)
    # Outputs: 1x8x8 and 1x6x6 float32. The peak is at the first conv, while
    # the 1x10x10 input and its output are alive; the input is then freed.
    assert g.summary.activation_bytes == 4 * (64 + 36)
    assert g.summary.peak_activation_bytes == 4 * (100 + 64)
    r = nas.build("examples/resnet18.yaml").summary
    assert r.peak_activation_bytes < r.activation_bytes


def test_costs_of_a_composite_equal_its_flattened_primitives() -> None:
    g = nas.build("examples/resnet18.yaml")
    flat = nas.flatten(g)
    assert (flat.params, flat.macs, flat.summary.outputs) == (g.params, g.macs, g.summary.outputs)
    assert flat.summary.receptive_field == g.summary.receptive_field
    assert flat.summary.activation_bytes == g.summary.activation_bytes


def test_shape_error_inside_a_composite_names_the_path() -> None:
    g = one_node("basic_block", (4, 1, 1), out_channels=4, stride=2, shortcut="zero_pad")
    g.add("more", "basic_block", "node", out_channels=4)
    g.set_outputs("more")
    # A 1x1 map survives stride 2 (padding 1), so this builds; a 0-size map cannot.
    assert g.summary.outputs == [(4, 1, 1)]
    bad = one_node("conv2d", (3, 4, 4), out_channels=2, kernel_size=7)
    with pytest.raises(ShapeError, match=r"node 'node'.*\[inputs: x \(3, 4, 4\)\]"):
        bad.summary  # noqa: B018


@pytest.mark.parametrize("block", ["conv2d", "zero_pad", "max_pool2d", "adaptive_avg_pool2d", "basic_block"])
def test_feature_map_blocks_refuse_flat_inputs_with_a_fix(block: str) -> None:
    g = one_node(block, (12,), **nas.get_block(block).examples[0].params)
    expected = r"expects a \(C, H, W\) input, but x gives \(12,\).*fix: feed it feature maps"
    with pytest.raises(ShapeError, match=expected):
        g.summary  # noqa: B018


def test_yaml_1_2_floats_are_numbers() -> None:
    g = nas.build("inputs: {x: [4]}\nnodes: {bn: {block: batch_norm, in: x, eps: 1e-7}}\n")
    assert g.node("bn").params.eps == 1e-7
    assert g.name == "net"
