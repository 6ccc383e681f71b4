"""The `nas` command on good input (bad input: tests/test_parse.py)."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torchvision

import nas
import nas.cli.latency as cli_latency
import nas.cli.show as cli_show
from nas.cli import main
from nas.cli.root import COMMANDS
from nas.ir.errors import NASError

RESNET18 = "examples/resnet18.yaml"


def test_show_json_reports_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", RESNET18, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert report["input"] == [3, 224, 224] and report["output"] == [1000]
    assert report["nodes"] == 15
    assert report["hash"] == nas.build(RESNET18).hash
    assert report["macs"] == nas.build(RESNET18).macs
    layers = {row["name"]: row for row in report["layers"]}
    assert layers["layer2_0"]["shapes"] == [[128, 28, 28]]
    assert layers["layer4_1"]["receptive_field"] == [435, 435]


def test_show_flat_lists_primitives(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", RESNET18, "--json", "--flat"]) == 0
    report = json.loads(capsys.readouterr().out)
    blocks = {row["block"] for row in report["layers"]}
    assert "basic_block" not in blocks and {"conv2d", "add", "batch_norm"} <= blocks
    assert report["hash"] == nas.build(RESNET18).hash


def test_show_prints_a_table_with_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", RESNET18]) == 0
    out = capsys.readouterr().out
    assert "layer3_1" in out and "basic_block" in out and "256x14x14" in out
    assert "11,689,512" in out


def test_show_prints_a_long_network_as_plain_aligned_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # rich lays a table out at about a millisecond a row: a 200,000-node
    # network took minutes. Past PLAIN_ROWS the same rows come as plain text.
    monkeypatch.setattr(cli_show, "PLAIN_ROWS", 50)
    path = tmp_path / "chain.yaml"
    path.write_text("inputs: {x: [4, 8, 8]}\nnodes:\n" + "".join(f"  n{i}: {{block: relu}}\n" for i in range(120)))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("node "))
    rows = out[header + 2 : header + 2 + 121]
    assert [r.split()[0] for r in rows] == ["x", *(f"n{i}" for i in range(120))]
    assert all(r.split()[1:3] == ["relu", "4x8x8"] for r in rows[1:])
    column = out[header].index("block")
    assert all(r[column:].startswith(r.split()[1]) for r in rows)  # aligned under their heading
    assert out[header + 2 + 121].startswith("-----") and out[header + 3 + 121].startswith("total")
    assert "params 0" in out[-1]


def test_show_reads_a_yaml_string(capsys: pytest.CaptureFixture[str]) -> None:
    text = "inputs: {x: [10]}\nnodes: {fc: {block: linear, in: x, out_features: 3}}\noutputs: [fc]\n"
    assert main(["show", text, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 33


def test_blocks_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocks", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(entries) == set(nas.list_blocks())
    assert entries["conv2d"]["params"]["out_channels"]["required"] is True
    assert entries["conv2d"]["params"]["stride"]["default"] == 1
    assert entries["basic_block"]["composite"] is True


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show"]) == 2
    assert main(["frobnicate"]) == 2


def test_package_data_is_found_through_importlib_resources() -> None:
    root = importlib.resources.files("nas.search_spaces")
    assert root.joinpath("__init__.py").is_file()
    assert importlib.resources.files("nas.blocks").joinpath("residual.py").is_file()


def test_results_dashboard_without_its_package_is_one_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/nas.db"
    optuna.create_study(storage=url, study_name="s")
    capsys.readouterr()  # Optuna's note of the new study, on stderr when its log handler is fresh
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails, as when not installed
    assert main(["results", "--storage", url, "--dashboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "pip install optuna-dashboard" in err[1]  # the notice, then the error


def test_results_dashboard_serves_the_storage(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")

    url = f"sqlite:///{tmp_path}/nas.db"
    optuna.create_study(storage=url, study_name="s")
    served: list[tuple[object, str, int]] = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda s, host, port: served.append((s, host, port)))
    assert main(["results", "--storage", url, "--dashboard", "--port", "8123"]) == 0
    ((storage, host, port),) = served
    assert host == "127.0.0.1" and port == 8123
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["s"]


# -- the package: one module per command, loaded when it runs ------------------------


def test_show_loads_neither_the_search_nor_the_export() -> None:
    late = ("optuna", "nas.search", "nas.export", "nas.latency", "nas.predict", "nas.cli.search", "nas.cli.latency")
    code = (
        "import sys\n"
        "from nas.cli import main\n"
        "assert main(['show', 'lenet5', '--json']) == 0\n"
        f"print(sorted(m for m in sys.modules if m in {late!r} or m.startswith(tuple(p + '.' for p in {late!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_every_command_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("Commands:")[1].strip().splitlines()]
    expected = ["show", "blocks", "space", "zoo", "draw", "search", "supernet", "results", "export", "import"]
    expected += ["train", "latency"]
    assert listed == list(COMMANDS) == expected
    assert main(["shw", "lenet5"]) == 2
    assert "Did you mean 'show'?" in capsys.readouterr().err


def test_latency_help_shows_the_network_options_and_the_sub_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--predict" in out and "--roofline" in out
    commands = out.split("Commands:")[1]
    assert "profile" in commands and "refit" in commands
    assert main(["latency", "profile", "--help"]) == 0
    assert "--space" in capsys.readouterr().out
    assert main(["latency", "lenet5", "--space", "early"]) == 2  # profiling options belong to 'profile'
    assert "--space" in capsys.readouterr().err


def test_latency_reshapes_the_network_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `nas latency NET --input S` built NET at S in the CLI, and again before measuring it.
    build_module = importlib.import_module("nas.io.build")
    real = build_module._reshaped
    calls: list[object] = []

    def counted(*args: object, **kwargs: object) -> nas.Graph:
        calls.append(args[1:])
        return real(*args, **kwargs)

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build_module, "_reshaped", counted)
    args = ["latency", "--backend", "torch", "lenet5", "--input", "1x36x36", "--threads", "1", "--no-roofline"]
    assert main([*args, "--no-cache", "--json"]) == 0  # options before the network work too
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] == [1, 36, 36] and report["name"] == "lenet5"
    assert len(calls) == 1


def test_latency_predict_asks_the_predictor_to_check_the_conditions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[dict[str, object]] = []

    class Refusing:
        def __init__(self, table: str) -> None:
            self.table = table

        def check(self, **conditions: object) -> None:
            asked.append(conditions)
            raise NASError("the table was measured with batch 1, not 8", file=self.table, field="batch")

    monkeypatch.setattr(cli_latency, "Predictor", Refusing)
    assert main(["latency", "resnet20", "--predict", "t.json", "--batch", "8"]) == 2
    assert asked == [{"backend": None, "batch": 8, "precision": "fp32", "threads": None, "mode": None}]
    assert capsys.readouterr().err.count("\n") == 1
    args = ["latency", "resnet20", "--predict", "t.json", "--backend", "onnxruntime", "--threads", "2"]
    assert main([*args, "--mode", "cpu", "--precision", "fp16"]) == 2
    assert asked[1] == {"backend": "onnxruntime", "batch": 1, "precision": "fp16", "threads": 2, "mode": "cpu"}


TINY_SPACE = """
name: tiny
description: A convolution and a classifier.
decisions:
  width: {choice: [4, 8]}
inputs:
  x: [3, 16, 16]
nodes:
  conv: {block: conv2d, in: x, out_channels: $width, kernel_size: {choice: [1, 3]}}
  act: {block: relu, in: conv}
  gap: {block: adaptive_avg_pool2d, in: act}
  flat: {block: flatten, in: gap}
  fc: {block: linear, in: flat, out_features: {choice: [10, 20]}}
outputs: [fc]
"""


def test_latency_refit_is_a_command_and_an_option_of_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    table = str(tmp_path / "tiny.json")
    profiled = ["latency", "profile", "--space", str(space), "--backend", "torch", "--threads", "1", "-o", table]
    assert main([*profiled, "--networks", "4", "--block-samples", "0", "--no-cache", "--json"]) == 0
    capsys.readouterr()
    reports = []
    for args in (["latency", "refit", table], ["latency", "profile", "--refit", table]):
        out = str(tmp_path / f"{args[1]}.json")
        assert main([*args, "-o", out, "--no-cache", "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
        assert reports[-1]["table"] == out and reports[-1]["refit"]["networks"] == 4
        assert main([*args, "-o", out, "--no-cache"]) == 0
        assert capsys.readouterr().out.startswith(f"wrote {out}: ")
        assert main([*args, "-o", out, "--threads", "2"]) == 2
        assert "--threads 1, not 2" in capsys.readouterr().err
    assert reports[0].keys() == reports[1].keys()
    assert main(["latency", "refit", table]) == 2
    assert "-o" in capsys.readouterr().err
