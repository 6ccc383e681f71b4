"""The `nas` command on good input (bad input: tests/test_parse.py)."""

from __future__ import annotations

import importlib.resources
import json

import pytest
import torchvision

import nas
from nas.cli import main

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
    import sys

    import optuna

    url = f"sqlite:///{tmp_path}/nas.db"
    optuna.create_study(storage=url, study_name="s")
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails, as when not installed
    assert main(["results", "--storage", url, "--dashboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "pip install optuna-dashboard" in err[1]  # the notice, then the error


def test_results_dashboard_serves_the_storage(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    import optuna

    url = f"sqlite:///{tmp_path}/nas.db"
    optuna.create_study(storage=url, study_name="s")
    served: list[tuple[object, str, int]] = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda s, host, port: served.append((s, host, port)))
    assert main(["results", "--storage", url, "--dashboard", "--port", "8123"]) == 0
    ((storage, host, port),) = served
    assert host == "127.0.0.1" and port == 8123
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["s"]
