"""Export: every format written, loaded back and run gives the IR module's outputs.

The round trip is checked for a zoo net (LeNet-5), an ENet (pooling indices
feed unpooling: a node with two outputs) and a model found by a search; the
ONNX check runs over every block's examples too, since one block whose
operator an exporter mistranslates (avg_pool2d's ``divisor_override``) or
refuses (uneven adaptive pooling) breaks every network that uses it.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import nas
import nas.export as E
import nas.export.formats as EF
import nas.io.exported
import nas.space as S
from nas.blocks.pool import ScatterUnpool2d, SeparablePool2d
from nas.cli import main
from nas.data import load_data, loader
from nas.ir.errors import NASError, SourceError
from nas.latency import TimingPolicy
from nas.passes.onnx import ONNX_OPSET
from nas.search import SearchConfig, run_search
from nas.train import input_shape, train
from tests.block_cases import block_examples, example_graph

HAS_ORT = nas.io.exported._onnx_missing() is None

SMALL_NET = """
name: small
inputs: {x: [1, 8, 8]}
nodes:
  conv: {block: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  bn: {block: batch_norm}
  relu: {block: relu}
  pool: {block: adaptive_avg_pool2d, output_size: 2}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
"""
RUNNABLE = ["pt2", "torchscript", *(["onnx"] if HAS_ORT else [])]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


def outputs(module: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        y = module(x)
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def assert_round_trip(directory: Path, reference: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """Every format written to ``directory`` gives ``reference``'s outputs on a
    fresh input, at a batch the export was not checked with."""
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(7))
    expected = outputs(reference.eval(), x)
    written = [f for f, record in E.read_manifest(directory)["formats"].items() if record["ok"] and f != "yaml"]
    assert "weights" in written
    for fmt in written:
        got = outputs(nas.load(directory, format=fmt), x)
        assert len(got) == len(expected), fmt
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5, msg=f"format {fmt}")


# -- round trips --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lenet_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, E.Exported]:
    out = tmp_path_factory.mktemp("lenet") / "lenet5"
    return out, E.export(E.from_source("lenet5"), out, E.DEFAULT_FORMATS)


def test_a_zoo_net_round_trips_through_every_format(lenet_export: tuple[Path, E.Exported]) -> None:
    out, exported = lenet_export
    assert not exported.failed
    manifest = E.read_manifest(out)
    assert manifest["architecture"]["params"] == 60_000  # the paper's count
    assert manifest["closest_zoo"] == {"name": "lenet5", "distance": 0, "space": "early", "decisions": 47}
    assert manifest["weights"]["trained"] is False
    assert manifest["formats"]["onnx"]["opset"] == ONNX_OPSET if HAS_ORT else True
    # The reference is built from the IR and the saved weights alone.
    reference = nas.lower(nas.build("lenet5"))
    reference.load_state_dict(safetensors.torch.load_file(str(out / "model.safetensors")))
    assert_round_trip(out, reference, (1, 32, 32))
    assert nas.build(str(out)).hash == nas.build("lenet5").hash  # nas.build (and nas show) read a directory


def test_the_model_card_states_the_figures(lenet_export: tuple[Path, E.Exported]) -> None:
    out, _ = lenet_export
    card = (out / "MODEL.md").read_text()
    for text in ("# lenet5", "| parameters | 60,000 |", "Closest classic net: it is `lenet5`", "not trained"):
        assert text in card
    for name, record in E.read_manifest(out)["formats"].items():
        assert record["ok"], name
        assert f"| {name} | `{record['file']}` |" in card


@pytest.mark.slow
def test_an_enet_with_pooling_indices_round_trips(tmp_path: Path) -> None:
    model = E.from_source("enet", input_shape="3x64x64")
    exported = E.export(model, tmp_path / "enet", E.DEFAULT_FORMATS)
    assert not exported.failed, exported.failed
    reference = nas.lower(model.graph)
    reference.load_state_dict(safetensors.torch.load_file(str(tmp_path / "enet" / "model.safetensors")))
    assert_round_trip(tmp_path / "enet", reference, (3, 64, 64))


def search(tmp_path: Path, study: str, trials: int) -> str:
    """Run a quick proxy search on the early space; its storage URL."""
    storage = f"sqlite:///{tmp_path}/{study}.db"
    run_search(
        SearchConfig(
            space="early",
            trials=trials,
            objective="proxy:naswot",
            storage=storage,
            study=study,
            latency_budget_ms=50.0,
            timing=TimingPolicy.quick(),
        )
    )
    return storage


def test_a_searched_model_exports_with_its_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = search(tmp_path, "found", trials=4)
    capsys.readouterr()
    assert main(["export", "--storage", storage, "--study", "found", "--best", "-o", "best", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    trial = report["search"]["trial"]
    assert report["source"] == {"kind": "trial", "study": "found", "trial": trial}
    assert report["search"]["space"] == "early" and report["search"]["latency_budget_ms"] == 50.0
    assert report["search"]["sampler"] == "evolution"
    assert report["latency"][0]["source"].startswith("search") and report["latency"][0]["median_ms"] <= 50
    assert report["latency"][0]["threads"] == 1  # recorded by the trial, not a study-wide setting
    assert report["latency"][1]["backend"] == "torch"  # measured at export
    # The closest zoo net is the fixed point nearest in decisions.
    space = S.load_space("early")
    assignment = report["search"]["assignment"]
    nearest = min(S.distance(assignment, S.encode(space, nas.zoo.load(name))) for name in S.fixed_points(space))
    assert report["closest_zoo"]["distance"] == nearest
    # The weights are the trial's own.
    st = optuna.load_study(study_name="found", storage=storage)
    weights = st.trials[trial].user_attrs["weights"]
    graph = nas.build(st.trials[trial].user_attrs["yaml"])
    reference = nas.lower(graph)
    reference.load_state_dict(safetensors.torch.load_file(weights))
    assert_round_trip(Path("best"), reference, next(iter(graph.summary.inputs.values())))
    # The search's own best model is an export too.
    assert E.read_manifest("runs/found/best")["search"]["trial"] == trial
    assert_round_trip(Path("runs/found/best"), reference, next(iter(graph.summary.inputs.values())))


def test_a_trial_that_does_not_exist_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = search(tmp_path, "one", trials=1)
    capsys.readouterr()
    assert main(["export", "--storage", storage, "--study", "one", "--trial", "99", "-o", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no trial 99" in err
    assert not Path("x").exists()


# -- failures stay local, writing is atomic ----------------------------------------


def test_a_failing_format_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    def broken(*_: object) -> dict[str, Any]:
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX is not supported")

    monkeypatch.setitem(E.FORMATS, "onnx", replace(E.FORMATS["onnx"], write=broken))
    assert main(["export", "lenet5", "-o", "out", "--latency", "none"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "nas: error: format onnx not written: onnx export failed: "
        "Exporting the operator 'aten::frobnicate' to ONNX is not supported"
    ]
    manifest = E.read_manifest("out")
    assert manifest["formats"]["onnx"]["ok"] is False and not Path("out/model.onnx").exists()
    assert all(manifest["formats"][f]["ok"] for f in ("yaml", "weights", "pt2", "torchscript"))
    assert outputs(nas.load("out", "pt2"), torch.ones(1, 1, 32, 32))[0].shape == (1, 10)


def test_a_format_that_gives_other_values_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = nas.io.exported._load_torchscript

    def off_by_one(path: Path) -> Any:
        module = real(path)
        return lambda x: module(x) + 1

    monkeypatch.setitem(
        E.FORMATS,
        "torchscript",
        replace(E.FORMATS["torchscript"], load=off_by_one),
    )
    exported = E.export(E.from_source("lenet5"), "out", ["torchscript"])
    assert "outputs 1 away from the IR module's" in exported.failed["torchscript"]
    assert not Path("out/model.torchscript.pt").exists()


def _shifted_in_one_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """TorchScript that adds 1 to one output value: beyond the tolerance, on one output of ten."""
    real = nas.io.exported._load_torchscript

    def one_off(path: Path) -> Any:
        module = real(path)

        def run(x: torch.Tensor) -> torch.Tensor:
            y = module(x).clone()
            y[0, 3] += 1
            return y

        return run

    monkeypatch.setitem(E.FORMATS, "torchscript", replace(E.FORMATS["torchscript"], load=one_off))


def test_a_disagreement_on_a_few_outputs_is_not_read_as_a_tie(monkeypatch: pytest.MonkeyPatch) -> None:
    """One class score of ten is a tenth of the outputs: far more than ties move."""
    _shifted_in_one_output(monkeypatch)
    exported = E.export(E.from_source("lenet5"), "out", ["torchscript"])
    assert (
        "outputs 1 away from the IR module's at batch 2 (input seed 0, 1 of 20 outputs)"
        in exported.failed["torchscript"]
    )


def test_every_format_is_checked_on_several_seeds_at_both_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, float]] = []
    real = nas.io.exported._load_torchscript

    def recording(path: Path) -> Any:
        module = real(path)

        def run(x: torch.Tensor) -> torch.Tensor:
            seen.append((int(x.shape[0]), float(x[0, 0, 0, 0])))
            return module(x)

        return run

    monkeypatch.setitem(E.FORMATS, "torchscript", replace(E.FORMATS["torchscript"], load=recording))
    exported = E.export(E.from_source("lenet5"), "out", ["torchscript"])
    assert not exported.failed
    assert sorted(b for b, _ in seen) == [1] * E.CHECK_SEEDS + [2] * E.CHECK_SEEDS
    assert len({v for _, v in seen}) == E.CHECK_SEEDS  # other inputs, not one input again
    assert exported.manifest["check"]["input_seeds"] == list(range(E.CHECK_SEEDS))


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'nas[onnx]')")
def test_onnx_is_checked_at_the_latency_backends_optimisation_level(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    levels = []
    real = onnxruntime.InferenceSession

    def recording(model: Any, options: Any = None, *args: Any, **kwargs: Any) -> Any:
        session = real(model, options, *args, **kwargs)
        levels.append(session.get_session_options().graph_optimization_level)
        return session

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    assert not E.export(E.from_source("lenet5"), "out", ["onnx"]).failed
    nas.latency.measure(nas.build("lenet5"), "onnxruntime", batch=1, policy=TimingPolicy.quick(), cache=False)
    assert len(levels) == 2 and levels[0] == levels[1] == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'nas[onnx]')")
def test_enet_ties_broken_by_onnx_runtime_are_reported_not_failed(tmp_path: Path) -> None:
    """The case an outside check found: ENet (512x512, weights seeded 0) on
    torch.randn(2, 3, 512, 512, generator=torch.Generator().manual_seed(123))
    differs from the module by 4e-4 under ONNX Runtime's full optimisation:
    its max pooling picks another of two (nearly) equal maxima and the
    unpooling writes it elsewhere. A few hundred outputs of ten million move;
    the seed-0 input alone shows nothing."""
    exported = E.export(E.from_source("enet"), tmp_path / "enet", ["onnx"], check_seeds=(0, 123))
    assert not exported.failed
    record = exported.manifest["formats"]["onnx"]
    assert record["max_abs_error"] <= E.TOLERANCE  # seed 0: no tie
    ties = {(t["seed"], t["batch"]): t for t in record["tie_breaks"]}
    assert set(ties) == {(123, 2), (123, 1)}
    tie = ties[(123, 2)]
    assert 2e-4 < tie["max_abs_error"] < 1e-3 and 0 < tie["outputs"] <= E.TIE_SHARE * tie["of"]
    card = (tmp_path / "enet" / "MODEL.md").read_text()
    assert f"onnx, input seed 123 at batch 2: {tie['outputs']} of {tie['of']} outputs differ" in card


def test_a_missing_library_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    exported = E.export(E.from_source("lenet5"), "out", ["onnx", "tensorrt"])
    assert "pip install 'nas[onnx]'" in exported.failed["onnx"]
    assert "pip install 'nas[tensorrt]'" in exported.failed["tensorrt"]
    with pytest.raises(SourceError, match="no onnx file"):
        nas.load("out", "onnx")


def test_the_export_table_prints_the_extra_as_written(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    # Rich reads "[tensorrt]" as a markup tag and drops it unless told not to.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert main(["export", "lenet5", "-o", "out", "--format", "tensorrt", "--latency", "none"]) == 2
    captured = capsys.readouterr()
    assert "pip install 'nas[tensorrt]'" in captured.out
    assert "pip install 'nas[tensorrt]'" in captured.err


def test_an_interrupted_export_leaves_the_old_one_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    first = E.export(E.from_source("lenet5"), "out", ["yaml", "weights"])
    before = {p.name: p.read_bytes() for p in Path("out").iterdir()}

    def interrupted(*_: object) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setitem(E.FORMATS, "pt2", replace(E.FORMATS["pt2"], write=interrupted))
    with pytest.raises(KeyboardInterrupt):
        E.export(E.from_source("ciresan_mlp"), "out", ["yaml", "weights", "pt2"], overwrite=True)
    assert {p.name: p.read_bytes() for p in Path("out").iterdir()} == before
    assert sorted(p.name for p in Path(".").iterdir() if p.name.startswith(".out")) == []  # no leftovers
    assert nas.build("out").hash == first.manifest["architecture"]["hash"]
    with pytest.raises(KeyboardInterrupt):
        E.export(E.from_source("lenet5"), "new", ["yaml", "pt2"])
    assert not Path("new").exists()


def test_nothing_stored_is_lost(capsys: pytest.CaptureFixture[str]) -> None:
    Path("notes").mkdir()
    (Path("notes") / "mine.txt").write_text("keep")
    assert main(["export", "lenet5", "-o", "notes", "--format", "yaml", "--force"]) == 2
    assert "not a nas export" in capsys.readouterr().err
    assert (Path("notes") / "mine.txt").read_text() == "keep"
    assert main(["export", "lenet5", "-o", "lenet", "--format", "yaml", "--latency", "none"]) == 0
    assert main(["export", "lenet5", "-o", "lenet", "--format", "yaml"]) == 2
    assert "pass --force" in capsys.readouterr().err


def _full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _assert_one_line_naming(err: str, path: str) -> None:
    assert err.count("\n") == 0, err
    assert err.startswith(f"nas: error: {path}: cannot write: No space left on device (fix: free space"), err
    assert "internal error" not in err and "partial" not in err


@pytest.mark.parametrize("how", ["raised", "wrapped"])
def test_a_full_disk_fails_the_export_in_one_line_and_keeps_the_old_one(
    how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "lenet5", "-o", "out", "--format", "yaml,weights", "--latency", "none"]) == 0
    before = {p.name: p.read_bytes() for p in Path("out").iterdir()}
    capsys.readouterr()

    def full(*_: object) -> dict[str, Any]:
        if how == "raised":
            raise _full_disk()
        # torch's C++ writers report "file write failed" with the OSError only as the cause
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed") from _full_disk()

    monkeypatch.setitem(E.FORMATS, "pt2", replace(E.FORMATS["pt2"], write=full))
    args = ["export", "ciresan_mlp", "-o", "out", "--format", "yaml,weights,pt2", "--force", "--latency", "none"]
    assert main(args) == 2
    _assert_one_line_naming(capsys.readouterr().err.strip(), "out/model.pt2")
    assert {p.name: p.read_bytes() for p in Path("out").iterdir()} == before  # nothing already stored is lost
    assert not [p.name for p in Path(".").iterdir() if p.name.startswith(".out")]  # no leftovers
    assert main([*args[:3], "new", *args[4:]]) == 2
    assert not Path("new").exists()


@pytest.mark.parametrize("file", ["model.yaml", "MODEL.md", "model.json"])
def test_a_full_disk_while_writing_the_architecture_card_or_manifest_is_one_line(
    file: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    E.export(E.from_source("lenet5"), "out", ["yaml", "weights"])
    before = {p.name: p.read_bytes() for p in Path("out").iterdir()}
    real = Path.write_text

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.name == file:
            raise _full_disk()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(NASError) as raised:
        E.export(E.from_source("ciresan_mlp"), "out", ["yaml", "weights"], overwrite=True)
    assert str(raised.value).startswith(f"out/{file}: cannot write: No space left on device")
    assert main(["export", "ciresan_mlp", "-o", "out", "--format", "yaml", "--force", "--latency", "none"]) == 2
    _assert_one_line_naming(capsys.readouterr().err.strip(), f"out/{file}")
    assert {p.name: p.read_bytes() for p in Path("out").iterdir()} == before
    assert not [p.name for p in Path(".").iterdir() if p.name.startswith(".out")]


def test_the_weights_are_checked_by_loading_them_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def off_by_one(path: Path) -> Any:
        module = nas.io.exported._load_weights(path)
        return lambda x: module(x) + 1

    monkeypatch.setitem(E.FORMATS, "weights", replace(E.FORMATS["weights"], load=off_by_one))
    exported = E.export(E.from_source("lenet5"), "out", ["weights"])
    assert "outputs 1 away from the IR module's" in exported.failed["weights"]
    assert not Path("out/model.safetensors").exists()


def test_a_half_written_directory_is_not_loaded() -> None:
    E.export(E.from_source("lenet5"), "out", ["yaml", "weights"])
    shutil.copytree("out", "partial")
    (Path("partial") / "model.json").unlink()
    with pytest.raises(SourceError, match="not a nas export"):
        nas.load("partial")
    data = bytearray((Path("out") / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (Path("out") / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(SourceError, match="does not match its manifest"):
        nas.load("out")


def test_loading_never_unpickles_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    E.export(E.from_source("lenet5"), "out", ["yaml", "weights", "pt2"])

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.export, "load", refuse)
    monkeypatch.setattr(torch.jit, "load", refuse)
    assert outputs(nas.load("out"), torch.zeros(1, 1, 32, 32))[0].shape == (1, 10)
    with pytest.raises(AssertionError, match="unpickled"):
        nas.load("out", "pt2")  # only when named


def test_weights_come_from_safetensors_only(tmp_path: Path) -> None:
    torch.save({}, tmp_path / "w.pt")
    with pytest.raises(SourceError, match="pickled checkpoints are not read"):
        E.from_source("lenet5", weights=tmp_path / "w.pt")
    safetensors.torch.save_file({"c1.conv.weight": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(NASError, match="the weights do not fit the architecture"):
        E.from_source("lenet5", weights=tmp_path / "w.safetensors")


def test_given_weights_are_exported(tmp_path: Path) -> None:
    module = nas.lower(nas.build("lenet5"))
    safetensors.torch.save_file(dict(module.state_dict()), str(tmp_path / "w.safetensors"))
    exported = E.export(E.from_source("lenet5", weights=tmp_path / "w.safetensors"), "out", ["yaml", "weights"])
    assert exported.manifest["weights"]["trained"] is True
    assert_round_trip(Path("out"), module, (1, 32, 32))


# -- training -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_data("digits")


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path: Path, digits: Any) -> None:
    graph = nas.build(SMALL_NET)
    straight = train(graph, digits, epochs=2, seed=3)

    class Stop(Exception):
        pass

    def stop_after_first(epoch: int, accuracy: float) -> None:
        raise Stop

    checkpoint = tmp_path / "run.ckpt.safetensors"
    with pytest.raises(Stop):
        train(graph, digits, epochs=2, seed=3, checkpoint=checkpoint, on_epoch=stop_after_first)
    assert checkpoint.is_file()
    resumed = train(graph, digits, epochs=2, seed=3, checkpoint=checkpoint)
    assert resumed.curve[0] == straight.curve[0] and resumed.accuracy == straight.accuracy
    for key, value in straight.state.items():
        torch.testing.assert_close(resumed.state[key], value, rtol=0, atol=0, msg=key)
    with pytest.raises(NASError, match=r"another run .*seed"):
        train(graph, digits, epochs=2, seed=4, checkpoint=checkpoint)


def test_train_command_exports_a_trained_model(capsys: pytest.CaptureFixture[str]) -> None:
    Path("small.yaml").write_text(SMALL_NET)
    args = ["train", "small.yaml", "--epochs", "3", "-o", "mlp", "--format", "yaml,weights"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"]["trained"] is True
    assert report["accuracy"]["data"] == "digits" and 0.5 < report["accuracy"]["value"] <= 1
    assert len(report["accuracy"]["curve"]) == 3
    assert not list(Path(".").glob(".mlp.checkpoint*"))  # the export holds the weights now
    # Re-measured from the export, the accuracy is the card's.
    module, graph = nas.load("mlp"), nas.build("mlp")
    feed = loader(load_data("digits"), "val", input_shape(graph), batch_size=10_000)
    x, y = next(iter(feed.epoch()))
    correct = int((outputs(module, x)[0].argmax(1) == y).sum()) / len(y)
    assert correct == report["accuracy"]["value"]
    # An export directory is a source too: re-exported with its weights.
    assert main(["export", "mlp", "-o", "again", "--format", "yaml,weights", "--latency", "none"]) == 0
    assert E.read_manifest("again")["weights"]["trained"] is True


# -- blocks that exporters mistranslate -------------------------------------------------


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'nas[onnx]')")
@pytest.mark.parametrize(("block", "example"), block_examples())
def test_every_block_means_the_same_in_onnx(block: Any, example: Any, tmp_path: Path) -> None:
    graph = example_graph(block, example)
    torch.manual_seed(0)
    module = nas.lower(graph).eval()
    inputs = tuple(torch.randn(2, *s) for s in graph.summary.inputs.values())
    with torch.no_grad():
        result = module(*inputs)
    expected = tuple(result) if isinstance(result, tuple) else (result,)
    EF._write_onnx(EF.Subject(graph, module, inputs), tmp_path / "b.onnx")
    got = nas.io.exported.OnnxModule(tmp_path / "b.onnx")(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g.to(e.dtype), e, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'nas[onnx]')")
def test_an_onnx_model_that_dropped_an_unread_input_runs(tmp_path: Path) -> None:
    # In eval a fractal join averages its columns and never reads the mask:
    # the exporter leaves that input out, and the inputs given are matched
    # to the model's by name, not paired in order.
    graph = nas.build(
        "inputs: {a: [4, 5, 5], b: [4, 5, 5], mask: [2]}\n"
        "nodes: {join: {block: fractal_global_join, in: [a, b, mask], columns: [2, 1]}}"
    )
    module = nas.lower(graph).eval()
    inputs = (torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5), torch.ones(2, 2))
    EF._write_onnx(EF.Subject(graph, module, inputs), tmp_path / "join.onnx")
    runner = nas.io.exported.OnnxModule(tmp_path / "join.onnx")
    assert runner.names == ["input0", "input1"]
    with torch.no_grad():
        torch.testing.assert_close(runner(*inputs), module(*inputs))


def test_onnx_feeds_name_what_the_model_reads() -> None:
    from nas.passes.onnx import feeds

    assert feeds(["input2", "input0"], ["a", "b", "c"]) == {"input2": "c", "input0": "a"}
    with pytest.raises(ValueError, match=r"reads input3, which is not among the inputs given \(input0, input1\)"):
        feeds(["input3"], ["a", "b"])


@settings(max_examples=40, deadline=None)
@given(
    size=st.tuples(st.integers(1, 13), st.integers(1, 13)),
    out=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    reduce=st.sampled_from(["mean", "amax"]),
)
def test_spelled_out_adaptive_pooling_is_torchs(size: tuple[int, int], out: tuple[int, int], reduce: str) -> None:
    x = torch.randn(2, 3, *size, requires_grad=True)
    ours = SeparablePool2d(reduce, size, out)(x)
    theirs = (F.adaptive_avg_pool2d if reduce == "mean" else F.adaptive_max_pool2d)(x, out)
    torch.testing.assert_close(ours, theirs)
    g = torch.randn_like(ours)
    (a,) = torch.autograd.grad(ours, x, g)
    (b,) = torch.autograd.grad(theirs, x, g)
    torch.testing.assert_close(a, b)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(2, 12), kernel=st.integers(2, 3), stride=st.integers(1, 3))
def test_scatter_unpooling_is_torchs(size: int, kernel: int, stride: int) -> None:
    x = torch.randn(2, 3, size, size)
    if (size - kernel) // stride + 1 < 1:
        return
    pooled, indices = F.max_pool2d(x, kernel, stride, return_indices=True)
    pooled.requires_grad_(True)
    ours = ScatterUnpool2d((size, size))(pooled, indices)
    theirs = F.max_unpool2d(pooled, indices, kernel, stride, output_size=(size, size))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    g = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, pooled, g)[0], torch.autograd.grad(theirs, pooled, g)[0])
