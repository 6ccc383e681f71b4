"""Reading IR YAML: the bad-input corpus, the CLI error contract, the YAML
round trip and the safety of the loader.

Every file in ``tests/bad_yaml/`` is one way to get a file wrong. ``CASES``
says, for each, which :class:`nas.NASError` subclass it raises, on which line
(``None`` where no line makes sense) and what the one-line message must say.
A new file without an entry fails ``test_every_bad_file_has_an_expectation``.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

import nas
import nas.cli
from nas.io.parse import _Loader, dump_yaml, load_yaml, read_yaml
from nas.ir.graph import Graph
from nas.passes.analysis import node_table

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "bad_yaml"

# file name -> (exception class name, line or None, substrings of the message)
CASES: dict[str, tuple[str, int | None, tuple[str, ...]]] = {
    "malformed_indent.yaml": ("SourceError", 5, ("malformed YAML", "did not find expected key", "indentation")),
    "unclosed_bracket.yaml": ("SourceError", 5, ("malformed YAML", "(started at line 4)", "expected ',' or '}'")),
    "unknown_block.yaml": ("UnknownBlockError", 4, ("node 'conv1'", "block type 'convv2d'", "did you mean 'conv2d'")),
    "missing_block.yaml": ("SourceError", 5, ("node 'relu1'", "missing 'block:'", "block: conv2d")),
    "wrong_type_kernel.yaml": ("ParamError", 8, ("field 'kernel_size'", "expected an integer, got 'three'")),
    "wrong_type_bias.yaml": ("ParamError", 4, ("node 'conv1', field 'bias'", "expected true or false, got 3")),
    "cycle.yaml": ("GraphError", 4, ("node 'a'", "cycle: a -> b -> c -> a")),
    "shape_mismatch.yaml": (
        "ShapeError",
        6,
        ("node 'join'", "left (16, 32, 32)", "right (8, 32, 32)", "fix: project the shortcut"),
    ),
    "negative_channels.yaml": ("ParamError", 8, ("field 'out_channels'", "must be >= 1, got -4")),
    "not_a_mapping.yaml": ("SourceError", 1, ("expected a mapping", "got a list")),
    "empty.yaml": ("SourceError", None, ("the file is empty",)),
    "binary_garbage.yaml": ("SourceError", None, ("not a readable YAML text", "UTF-8")),
    "huge_number.yaml": ("ParamError", 5, ("field 'out_channels'", "must be <= 1048576", "99999999999999999999999")),
    "yaml_bomb.yaml": ("SourceError", 2, ("aliases (*name) are not allowed", "fix: write the value out in full")),
    "unknown_param.yaml": ("ParamError", 4, ("field 'kernal_size'", "unknown parameter", "did you mean 'kernel_size'")),
    "missing_input.yaml": ("GraphError", 5, ("node 'relu1'", "input 'conv_1' does not exist", "did you mean 'conv1'")),
    "dangling.yaml": ("GraphError", 5, ("node 'side'", "never used", "list it under 'outputs:'")),
    "wrong_arity.yaml": ("GraphError", 5, ("node 'join'", "'add' takes at least 2 inputs, got 1")),
    "linear_without_flatten.yaml": ("ShapeError", 5, ("node 'fc'", "conv1 (8, 30, 30)", "insert a 'flatten'")),
    "stride_too_large.yaml": ("ShapeError", 5, ("node 'pool1'", "(8, 0, 0) has an empty dimension", "conv1 (8, 3, 3)")),
    "duplicate_node.yaml": ("SourceError", 6, ("duplicate key 'conv1'",)),
    "line_break_in_key.yaml": ("ParamError", 4, ("unknown parameter", "did you mean 'kernel_size'")),
    "python_tag.yaml": ("SourceError", 4, ("unsupported YAML", "python/object/apply:os.system", "no tags")),
    "merge_key.yaml": ("SourceError", 5, ("unsupported YAML", "merge keys (<<) are not allowed")),
}

MISSING = "does_not_exist.yaml"
"""A path with no file behind it: the one case that needs no file."""

ALL_CASES = {**CASES, MISSING: ("SourceError", None, ("no such file",))}


def _path(name: str) -> str:
    return str(BAD / name)


def test_every_bad_file_has_an_expectation() -> None:
    assert {p.name for p in BAD.iterdir()} == set(CASES)
    assert not (BAD / MISSING).exists()


def test_binary_garbage_is_not_utf8() -> None:
    data = (BAD / "binary_garbage.yaml").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_bad_file_raises_one_line_error(name: str) -> None:
    kind, line, needles = ALL_CASES[name]
    path = _path(name)
    with pytest.raises(nas.NASError) as info:
        nas.build(path)
    err = info.value
    text = str(err)
    assert type(err).__name__ == kind, text
    assert isinstance(err, getattr(nas, kind))
    assert len(text.splitlines()) == 1, text
    assert text.startswith(path), text
    assert err.file == path
    assert "Traceback" not in text
    if line is None:
        assert err.line is None
        assert text.startswith(f"{path}: "), text
    else:
        assert err.line == line, text
        assert text.startswith(f"{path}:{line}: "), text
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_cli_reports_bad_file_on_one_stderr_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _path(name)
    assert nas.cli.main(["show", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("nas: error: ")
    assert path in err


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from nas.cli import run; run()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_console_script_one_line_and_debug_traceback() -> None:
    path = _path("shape_mismatch.yaml")
    result = _run_cli("show", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"nas: error: {path}:6: node 'join': ")
    assert "Traceback" not in result.stderr

    debug = _run_cli("--debug", "show", path)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "nas.ir.errors.ShapeError" in debug.stderr


# --------------------------------------------------------------------------
# Reading limits


def test_oversized_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules["nas.io.parse"], "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("name: " + "x" * 200 + "\n")
    with pytest.raises(nas.SourceError, match="more than the 100"):
        nas.build(path)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_device_is_refused_before_reading() -> None:
    # A character device reports size 0; reading it whole would never end.
    with pytest.raises(nas.SourceError) as info:
        nas.build("/dev/zero")
    assert str(info.value).startswith("/dev/zero: is not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes: 'nas show FIFO' hung forever.
    fifo = tmp_path / "net.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            nas.build(fifo)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # let the blocked open return, so the test run can end
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert isinstance(outcome[0], nas.SourceError)
    assert "not a regular file" in str(outcome[0]) and "\n" not in str(outcome[0])


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(nas.SourceError, match="is a directory"):
        nas.build(tmp_path)


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\x0b", "\x85", "\u2028", "\u2029"])
def test_error_text_is_one_line_whatever_the_line_break(brk: str) -> None:
    err = nas.GraphError(f"input 'a{brk}b' does not exist", file="net.yaml", line=3, node=f"n{brk}1", hint=f"x{brk}y")
    assert len(str(err).splitlines()) == 1
    assert str(err).startswith("net.yaml:3: node 'n 1': input 'a b'")


# --------------------------------------------------------------------------
# Round trip


def test_resnet18_dumps_to_its_own_text() -> None:
    path = ROOT / "examples" / "resnet18.yaml"
    assert nas.build(path).to_yaml() == path.read_text()


def _multi_output_graph() -> Graph:
    g = Graph("multi", {"note": "round trip", "year": 2024})
    x = g.add_input("x", (4, 16, 16))
    conv = g.add("conv", "conv2d", x, out_channels=8, kernel_size=[3, 3], padding=1, bias=False)
    pool = g.add("pool", "max_pool2d", conv, kernel_size=2, return_indices=True)
    act = g.add("act", "leaky_relu", pool, negative_slope=0.2)
    bn = g.add("bn", "batch_norm", act, eps=1e-6, momentum=0.05)
    unpool = g.add("unpool", "max_unpool2d", [bn, "pool.indices"], kernel_size=2)
    cat = g.add("cat", "concat", [unpool, conv])
    proj = g.add("proj", "conv2d", cat, out_channels=8, kernel_size=1)
    total = g.add("total", "add", [proj, conv, unpool])
    drop = g.add("drop", "dropout", total, p=0.3 + 0.1 / 3)
    g.set_outputs(drop, "pool.indices")
    return g


def test_dump_load_dump_is_stable() -> None:
    g = _multi_output_graph()
    text = dump_yaml(g)
    assert "in: [bn, pool.indices]" in text
    assert "in: [proj, conv, unpool]" in text
    assert "outputs: [drop, pool.indices]" in text
    again = load_yaml(text)
    assert dump_yaml(again) == text
    assert again.hash == g.hash
    assert again.params == g.params and again.macs == g.macs
    assert again.node("drop").params["p"] == g.node("drop").params["p"]  # floats survive exactly
    assert again.node("bn").params["eps"] == 1e-6
    assert again.meta == g.meta


def test_non_canonical_file_loads_to_its_canonical_dump() -> None:
    loose = """
name: loose
inputs:
  x: [3, 16, 16]
nodes:
  conv:
    block: conv2d
    out_channels: 8
    kernel_size: [3, 3]
    stride: 1
    padding: 1
    dilation: 1
    groups: 1
    bias: true
  bn: {block: batch_norm, eps: 0.00001, momentum: 0.1, affine: true}
  act: {block: relu}
  pool: {block: max_pool2d, kernel_size: 2, return_indices: false}
"""
    g = nas.build(loose)
    canonical = g.to_yaml()
    assert canonical == (
        "name: loose\n"
        "inputs:\n"
        "  x: [3, 16, 16]\n"
        "nodes:\n"
        "  conv: {block: conv2d, in: x, out_channels: 8, kernel_size: 3, padding: 1}\n"
        "  bn: {block: batch_norm, in: conv}\n"
        "  act: {block: relu, in: bn}\n"
        "  pool: {block: max_pool2d, in: act, kernel_size: 2}\n"
        "outputs: [pool]\n"
    )
    assert nas.build(canonical).hash == g.hash
    assert nas.build(canonical).to_yaml() == canonical


# --------------------------------------------------------------------------
# Safety


def test_python_tag_is_refused_and_never_run(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    text = (
        "inputs: {x: [3, 8, 8]}\n"
        "nodes:\n"
        f"  a: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{canary}']]\n"
    )
    with pytest.raises(nas.SourceError) as info:
        nas.build(text)
    assert str(info.value).startswith("<string>:3: unsupported YAML: ")
    assert len(str(info.value).splitlines()) == 1
    assert not canary.exists()


@pytest.mark.parametrize(
    "tag",
    ["!!python/object:collections.OrderedDict {}", "!!python/name:os.system", "!!python/module:os", "!custom 3"],
)
def test_every_non_standard_tag_is_refused(tag: str) -> None:
    with pytest.raises(nas.SourceError, match=r"^<string>:2: unsupported YAML: could not determine a constructor"):
        read_yaml(f"a: 1\nb: {tag}\n", file="<string>")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: &x [1, 2]\nb: 3\nc: *x\n", 3),
        ("a: &x {k: 1}\nb: [*x]\n", 2),
        ("a: &x [*x]\n", 1),  # recursive
        ("&x a: *x\n", 1),  # as a key
    ],
)
def test_aliases_are_refused(text: str, line: int) -> None:
    with pytest.raises(nas.SourceError) as info:
        read_yaml(text, file="f.yaml")
    assert str(info.value).startswith(f"f.yaml:{line}: aliases (*name) are not allowed")


def test_loader_only_builds_plain_data() -> None:
    assert issubclass(_Loader, yaml.constructor.SafeConstructor)
    assert not issubclass(_Loader, (yaml.constructor.FullConstructor, yaml.constructor.UnsafeConstructor))
    assert _Loader.yaml_multi_constructors == {}
    assert all(tag is None or tag.startswith("tag:yaml.org,2002:") for tag in _Loader.yaml_constructors)
    assert not any("python" in str(tag) for tag in _Loader.yaml_constructors)

    def walk(value: object) -> None:
        assert type(value) in (dict, list, str, int, float, bool, type(None)) or isinstance(value, dict), type(value)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(read_yaml((ROOT / "examples" / "resnet18.yaml").read_bytes()))


def _chain(length: int) -> str:
    """IR text of ``length`` relus in a row, every other one naming its input
    and the rest reading the node before implicitly."""
    nodes = "".join(
        f"  n{i}: {{block: relu, in: n{i - 1}}}\n" if i % 2 else f"  n{i}: {{block: relu}}\n" for i in range(length)
    )
    return "inputs: {x: [8]}\nnodes:\n" + nodes


def _show_seconds(length: int) -> float:
    """CPU seconds (of this process only, so that other work on the machine
    does not count) for what ``nas show`` computes of a chain: read, build,
    validate, analyse, the node table and the hash."""
    text = _chain(length)
    gc.collect()
    start = time.process_time()
    graph = nas.build(text)
    assert len(node_table(graph)) == length + 1
    assert graph.hash
    seconds = time.process_time() - start
    del graph
    gc.collect()
    return seconds


@pytest.mark.slow
def test_build_time_grows_linearly_with_the_number_of_nodes() -> None:
    """A 200,000-node file must not take minutes: twice the nodes take about
    twice the time (3x allows for noise; a quadratic step would give 4x)."""
    small = _show_seconds(25_000)
    large = _show_seconds(50_000)
    assert large / small < 3, f"25,000 nodes: {small:.2f}s, 50,000 nodes: {large:.2f}s"
