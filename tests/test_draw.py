"""Pictures of networks and of the zoo: valid image files, the right content."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import nas
import nas.passes.draw
from nas.cli import main
from nas.ir.errors import NASError

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz 'dot' is not installed (apt-get install graphviz)"
)


def test_dot_text_has_a_box_per_node_and_shapes_on_edges() -> None:
    g = nas.build("resnet18")
    text = nas.passes.draw.to_dot(g)
    for node in g:
        assert f'"{node.name}" [label="{node.name}\\n{node.block.name}' in text
    assert '"layer1" -> "layer2" [label="64x56x56"]' in text
    expanded = nas.passes.draw.to_dot(g, expand=True)
    assert 'subgraph "cluster_layer2"' in expanded and 'subgraph "cluster_layer2/b0"' in expanded
    # The flattened primitives are all drawn, and no composite box remains.
    boxes = expanded.count("fillcolor=") - 1  # the default node style
    assert boxes == sum(1 for n in nas.flatten(g)) + len(g.outputs)


def test_multi_output_edges_name_the_output() -> None:
    g = nas.build(
        "inputs: {x: [2, 8, 8]}\nnodes:\n  pool: {block: max_pool2d, in: x, kernel_size: 2, return_indices: true}\n"
        "  up: {block: max_unpool2d, in: [pool, pool.indices], kernel_size: 2}\n"
    )
    assert '"pool" -> "up" [label="indices 2x4x4"]' in nas.passes.draw.to_dot(g)


@needs_dot
@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_rendered_files_are_valid_images(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"net.{suffix}"
    assert main(["draw", "resnet50", "-o", str(path), "--expand"]) == 0
    data = path.read_bytes()
    if suffix == "png":
        import matplotlib.image

        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 500 and image.shape[1] > 100
    elif suffix == "svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert "layer4/b2/conv3" in data.decode()
    else:
        assert data.startswith(b"%PDF")
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_bad_format_and_missing_graphviz_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NASError, match=r"cannot draw to '\.jpg'"):
        nas.passes.draw.render("digraph {}", tmp_path / "x.jpg")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(NASError, match="apt-get install graphviz"):
        nas.passes.draw.render("digraph {}", tmp_path / "x.svg")
    assert not (tmp_path / "x.svg").exists()


def test_zoo_listing_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (pip install 'nas[plot]')")
    plot = tmp_path / "zoo.png"
    assert main(["zoo", "--json", "--plot", str(plot)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(nas.zoo.names())
    assert rows["resnet50"]["params"] == 25_557_032 and rows["resnet50"]["year"] == 2015
    assert rows["resnet50"]["input"] == [3, 224, 224] and rows["resnet50"]["family"] == "resnet"
    assert {"name", "family", "year", "input", "params", "macs"} <= set(rows["resnet20"])
    import matplotlib.image

    assert matplotlib.image.imread(plot).shape[1] > 1000


def test_bottleneck_saves_compute_per_output_position(capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's point: a 256 -> 64 -> 256 bottleneck costs 69,632 MACs per
    output position, a plain 256 -> 256 3x3 convolution 589,824."""
    text = (
        "inputs: {x: [256, 14, 14]}\nnodes:\n"
        "  bottleneck: {block: bottleneck, in: x, out_channels: 256, width: 64}\n"
        "  plain: {block: conv2d, in: x, out_channels: 256, kernel_size: 3, padding: 1, bias: false}\n"
        "  sum: {block: add, in: [bottleneck, plain]}\n"
    )
    assert main(["show", text, "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["layers"]}
    assert rows["bottleneck"]["macs_per_position"] == 69_632
    assert rows["plain"]["macs_per_position"] == 589_824
    assert main(["show", text]) == 0
    out = capsys.readouterr().out
    assert "69,632" in out and "589,824" in out
