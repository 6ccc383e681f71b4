"""The searcher: data, adapt, proxies, the evolutionary sampler, studies, results."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import safetensors.torch
import scipy.stats
import torch
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import nas
import nas.space as S
from nas.cli import main
from nas.data import DataSet, load_data, loader
from nas.ir.errors import NASError, WriteError
from nas.latency import TimingPolicy, memory
from nas.search import SearchConfig, load_study, open_storage, pareto_front, run_search
from nas.search.proxies import DEGENERATE, PROXIES, score
from nas.search.record import TrialRecord
from nas.search.results import best_trial, contenders, dashboard, is_feasible, leaders, spread
from nas.search.sampler import EvolutionSampler, assignment_from_plain, crowding, nondominated_ranks, plain, suggest
from nas.search.storage import storage_errors
from nas.search.study import _Search, starting_points, stop_reason
from nas.train import input_shape, train

TINY_SPACE = """
name: tiny
description: Two architectures, so that a search of a few trials meets duplicates.
inputs:
  x: [1, 8, 8]
nodes:
  conv: {block: conv2d, in: x, out_channels: {choice: [4, 8]}, kernel_size: 3, padding: 1}
  act: {block: relu}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
outputs: [fc]
"""

GOOD_NET = """
inputs: {x: [1, 16, 16]}
nodes:
  conv1: {block: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  relu1: {block: relu}
  conv2: {block: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1, bias: false}
  relu2: {block: relu}
  pool: {block: adaptive_avg_pool2d}
  flat: {block: flatten}
  fc: {block: linear, out_features: 10}
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches write runs/ and the latency store under a fresh folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_data("digits")


def config(tmp_path: Path, **changes: object) -> SearchConfig:
    settings: dict[str, object] = {
        "space": "early",
        "trials": 5,
        "objective": "proxy:naswot",
        "storage": f"sqlite:///{tmp_path}/nas.db",
        "study": "test",
        "latency_budget_ms": 50.0,
        "timing": TimingPolicy.quick(),
        **changes,
    }
    return SearchConfig(**settings)  # type: ignore[arg-type]


def first_images(data: DataSet, shape: tuple[int, ...], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images at ``shape``, as a search's proxy sees them."""
    feed = loader(data, "train", shape, batch_size=n, augment=False, shuffle=False)
    return next(iter(feed.epoch()))


# -- adapt -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "ciresan_mlp"])
def test_adapt_a_zoo_net_to_the_digits(name: str, digits) -> None:  # type: ignore[no-untyped-def]
    original = nas.build(name)
    shape = (3, 32, 32) if name == "resnet18" else None
    graph = nas.build(original, input_shape=shape, classes=digits.classes)
    assert graph.summary.outputs == [(10,)]
    x, _ = first_images(digits, input_shape(graph), 2)
    assert nas.lower(graph).eval()(x).shape == (2, 10)
    assert nas.build(name).hash == original.hash  # the argument is left alone


def test_adapt_needs_a_classifier() -> None:
    graph = nas.build("inputs: {x: [4, 8, 8]}\nnodes: {act: {block: relu}}")
    with pytest.raises(NASError, match="no node with out_features"):
        nas.build(graph, classes=10)


# -- proxies ---------------------------------------------------------------------


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_proxy_ranks_a_net_that_ignores_its_input_lower(proxy: str, digits) -> None:  # type: ignore[no-untyped-def]
    graph = nas.build(GOOD_NET)
    x, y = first_images(digits, (1, 16, 16), 64)
    torch.manual_seed(0)
    good = score(proxy, graph, x, y, model=nas.lower(graph))
    torch.manual_seed(0)
    blind = nas.lower(graph)
    with torch.no_grad():
        blind.conv1.weight.zero_()  # the output no longer depends on the input
    bad = score(proxy, graph, x, y, model=blind)
    assert math.isfinite(good)
    assert bad < good


def test_naswot_counts_activations_inside_composite_blocks(digits) -> None:  # type: ignore[no-untyped-def]
    graph = nas.build(nas.build("resnet20"), input_shape=(3, 16, 16), classes=10)
    x, y = first_images(digits, (3, 16, 16), 32)
    torch.manual_seed(0)
    assert math.isfinite(score("naswot", graph, x, y))


# -- the evolutionary sampler ----------------------------------------------------


def test_evolution_sampler_mutates_parents() -> None:
    space = S.load_space("early")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        assignment = suggest(trial, space)
        trial.set_user_attr("assignment", plain(assignment))
        trial.set_user_attr("constraint", [0.0])
        graph = S.decode(space, assignment)  # valid: decodes
        return float(len(graph)), float(graph.params)

    sampler = EvolutionSampler(space, seed=1, startup_trials=2)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=10)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    children = [t for t in study.trials if t.system_attrs.get("nas:parent") is not None]
    assert len(children) == 8
    for child in children:
        parent = study.trials[child.system_attrs["nas:parent"]]
        assert parent.number < child.number
        a = assignment_from_plain(space, parent.user_attrs["assignment"])
        b = assignment_from_plain(space, child.user_attrs["assignment"])
        shared = set(a) & set(b)
        assert 1 <= S.distance({k: a[k] for k in shared}, {k: b[k] for k in shared}) <= 2


def test_crowding_is_nsga2s_distance_within_each_rank() -> None:
    # Rank 0: (0,4) (1,2) (2,1) (4,0); rank 1: (3,3) alone. By hand: the inner
    # points of rank 0 get (2-0)/4 + (4-1)/4 and (4-1)/4 + (2-0)/4.
    points = [[0.0, 4.0], [1.0, 2.0], [2.0, 1.0], [4.0, 0.0], [3.0, 3.0]]
    ranks = nondominated_ranks(points)
    assert ranks == [0, 0, 0, 0, 1]
    spread = crowding(points, ranks)
    assert spread[0] == spread[3] == spread[4] == math.inf
    assert spread[1] == pytest.approx(2 / 4 + 3 / 4)
    assert spread[2] == pytest.approx(3 / 4 + 2 / 4)


def test_evolution_can_draw_fresh_children() -> None:
    space = S.load_space("early")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        assignment = suggest(trial, space)
        trial.set_user_attr("assignment", plain(assignment))
        return 1.0, 1.0

    def parents(explore: float) -> list[object]:
        sampler = EvolutionSampler(space, seed=3, startup_trials=1, explore=explore)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(objective, n_trials=8)
        return [t.system_attrs["nas:parent"] for t in study.trials[1:]]

    assert all(p is not None for p in parents(0.0))  # every later child is a mutant
    assert all(p is None for p in parents(1.0))  # every child is drawn at random


def test_pruning_compares_a_trial_only_with_no_slower_ones() -> None:
    slow_and_good = [(5.0, 0.9), (6.0, 0.95), (7.0, 0.92)]
    # A fast net below their median goes on: it may reach the front with less accuracy.
    assert stop_reason(0, 0.5, 1.0, slow_and_good) is None
    # As slow as they are, it is dominated so far, and stops.
    reason = stop_reason(0, 0.5, 7.0, slow_and_good)
    assert reason is not None and "median 0.9200" in reason and "3 earlier trials" in reason
    # At or above the median it goes on; too few rivals say nothing.
    assert stop_reason(0, 0.92, 7.0, slow_and_good) is None
    assert stop_reason(0, 0.5, 5.5, slow_and_good) is None


def test_any_optuna_sampler_walks_the_conditional_decisions() -> None:
    space = S.load_space("early")

    def objective(trial: optuna.Trial) -> float:
        assignment = suggest(trial, space)
        assert {d.label for d in S.active(space, assignment)} == set(assignment)
        try:
            return float(S.decode(space, assignment).params)
        except NASError:  # TPE knows nothing of shapes: some draws do not fit
            return 0.0

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    study.optimize(objective, n_trials=6)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


# -- searches --------------------------------------------------------------------

ATTRS = {"assignment", "hash", "params", "macs", "latency_ms", "latency_source", "constraint", "space", "objective"}


def test_search_stores_its_trials_and_resumes(tmp_path: Path) -> None:
    first = run_search(config(tmp_path, trials=3))
    assert first.ran == 3 and first.tally.finished == 3
    second = run_search(config(tmp_path, trials=5))
    assert second.ran == 2 and second.tally.finished == 5
    study = load_study(f"sqlite:///{tmp_path}/nas.db", "test")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 5
    assert str(trials[0].user_attrs["origin"]).startswith("zoo:")  # zoo nets come first
    for t in trials:
        assert set(t.user_attrs) >= ATTRS
        assert t.user_attrs["space"] == "early"
        assert nas.build(t.user_attrs["yaml"]).hash == t.user_attrs["hash"]
        space = S.load_space("early")
        rebuilt = nas.build(S.decode(space, assignment_from_plain(space, t.user_attrs["assignment"])), classes=10)
        assert rebuilt.hash == t.user_attrs["hash"]
        assert Path(t.user_attrs["weights"]).is_file()
        if hasattr(t, "constraints"):  # what Optuna's samplers read (Optuna 5)
            assert list(t.constraints.values()) == t.user_attrs["constraint"]
    front = pareto_front(study)
    assert front and all(is_feasible(t) for t in front)


def test_study_stop_from_a_callback_ends_the_search(tmp_path: Path) -> None:
    def stop_after_two(study: optuna.Study, trial: object) -> None:
        if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 2:
            study.stop()

    result = run_search(config(tmp_path, trials=5), on_trial=stop_after_two)
    assert result.ran == 2 and result.tally.finished == 2


def test_a_degenerate_proxy_score_says_what_it_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROXIES, "synflow", lambda *_: -math.inf)
    run_search(config(tmp_path, trials=1, objective="proxy:synflow"))
    (trial,) = load_study(f"sqlite:///{tmp_path}/nas.db", "test").get_trials(states=(TrialState.FAIL,))
    assert trial.user_attrs["failure"] == "proxy:synflow score is -inf: " + DEGENERATE["synflow"]


def test_random_search_draws_only_valid_architectures(tmp_path: Path) -> None:
    run_search(config(tmp_path, trials=12, sampler="random"))
    trials = load_study(f"sqlite:///{tmp_path}/nas.db", "test").get_trials(states=(TrialState.FAIL,))
    assert not [t for t in trials if str(t.user_attrs.get("failure", "")).startswith("invalid architecture")]


def test_duplicates_are_not_evaluated_again(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    result = run_search(config(tmp_path, space=str(tmp_path / "tiny.yaml"), trials=5, sampler="random"))
    study = load_study(f"sqlite:///{tmp_path}/nas.db", "test")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert result.tally.finished == 5 and len({t.user_attrs["hash"] for t in trials}) <= 2
    copies = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(copies) >= 3
    for t in copies:
        original = study.trials[t.user_attrs["duplicate_of"]]
        assert "duplicate_of" not in original.user_attrs
        assert t.values == original.values and t.user_attrs["weights"] == original.user_attrs["weights"]


def test_accuracy_search_trains_and_records_failures(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    space = str(tmp_path / "tiny.yaml")
    result = run_search(config(tmp_path, space=space, trials=2, objective="accuracy", epochs=1))
    trained = [
        t for t in load_study(f"sqlite:///{tmp_path}/nas.db", "test").trials if "duplicate_of" not in t.user_attrs
    ]
    assert result.tally.feasible == 2 and all(0.5 < t.user_attrs["accuracy"] <= 1 for t in trained)
    assert all(len(t.user_attrs["curve"]) == 1 for t in trained)
    timed = run_search(config(tmp_path, space=space, trials=2, objective="accuracy", study="t", trial_timeout=1e-9))
    study = load_study(f"sqlite:///{tmp_path}/nas.db", "t")
    assert timed.tally.failed == 2 and all("timed out" in t.user_attrs["failure"] for t in study.trials)


def test_each_trial_and_the_best_models_card_say_how_it_was_trained(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    space = str(tmp_path / "tiny.yaml")
    result = run_search(config(tmp_path, space=space, trials=2, objective="accuracy", epochs=1))
    study = load_study(f"sqlite:///{tmp_path}/nas.db", "test")
    assert study.user_attrs["recipe"] == "digits" and study.user_attrs["augment"] == "none"
    trained = [t for t in study.trials if "recipe" in t.user_attrs]
    assert trained and all(t.user_attrs["recipe"]["optimizer"] == "adamw" for t in trained)
    assert all(t.user_attrs["recipe"]["epochs"] == 1 for t in trained)
    assert result.best_dir is not None
    card = (result.best_dir / "MODEL.md").read_text()
    assert "Trained with the `digits` recipe: adamw at a peak rate of 0.004 for batches of 32" in card
    with pytest.raises(NASError, match=r"made with recipe 'digits', not 'adam'"):
        run_search(config(tmp_path, space=space, trials=3, objective="accuracy", epochs=1, recipe="adam"))


def test_a_budget_nothing_meets_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NASError, match="meets the latency budget"):
        run_search(config(tmp_path, latency_budget_ms=1e-6))
    code = main(["search", "--latency-budget-ms", "0.000001", "--storage", f"sqlite:///{tmp_path}/b.db"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "raise --latency-budget-ms" in err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"space": "nope"}, "no such space"),
        ({"data": "missing.npz"}, "no such data file"),
        ({"storage": "nosuchdb://x"}, "cannot open storage"),
        ({"sampler": "bayes"}, "unknown sampler"),
        ({"objective": "proxy:zen"}, "unknown objective"),
    ],
)
def test_bad_settings_are_nas_errors(tmp_path: Path, changes: dict[str, str], message: str) -> None:
    with pytest.raises(NASError, match=message):
        run_search(config(tmp_path, **changes))


def test_a_resumed_study_keeps_its_settings(tmp_path: Path) -> None:
    run_search(config(tmp_path, trials=1))
    with pytest.raises(NASError, match="was made with objective"):
        run_search(config(tmp_path, trials=2, objective="proxy:synflow"))


def test_a_study_over_a_space_file_resumes_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "tiny.yaml").write_text(TINY_SPACE)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    run_search(config(tmp_path, space="spaces/tiny.yaml", trials=1))
    assert load_study(f"sqlite:///{tmp_path}/nas.db", "test").user_attrs["space"] == str(tmp_path / "spaces/tiny.yaml")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert run_search(config(tmp_path, space="../spaces/tiny.yaml", trials=2)).tally.finished == 2
    (tmp_path / "other.yaml").write_text(TINY_SPACE)  # the same text in another file: another space
    with pytest.raises(NASError, match="was made with space"):
        run_search(config(tmp_path, space="../other.yaml", trials=3))


def test_the_dashboard_without_its_package_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails, as when not installed
    with pytest.raises(NASError) as error:
        dashboard(f"sqlite:///{tmp_path}/nas.db")
    assert "\n" not in str(error.value) and "pip install optuna-dashboard" in str(error.value)


def test_the_dashboard_serves_the_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    url = f"sqlite:///{tmp_path}/nas.db"
    optuna.create_study(study_name="s", storage=url)
    served: list[tuple[object, str, int]] = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda s, host, port: served.append((s, host, port)))
    dashboard(url, port=8123)
    [(storage, host, port)] = served
    assert (host, port) == ("127.0.0.1", 8123)
    assert isinstance(storage, optuna.storages.RDBStorage) and storage.engine.url.database == f"{tmp_path}/nas.db"
    assert optuna.get_all_study_names(storage) == ["s"]
    with pytest.raises(NASError, match="no storage file"):
        dashboard(f"sqlite:///{tmp_path}/missing.db")


# -- the commands ------------------------------------------------------------------


def test_search_and_results_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path}/cli.db"
    args = ["search", "--trials", "4", "--objective", "proxy:grad_norm", "--storage", storage, "--study", "cli"]
    assert main([*args, "--latency-budget-ms", "50", "--sampler", "nsga2"]) == 0
    out = capsys.readouterr().out
    assert "best model: runs/cli/best/model.yaml" in out and "nas results --storage" in out

    assert main(["results", "--storage", storage, "--study", "cli", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trials"]["finished"] == 4 and report["pareto_front"]
    for entry in report["pareto_front"]:
        assert {"trial", "hash", "accuracy", "latency_ms", "params", "macs"} <= set(entry)
        assert entry["latency_ms"] <= 50
    best = Path(report["best_dir"])
    graph = nas.build(str(best / "model.yaml"))
    assert graph.hash == report["best"]["hash"]
    model = nas.lower(graph)
    model.load_state_dict(safetensors.torch.load_file(str(best / "model.safetensors")))
    assert model.eval()(torch.randn(1, *next(iter(graph.summary.inputs.values())))).shape == (1, 10)
    if report["pictures"]:
        assert all(Path(p).is_file() for p in report["pictures"])

    assert main(["results", "--storage", storage]) == 0  # the only study there
    assert "Pareto front" in capsys.readouterr().out

    # --json: standard output is the JSON alone (the study's line and progress go to standard error)
    assert main([*args[:-1], "cli-json", "--latency-budget-ms", "50", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    study = load_study(storage, "cli-json")
    assert summary["study"] == "cli-json" and summary["tally"]["finished"] == len(study.trials) == 4
    assert summary["best"]["trial"] == best_trial(study).number
    assert summary["best"]["values"] == best_trial(study).values
    assert Path(summary["best"]["directory"], "model.yaml").is_file()


@pytest.mark.slow
def test_two_processes_share_one_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/shared.db"
    command = [sys.executable, "-m", "nas.cli", "search", "--trials", "6", "--objective", "proxy:synflow"]
    command += ["--storage", storage, "--study", "shared", "--latency-budget-ms", "50"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err.decode()
    study = load_study(storage, "shared")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 6, [(t.number, t.state.name) for t in study.trials]  # claimed under a lock: never 7
    assert all(t.state == TrialState.COMPLETE and "hash" in t.user_attrs for t in finished)


def test_random_assignments_round_trip_as_optuna_parameters() -> None:
    from nas.search.sampler import from_plain, to_param

    space = S.load_space("early")
    a = S.sample(space, random.Random(3))
    back = {k: from_plain(space.by_label[k], to_param(v)) for k, v in a.items()}
    assert S.decode(space, back).hash == S.decode(space, a).hash


@pytest.mark.slow
def test_a_search_killed_mid_trial_resumes_and_completes(tmp_path: Path) -> None:
    """kill -9 during a trial, start again: every finished trial is kept and
    the study reaches its trial count."""

    storage = f"sqlite:///{tmp_path}/killed.db"
    command = [sys.executable, "-m", "nas.cli", "search", "--trials", "6", "--epochs", "3", "--latency-budget-ms", "50"]
    command += ["--storage", storage, "--study", "killed", "--seed", "1"]
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 240
    before: dict[int, str] = {}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            trials = load_study(storage, "killed").trials
        except Exception:  # the study is not created yet
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING]
        before = {t.number: t.user_attrs["hash"] for t in trials if t.state == TrialState.COMPLETE}
        if len(before) >= 2 and running:
            break
    assert len(before) >= 2, "the search did not get going"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    again = subprocess.run(command, capture_output=True, cwd=tmp_path, timeout=400)
    assert again.returncode == 0, again.stderr.decode()
    trials = load_study(storage, "killed").trials
    complete = {t.number: t.user_attrs["hash"] for t in trials if t.state == TrialState.COMPLETE}
    assert before.items() <= complete.items()  # nothing finished was lost or changed
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 6, [(t.number, t.state.name) for t in trials]


# -- faults: a full disk, a full storage, too little memory ------------------------


def _full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _failing_on(monkeypatch: pytest.MonkeyPatch, calls: set[int]) -> list[str]:
    """Make ``safetensors.torch.save_file`` raise a full disk on the given
    calls (0-based); returns the paths it was asked to write."""
    real, asked = safetensors.torch.save_file, []

    def save_file(tensors: dict[str, torch.Tensor], filename: str, metadata: object = None) -> None:
        asked.append(filename)
        if len(asked) - 1 in calls:
            Path(filename).write_bytes(b"half a file")  # a full disk leaves what it could write
            raise _full_disk()
        real(tensors, filename, metadata=metadata)  # type: ignore[arg-type]

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    return asked


def test_a_full_disk_under_one_trials_weights_fails_that_trial_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_on(monkeypatch, {1})
    result = run_search(config(tmp_path, trials=4))
    assert result.ran == 4 and result.tally.finished == 4
    study = load_study(f"sqlite:///{tmp_path}/nas.db", "test")
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    reason = failed.user_attrs["failure"]
    assert f"trials/{failed.number}.safetensors: cannot write the weights of trial {failed.number}" in reason
    assert "No space left on device" in reason and "\n" not in reason
    assert "weights" not in failed.user_attrs and "score" in failed.user_attrs
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for t in complete:  # every other trial's weights are whole
        assert safetensors.torch.load_file(t.user_attrs["weights"])
    trials = Path(result.runs) / "trials"
    assert sorted(p.name for p in trials.iterdir()) == sorted(f"{t.number}.safetensors" for t in complete)


def test_a_network_whose_weights_a_full_disk_lost_is_evaluated_again(tmp_path: Path, digits: DataSet) -> None:
    storage = f"sqlite:///{tmp_path}/nas.db"
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    lost = {"hash": "h", "latency_ms": 1.0, "score": 3.0, "failure": "full disk"}
    broken = {"hash": "g", "latency_ms": 1.0, "failure": "the loss is nan"}
    for attrs in (lost, broken):
        study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs))
    search = _Search(config(tmp_path), S.load_space("early"), digits, lambda g: (1.0, ""), tmp_path)
    trial = study.ask()
    assert search.earlier(trial, "h") is None  # the machine's fault: no reason to skip the network
    assert search.earlier(trial, "g") is not None  # the network's own failure is kept


def test_a_full_storage_stops_the_search_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, writes = optuna.storages.RDBStorage.set_trial_user_attr, []

    def set_trial_user_attr(self: object, trial_id: int, key: str, value: object) -> None:
        writes.append(key)
        if key == "weights" and writes.count("weights") == 2:
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as e:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
        real(self, trial_id, key, value)  # type: ignore[arg-type]

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", set_trial_user_attr)
    with pytest.raises(NASError) as raised:
        run_search(config(tmp_path, trials=4))
    message = str(raised.value)
    assert "\n" not in message and f"cannot write to storage 'sqlite:///{tmp_path}/nas.db'" in message
    assert "database or disk is full" in message
    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", real)
    (first,) = load_study(f"sqlite:///{tmp_path}/nas.db", "test").get_trials(states=(TrialState.COMPLETE,))
    assert Path(first.user_attrs["weights"]).is_file()  # what was stored is kept


def test_a_sqlite_storage_writes_ahead_and_survives_pickling(tmp_path: Path) -> None:
    """Optuna commits each parameter and attribute on its own: an SQLite storage
    writes ahead of the database and syncs at checkpoints, on every connection,
    also after the storage was pickled into another process."""
    url = f"sqlite:///{tmp_path}/nas.db"
    for storage in (open_storage(url), pickle.loads(pickle.dumps(open_storage(url)))):
        optuna.create_study(storage=storage, study_name=f"s{id(storage)}").optimize(
            lambda t: t.suggest_int("a", 0, 3), 2
        )
        with storage.engine.connect() as connection:  # type: ignore[attr-defined]
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
    with sqlite3.connect(tmp_path / "nas.db") as plain:  # the mode is the file's: any reader sees it
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(load_study(url, f"s{id(storage)}").trials) == 2


def test_a_full_journal_file_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"journal:{tmp_path}/nas.log"
    storage = open_storage(url)

    def append_logs(self: object, logs: object) -> None:
        raise _full_disk()

    monkeypatch.setattr(JournalFileBackend, "append_logs", append_logs)
    full = f"cannot write to storage '{url}': .*No space left on device"
    with pytest.raises(NASError, match=full), storage_errors(url):
        optuna.create_study(storage=storage, study_name="s")


def test_a_full_disk_under_a_training_checkpoint_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], digits: DataSet
) -> None:
    graph, real = nas.build(GOOD_NET, classes=10), safetensors.torch.save_file
    checkpoint = tmp_path / "run.ckpt"
    _failing_on(monkeypatch, {1})
    with pytest.raises(WriteError) as raised:
        train(graph, digits, epochs=2, checkpoint=checkpoint)
    assert raised.value.file == str(checkpoint)
    assert str(raised.value).startswith(f"{checkpoint}: cannot write the training checkpoint: No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no half-written file beside it
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    resumed = train(graph, digits, epochs=2, checkpoint=checkpoint)  # the first epoch's checkpoint is whole
    assert len(resumed.curve) == 2
    (tmp_path / "net.yaml").write_text(GOOD_NET)
    _failing_on(monkeypatch, {0})
    args = ["train", str(tmp_path / "net.yaml"), "--epochs", "1", "-o", str(tmp_path / "out"), "--format", "yaml"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{tmp_path}/.out.checkpoint.safetensors: cannot write the training checkpoint" in err


def test_training_that_cannot_fit_in_memory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits: DataSet
) -> None:
    real = memory.needed_bytes

    def needed_bytes(graph: nas.Graph, *, batch: int, training: bool = False, precision: str = "fp32") -> int:
        more = 1 << 60 if training else 0  # only training cannot fit: latency is measured as usual
        return real(graph, batch=batch, training=training, precision=precision) + more

    monkeypatch.setattr(memory, "needed_bytes", needed_bytes)
    with pytest.raises(NASError, match=r"training .* batch 32 needs at least \d+\.\d GiB, but cpu memory has"):
        train(nas.build(GOOD_NET, classes=10), digits, epochs=1)
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    space = str(tmp_path / "tiny.yaml")
    result = run_search(config(tmp_path, space=space, trials=2, objective="accuracy", epochs=1))
    study = load_study(f"sqlite:///{tmp_path}/nas.db", "test")
    assert result.tally.finished == 2 and result.tally.failed == 2
    assert all("GiB free" in t.user_attrs["failure"] for t in study.trials)


def test_fixes_narrow_every_trial_and_belong_to_the_study(tmp_path: Path) -> None:
    fixes = ("x.shape=1x28x28", "pool1.present=false")
    result = run_search(config(tmp_path, trials=4, fix=fixes))
    study = load_study(result.storage, result.study)
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) >= 4
    for t in finished:
        graph = nas.build(TrialRecord.of(t).yaml)
        assert graph.summary.inputs == {"x": (1, 28, 28)}
        assert "pool1" not in graph
        # A fixed decision is not asked of Optuna (no parameter written per trial), yet the trial records it.
        assignment = TrialRecord.of(t).assignment
        assert assignment["x.shape"] == [1, 28, 28] and assignment["pool1.present"] is False
        assert "x.shape" not in t.params and "pool1.present" not in t.params
        assert len(t.params) > 0 and set(t.params) < set(assignment)
    with pytest.raises(NASError, match="was made with fix"):
        run_search(config(tmp_path, trials=5, fix=("x.shape=1x32x32",)))
    with pytest.raises(NASError, match=r"no decision 'pool9\.present'"):
        run_search(config(tmp_path, study="other", fix=("pool9.present=false",)))


class _Inherited:
    """Any supernet's answer, moved where a search puts it."""

    device: torch.device | None = None

    def to(self, device: torch.device) -> _Inherited:
        self.device = device
        return self

    def __call__(self, graph: nas.Graph) -> tuple[float, dict[str, torch.Tensor]]:
        return 0.5, {"w": torch.zeros(1)}


def test_over_a_supernet_the_classic_nets_over_the_budget_are_evaluated_too(tmp_path: Path, digits: DataSet) -> None:
    space = S.narrowed(S.load_space("early"), ["x.shape=1x29x29"])  # Ciresan's CNN and MLP
    by_macs = sorted(S.fixed_points(space), key=lambda n: nas.zoo.load(n).macs)
    latency = lambda g: (g.macs / 1e6, "")  # noqa: E731 (one ms per million MACs)
    budget = (nas.zoo.load(by_macs[0]).macs + nas.zoo.load(by_macs[1]).macs) / 2e6
    settings = config(tmp_path, objective="accuracy", latency_budget_ms=budget)
    inherited = _Inherited()
    trained = _Search(settings, space, digits, latency, tmp_path)
    shared = _Search(settings, space, digits, latency, tmp_path, inherit=inherited)  # type: ignore[arg-type]
    assert inherited.device == shared.device  # the supernet evaluates where the search's trials would train
    rng = random.Random(0)
    assert [o for o, _, _ in starting_points(trained, rng)] == [f"zoo:{by_macs[0]}"]
    assert [o for o, _, _ in starting_points(shared, rng)] == [f"zoo:{n}" for n in by_macs]
    study = optuna.create_study(directions=["maximize", "minimize"])
    over = trained.network(S.encode(space, nas.zoo.load(by_macs[1])))
    assert trained.evaluate(study.ask(), over, 2 * budget) == 0.0  # not trained
    trial = study.ask()
    assert shared.evaluate(trial, over, 2 * budget) == 0.5
    assert TrialRecord.of(trial).inherited


def test_the_spread_tells_scores_apart_only_beyond_the_validation_noise() -> None:
    def study_of(scores: list[float]) -> optuna.Study:
        study = optuna.create_study(directions=["maximize", "minimize"])
        for i, value in enumerate(scores):
            attrs = {"constraint": [-0.1], "hash": f"net{i}"}
            study.add_trial(optuna.trial.create_trial(values=[value, 1.0], user_attrs=attrs))
        study.add_trial(  # over the budget, and an architecture scored again: neither counts
            optuna.trial.create_trial(values=[0.99, 9.0], user_attrs={"constraint": [8.0], "hash": "big"})
        )
        study.add_trial(
            optuna.trial.create_trial(values=[0.99, 1.0], user_attrs={"constraint": [-0.1], "hash": "net0"})
        )
        return study

    close = spread(study_of([0.50, 0.49, 0.51, 0.50, 0.52]), images=100)
    assert close is not None and (close.best, close.median, close.networks, close.tied) == (0.52, 0.50, 5, 5)
    # two standard errors of a binomial proportion, as scipy computes them
    assert close.noise == pytest.approx(2 * scipy.stats.binom(100, 0.52).std() / 100)
    assert not close.told_apart  # 0.02 apart, the noise of 100 images is 0.10
    assert spread(study_of([0.50, 0.49, 0.51, 0.50, 0.52]), images=10_000).told_apart  # 0.02 against 0.01
    apart = spread(study_of([0.50, 0.50, 0.62, 0.70]), images=100)
    assert apart is not None and apart.told_apart and apart.tied == 2  # 0.62 is within 0.092 of 0.70
    assert spread(optuna.create_study(directions=["maximize", "minimize"]), images=100) is None


def test_the_contenders_put_the_costliest_first_among_the_networks_the_noise_ties() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    scored = {"small": (0.52, 1_000_000), "large": (0.50, 5_000_000), "middle": (0.49, 3_000_000)}
    scored |= {"huge but poor": (0.30, 9_000_000)}
    for name, (value, macs) in scored.items():
        attrs = {"constraint": [-0.1], "hash": name, "macs": macs}
        study.add_trial(optuna.trial.create_trial(values=[value, 1.0], user_attrs=attrs))
    study.add_trial(  # over the budget: never a contender, however costly
        optuna.trial.create_trial(values=[0.51, 9.0], user_attrs={"constraint": [8.0], "hash": "big", "macs": 10**9})
    )

    def names(images: int, count: int) -> list[str]:
        return [TrialRecord.of(t).hash for t in contenders(study, count, images)]

    # 100 images: 0.52, 0.50 and 0.49 lie within the noise (0.10) of the best, so compute orders them
    assert names(100, 3) == ["large", "middle", "small"]
    assert names(100, 4) == ["large", "middle", "small", "huge but poor"]
    # 10,000 images tell 0.52 from 0.50 (noise 0.01): the scores' order, the best first, as the leaders
    assert names(10_000, 4) == ["small", "large", "middle", "huge but poor"]
    assert names(10_000, 2) == [TrialRecord.of(t).hash for t in leaders(study, 2)]
    assert contenders(optuna.create_study(directions=["maximize", "minimize"]), 3, 100) == []


def test_a_tight_budget_starts_from_the_smallest_network(tmp_path: Path, digits: DataSet) -> None:
    space = S.narrowed(S.load_space("early"), ["x.shape=1x32x32"])
    smallest = nas.build(S.decode(space, S.end(space, largest=False)), classes=digits.classes)
    latency = lambda g: (g.macs / smallest.macs, "")  # noqa: E731 (the smallest takes 1 ms, the rest more)
    search = _Search(config(tmp_path, latency_budget_ms=1.0), space, digits, latency, tmp_path)
    ((origin, assignment, ms),) = starting_points(search, random.Random(0))
    assert origin == "smallest" and ms == 1.0 and search.network(assignment).hash == smallest.hash
