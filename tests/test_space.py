"""Search spaces: parsing, the operations a searcher needs, fixed points.

The size of a space is checked against brute-force enumeration of its
assignments, and the fixed points by canonical hash (decode(encode(net))
must be the net).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nas
import nas.space as S
from nas.cli import main
from nas.ir.errors import NASError, SourceError

SPACES = S.space_names()
BAD = Path(__file__).resolve().parent / "bad_spaces"

TINY = """
name: tiny
decisions:
  width: {choice: [4, 8]}
  slope: {choice: [0.1, 0.2], when: {act.block: leaky_relu}}
inputs:
  x: [3, 16, 16]
nodes:
  conv: {block: conv2d, in: x, out_channels: $width, kernel_size: {choice: [1, 3]}, padding: {range: [0, 1]}}
  act: {block: {choice: [relu, leaky_relu, tanh]}, params: {leaky_relu: {negative_slope: $slope}}}
  pool: {block: max_pool2d, optional: true, kernel_size: {choice: [2, 4]}}
  head: {block: conv2d, out_channels: {expr: "2 * width"}, kernel_size: 1}
outputs: [head]
"""


@pytest.fixture(scope="module")
def tiny() -> S.Space:
    return S.parse_space(TINY, "<tiny>")


def brute_force_size(space: S.Space) -> int:
    """Count assignments by enumerating every combination of all decisions
    and keeping the distinct restrictions to the active ones."""
    seen = set()
    domains = [[d.value(i) for i in range(d.size)] for d in space.decisions]
    for values in itertools.product(*domains):
        full = dict(zip((d.label for d in space.decisions), values))
        active = {d.label for d in S.active(space, full)}
        seen.add(tuple(sorted((k, repr(v)) for k, v in full.items() if k in active)))
    return len(seen)


def test_size_agrees_with_enumeration(tiny: S.Space) -> None:
    # width 2 x kernel 2 x padding 2 x (relu + 2 slopes + tanh) x (absent + 2 kernels)
    assert S.size(tiny) == brute_force_size(tiny) == 2 * 2 * 2 * 4 * 3


def test_conditional_decisions_appear_and_disappear(tiny: S.Space) -> None:
    a = {"width": 4, "conv.kernel_size": 3, "conv.padding": 1, "act.block": "relu", "pool.present": False}
    assert {d.label for d in S.active(tiny, a)} == set(a)
    g = S.decode(tiny, a)
    assert g.summary.outputs == [(8, 16, 16)]
    b = {**a, "act.block": "leaky_relu", "slope": 0.2, "pool.present": True, "pool.kernel_size": 4}
    assert S.decode(tiny, b).summary.outputs == [(8, 4, 4)]
    assert S.distance(a, b) == 4 and S.distance(a, a) == 0 and S.distance(a, b) == S.distance(b, a)
    with pytest.raises(NASError, match="lacks decision 'slope'"):
        S.decode(tiny, {**a, "act.block": "leaky_relu"})
    with pytest.raises(NASError, match="outside the domain"):
        S.decode(tiny, {**a, "width": 5})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 3))
def test_sample_and_mutate_give_valid_lowerable_graphs(tiny: S.Space, seed: int, k: int) -> None:
    rng = random.Random(seed)
    a = S.sample(tiny, rng)
    assert {d.label for d in S.active(tiny, a)} == set(a)
    b = S.mutate(tiny, a, rng, k)
    assert {d.label for d in S.active(tiny, b)} == set(b)
    assert S.distance(a, b) >= 1
    for assignment in (a, b):
        g = S.decode(tiny, assignment)
        out = nas.lower(g)(torch.randn(1, 3, 16, 16))
        assert tuple(out.shape[1:]) == g.summary.outputs[0]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_draw_gives_the_sample_and_the_network_it_decodes_to(tiny: S.Space, seed: int) -> None:
    assignment, graph = S.draw(tiny, random.Random(seed))
    assert assignment == S.sample(tiny, random.Random(seed))
    assert graph.hash == S.decode(tiny, assignment).hash


@pytest.mark.parametrize("name", SPACES)
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_shipped_spaces_sample_and_mutate_validly(name: str, seed: int) -> None:
    space = S.load_space(name)
    rng = random.Random(seed)
    a = S.sample(space, rng)
    b = S.mutate(space, a, rng, 2)
    for assignment in (a, b):
        graph = S.decode(space, assignment)
        assert {d.label for d in S.active(space, assignment)} == set(assignment)
        with torch.device("meta"):  # lowering without allocating the weights
            module = nas.lower(graph)
        assert sum(p.numel() for p in module.parameters()) == graph.params
        assert all(getattr(graph, key) <= bound for key, bound in space.limits.items())


ZOO_SPACES = {
    "residual": [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnet50_v1",
        "resnet101_v1",
        "resnet152_v1",
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
        "resnet110",
        "resnet1202",
    ],
    "macro": ["lenet5", "alexnet", "alexnet_paper", "overfeat_fast", "vgg11", "vgg16_bn", "vgg19", "nin", "nin_cifar"],
    "inception": ["googlenet", "bn_inception", "inception_v3", "inception_v4", "inception_resnet_v2"],
    "mobile": [
        "mobilenet_v1",
        "mobilenet_v1_075",
        "mobilenet_v1_050",
        "mobilenet_v1_025",
        "xception",
        "squeezenet1_0",
        "squeezenet1_1",
    ],
    "early": ["lenet5", "ciresan_mlp", "ciresan_cnn"],
    "segmentation": ["enet"],
    "fractal": ["fractalnet", "fractalnet40"],
}


@pytest.mark.parametrize(("space", "net"), [(s, n) for s, nets in ZOO_SPACES.items() if s in SPACES for n in nets])
def test_zoo_nets_are_fixed_points_of_their_space(space: str, net: str) -> None:
    sp = S.load_space(space)
    graph = nas.build(net)
    assignment = S.encode(sp, graph)
    assert S.decode(sp, assignment).hash == graph.hash


@pytest.mark.parametrize("net", nas.zoo.names())
def test_every_zoo_net_is_a_fixed_point_of_some_space(net: str) -> None:
    """Or is marked ``no_space`` in its metadata, with the reason no space can
    hold it; the mark is checked too, so it goes when a space learns the net."""
    graph = nas.build(net)
    homes = []
    for name in SPACES:
        try:
            S.encode(S.load_space(name), graph)
            homes.append(name)
        except NASError:
            pass
    reason = graph.meta.get("no_space")
    if reason:
        assert not homes, f"{net} is a fixed point of {homes}: remove its no_space mark"
    else:
        assert homes, f"{net} is in no space (if no space can hold it, say why under no_space in its metadata)"


def test_nets_whose_inputs_a_space_cannot_take_are_passed_over_and_no_fixed_point_is() -> None:
    for space, nets in ZOO_SPACES.items():
        assert all(S.may_hold(S.load_space(space), nas.zoo.load(net)) for net in nets), space
    cifar = S.narrowed(S.load_space("residual"), ["x.shape=3x32x32"])
    assert S.may_hold(cifar, nas.zoo.load("resnet20")) and not S.may_hold(cifar, nas.zoo.load("resnet18"))
    text = nas.zoo.load("resnet20").to_yaml()
    renamed = nas.build(text.replace("  x: [3", "  image: [3").replace("in: x,", "in: image,"))
    assert not S.may_hold(cifar, renamed)  # the space's input is x
    held = []
    for name in nas.zoo.names():
        with contextlib.suppress(NASError):
            S.encode(cifar, nas.zoo.load(name))
            held.append(name)
    assert S.fixed_points(cifar) == held == ["resnet110", "resnet1202", "resnet20", "resnet32", "resnet44", "resnet56"]


def test_latest_keeps_the_most_recently_used_and_makes_only_what_it_lacks() -> None:
    latest: S.Latest[int] = S.Latest(2)
    made: list[str] = []

    def make(key: str) -> int:
        made.append(key)
        return len(made)

    assert [latest.get(k, lambda k=k: make(k)) for k in ("a", "b", "a", "c", "a", "b")] == [1, 2, 1, 3, 1, 4]
    assert made == ["a", "b", "c", "b"] and len(latest) == 2  # "b" was the least recently used when "c" came


def test_a_net_outside_the_space_is_refused_with_a_reason(tiny: S.Space) -> None:
    with pytest.raises(NASError, match="not a fixed point of space 'residual'"):
        S.encode(S.load_space("residual"), nas.build("vgg11"))


@pytest.mark.parametrize(
    ("file", "line", "field", "message"),
    [
        ("unknown_block.yaml", 5, "conv.block", "did you mean 'conv2d'"),
        ("choice_out_of_range.yaml", 6, "conv.out_channels", "0 is not a valid out_channels"),
        ("condition_on_missing.yaml", 3, "width", "condition on 'depth', which is not a decision"),
        ("condition_cycle.yaml", 3, "a", "a cycle of conditions: a -> b -> a"),
        ("unknown_param.yaml", 5, "conv.kernal_size", "did you mean 'kernel_size'"),
        ("undeclared_reference.yaml", 7, "conv.out_channels", "did you mean '$width'"),
        ("empty_range.yaml", 5, "conv.out_channels", "empty range"),
        ("malformed.yaml", 5, None, "malformed YAML"),
        ("not_a_mapping.yaml", 1, None, "a space is a mapping"),
        ("decisions_not_a_mapping.yaml", 2, None, "'decisions' must be a mapping"),
    ],
)
def test_bad_space_files(
    file: str, line: int, field: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(BAD / file)
    with pytest.raises(SourceError) as info:
        S.load_space(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: ") and message in text and "\n" not in text
    if field:
        assert f"field '{field}'" in text
    assert main(["space", path]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.count("\n") == 1 and err.err.startswith("nas: error: ")
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(  # every bad file has a case
        [
            "unknown_block.yaml",
            "choice_out_of_range.yaml",
            "condition_on_missing.yaml",
            "condition_cycle.yaml",
            "unknown_param.yaml",
            "undeclared_reference.yaml",
            "empty_range.yaml",
            "malformed.yaml",
            "not_a_mapping.yaml",
            "decisions_not_a_mapping.yaml",
        ]
    )


def test_space_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["space", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(SPACES) and listed["residual"]["size"] == S.size(S.load_space("residual"))
    assert main(["space", "residual", "--json", "--sample", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(ZOO_SPACES["residual"]) <= set(report["fixed_points"]) and "vgg11" not in report["fixed_points"]
    assert report["sample"]["params"][0] <= report["sample"]["params"][1]
    assert main(["space", "residual", "--sample", "3", "-o", str(tmp_path), "--seed", "7"]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) == 3
    for f in files:
        assert nas.build(str(f)).to_yaml() == f.read_text()
    assert main(["space", "residual", "--sample", "3", "-o", str(tmp_path), "--seed", "7"]) == 2  # never overwrites


def test_the_format_documentation_example_is_a_working_space() -> None:
    readme = (Path(__file__).resolve().parent.parent / "search_spaces" / "README.md").read_text()
    (text,) = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    space = S.parse_space(text, "README.md")
    rng = random.Random(3)
    for _ in range(5):
        assert S.decode(space, S.sample(space, rng)).summary.outputs == [(10,)]
    assert {"slope", "act.block", "pool.present", "body.unit", "x.shape"} <= set(space.by_label)


def test_nodes_present_exactly_when_a_decision_says_so() -> None:
    space = S.parse_space(
        """
decisions:
  head: {choice: [conv, linear]}
inputs:
  x: [4, 8, 8]
nodes:
  conv: {block: conv2d, in: x, optional: {when: {head: conv}}, out_channels: 10,
         kernel_size: {choice: [1, 3]}, padding: 1}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, optional: {when: {head: linear}}, out_features: 10}
outputs: [fc]
""",
        "<head>",
    )
    assert S.size(space) == brute_force_size(space) == 2 + 1  # conv with 2 kernels, or linear
    heads = set()
    for seed in range(30):
        a = S.sample(space, random.Random(seed))
        g = S.decode(space, a)
        assert g.summary.outputs == [(10,)]
        heads.add(a["head"])
        assert ("conv.kernel_size" in a) == (a["head"] == "conv")
    assert heads == {"conv", "linear"}
    with pytest.raises(SourceError, match="condition on 'tail', which is not a decision"):
        S.parse_space(
            "inputs: {x: [4]}\nnodes: {fc: {block: linear, in: x, optional: {when: {tail: 1}}, out_features: 2}}\n"
        )
