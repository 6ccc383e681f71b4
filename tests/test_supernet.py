"""The supernet: windows of one bank as the weights of any network of a space.

Checked against plain PyTorch: a subnet's extracted weights, loaded into
the network lowered on its own, give the supernet's outputs; a window is
a view, so that a subnet's gradient lands in the bank; a resumed training
run ends with the bank an uninterrupted one has.
"""

from __future__ import annotations

import gc
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import nas
import nas.cli.supernet
import nas.search.finalists
import nas.search.study
import nas.space as S
import nas.supernet.training
import nas.train.loop
from nas.cli.root import main
from nas.data import load_data
from nas.data.loader import loader
from nas.ir.errors import NASError
from nas.passes.fusion import units
from nas.predict import Predictor
from nas.predict.profiling import fit_table
from nas.predict.table import LatencyTable
from nas.search import load_study, open_storage
from nas.search.finalists import finetune_best
from nas.search.record import FINETUNED_ATTR, TrialRecord
from nas.search.results import best_trial, contenders, leaders, spread, trial_model
from nas.search.workers import StudyLock
from nas.supernet import (
    Bank,
    CostRange,
    EpochLog,
    Inheritance,
    Supernet,
    SupernetRun,
    choose,
    entry_name,
    extract,
    load_supernet,
    train_supernet,
    window,
)
from nas.train import RECIPES, Precision, accuracy

SPACE = """
name: tiny
description: a small space with a width, a kernel size, a depth, an optional node and a block choice
inputs:
  x: {choice: [[1, 8, 8], [1, 16, 16]]}
nodes:
  stem: {block: conv_bn_act, in: x, out_channels: {choice: [8, 16]}, kernel_size: {choice: [3, 5]}}
  body: {block: stage, unit: basic_block, depth: {choice: [1, 2]}, args: {out_channels: {choice: [8, 16]}}}
  mix:
    block: {choice: [conv_bn_act, depthwise_separable]}
    optional: true
    params:
      conv_bn_act: {out_channels: {choice: [16, 24]}, kernel_size: {choice: [1, 3]}}
      depthwise_separable: {out_channels: {choice: [16, 24]}, kernel_size: {choice: [3, 5]}}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
outputs: [fc]
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> S.Space:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(SPACE)
    return S.load_space(str(path))


@pytest.fixture
def supernet(space: S.Space) -> Supernet:
    torch.manual_seed(0)
    net = Supernet(S.restrict(space, {"x.shape": (1, 8, 8)}), classes=10)
    net.census(random.Random(0), samples=16)
    return net


def test_a_window_is_the_leading_channels_and_the_centred_kernel() -> None:
    bank = torch.arange(4 * 3 * 5 * 5, dtype=torch.float32).reshape(4, 3, 5, 5)
    view = window(bank, (2, 3, 3, 3))
    torch.testing.assert_close(view, bank[:2, :3, 1:4, 1:4])
    assert view.untyped_storage().data_ptr() == bank.untyped_storage().data_ptr()  # a view, not a copy


def test_a_grown_entry_keeps_what_it_held_in_its_window() -> None:
    graph = nas.build("{inputs: {x: [1, 8, 8]}, nodes: {c: {block: conv2d, in: x, out_channels: 4, kernel_size: 3}}}")
    wide = nas.build("{inputs: {x: [1, 8, 8]}, nodes: {c: {block: conv2d, in: x, out_channels: 6, kernel_size: 5}}}")
    bank = Bank()
    small, big = nas.lower(graph), nas.lower(wide)
    assert bank.grow(graph, small.named_parameters()) == ["c@conv2d.bias", "c@conv2d.weight"]
    assert bank.grow(wide, big.named_parameters()) == ["c@conv2d.bias", "c@conv2d.weight"]
    held = bank["c@conv2d.weight"]
    assert tuple(held.shape) == (6, 1, 5, 5)
    torch.testing.assert_close(window(held, (4, 1, 3, 3)), small.c.weight)  # kept
    torch.testing.assert_close(held[4:], big.c.weight[4:])  # only the wide module reaches there
    assert bank.grow(graph, small.named_parameters()) == []


def test_entries_are_shared_by_units_and_widths_and_not_by_block_types(supernet: Supernet, space: S.Space) -> None:
    largest = supernet.subnet(supernet.largest())
    names = {entry_name(largest.graph, p) for p, _ in largest.parameters()}
    assert "body@stage/basic_block.b0.conv1.weight" in names and "body@stage/basic_block.b1.conv1.weight" in names
    assert "mix@conv_bn_act.conv.weight" in names
    assert "mix@depthwise_separable.conv_dw.conv.weight" in supernet.bank  # the other block type, its own entry
    small = supernet.subnet(supernet.smallest())
    assert {entry_name(small.graph, p) for p, _ in small.parameters()} < set(supernet.bank.names)


def test_an_extracted_subnet_is_a_plain_network_with_the_supernet_outputs(supernet: Supernet) -> None:
    feed_x = torch.randn(4, 1, 8, 8)
    for seed in range(4):
        net = supernet.subnet(supernet.sample(random.Random(seed)))
        net.module.eval()
        with torch.no_grad():
            shared = supernet.forward(net, feed_x)
        plain = nas.lower(net.graph)
        plain.load_state_dict(supernet.weights(net))  # strict: every parameter and buffer
        with torch.no_grad():
            torch.testing.assert_close(plain.eval()(feed_x), shared)


def test_a_drawn_subnet_is_decoded_once_and_is_the_network_its_assignment_decodes_to(
    supernet: Supernet, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng, again = random.Random(3), random.Random(3)
    expected = [S.sample(supernet.space, again) for _ in range(4)]

    def decode_again(*_: object, **__: object) -> None:
        raise AssertionError("the drawn network was decoded a second time")

    with monkeypatch.context() as m:
        m.setattr("nas.supernet.net.decode", decode_again)
        drawn = [supernet.sample(rng) for _ in range(4)]
        graphs = [supernet.subnet(a).graph for a in drawn]
    assert drawn == expected  # the same draws as nas.space.sample makes
    for assignment, graph in zip(drawn, graphs):
        assert graph.hash == nas.build(S.decode(supernet.space, assignment), classes=10).hash


def test_a_subnet_gradient_lands_in_the_bank(supernet: Supernet) -> None:
    net = supernet.subnet(supernet.smallest())
    net.module.train()
    supernet.forward(net, torch.randn(4, 1, 8, 8)).sum().backward()
    grad = supernet.bank["stem@conv_bn_act.conv.weight"].grad
    assert grad is not None
    assert grad[:8, :, 1:4, 1:4].abs().sum() > 0  # the smallest stem: 8 channels, 3x3 in the middle of 5x5
    assert grad[8:].abs().sum() == 0 and grad[:, :, 0].abs().sum() == 0


def test_a_channels_last_batch_trains_the_bank_as_an_nchw_one_does(tmp_path: Path) -> None:
    """Supernets train in channels-last layout: the bank's windows (strided views in
    NCHW) must give either layout the same scores and the same gradients."""
    path = tmp_path / "colour.yaml"
    path.write_text(SPACE.replace("{choice: [[1, 8, 8], [1, 16, 16]]}", "[3, 8, 8]"))
    torch.manual_seed(0)
    supernet = Supernet(S.load_space(str(path)), classes=10)
    supernet.census(random.Random(0), samples=8)
    x = torch.randn(4, 3, 8, 8)
    runs = []
    for layout in (torch.contiguous_format, torch.channels_last):
        supernet.bank.zero_grad()
        net = supernet.subnet(supernet.sample(random.Random(3)))
        net.module.train()
        out = supernet.forward(net, x.contiguous(memory_format=layout))
        out.square().sum().backward()
        runs.append((out.detach(), {n: p.grad for n, p in supernet.bank.named_parameters() if p.grad is not None}))
    (nchw, nchw_grads), (last, last_grads) = runs
    torch.testing.assert_close(last, nchw, rtol=1e-4, atol=1e-5)
    assert nchw_grads.keys() == last_grads.keys() and len(nchw_grads) > 4
    for name, grad in nchw_grads.items():
        torch.testing.assert_close(last_grads[name], grad, rtol=1e-4, atol=1e-4, msg=name)
    # a run feeds its batches in its precision's layout
    for layout in (False, True):
        run = SupernetRun(supernet, load_data("digits"), epochs=1, precision=Precision(None, layout))
        batch, _ = next(iter(run.feeds["train"].epoch(0)))
        assert batch.shape[1] == 3 and batch.is_contiguous(memory_format=torch.channels_last) == layout


def test_the_largest_and_smallest_networks_take_the_ends_of_every_domain(space: S.Space) -> None:
    fixed = S.restrict(space, {"x.shape": (1, 8, 8)})
    largest, smallest = S.extreme(fixed, largest=True), S.extreme(fixed, largest=False)
    assert largest["stem.out_channels"] == 16 and largest["body.depth"] == 2 and largest["mix.present"] is True
    assert largest["mix.conv_bn_act.out_channels"] == 24 and largest["stem.kernel_size"] == 5
    assert smallest["stem.out_channels"] == 8 and smallest["body.depth"] == 1 and smallest["mix.present"] is False
    assert nas.build(S.decode(fixed, largest)).params > nas.build(S.decode(fixed, smallest)).params


def test_restrict_narrows_decisions_and_names_a_bad_one(space: S.Space) -> None:
    narrowed = S.restrict(space, {"body.depth": [2], "x.shape": (1, 12, 12)})
    assert narrowed.by_label["body.depth"].choices == (2,)
    assert narrowed.by_label["x.shape"].choices == ((1, 12, 12),)  # any input shape
    assert S.sample(narrowed, random.Random(0))["body.depth"] == 2
    with pytest.raises(NASError, match=r"no decision 'body\.width'"):
        S.restrict(space, {"body.width": 3})
    with pytest.raises(NASError, match=r"outside the domain of 'body\.depth'"):
        S.restrict(space, {"body.depth": 7})


def test_near_keeps_the_share_of_each_domain_nearest_the_anchor(space: S.Space) -> None:
    fixed = S.restrict(space, {"x.shape": (1, 8, 8), "body.args.out_channels": [8, 16]})
    top = S.extreme(fixed, largest=True)
    first = S.near(fixed, top, 0.5)
    assert first.by_label["stem.out_channels"].choices == (16,)  # the anchor's half of [8, 16]
    assert first.by_label["body.depth"].choices == (2,)
    assert first.by_label["mix.present"].choices == (True,)
    assert first.by_label["mix.block"].choices == fixed.by_label["mix.block"].choices  # names stay whole
    assert S.near(fixed, top, 1.0) is fixed
    low = dict(top, **{"stem.kernel_size": 3})
    assert S.near(fixed, low, 0.5).by_label["stem.kernel_size"].choices == (3,)
    draws = [S.sample(first, random.Random(i)) for i in range(20)]
    assert all(d["stem.out_channels"] == 16 and d["body.depth"] == 2 for d in draws)
    assert {d["mix.block"] for d in draws} == {"conv_bn_act", "depthwise_separable"}


RANGED = """
name: ranged
inputs:
  x: {choice: [[1, 8, 8]]}
nodes:
  conv: {block: conv_bn_act, in: x, out_channels: {range: [8, 64, 8]}}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
outputs: [fc]
"""


def test_a_range_widens_around_its_anchor_nearest_first() -> None:
    ranged = S.parse_space(RANGED)
    label = "conv.out_channels"
    assert ranged.by_label[label].size == 8  # 8, 16, .. 64
    assert S.near(ranged, {label: 32}, 0.25).by_label[label].choices == (32, 40)  # ties go to the later value
    assert S.near(ranged, {label: 64}, 0.5).by_label[label].choices == (40, 48, 56, 64)
    assert S.near(ranged, {label: 8}, 0.1).by_label[label].choices == (8,)


def test_a_supernet_needs_one_input_shape(space: S.Space) -> None:
    with pytest.raises(NASError, match=r"one input shape.*fix it: --fix x.shape=1x16x16") as info:
        Supernet(space, classes=10)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.slow
def test_training_learns_and_a_resumed_run_ends_as_an_uninterrupted_one(space: S.Space, tmp_path: Path) -> None:
    data = load_data("digits")
    fixed = S.restrict(space, {"x.shape": (1, 8, 8), "mix.present": [False]})

    rates: list[float] = []

    def run(directory: Path, stop_after: int | None = None, epochs: int = 2) -> tuple[Supernet, list[float]]:
        torch.manual_seed(0)
        net = Supernet(fixed, data.classes)
        job = SupernetRun(net, data, recipe="digits", epochs=epochs, random_subnets=1, seed=3)

        def step(*args: Any) -> float:  # the rate each step takes
            assert job.state.optimizer is not None
            rates.append(job.state.optimizer.param_groups[0]["lr"])
            return SupernetRun.step(job, *args)

        job.step = step  # type: ignore[method-assign]

        def on_epoch(entry: EpochLog) -> None:
            if stop_after is not None and entry.epoch == stop_after:
                raise KeyboardInterrupt

        try:
            log = train_supernet(job, data, directory=directory, on_epoch=on_epoch)
        except KeyboardInterrupt:
            return net, []
        return net, [e.largest for e in log]

    whole, curve = run(tmp_path / "whole")
    assert curve[-1] > 0.6  # ten classes: chance is 0.1
    run(tmp_path / "cut", stop_after=1)
    resumed, _ = run(tmp_path / "cut")
    for name in whole.bank.names:
        torch.testing.assert_close(resumed.bank[name], whole.bank[name])
    # A finished run given more epochs goes on, its schedule stretched over them: the rate rises again
    rates.clear()
    _, short = run(tmp_path / "longer", epochs=1)
    steps, base = len(rates), RECIPES["digits"].lr
    factor = RECIPES["digits"].factor
    assert rates[-1] == pytest.approx(base * factor(steps - 1, steps, steps))
    rates.clear()
    _, longer = run(tmp_path / "longer", epochs=2)
    assert len(rates) == steps and longer[0] == short[0]  # the first epoch kept, one more trained
    assert rates[0] == pytest.approx(base * factor(steps, 2 * steps, steps))  # from its first step on
    assert rates[0] > 10 * base * factor(steps, steps, steps)  # where the 1-epoch schedule ended
    log = json.loads((tmp_path / "longer" / "log.json").read_text())
    assert [e["epoch"] for e in log] == [1, 2] and log[0]["largest"] == short[0]
    with pytest.raises(NASError, match="checkpoint is of another run"):  # fewer epochs than it has
        run(tmp_path / "longer", epochs=1)


def test_training_leaves_the_heap_it_began_with_to_the_collector_again(space: S.Space) -> None:
    data = load_data("digits")
    fixed = S.restrict(space, {"x.shape": (1, 8, 8)})
    frozen: list[int] = []

    def one_step(epoch: int, step: int, loss: float) -> None:
        frozen.append(gc.get_freeze_count())
        raise KeyboardInterrupt

    def train_one_step() -> None:
        job = SupernetRun(Supernet(fixed, data.classes), data, recipe="digits", epochs=1, random_subnets=1)
        with pytest.raises(KeyboardInterrupt):
            train_supernet(job, data, on_step=one_step)

    train_one_step()
    assert frozen[0] > 0  # the objects alive at the start were not scanned while it trained
    assert gc.get_freeze_count() == 0  # and are again, even after an interruption
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        calls: list[str] = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gc, "freeze", lambda: calls.append("freeze"))
            patch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
            train_one_step()
        # a caller's freeze is the caller's: neither redone nor undone (its count only falls as frozen objects die)
        assert calls == [] and 0 < frozen[1] <= mine and 0 < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()


def train_tiny_supernet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *options: str) -> None:
    """``nas supernet train`` of the tiny space at 8x8 (and ``options``), one epoch, into ``tmp_path/sn``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(SPACE)
    train = ["supernet", "train", "--space", "tiny.yaml", "--fix", "x.shape=1x8x8", *options, "--epochs", "1"]
    assert main([*train, "-o", "sn"]) == 0


@pytest.mark.slow
def test_the_commands_train_a_supernet_and_specialise_it_to_two_budgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch, "--fix", "body.depth=1", "--json")
    trained = json.loads(capsys.readouterr().out)
    supernet, info = load_supernet(tmp_path / "sn")
    assert info.fixed == ["x.shape=1x8x8", "body.depth=1"] and supernet.space.by_label["body.depth"].choices == (1,)
    assert trained["bank_entries"] == len(supernet.bank.names) and [e["epoch"] for e in trained["epochs"]] == [1]
    search = ["supernet", "search", "sn", "--latency-budget-ms", "5", "--latency-budget-ms", "50", "--trials", "4"]
    loaded: list[str] = []

    def counted(name: str) -> nas.data.DataSet:
        loaded.append(name)
        return load_data(name)

    monkeypatch.setattr(nas.cli.supernet, "load_data", counted)
    monkeypatch.setattr(nas.search.study, "load_data", counted)
    assert main([*search, "--finetune-epochs", "1", "--json"]) == 0
    assert loaded == ["digits"]  # once for both budgets: their searches and their fine-tuning
    shown = capsys.readouterr()
    report = json.loads(shown.out)
    for budget in ("5", "50"):  # each budget's study named on stderr, with a progress bar and no line per trial
        assert f"study 'sn-{budget}ms' in sqlite:///runs/nas.db: space " in shown.err
    assert "trial   0" not in shown.err
    assert [t["latency_budget_ms"] for t in report["targets"]] == [5, 50]
    for budget, target in zip(("5", "50"), report["targets"], strict=True):
        exported = tmp_path / "runs" / f"sn-{budget}ms" / "finetuned"
        card = (exported / "MODEL.md").read_text()
        assert "over the supernet `sn`" in card
        assert nas.build(str(exported)).hash  # an ordinary network
        study = load_study("sqlite:///runs/nas.db", target["study"])
        assert target["trials"] == len(study.trials) and target["best"]["trial"] == best_trial(study).number
        assert target["best"]["inherited"] == best_trial(study).values[0]
        # how far apart the networks score, and a warning where the supernet cannot tell them apart
        apart = spread(study, len(load_data("digits").val))
        assert apart is not None and target["spread"] == apart.to_dict()
        assert f"{apart.tied} of {apart.networks} networks score within the noise of the best" in shown.err
        untold = f"{budget} ms (torch): the supernet does not tell its networks apart" in shown.err
        assert untold == (not apart.told_apart)
        stored = json.loads((exported / "model.json").read_text())
        assert target["finetuned"]["accuracy"] == stored["accuracy"]["value"]
        assert Path(target["finetuned"]["directory"]).resolve() == exported.resolve()
    # the latency's conditions, as 'nas search' takes them
    batched = ["supernet", "search", "sn", "--latency-budget-ms", "50", "--trials", "2", "--finetune-epochs", "0"]
    capsys.readouterr()
    assert main([*batched, "--batch", "2", "--threads", "2", "--storage", "sqlite:///b.db"]) == 0
    assert "budget 50 ms on torch (batch 2, fp32)" in capsys.readouterr().err
    study = load_study("sqlite:///b.db", "sn-50ms")
    assert (study.user_attrs["batch"], study.user_attrs["precision"]) == (2, "fp32")
    assert all(", batch 2, fp32, 2 threads" in t.user_attrs["latency_source"] for t in study.trials)
    assert main(["supernet", "search", "nowhere", "--latency-budget-ms", "1"]) == 2
    # a zero-cost proxy would score networks without the supernet's weights: refused in one line, before any trial
    capsys.readouterr()
    assert main([*batched, "--objective", "proxy:naswot", "--storage", "sqlite:///p.db"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "ranked by their inherited accuracy, not proxy:naswot" in line and not (tmp_path / "p.db").exists()
    # a device this machine lacks: one line naming it, before any trial (the studies keep their trials)
    capsys.readouterr()
    assert main([*search, "--device", "cuda:99"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "'cuda:99' is not here" in line
    assert [len(load_study("sqlite:///runs/nas.db", t["study"]).trials) for t in report["targets"]] == [4, 4]


@pytest.mark.slow
def test_a_supernet_given_more_epochs_is_trained_further(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch)  # one epoch
    first = load_supernet(tmp_path / "sn")[0].bank.tensors()
    capsys.readouterr()
    train = ["supernet", "train", "--space", "tiny.yaml", "--fix", "x.shape=1x8x8", "-o", "sn"]
    assert main([*train, "--epochs", "2"]) == 0
    assert "planned for 1 epochs before, its schedule stretched to 2" in capsys.readouterr().err
    log = json.loads((tmp_path / "sn" / "log.json").read_text())
    further, info = load_supernet(tmp_path / "sn")
    assert [e["epoch"] for e in log] == [1, 2] and info.training["epochs"] == 2
    trained = further.bank.tensors()
    assert any(not torch.equal(trained[name], first[name]) for name in first)
    # fewer epochs than it has: one line, the supernet as it was
    assert main([*train, "--epochs", "1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "holds a supernet of 2 epochs, not 1" in line and "--epochs 2" in line
    kept = load_supernet(tmp_path / "sn")[0].bank.tensors()
    assert all(torch.equal(kept[name], trained[name]) for name in trained)


@pytest.mark.slow
def test_the_commands_decode_with_the_data_workers_they_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int | None] = []

    def recorded(original: Any) -> Any:
        def feed(*args: Any, **kwargs: Any) -> Any:
            asked.append(kwargs.get("workers"))
            return original(*args, **kwargs)

        return feed

    monkeypatch.setattr(nas.supernet.training, "loader", recorded(nas.supernet.training.loader))
    monkeypatch.setattr(nas.train.loop, "loader", recorded(nas.train.loop.loader))
    train_tiny_supernet(tmp_path, monkeypatch, "--data-workers", "3")
    search = ["supernet", "search", "sn", "--latency-budget-ms", "50", "--trials", "2", "--finalists", "2"]
    assert main([*search, "--finetune-epochs", "1", "--data-workers", "3"]) == 0
    export = ["supernet", "export", "sn", "-o", "out", "--format", "yaml", "--latency", "none"]
    assert main([*export, "--finetune-epochs", "1", "--data-workers", "3"]) == 0
    # training, inherited evaluation in the search, screening and fine-tuning, extraction and fine-tuning
    assert len(asked) >= 10 and set(asked) == {3}


@pytest.mark.slow
def test_the_search_keeps_the_finalist_a_short_fine_tune_ranks_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch)
    search = ["supernet", "search", "sn", "--latency-budget-ms", "50", "--trials", "8", "--storage", "sqlite:///s.db"]
    assert main([*search, "--finalists", "3", "--finetune-epochs", "1", "-o", "found"]) == 0
    study = load_study("sqlite:///s.db")
    top = contenders(study, 3, len(load_data("digits").val))
    assert len({TrialRecord.of(t).hash for t in top}) == 3
    assert {t.number for t in top} <= {t.number for t in leaders(study, len(study.trials))}  # feasible, one each
    kept = finetune_best(study, load_data("digits"), count=3, epochs=1, recipe="digits", storage="sqlite:///s.db")
    assert list(kept.screened) == [t.number for t in top]
    assert kept.screened[kept.trial.number] == max(kept.screened.values())
    # each finalist was screened from its inherited weights: the same run again gives the same accuracy
    runner_up = next(t for t in top if t.number != kept.trial.number)
    model = trial_model(study, runner_up)
    assert model.weights is not None
    again = nas.train.train(model.graph, load_data("digits"), recipe="digits", epochs=1, weights=model.weights)
    assert again.accuracy == kept.screened[runner_up.number]
    card = json.loads((tmp_path / "found" / "sn-50ms" / "finetuned" / "model.json").read_text())
    assert card["source"]["trial"] == kept.trial.number and not (tmp_path / "runs").exists()
    assert card["accuracy"]["screened"] == {str(n): a for n, a in kept.screened.items()}
    assert main([*search, "--finalists", "0"]) == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test's own trial left running, as a worker's
def test_a_search_fine_tunes_its_leaders_once_among_its_workers_and_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch)
    trained: list[int] = []
    original = nas.search.finalists.train

    def counted(*args: Any, **kwargs: Any) -> Any:
        trained.append(kwargs["epochs"])
        return original(*args, **kwargs)

    monkeypatch.setattr(nas.search.finalists, "train", counted)
    url = f"sqlite:///{tmp_path / 's.db'}"  # in full: the command runs from another folder too
    search = ["supernet", "search", "sn", "--latency-budget-ms", "50", "--trials", "6"]
    search += ["--storage", url, "--finalists", "2", "--json"]

    def finetuned(*epochs: str) -> tuple[dict[str, Any], str]:
        capsys.readouterr()
        assert main([*search, "--finetune-epochs", *epochs]) == 0
        out = capsys.readouterr()
        return json.loads(out.out)["targets"][0], out.err

    first, _ = finetuned("1")
    assert trained == [1, 1, 1] and first["finetuned"]["reused"] is False  # two screened, one kept
    # nas results reports it beside the front, not among the study's settings
    results = ["results", "--storage", url, "--study", first["study"], "--runs", "pictures"]
    assert main([*results, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["finetuned"] == {k: v for k, v in first["finetuned"].items() if k != "reused"}
    assert FINETUNED_ATTR not in shown["settings"]
    assert main(results) == 0
    record = first["finetuned"]
    assert f"fine-tuned: trial {record['trial']}, 1 epochs" in capsys.readouterr().out
    # the same command again: what the study recorded, not another fine-tuning
    again, said = finetuned("1")
    assert trained == [1, 1, 1] and again["finetuned"] == {**first["finetuned"], "reused": True}
    assert "(fine-tuned before, with the same leaders and settings)" in said
    # from another folder, the supernet named from there (the study and the record name files in full): the same
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    search[2] = "../sn"
    assert finetuned("1")[0]["finetuned"]["reused"] is True and trained == [1, 1, 1]
    monkeypatch.chdir(tmp_path)
    search[2] = "sn"
    # other settings: fine-tuned again
    assert finetuned("2")[0]["finetuned"]["epochs"] == 2 and trained == [1, 1, 1, 1, 1, 2]
    # a trial still running in another worker: the fine-tuning is left to the last to finish
    study = load_study(url, first["study"])
    running = study.ask()
    left, said = finetuned("3")
    assert left["finetuned"] is None and trained == [1, 1, 1, 1, 1, 2]
    assert f"fine-tuning left to another worker: trials {running.number} still run in other workers" in said
    # another worker holding the study's fine-tuning: left to it
    study.tell(running, state=optuna.trial.TrialState.FAIL)
    with StudyLock.of(open_storage(url), url, first["study"], task="finetune"):
        left, said = finetuned("3")
    assert left["finetuned"] is None and trained == [1, 1, 1, 1, 1, 2]
    assert "another worker of the study is fine-tuning its leaders" in said
    assert finetuned("3")[0]["finetuned"]["epochs"] == 3 and trained[-1] == 3  # the lock released: this one does it


@pytest.mark.slow
def test_two_workers_of_a_supernet_search_fine_tune_its_best_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch)
    url = "sqlite:///shared.db"
    command = [sys.executable, "-m", "nas.cli", "supernet", "search", "sn", "--latency-budget-ms", "50"]
    command += ["--trials", "16", "--storage", url, "--finalists", "2", "--finetune-epochs", "1"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    said = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        said.append(out)
    trained = [out for out in said if "exported to" in out and "fine-tuned before" not in out]
    assert len(trained) == 1, said  # one trained and exported, the other left it or found it done
    study = load_study(url)
    assert len([t for t in study.trials if t.state.is_finished()]) == 16
    record = study.user_attrs[FINETUNED_ATTR]
    assert f"fine-tuned trial {record['trial']} 1 epochs: accuracy {record['accuracy']:.4f}" in trained[0]


@pytest.mark.slow
def test_the_export_command_writes_a_named_network_with_the_weights_it_inherits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch)
    supernet, info = load_supernet(tmp_path / "sn")
    quiet = ["--format", "yaml,weights", "--latency", "none"]
    assert main(["supernet", "export", "sn", "-o", "big", *quiet]) == 0
    # the largest network, its accuracy measured again from the files alone
    graph = nas.build(str(tmp_path / "big"))
    assert graph.hash == supernet.network(supernet.largest()).hash
    card = json.loads((tmp_path / "big" / "model.json").read_text())
    feed = loader(load_data(info.data), "val", (1, 8, 8), batch_size=256, augment=False)
    measured = accuracy(graph, nas.load(str(tmp_path / "big")), feed)
    assert card["accuracy"]["value"] == card["accuracy"]["inherited"] == measured
    # the smallest network with a decision fixed, fine-tuned from what it inherits
    fixed = ["--fix", "body.depth=2", "--smallest", "--finetune-epochs", "1"]
    assert main(["supernet", "export", "sn", "-o", "small", *fixed, *quiet]) == 0
    card = json.loads((tmp_path / "small" / "model.json").read_text())
    assignment = card["source"]["assignment"]
    assert assignment["body.depth"] == 2 and card["source"]["fixed"] == ["body.depth=2"]
    deep = S.restrict(supernet.space, {"body.depth": 2})
    macs = nas.build(str(tmp_path / "small")).macs
    assert all(macs <= supernet.network(S.sample(deep, random.Random(i))).macs for i in range(20))
    taken = extract(
        supernet, S.assignment_from_plain(supernet.space, assignment), load_data(info.data), recipe="digits"
    )
    again = nas.train.train(taken.graph, load_data(info.data), recipe="digits", epochs=1, weights=taken.weights)
    assert card["accuracy"]["value"] == again.accuracy and card["accuracy"]["inherited"] == taken.inherited
    assert (
        "the smallest network with `body.depth=2` of the supernet `sn`" in (tmp_path / "small" / "MODEL.md").read_text()
    )
    # one line and exit 2: a zoo net the space does not hold, a fix outside its domain, a net and a fix at
    # once, an export already there (kept)
    capsys.readouterr()
    for refused, says in (
        (["-o", "x", "--net", "lenet5"], "'lenet5' is not a network of the supernet's space"),
        (["-o", "x", "--fix", "body.depth=7"], "outside the domain of 'body.depth'"),
        (["-o", "x", "--net", "lenet5", "--fix", "body.depth=1"], "not both"),
        (["-o", "big", *quiet], "holds an export already"),
        (["-o", "x", "--device", "cuda:99"], "'cuda:99' is not here"),
    ):
        assert main(["supernet", "export", "sn", *refused]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert says in line
    assert not (tmp_path / "x").exists() and (tmp_path / "big" / "model.json").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_supernet_evaluates_its_networks_on_a_gpu_as_on_the_cpu(
    supernet: Supernet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # float32 convolutions, as on the CPU
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    data = load_data("digits")
    inherit = Inheritance(supernet, data, "digits")
    network = supernet.network(supernet.largest())
    on_cpu, weights = inherit(network)
    on_gpu, moved = inherit.to(torch.device("cuda"))(network)
    assert supernet.device.type == "cuda" and all(t.device.type == "cuda" for t in supernet.bank.parameters())
    assert abs(on_gpu - on_cpu) <= 2 / len(data.val)  # the same network and statistics, rounding apart
    assert moved.keys() == weights.keys() and all(t.device.type == "cpu" for t in moved.values())
    for name, tensor in weights.items():
        torch.testing.assert_close(moved[name], tensor, rtol=1e-3, atol=1e-4, msg=name)


def test_a_supernet_started_from_a_trained_network_holds_it_in_its_windows(supernet: Supernet) -> None:
    digits = load_data("digits")
    assignment = supernet.sample(random.Random(5))
    graph = supernet.network(assignment)
    before, _ = Inheritance(supernet, digits, "digits")(graph)
    alone = nas.train.train(graph, digits, recipe="digits", epochs=3, seed=0)
    started = supernet.start_from(assignment, alone.state)
    net = supernet.subnet(assignment)
    names = [name for name, _ in net.parameters()]
    assert sorted(started.taken) == sorted(names) and started.fresh == []
    held = supernet.weights(net)
    assert all(torch.equal(held[name], alone.state[name]) for name in names)
    # its accuracy with the statistics measured again is what it had alone (within what measuring them moves)
    inherited, _ = Inheritance(supernet, digits, "digits")(graph)
    assert abs(inherited - alone.accuracy) < 0.05 and inherited > before + 0.3, (before, inherited, alone.accuracy)
    # a narrower network of the space holds the leading channels of the same tensors
    stem = "stem.conv.weight"
    narrower = supernet.subnet({**assignment, "stem.out_channels": 8})
    taken = supernet.weights(narrower)[stem]
    torch.testing.assert_close(taken, alone.state[stem][:8, :, :, :], rtol=0, atol=0)
    # a classifier for other classes keeps its initialisation; weights named otherwise are refused
    other = nas.lower(nas.build(graph, classes=5)).state_dict()
    fresh = supernet.start_from(assignment, other).fresh
    assert sorted(fresh) == ["fc.bias", "fc.weight"]
    with pytest.raises(NASError, match="name none of the network's"):
        supernet.start_from(assignment, {f"other.{k}": v for k, v in alone.state.items()})


@pytest.mark.slow
def test_the_train_command_starts_a_supernet_from_a_trained_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_tiny_supernet(tmp_path, monkeypatch)
    quiet = ["--format", "yaml,weights"]
    assert main(["supernet", "export", "sn", "-o", "big", *quiet, "--latency", "none"]) == 0
    assert main(["train", "big", "-o", "trained", "--epochs", "3", *quiet]) == 0
    capsys.readouterr()
    train = ["supernet", "train", "--space", "tiny.yaml", "--fix", "x.shape=1x8x8", "--epochs", "1", "--json"]
    assert main([*train, "-o", "started", "--init", "trained"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    trained = json.loads((tmp_path / "trained" / "model.json").read_text())["accuracy"]["value"]
    plain = json.loads((tmp_path / "sn" / "log.json").read_text())[0]["largest"]  # one epoch, no --init
    parameters = [name for name, _ in nas.lower(nas.build("trained")).named_parameters()]
    assert report["init"]["fresh"] == [] and sorted(report["init"]["taken"]) == sorted(parameters)
    # after the same epoch, the largest network (the one trained) is where its training left it, not where
    # one epoch from a new initialisation is
    largest = report["epochs"][0]["largest"]
    assert largest > trained - 0.03 and largest > plain + 0.15, (largest, trained, plain)
    assert "; the bank starts from trained" in out.err.splitlines()[0]  # said before training, counted after
    assert "the bank started from trained: " in out.err
    assert json.loads((tmp_path / "started" / "supernet.json").read_text())["training"]["init"] == "trained"
    # a network the space does not hold, and one without weights: one line each, nothing written
    assert main(["export", "lenet5", "-o", "lenet", *quiet]) == 0
    assert main(["export", "lenet5", "-o", "bare", "--format", "yaml"]) == 0
    capsys.readouterr()
    for init, says in (
        ("lenet", "'lenet' is not a network of the space as fixed"),
        ("lenet", "nas space --around lenet -o SPACE.yaml"),
        ("bare", "holds no weights"),
    ):
        assert main([*train, "-o", f"from-{init}", "--init", init]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert says in line and not (tmp_path / f"from-{init}").exists()


def test_a_zoo_net_is_chosen_by_its_own_assignment_and_one_outside_the_space_names_those_inside() -> None:
    space = S.load_space("early")
    assert S.decode(space, choose(space, net="lenet5")).hash == nas.zoo.load("lenet5").hash
    with pytest.raises(NASError, match=r"its zoo nets: .*lenet5"):
        choose(space, net="resnet18")


def test_progressive_epochs_draw_near_the_largest_network_then_everywhere(space: S.Space) -> None:
    fixed = S.restrict(space, {"x.shape": (1, 8, 8)})
    net = Supernet(fixed, classes=10)
    run = SupernetRun(net, load_data("digits"), recipe="digits", epochs=4, progressive=2, random_subnets=3)
    assert [run.fraction(e) for e in range(4)] == [1 / 3, 2 / 3, 1.0, 1.0]
    assert run.settings(load_data("digits"))["progressive"] == 2
    rng = random.Random(0)
    early = [s.assignment for _ in range(10) for s in run.subnets(rng, epoch=0)]
    assert early[0] == net.largest()
    assert all(a["stem.out_channels"] == 16 and a["body.depth"] == 2 and a["mix.present"] for a in early)
    smallest = net.network(run.phase(0)[1])
    assert net.network(net.smallest()).macs < smallest.macs <= net.network(net.largest()).macs
    late = [s.assignment for _ in range(10) for s in run.subnets(rng, epoch=2)]
    assert late[1] == net.smallest()
    assert {a["stem.out_channels"] for a in late} == {8, 16}
    assert "progressive" not in SupernetRun(net, load_data("digits"), epochs=4).settings(load_data("digits"))
    with pytest.raises(NASError, match="progressive epochs must be fewer than the epochs") as raised:
        SupernetRun(net, load_data("digits"), epochs=4, progressive=4)
    assert len(str(raised.value).splitlines()) == 1


def test_a_supernet_step_clips_the_gradients_the_recipe_bounds(space: S.Space) -> None:
    """Under SGD a step moves the bank by the rate times the clipped gradient."""
    data = load_data("digits")
    fixed = S.restrict(space, {"x.shape": (1, 8, 8)})
    sgd = RECIPES["cifar"].with_changes(weight_decay=0.0, warmup=0.0, momentum=0.0, nesterov=False, augment=False)
    moved = []
    for clip in (1e-9, None):
        torch.manual_seed(0)
        net = Supernet(fixed, data.classes)
        net.census(random.Random(0), samples=4)
        before = {name: net.bank[name].detach().clone() for name in net.bank.names}
        run = SupernetRun(net, data, recipe=sgd.with_changes(clip_grad=clip), epochs=1)
        run.optimise()
        x, y = next(iter(run.feeds["train"].epoch(0)))
        run.step(x, y, random.Random(0), 0)
        moved.append(max(float((net.bank[n].detach() - before[n]).abs().max()) for n in net.bank.names))
    clipped, free = moved
    assert clipped < 1e-8 < 1e-3 < free


def test_a_half_precision_step_moves_the_bank_as_a_float32_one(space: S.Space) -> None:
    """Mixed precision as on a GPU (fp16 autocast, here on the CPU): the subnets' gradients
    are scaled, summed, unscaled before clipping and the step; the bank stays float32."""
    data = load_data("digits")
    fixed = S.restrict(space, {"x.shape": (1, 8, 8)})
    sgd = RECIPES["cifar"].with_changes(weight_decay=0.0, warmup=0.0, momentum=0.0, nesterov=False, augment=False)
    for clip in (None, 0.05):
        moved = []
        for precision in (Precision(None, True), Precision(torch.float16, True)):
            torch.manual_seed(0)
            net = Supernet(fixed, data.classes)
            net.census(random.Random(0), samples=4)
            before = {name: net.bank[name].detach().clone() for name in net.bank.names}
            recipe = sgd.with_changes(clip_grad=clip)
            run = SupernetRun(net, data, recipe=recipe, epochs=1, precision=precision)
            assert (run.state.scaler is not None) == (precision.dtype == torch.float16)
            run.optimise()
            x, y = next(iter(run.feeds["train"].epoch(0)))
            run.step(x, y, random.Random(0), 0)
            assert all(p.dtype == torch.float32 for p in net.bank.parameters())
            moved.append(torch.cat([(net.bank[n].detach() - before[n]).flatten() for n in net.bank.names]))
        full, half = moved
        assert not torch.equal(half, full)  # computed in half precision, rounded apart
        assert float((half - full).norm()) <= 0.05 * float(full.norm())
        if clip is not None:  # clipped to the bound in both, not to the bound over the loss scale
            lr = recipe.lr_at(recipe.batch_size)
            assert float(half.norm()) == pytest.approx(lr * clip, rel=1e-3)
            assert float(full.norm()) == pytest.approx(lr * clip, rel=1e-3)


def test_the_command_refuses_more_progressive_epochs_than_epochs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["supernet", "train", "--space", "mobile", "--epochs", "2", "--progressive", "2", "-o", str(tmp_path / "sn")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--progressive must be fewer than the 2 epochs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sn").exists()


def test_the_command_refuses_mixed_precision_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["supernet", "train", "--space", "mobile", "--fix", "x.shape=3x32x32", "--amp", "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "sn")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "mixed precision (--amp) trains on a GPU only" in line and "--device cuda" in line
    assert not (tmp_path / "sn").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_supernet_trains_in_mixed_precision_on_a_gpu_by_default(space: S.Space, tmp_path: Path) -> None:
    data = load_data("digits")
    torch.manual_seed(0)
    net = Supernet(S.restrict(space, {"x.shape": (1, 8, 8)}), data.classes).to(torch.device("cuda"))
    run = SupernetRun(net, data, recipe="digits", epochs=2)
    assert run.precision.dtype in (torch.bfloat16, torch.float16) and run.settings(data)["amp"]
    log = train_supernet(run, data, directory=tmp_path / "sn")
    assert all(p.dtype == torch.float32 and p.is_cuda for p in net.bank.parameters())
    # as in float32 on the CPU, where the largest network reaches 0.60 and 0.66 after these epochs
    assert all(math.isfinite(e.loss) for e in log) and log[-1].largest > 0.5


def test_the_sandwich_ends_are_the_most_and_fewest_macs_not_the_ends_of_each_domain() -> None:
    space = S.restrict(
        S.load_space("residual"),
        {"x.shape": (3, 32, 32), "unit": "basic_block", "expansion": 1, "layer4.present": False}
        | {f"layer{i}.depth": [1, 2, 3] for i in (1, 2, 3)},
    )
    net = Supernet(space, classes=10)
    largest, smallest = net.largest(), net.smallest()
    assert largest["conv1.stride"] == 1 and largest["maxpool.present"] is False  # the top of the domain: 2 and True
    assert smallest["conv1.stride"] == 2 and smallest["maxpool.present"] is True
    rng = random.Random(0)
    macs = [net.network(net.sample(rng)).macs for _ in range(40)]
    assert net.network(smallest).macs <= min(macs) and net.network(largest).macs >= max(macs)


def test_the_ends_keep_to_the_space_limits_where_the_ends_of_its_domains_do_not() -> None:
    space = S.narrowed(S.load_space("early"), ["x.shape=1x32x32"])
    with pytest.raises(NASError, match="exceed the space's limit"):
        S.extreme(space, largest=True)  # every decision at its top: too many parameters
    net = Supernet(space, classes=10)
    largest, smallest = net.network(net.largest()), net.network(net.smallest())
    assert all(getattr(largest, k) <= v for k, v in space.limits.items())
    rng = random.Random(1)
    macs = [net.network(net.sample(rng)).macs for _ in range(40)]
    assert smallest.macs <= min(macs) and largest.macs >= max(macs)


def test_a_cost_range_trains_only_its_networks_and_its_network_of_the_most_macs_teaches(space: S.Space) -> None:
    data = load_data("digits")
    net = Supernet(S.restrict(space, {"x.shape": (1, 8, 8)}), classes=10)
    macs = sorted(net.network(net.sample(random.Random(i))).macs for i in range(200))
    low, high = macs[50], macs[120]  # the networks between the quartile and about the median
    within = CostRange(lambda g: g.macs, low, high, source="MACs", unit="MACs")
    run = SupernetRun(net, data, recipe="digits", epochs=1, random_subnets=3, within=within)
    rng = random.Random(0)
    steps = [[s.graph.macs for s in run.subnets(rng)] for _ in range(40)]
    drawn = [m for step in steps for m in step[2:]]
    assert all(low <= m <= high for step in steps for m in step)
    assert len(set(drawn)) > 10  # random networks of the range, not a few
    heaviest, lightest = steps[0][:2]
    assert all(step[:2] == [heaviest, lightest] for step in steps)  # the same ends every step
    assert heaviest >= sorted(drawn)[int(0.9 * len(drawn))] and lightest <= sorted(drawn)[int(0.1 * len(drawn))]
    assert heaviest < net.network(net.largest()).macs  # the largest is out of the range: never trained
    free = SupernetRun(net, data, recipe="digits", epochs=1, random_subnets=3)
    assert any(not low <= s.graph.macs <= high for _ in range(10) for s in free.subnets(rng))
    assert run.settings(data)["within"] == {"low": low, "high": high, "unit": "MACs", "source": "MACs"}
    assert "within" not in free.settings(data)  # a resumed run must agree on it, and older runs still resume
    # a range with no network, an empty one, one with progressive shrinking: one line each
    smallest = net.network(net.smallest()).macs
    none = SupernetRun(net, data, epochs=1, within=CostRange(lambda g: g.macs, 0, smallest - 1, source="MACs"))
    with pytest.raises(NASError, match=f"no network of the space costs 0 to {smallest - 1:g} ms") as raised:
        none.subnets(rng)
    assert f"the space's smallest network costs {smallest:.3g} ms" in str(raised.value)
    with pytest.raises(NASError, match="the cost range 2 to 1 ms is empty"):
        CostRange(lambda g: g.macs, 2, 1, source="MACs")
    with pytest.raises(NASError, match="progressive shrinking widens from the largest network") as raised:
        SupernetRun(net, data, epochs=2, progressive=1, within=within)
    assert len(str(raised.value).splitlines()) == 1


def test_without_distillation_every_subnet_of_the_sandwich_learns_the_labels(space: S.Space) -> None:
    data = load_data("digits")
    steps = {}
    for distill in (True, False):
        torch.manual_seed(0)
        net = Supernet(S.restrict(space, {"x.shape": (1, 8, 8)}), classes=10)
        net.census(random.Random(0))
        run = SupernetRun(net, data, recipe="digits", epochs=1, distill=distill)
        run.optimise()
        x, y = next(iter(run.feeds["train"].epoch(0, seed=0)))
        subnets = run.subnets(random.Random(1))
        assert len(subnets) == 4  # the largest, the smallest and two random ones
        on_labels = []
        for s in subnets:
            s.module.train()  # as the step runs them: batch statistics
            with torch.no_grad():
                on_labels.append(float(run.loss(net.forward(s, x).float(), y)))
        steps[distill] = run.step(x, y, random.Random(1), 0), sum(on_labels) / len(on_labels)
        assert run.settings(data).get("distill", True) is distill  # older checkpoints, which distilled, resume
    assert steps[False][0] == pytest.approx(steps[False][1], rel=1e-5)
    assert steps[True][0] != pytest.approx(steps[True][1], rel=1e-2)  # three of its four losses: KL to the teacher


def test_a_cost_range_teaches_with_its_network_of_the_most_macs_not_its_costliest(space: S.Space) -> None:
    net = Supernet(S.restrict(space, {"x.shape": (1, 8, 8)}), classes=10)
    # every network in range, its cost falling as its compute grows (as a deep, narrow network can be slowest)
    inverse = CostRange(lambda g: 1e9 / g.macs, 0, 1e9, source="inverse MACs")
    run = SupernetRun(net, load_data("digits"), recipe="digits", epochs=1, within=inverse)
    teacher, anchor = run.ends()
    assert teacher == net.largest() and anchor == net.smallest()


PLAIN = """
name: plain
description: a plain stage of varying depth, then residual ones
inputs:
  x: {choice: [[3, 12, 12]]}
nodes:
  stem: {block: conv_bn_act, in: x, out_channels: 8, kernel_size: 3}
  body:
    block: stage
    unit: depthwise_separable
    depth: {choice: [1, 2, 3]}
    args: {out_channels: {choice: [8, 16]}, kernel_size: {choice: [3, 5]}, act: {choice: [relu, relu6]}}
  res: {block: stage, unit: basic_block, depth: {choice: [1, 2]}, args: {out_channels: 16}}
  inverted:
    block: stage
    unit: inverted_residual
    depth: {choice: [1, 2]}
    args: {out_channels: 16, expansion: 2, drop_path: 0.1}
  scaled:
    block: stage
    unit: inception_resnet_a
    depth: {choice: [1, 2]}
    args: {out_1x1: 4, branch_single: [4, 4], branch_double: [4, 4, 4], scale: 0.2}
  tail:
    block: stage
    unit: {choice: [conv_bn_act, depthwise_separable]}
    depth: {choice: [1, 2]}
    args: {out_channels: 16, kernel_size: 3}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
outputs: [fc]
"""


def test_a_new_bank_starts_a_stage_s_later_units_as_the_identity_so_its_depths_agree(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(PLAIN)
    torch.manual_seed(0)
    net = Supernet(S.load_space(str(path)), classes=10)
    net.census(random.Random(0), samples=8)
    deep, shallow = net.largest(), net.largest()
    assert deep["body.depth"] == 3 and deep["res.depth"] == deep["inverted.depth"] == deep["scaled.depth"] == 2
    shallow["body.depth"] = shallow["res.depth"] = shallow["inverted.depth"] = shallow["scaled.depth"] = 1
    x = torch.rand(4, 3, 12, 12)
    outputs = []
    for assignment in (deep, shallow):
        sub = net.subnet(assignment)
        sub.module.eval()  # fresh statistics: each norm is the identity, so a unit started as one passes x on
        with torch.no_grad():
            outputs.append(net.forward(sub, x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
    conv = "body@stage/depthwise_separable.b{}.conv_{}.conv.weight"
    dw, pw = net.bank[conv.format(2, "dw")], net.bank[conv.format(2, "pw")]
    assert dw.shape == (16, 1, 5, 5) and torch.equal(dw, torch.nn.init.dirac_(torch.empty_like(dw), groups=16))
    assert torch.equal(pw[:, :, 0, 0], torch.eye(16))
    assert not torch.equal(net.bank[conv.format(0, "pw")][:8, :8, 0, 0], torch.eye(8))  # the first unit: its own start
    # each unit a choice offers is started so, not only the largest network's
    for name in ("tail@stage/conv_bn_act.b1.conv.weight", "tail@stage/depthwise_separable.b1.conv_pw.conv.weight"):
        weight = net.bank[name]
        assert torch.equal(weight, torch.nn.init.dirac_(torch.empty_like(weight))), name
    # a residual unit: its branch's last norm scales by zero, the rest keeps its random start
    block = "res@stage/basic_block.b{}.{}.weight"
    assert not net.bank[block.format(1, "bn2")].any() and net.bank[block.format(0, "bn2")].all()
    assert net.bank[block.format(1, "bn1")].all()
    convs = [block.format(1, "conv1"), block.format(1, "conv2")]
    assert all(net.bank[n].flatten().count_nonzero() > net.bank[n].shape[0] for n in convs)
    # the branch's end inside a composite node (the projection's conv_bn_act), through a drop path
    assert not net.bank["inverted@stage/inverted_residual.b1.project.bn.weight"].any()
    assert net.bank["inverted@stage/inverted_residual.b1.expand.bn.weight"].all()
    # a branch without a norm at its end (Inception-ResNet's linear 1x1, then a scale): that projection at zero
    unit = "scaled@stage/inception_resnet_a.b{}.{}"
    assert not net.bank[unit.format(1, "conv2d.weight")].any() and not net.bank[unit.format(1, "conv2d.bias")].any()
    assert net.bank[unit.format(0, "conv2d.weight")].all() and net.bank[unit.format(1, "branch0.bn.weight")].all()


XCEPTION = """
name: flows
description: a stage of Xception blocks of one to three separable convolutions
inputs:
  x: {choice: [[3, 12, 12]]}
nodes:
  stem: {block: conv_bn_act, in: x, out_channels: 8, kernel_size: 3}
  middle: {block: stage, unit: xception_block, depth: 2, args: {out_channels: 8, reps: {choice: [1, 2, 3]}}}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
outputs: [fc]
"""


def test_a_residual_unit_of_elastic_length_zeroes_only_the_norm_that_ends_its_branch_in_every_network(
    tmp_path: Path,
) -> None:
    """A norm that ends the branch in a short unit but sits inside a long one keeps its scale: zeroed, the next
    norm would divide a zero input by its epsilon alone, and the branch's first step would be amplified."""
    path = tmp_path / "flows.yaml"
    path.write_text(XCEPTION)
    net = Supernet(S.load_space(str(path)), classes=10)
    net.census(random.Random(0), samples=8)
    norms = {n: bool(net.bank[n].any()) for n in net.bank.names if n.startswith("middle@") and ".bn" in n}
    norms = {n.split(".", 1)[1]: kept for n, kept in norms.items() if n.endswith(".weight")}
    assert norms == {
        "b0.bn1.weight": True,
        "b0.bn2.weight": True,
        "b0.bn3.weight": True,
        "b1.bn1.weight": True,
        "b1.bn2.weight": True,
        "b1.bn3.weight": False,
    }


@pytest.mark.slow
def test_a_supernet_trained_in_a_cost_range_beats_one_trained_everywhere_on_the_range_ends(space: S.Space) -> None:
    """The same steps spent on the range's networks: its heaviest scores higher than when steps go to the largest."""
    data = load_data("digits")
    fixed = S.restrict(space, {"x.shape": (1, 8, 8), "mix.present": [False]})
    scores = []
    for ranged in (True, False):
        torch.manual_seed(0)
        net = Supernet(fixed, data.classes)
        macs = sorted(net.network(net.sample(random.Random(i))).macs for i in range(100))
        within = CostRange(lambda g: g.macs, 0, macs[30], source="MACs", unit="MACs")
        run = SupernetRun(net, data, recipe="digits", epochs=1, random_subnets=1, seed=1, within=within)
        trained = run if ranged else SupernetRun(net, data, recipe="digits", epochs=1, random_subnets=1, seed=1)
        train_supernet(trained, data)
        scores.append(sum(run.evaluate(end) for end in run.ends()) / 2)
    ranged_score, everywhere = scores
    assert ranged_score > everywhere + 0.02, scores


def macs_table(graphs: list[nas.Graph]) -> LatencyTable:
    """A latency table whose every unit takes 0.01 ms plus 1 ms per million MACs: latency known in advance."""
    blocks: dict[str, dict[str, Any]] = {}
    for g in graphs:
        for u in units(g):
            ms = 0.01 + u.macs / 1e6
            row = {"key": u.key, **u.describe(), "median_ms": ms, "p10_ms": ms, "p90_ms": ms, "runs": 1, "count": 1}
            blocks.setdefault(u.key, row)
    networks = [
        {"name": f"n{i}", "hash": g.hash, "source": "tiny", "median_ms": sum(0.01 + u.macs / 1e6 for u in units(g))}
        for i, g in enumerate(graphs)
    ]
    conditions = {"backend": "torch", "mode": "eager", "device": "test CPU", "precision": "fp32", "batch": 1}
    table = LatencyTable(
        conditions=conditions | {"threads": 1, "versions": {"torch": "x"}},
        blocks=list(blocks.values()),
        networks=[n | {"p10_ms": n["median_ms"], "p90_ms": n["median_ms"]} for n in networks],
        profile={"note": "synthetic"},
    )
    fit_table(table, graphs, features=("blocks_ms",))
    return table


@pytest.mark.slow
def test_the_train_command_trains_a_latency_range_and_the_search_warns_above_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], space: S.Space
) -> None:
    net = Supernet(S.restrict(space, {"x.shape": (1, 8, 8)}), classes=10)
    graphs = [net.network(net.sample(random.Random(i))) for i in range(40)]
    macs_table(graphs).save(tmp_path / "t.json")
    predictor = Predictor(str(tmp_path / "t.json"))
    costs = sorted(predictor.predict(g) for g in graphs)
    high = round(costs[20], 4)
    ranged = ["--latency-table", "t.json", "--latency-range-ms"]
    train_tiny_supernet(tmp_path, monkeypatch, *ranged, f"{high}", "--json")
    shown = capsys.readouterr()
    assert f"only networks of 0 to {high:g} ms on t.json" in shown.err
    info = json.loads((tmp_path / "sn" / "supernet.json").read_text())
    assert info["training"]["range"] == {"low": 0.0, "high": high, "unit": "ms", "source": "t.json"}
    # a search within the range says nothing of it; one above it warns, naming the range to train
    search = ["supernet", "search", "sn", "--latency-table", "t.json", "--trials", "2", "--finetune-epochs", "0"]
    assert main([*search, "--latency-budget-ms", f"{high}"]) == 0
    assert "trained only networks" not in capsys.readouterr().err
    assert main([*search, "--latency-budget-ms", f"{2 * high}", "--storage", "sqlite:///b.db"]) == 0
    assert (
        f"the supernet trained only networks of 0 to {high:g} ms (t.json); under {2 * high:g} ms the heavier "
        f"networks inherit weights not trained for them: train one with --latency-range-ms 0:{2 * high:g}"
    ) in capsys.readouterr().err
    # bad ranges: one line each, naming the option, and nothing written
    train = ["supernet", "train", "--space", "tiny.yaml", "--fix", "x.shape=1x8x8", "--epochs", "1"]
    for options, message in [
        (["--latency-range-ms", "0.5"], "--latency-range-ms needs the table that predicts it"),
        (["--latency-table", "t.json"], "--latency-table without --latency-range-ms"),
        ([*ranged, "0.5:0.2"], "the cost range 0.5 to 0.2 ms is empty"),
        ([*ranged, "fast"], "--latency-range-ms 'fast' is not LOW:HIGH"),
        ([*ranged, f"{costs[0] / 10:.5f}"], "no network of the space costs 0 to"),
        ([*ranged, "0.5", "--progressive", "1", "--epochs", "2"], "--progressive widens from the largest network"),
    ]:
        capsys.readouterr()
        assert main([*train, *options, "-o", "bad"]) == 2, options
        (line,) = capsys.readouterr().err.splitlines() or [""]
        assert message in line and ("latency-range-ms" in line or "progressive" in line), line
        assert not (tmp_path / "bad").exists()
