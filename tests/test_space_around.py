"""Spaces written around a network (``nas.space.around``, ``nas space --around``).

The net must be the space's fixed point (``decode(encode(net))`` has its
hash), samples must build, and the decisions must reach the family's other
members as their authors define them: torchvision's VGG configurations
differ from VGG-11 only in units per stage, its ResNet-34 from ResNet-18
only in depths ([3, 4, 6, 3] against [2, 2, 2, 2]), and MobileNet's width
multiplier (Howard et al. 2017, section 3.3, Table 6) scales every layer
but the classifier.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import optuna
import pytest
import torch

import nas
import nas.space as S
from nas.cli import main
from nas.ir.errors import NASError
from nas.passes import flatten
from nas.search.record import TrialRecord

NETS = [
    "resnet18",
    "resnet50",
    "resnet20",
    "vgg11",
    "vgg16",
    "mobilenet_v1",
    "squeezenet1_0",
    "lenet5",
    "alexnet",
    "nin",
    "xception",
    "inception_v3",
    "ciresan_mlp",
]

FLAT = ["resnet18", "mobilenet_v1", "squeezenet1_0", "vgg11"]
"""Nets written as primitives only (convolutions, batch norm, adds, concats),
as an importer of PyTorch models writes them."""


def _flat(name: str) -> nas.Graph:
    graph = flatten(nas.build(name))
    graph.name = f"{name}_flat"
    return graph


def _fixed_point(graph: nas.Graph) -> S.Space:
    space = S.parse_space(S.around(graph), f"<around {graph.name}>")
    assignment = S.encode(space, graph)
    assert S.decode(space, assignment).hash == graph.hash
    for d in S.active(space, assignment):  # the net's own value is a choice, listed first
        assert d.contains(assignment[d.label])
        if d.kind == "choice":
            assert d.value(0) == assignment[d.label], d.label
    return space


def _samples_build(space: S.Space, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        graph = S.decode(space, S.sample(space, rng))
        with torch.device("meta"):  # lowering without allocating the weights
            module = nas.lower(graph)
        assert sum(p.numel() for p in module.parameters()) == graph.params


@pytest.mark.parametrize("name", NETS)
def test_a_zoo_net_is_the_fixed_point_of_the_space_around_it(name: str) -> None:
    space = _fixed_point(nas.build(name))
    assert S.size(space) > 1
    _samples_build(space, 3, seed=len(name))


@pytest.mark.parametrize("name", FLAT)
def test_a_net_of_primitives_is_the_fixed_point_too(name: str) -> None:
    space = _fixed_point(_flat(name))
    assert len(space.named) <= 8  # encode tries every combination of the declared decisions
    _samples_build(space, 3, seed=1)


def test_torchvision_vgg_configurations_are_depths_of_the_space_around_vgg11() -> None:
    space = S.parse_space(S.around(nas.build("vgg11")))
    # torchvision vgg.py cfgs "A", "B", "D", "E": convolutions per stage 1-1-2-2-2, 2-2-2-2-2, 2-2-3-3-3, 2-2-4-4-4
    for net, depths in [
        ("vgg11", [1, 1, 2, 2, 2]),
        ("vgg13", [2] * 5),
        ("vgg16", [2, 2, 3, 3, 3]),
        ("vgg19", [2, 2, 4, 4, 4]),
    ]:
        a = S.encode(space, nas.build(net))
        assert [a[f"stage{i}.depth"] for i in range(1, 6)] == depths


def test_resnet34_is_in_the_space_around_resnet18_with_room_to_grow() -> None:
    assert "not a fixed point" in _refusal(S.parse_space(S.around(nas.build("resnet18"))), "resnet34")
    space = S.parse_space(S.around(nas.build("resnet18"), deeper=4))
    a = S.encode(space, nas.build("resnet34"))
    assert [a[f"layer{i}.depth"] for i in range(1, 5)] == [3, 4, 6, 3]  # torchvision resnet34's layers
    assert S.decode(space, a).params == 21_797_672  # torchvision resnet34's parameter count


def _refusal(space: S.Space, net: str) -> str:
    with pytest.raises(NASError) as info:
        S.encode(space, nas.build(net))
    return str(info.value)


@pytest.mark.parametrize(("multiplier", "net"), [(0.75, "mobilenet_v1_075"), (0.5, "mobilenet_v1_050")])
def test_the_mobilenet_width_multiplier_is_a_point_of_the_space_around_mobilenet(multiplier: float, net: str) -> None:
    space = S.parse_space(S.around(nas.build("mobilenet_v1")))
    a = S.encode(space, nas.build(net))
    widths = [a[label] for label in a if label.endswith("out_channels")]
    assert widths == [round(multiplier * w) for w in (32, 64, 128, 256, 512, 1024)]  # paper, Table 1
    assert a["stage4.depth"] == 6


def test_what_must_change_together_shares_one_decision() -> None:
    squeeze = S.parse_space(S.around(nas.build("squeezenet1_0")))
    # fire2 and fire3 (128 maps each, paper Table 1) form one stage; so do fire4 and fire5 across the pooling
    assert {d.label for d in squeeze.named} == {"fire2_width", "fire4_width", "fire6_width", "fire8_width"}
    resnet = S.parse_space(S.around(_flat("resnet18")))
    # the stem and layer1's residual branch meet in adds: one multiplier; a block's first conv is free
    assert "conv1_width" in resnet.by_label and "layer1_b0_conv1.out_channels" in resnet.by_label
    assert "layer1_b0_conv2.out_channels" not in resnet.by_label


def test_the_classifier_and_values_that_break_the_net_are_kept() -> None:
    space = S.parse_space(S.around(nas.build("lenet5")))
    assert "output.out_features" not in space.by_label  # ten classes
    # C3's connection table (paper, Table I) reads maps 0..5: C1 may widen, never narrow below six
    assert all(v >= 6 for v in space.by_label["c1.out_channels"].choices)
    # C5 is a 5x5 convolution of S4's 5x5 maps: a 7x7 kernel does not fit
    assert 7 not in space.by_label["c5.kernel_size"].choices


MBV2_START = """
inputs: {x: [3, 32, 32]}
nodes:
  stem: {block: conv_bn_act, in: x, out_channels: 32, kernel_size: 3, stride: 2, act: relu6}
  ir1: {block: inverted_residual, out_channels: 16, expansion: 1}
  s2: {block: stage, unit: inverted_residual, depth: 2, stride: 2, args: {out_channels: 24}}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
"""
"""The first rows of MobileNetV2's Table 2 (Sandler et al. 2018): t=1, c=16, n=1; t=6, c=24, n=2, s=2."""


def test_expansions_and_kernels_of_inverted_residuals_are_decided() -> None:
    graph = nas.build(MBV2_START)
    space = _fixed_point(graph)
    assert space.by_label["ir1.expansion"].choices[0] == 1.0
    assert space.by_label["s2.args.expansion"].choices[0] == 6.0  # the unit's default, left out of the net
    assert set(space.by_label["s2.args.kernel_size"].choices) == {3, 5, 7}  # MnasNet's 3x3 and 5x5, and 7x7
    assert S.around_summary(space).startswith("around_net: 9 decisions (3 width, 1 depth, 3 kernel, 2 expansion)")
    _samples_build(space, 3, seed=2)


def test_a_net_with_nothing_to_decide_is_refused_in_one_line() -> None:
    graph = nas.build("inputs: {x: [4]}\nnodes:\n  fc: {block: linear, in: x, out_features: 3}\n")
    with pytest.raises(NASError, match="has no width, depth, kernel size or expansion") as info:
        S.around(graph)
    assert "\n" not in str(info.value)


@pytest.fixture
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches write runs/ and the latency store under a fresh folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.usefixtures("_isolated")
def test_space_around_command_writes_a_space_to_describe_and_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "lenet_space.yaml"
    assert main(["space", "--around", "lenet5", "-o", str(target)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("around_lenet5: 5 decisions") and "architectures" in err
    assert main(["space", "--around", "lenet5", "-o", str(target)]) == 2  # never overwrites
    assert "--force" in capsys.readouterr().err
    assert main(["space", "--around", "lenet5", "-o", str(target), "--force"]) == 0
    capsys.readouterr()
    spec_space = tmp_path / "squeezenet_space.yaml"
    assert main(["space", "--around", "torchvision:squeezenet1_1", "-o", str(spec_space)]) == 0  # a PyTorch model
    assert capsys.readouterr().err.startswith("around_squeezenet1_1: ")
    assert S.load_space(str(spec_space)).meta["hash"] == nas.build("torchvision:squeezenet1_1").hash
    assert main(["space", str(target), "--json", "--sample", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "lenet5" in report["fixed_points"]
    ir_file = tmp_path / "vgg11_flat.yaml"
    ir_file.write_text(_flat("vgg11").to_yaml())
    assert main(["space", "--around", str(ir_file)]) == 0  # an IR file; no -o: the YAML on stdout
    written = S.parse_space(capsys.readouterr().out)
    assert S.decode(written, S.encode(written, nas.build(str(ir_file)))).hash == nas.build("vgg11").hash
    storage = f"sqlite:///{tmp_path}/nas.db"
    args = ["--space", str(target), "--objective", "proxy:naswot", "--trials", "3", "--latency-budget-ms", "1000"]
    assert main(["search", *args, "--storage", storage]) == 0


def test_the_network_a_space_was_written_around_is_where_a_search_starts(tmp_path: Path) -> None:
    graph = nas.build(MBV2_START)
    space = S.parse_space(S.around(graph))
    assert S.decode(space, S.around_point(space)).hash == graph.hash
    edited = S.parse_space(S.around(graph).replace(graph.hash, "0" * 32))
    assert S.around_point(edited) is None  # the space no longer says which network it holds

    target = tmp_path / "around.yaml"
    target.write_text(S.around(graph))
    storage = f"sqlite:///{tmp_path}/nas.db"
    args = ["--space", str(target), "--objective", "proxy:naswot", "--trials", "2", "--latency-budget-ms", "1000"]
    assert main(["search", *args, "--storage", storage, "--study", "s", "-o", str(tmp_path / "runs")]) == 0
    first, second = optuna.load_study(study_name="s", storage=storage).trials[:2]
    assert TrialRecord.of(first).origin == "around:net" and TrialRecord.of(first).hash == graph.hash
    assert TrialRecord.of(second).hash != graph.hash
