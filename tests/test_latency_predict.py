"""Latency tables and the predictor: units, the table file, fitting, `nas latency --predict` and `profile`.

The predictor is checked on synthetic tables whose "measurements" follow a
known linear law, which the fitted models must recover exactly; profiling
runs for real on the torch backend over a tiny space.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats

import nas
import nas.latency as latency
import nas.predict.profiling as profile_module
import nas.space
from nas.cli import main
from nas.ir.errors import NASError
from nas.passes.fusion import units
from nas.predict.features import CANDIDATE_FEATURES, FEATURES, NEIGHBOUR_FEATURES, SPILL_MB, Walk, spill
from nas.predict.fit import fit_correction, fit_fallback, fit_neighbours, fit_nonnegative, select_correction
from nas.predict.nearest import LocalModel, Neighbours, choose_spatial_weight, local_models
from nas.predict.predictor import Predictor, accuracy, kendall_tau, kendall_tau_interval, tau_of_means
from nas.predict.profiling import fit_table, profile, refit, sample_at, table_networks
from nas.predict.table import LatencyTable

TINY_SPACE = """
name: tiny
description: A convolution, an optional pooling and a classifier.
decisions:
  width: {choice: [4, 8]}
inputs:
  x: [3, 16, 16]
nodes:
  conv: {block: conv2d, in: x, out_channels: $width, kernel_size: {choice: [1, 3]}, padding: 0}
  bn: {block: batch_norm, in: conv}
  act: {block: relu, in: bn}
  pool: {block: max_pool2d, in: act, optional: true, kernel_size: 2}
  gap: {block: adaptive_avg_pool2d, in: pool}
  flat: {block: flatten, in: gap}
  fc: {block: linear, in: flat, out_features: {choice: [10, 20]}}
outputs: [fc]
"""

# The synthetic law: a unit takes A + B * GMACs + C * MB moved; a network
# takes W . (unit sum, units, Mparams, 1).
A, B, C = 0.01, 40.0, 0.05
W = {"blocks_ms": 1.3, "units": 0.004, "params_m": 0.02, "const": 0.05}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the user's cache."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "default-cache"))


def _law(unit: latency.Unit) -> float:
    return A + B * unit.macs / 1e9 + C * unit.bytes / 1e6


def _network_law(graph: nas.Graph) -> float:
    cut = units(graph)
    return (
        W["blocks_ms"] * sum(_law(u) for u in cut)
        + W["units"] * len(cut)
        + W["params_m"] * graph.params / 1e6
        + W["const"]
    )


def _graphs(count: int, seed: int) -> list[nas.Graph]:
    space = nas.space.load_space("residual")
    rng = random.Random(seed)
    return [sample_at(space, rng, (3, 32, 32), max_macs=100e6) for _ in range(count)]


def _synthetic_table(graphs: list[nas.Graph], extra: list[nas.Graph] = ()) -> LatencyTable:  # type: ignore[assignment]
    blocks: dict[str, dict[str, Any]] = {}
    for g in [*graphs, *extra]:
        for u in units(g):
            ms = _law(u)
            blocks.setdefault(
                u.key,
                {"key": u.key, **u.describe(), "median_ms": ms, "p10_ms": ms, "p90_ms": ms, "runs": 10, "count": 0},
            )
            blocks[u.key]["count"] += 1
    networks = [
        {
            "name": f"n{i}",
            "hash": g.hash,
            "source": "residual",
            "median_ms": _network_law(g),
            "p10_ms": 0.0,
            "p90_ms": 0.0,
        }
        for i, g in enumerate(graphs)
    ]
    table = LatencyTable(
        conditions={
            "backend": "torch",
            "mode": "eager",
            "device": "test CPU",
            "precision": "fp32",
            "batch": 1,
            "threads": 1,
            "versions": {"torch": "x"},
        },
        blocks=list(blocks.values()),
        networks=networks,
        profile={"note": "synthetic"},
    )
    fit_table(table, graphs, features=tuple(W))
    return table


@pytest.fixture(scope="module")
def synthetic() -> tuple[LatencyTable, list[nas.Graph]]:
    graphs = _graphs(12, seed=3)
    return _synthetic_table(graphs[:8], graphs[8:]), graphs


# -- units ------------------------------------------------------------------------


def test_units_fuse_conv_norm_activation_and_open_stages() -> None:
    g = nas.build("resnet20")
    cut = units(g)
    kinds = [u.kind for u in cut]
    assert kinds[0] == "conv2d+batch_norm+relu"  # the stem: one fused unit, not three
    assert kinds.count("basic_block") == 9  # three stages of three, opened
    assert len({u.key for u in cut}) < len(cut)  # repeated blocks share a key
    assert sum(u.macs for u in cut) == g.macs
    assert sum(u.params for u in cut) == g.params


def test_a_conv_read_twice_does_not_fuse() -> None:
    g = nas.build("""
inputs: {x: [3, 8, 8]}
nodes:
  conv: {block: conv2d, in: x, out_channels: 4, kernel_size: 3, padding: 1}
  act: {block: relu, in: conv}
  sum: {block: add, in: [conv, act]}
outputs: [sum]
""")
    assert [u.kind for u in units(g)] == ["conv2d", "relu", "add"]
    add = units(g)[2]
    assert add.wiring == (0, 1) and add.inputs == ((4, 8, 8), (4, 8, 8))


def test_a_unit_alone_is_a_network_with_its_cost() -> None:
    for u in units(nas.build("squeezenet1_1"))[:6]:
        alone = u.graph()
        assert alone.macs == u.macs and alone.params == u.params


# -- the table file -------------------------------------------------------------


def test_table_round_trip(tmp_path: Path, synthetic: tuple[LatencyTable, list[nas.Graph]]) -> None:
    table, _ = synthetic
    path = tmp_path / "t.json"
    table.save(path)
    again = LatencyTable.load(path)
    assert again.to_dict() == json.loads(json.dumps(table.to_dict()))
    assert again.path == str(path)
    assert "pickle" not in path.read_text()


def _near(**change: Any) -> dict[str, Any]:
    """A correct ``correction.neighbours`` of two networks, but for ``change``."""
    spec = {"features": ["log_units"], "k": 2, "shrink": 0.5, "scale": [1.0], "points": [[1.0], [2.0]]}
    return {**spec, "residuals": [0.1, -0.1], **change}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["conditions"].pop("backend"), "conditions.backend"),
        (lambda d: d["conditions"].update(batch="one"), "conditions.batch"),
        (lambda d: d["blocks"][1].update(median_ms="fast"), "blocks[1].median_ms"),
        (lambda d: d["blocks"][0].update(median_ms=-1.0), "blocks[0].median_ms"),
        (lambda d: d["blocks"][2].pop("kind"), "blocks[2].kind"),
        (lambda d: d["blocks"].append(copy.deepcopy(d["blocks"][0])), "key"),
        (lambda d: d["networks"][0].update(hash=3), "networks[0].hash"),
        (lambda d: d["correction"].update(coef=[1.0]), "correction.coef"),
        (lambda d: d["correction"].update(features=["blocks_ms", "magic", "const", "units"]), "correction.features"),
        (lambda d: d["fallback"].update({"global": [1, "x", 2]}), "fallback.global"),
        (lambda d: d["fallback"].update(spatial_weight=0), "fallback.spatial_weight"),
        (lambda d: d["fallback"].update(spatial_weight="3"), "fallback.spatial_weight"),
        (lambda d: d["correction"].update(target="cubic"), "correction.target"),
        (lambda d: d.update(version=1) or d["correction"].update(target="log"), "correction.target"),
        (lambda d: d["correction"].update(neighbours=_near(k=9)), "correction.neighbours.k"),
        (lambda d: d["correction"].update(neighbours=_near(residuals=[0.1])), "correction.neighbours.residuals"),
        (lambda d: d["correction"].update(neighbours=_near(points=[[1.0, 2.0]] * 2)), "correction.neighbours.points"),
        (lambda d: d["correction"].update(neighbours=_near(scale=[0.0])), "correction.neighbours.scale"),
        (lambda d: d["correction"].update(neighbours=_near(features=["magic"])), "correction.neighbours.features"),
    ],
)
def test_a_bad_table_is_a_one_line_error_naming_file_and_field(
    tmp_path: Path, synthetic: tuple[LatencyTable, list[nas.Graph]], change: Any, field: str
) -> None:
    data = copy.deepcopy(synthetic[0].to_dict())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(NASError) as info:
        LatencyTable.load(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text and field in text


def test_a_version_1_table_is_still_read_with_a_linear_correction(
    synthetic: tuple[LatencyTable, list[nas.Graph]],
) -> None:
    table, graphs = synthetic
    data = copy.deepcopy(table.to_dict())
    data["version"] = 1
    data["correction"].pop("target")
    old = LatencyTable.from_dict(data)
    assert Predictor(old).predict(graphs[0]) == pytest.approx(Predictor(table).predict(graphs[0]), rel=1e-12)


def test_unreadable_tables(tmp_path: Path) -> None:
    with pytest.raises(NASError, match="no such latency table"):
        LatencyTable.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(NASError, match=r"bad.json:1: not valid JSON"):
        LatencyTable.load(tmp_path / "bad.json")


# -- fitting and predicting -----------------------------------------------------


def test_the_predictor_recovers_a_known_linear_law(synthetic: tuple[LatencyTable, list[nas.Graph]]) -> None:
    table, graphs = synthetic
    coef = dict(zip(table.correction["features"], table.correction["coef"]))
    assert coef == pytest.approx(W, rel=1e-6, abs=1e-9)
    predictor = Predictor(table)
    for g in graphs:  # eight fitted it; the other four are held out, their blocks in the table
        assert predictor.predict(g) == pytest.approx(_network_law(g), rel=1e-9)
        detail = predictor.explain(g)
        assert detail.from_table == detail.units


def test_a_missing_block_falls_back_to_its_kind_model(synthetic: tuple[LatencyTable, list[nas.Graph]]) -> None:
    table, graphs = synthetic
    target = graphs[9]
    kind = next(u.kind for u in units(target) if u.kind in ("basic_block", "bottleneck"))
    missing = {u.key for u in units(target) if u.kind == kind}
    thinner = copy.deepcopy(table)
    thinner.blocks = [b for b in table.blocks if b["key"] not in missing]
    fit_table(thinner, graphs[:8], features=tuple(W))
    assert kind in thinner.fallback["kinds"]
    detail = Predictor(thinner).explain(target)
    assert detail.from_table < detail.units
    # the per-kind model is exact for a law that is linear in MACs and bytes
    assert detail.median_ms == pytest.approx(_network_law(target), rel=1e-6)


def test_an_unknown_kind_uses_the_global_model(synthetic: tuple[LatencyTable, list[nas.Graph]]) -> None:
    predictor = Predictor(synthetic[0])
    assert predictor.model_ms("never_seen", 1e9, 1e6) > 0


def test_a_log_correction_recovers_a_power_law() -> None:
    rows = [
        {"blocks_ms": s, "log_blocks_ms": math.log(s), "log_units": math.log(n), "const": 1.0}
        for s, n in [(0.1, 5), (0.5, 9), (1.0, 20), (3.0, 30), (8.0, 70), (20.0, 200)]
    ]
    targets = [1.3 * r["blocks_ms"] ** 0.9 * math.exp(r["log_units"]) ** 0.05 for r in rows]
    fitted = fit_correction(rows, targets, ("log_blocks_ms", "log_units", "const"))
    assert fitted["target"] == "log"
    assert fitted["coef"] == pytest.approx([0.9, 0.05, math.log(1.3)], abs=1e-9)
    assert fitted["fit"]["mape"] == pytest.approx(0.0, abs=1e-9)
    chosen = select_correction(rows, targets, [("blocks_ms", "const"), ("log_blocks_ms", "log_units", "const")])
    assert chosen["features"] == ["log_blocks_ms", "log_units", "const"]


def test_the_correction_finds_where_the_cache_ends() -> None:
    # Networks whose weights spill an 8 MB cache pay 0.03 ms per MB of them
    # on top of their units (timed alone, with their weights cached).
    graphs = _graphs(24, seed=3)
    weights = [g.params * 4 / 1e6 for g in graphs]
    assert min(weights) < 8 < max(weights)
    assert spill(8)(graphs[0], Walk(0.0, 0, {})) == (weights[0] if weights[0] > 8 else 0.0)
    rows, targets = [], []
    for g, mb in zip(graphs, weights):
        cut = units(g)
        total = sum(_law(u) for u in cut)
        walk = Walk(total, len(cut), {c: _small_mb(cut, c) for c in SPILL_MB})
        rows.append({name: fn(g, walk) for name, fn in FEATURES.items()})
        targets.append(1.2 * total + 0.004 * len(cut) + 0.05 + (0.03 * mb if mb > 8 else 0.0))
    chosen = select_correction(rows, targets, CANDIDATE_FEATURES)
    assert "spill_8mb" in chosen["features"]  # not 4 or 16: only 8 explains the jump
    assert dict(zip(chosen["features"], chosen["coef"]))["spill_8mb"] == pytest.approx(0.03, rel=1e-6)
    assert chosen["fit"]["loo_mape"] == pytest.approx(0.0, abs=1e-9)


def _small_mb(cut: list[latency.Unit], capacity_mb: float) -> float:
    """The fp32 weights (MB) of the units whose own weights fit ``capacity_mb``."""
    return sum(u.params * 4 / 1e6 for u in cut if u.params * 4 / 1e6 <= capacity_mb)


def test_the_correction_tells_cold_weights_from_weights_that_never_fit() -> None:
    # In a network whose weights exceed a 4 MB cache, the units that fit it
    # alone (cached when timed alone) pay 0.03 ms per MB; a unit of 4.7 MB
    # streamed its weights when timed alone too, so it pays nothing more.
    graphs = _graphs(24, seed=3)
    cuts = [units(g) for g in graphs]
    big = [i for i, cut in enumerate(cuts) if any(u.params * 4 / 1e6 > 4 for u in cut)]
    assert big, "the draw must hold units that do not fit the cache alone"
    rows, targets = [], []
    for g, cut in zip(graphs, cuts):
        total = sum(_law(u) for u in cut)
        walk = Walk(total, len(cut), {c: _small_mb(cut, c) for c in SPILL_MB})
        row = {name: fn(g, walk) for name, fn in FEATURES.items()}
        weights = g.params * 4 / 1e6
        assert row["cold_4mb"] == (pytest.approx(_small_mb(cut, 4)) if weights > 4 else 0.0)
        rows.append(row)
        targets.append(1.2 * total + 0.004 * len(cut) + 0.05 + 0.03 * row["cold_4mb"])
    assert all(rows[i]["cold_4mb"] < rows[i]["spill_4mb"] for i in big)  # spill counts the big units too
    chosen = select_correction(rows, targets, CANDIDATE_FEATURES)
    assert "cold_4mb" in chosen["features"]
    assert dict(zip(chosen["features"], chosen["coef"]))["cold_4mb"] == pytest.approx(0.03, rel=1e-6)
    assert chosen["fit"]["loo_mape"] == pytest.approx(0.0, abs=1e-9)


def _scattered(count: int, seed: int, slow: Any) -> tuple[list[dict[str, float]], list[float]]:
    """Feature rows of networks scattered over the neighbourhood space, and
    their times: 1.2 times the unit sum plus 0.05 ms, times ``slow(row)``."""
    rng = random.Random(seed)
    rows, targets = [], []
    for _ in range(count):
        row = {"blocks_ms": math.exp(rng.uniform(-2, 3)), "const": 1.0}
        row.update({f: rng.uniform(-3, 3) for f in NEIGHBOUR_FEATURES})
        row["log_blocks_ms"] = math.log(row["blocks_ms"])
        rows.append(row)
        targets.append((1.2 * row["blocks_ms"] + 0.05) * slow(row, rng))
    return rows, targets


def _mape_of(predicted: list[float], targets: list[float]) -> float:
    return sum(abs(p - t) / t for p, t in zip(predicted, targets)) / len(targets)


def test_neighbours_learn_a_family_the_linear_correction_cannot_tell() -> None:
    # Networks with many parameters (log_params_m > 1) run 1.6x slower than
    # the law: a step no line through the unit sum expresses, and which the
    # profiled networks nearest a candidate show.
    def slow(row: dict[str, float], rng: random.Random) -> float:
        return (1.6 if row["log_params_m"] > 1 else 1.0) * math.exp(rng.gauss(0, 0.02))

    rows, targets = _scattered(80, seed=1, slow=slow)
    linear = select_correction(rows, targets, [("blocks_ms", "const")])
    spec = fit_neighbours(rows, targets, linear)
    assert spec is not None
    assert spec["loo_mape"] < 0.6 * spec["linear_loo_mape"]
    assert spec["shrink"] > 0 and spec["k"] in (4, 8, 16)
    near = Neighbours(spec)
    fresh, truth = _scattered(40, seed=2, slow=slow)
    plain = [linear["coef"][0] * r["blocks_ms"] + linear["coef"][1] for r in fresh]
    moved = [p * math.exp(near.shift([r[f] for f in NEIGHBOUR_FEATURES])) for p, r in zip(plain, fresh)]
    assert _mape_of(moved, truth) < 0.6 * _mape_of(plain, truth)


def test_neighbours_stay_out_where_residuals_are_noise() -> None:
    rows, targets = _scattered(80, seed=1, slow=lambda row, rng: math.exp(rng.gauss(0, 0.1)))
    assert fit_neighbours(rows, targets, select_correction(rows, targets, [("blocks_ms", "const")])) is None
    exact, law = _scattered(80, seed=1, slow=lambda row, rng: 1.0)  # nothing left to learn
    assert fit_neighbours(exact, law, select_correction(exact, law, [("blocks_ms", "const")])) is None
    assert fit_neighbours(rows[:9], targets[:9], {"features": ["blocks_ms", "const"]}) is None  # too few


def test_a_prediction_moves_by_its_nearest_networks_residuals(
    synthetic: tuple[LatencyTable, list[nas.Graph]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, graphs = synthetic
    plain = Predictor(table)
    points = [[plain.features_of(g)[f] for f in NEIGHBOUR_FEATURES] for g in graphs[:8]]
    residuals = [0.3, -0.1, 0.2, 0.0, -0.25, 0.15, 0.05, -0.05]
    scale = [max(1e-3, float(x)) for x in _std(points)]
    near = copy.deepcopy(table)
    spec = {"features": list(NEIGHBOUR_FEATURES), "k": 3, "shrink": 0.5, "scale": scale}
    near.correction["neighbours"] = {**spec, "points": points, "residuals": residuals}
    near.save(tmp_path / "near.json")
    for again in (Predictor(near), Predictor(LatencyTable.load(tmp_path / "near.json"))):
        for g in graphs[8:]:
            here = [v / s for v, s in zip((plain.features_of(g)[f] for f in NEIGHBOUR_FEATURES), scale)]
            distance = [math.dist(here, [v / s for v, s in zip(p, scale)]) for p in points]
            nearest = sorted(range(8), key=distance.__getitem__)[:3]
            weight = {i: 1 / (distance[i] + 0.3) ** 2 for i in nearest}
            shift = 0.5 * sum(weight[i] * residuals[i] for i in nearest) / sum(weight.values())
            assert again.predict(g) == pytest.approx(_network_law(g) * math.exp(shift), rel=1e-9)
            assert shift != 0.0
            assert again.explain(g).neighbours == pytest.approx(math.exp(shift), rel=1e-12)
    capsys.readouterr()
    assert main(["latency", "resnet20", "--predict", str(tmp_path / "near.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    factor = report["neighbours_factor"]
    assert factor != 1.0
    assert report["median_ms"] == pytest.approx(_network_law(nas.build("resnet20")) * factor, rel=1e-9)
    assert Predictor(str(tmp_path / "near.json")).explain("resnet20").neighbours == pytest.approx(factor, rel=1e-12)
    assert main(["latency", "resnet20", "--predict", str(tmp_path / "near.json")]) == 0
    assert f"x{factor:.3f} by its nearest networks" in capsys.readouterr().out


def _std(points: list[list[float]]) -> list[float]:
    columns = list(zip(*points))
    return [math.sqrt(sum((v - sum(c) / len(c)) ** 2 for v in c) / len(c)) for c in columns]


def test_a_prediction_walks_small_weights_as_the_fit_computes_them(
    synthetic: tuple[LatencyTable, list[nas.Graph]],
) -> None:
    # The fast walk (memoised units and opened composites) and the slow one
    # the correction is fitted on must agree, also the second time round.
    table, graphs = copy.deepcopy(synthetic[0]), synthetic[1]
    features = ["blocks_ms", "units", "cold_1mb", "spill_16mb", "const"]
    table.correction = {"features": features, "coef": [1.1, 0.01, 0.05, 0.02, 0.1], "target": "linear"}
    predictor = Predictor(table)
    assert any(predictor.features_of(g)["cold_1mb"] > 0 for g in graphs)
    for g in graphs * 2:
        row = predictor.features_of(g)
        expected = sum(c * row[f] for c, f in zip(table.correction["coef"], features))
        assert predictor.predict(g) == pytest.approx(max(expected, 0.1 * row["blocks_ms"]), rel=1e-9)


def test_the_local_model_interpolates_between_neighbours() -> None:
    def row(channels: int) -> dict[str, Any]:
        macs = channels * channels * 9 * 256
        moved = 4 * (2 * channels * 256 + 9 * channels * channels)
        return {"macs": macs, "bytes": moved, "inputs": [[channels, 16, 16]], "median_ms": 0.002 * macs**0.7 / 1e3}

    model = LocalModel([row(c) for c in (8, 16, 24, 40, 48, 64, 96, 128)], linear=None)
    target = row(32)
    assert model(target["macs"], target["bytes"], target["inputs"]) == pytest.approx(target["median_ms"], rel=0.05)


def _convolutions(
    law: Callable[[int, int], float], channels: Sequence[int], sizes: Sequence[int]
) -> list[dict[str, Any]]:
    """Table entries of 3x3 convolutions keeping ``c`` channels on ``s x s``
    maps, timed by ``law(c, s)``."""
    rows = []
    for c in channels:
        for size in sizes:
            members = [["conv_bn_act", {"out_channels": c, "kernel_size": 3, "stride": 1, "groups": 1}]]
            macs = 9 * c * c * size * size
            moved = 4 * (9 * c * c + 2 * c * size * size)
            rows.append(
                {"kind": "conv_bn_act", "members": members, "inputs": [[c, size, size]], "macs": macs, "bytes": moved}
                | {"median_ms": law(c, size)}
            )
    return rows


def test_the_map_size_weighs_more_where_latency_jumps_with_it() -> None:
    # torch runs a 3x3 convolution on a 2x2 or 3x3 map several times slower
    # per MAC than on a 1x1 or 4x4 one. A unit the table lacks on a 2x2 map
    # must be read off the table's 2x2 entries, not off its 1x1 and 4x4
    # neighbours in MACs; where the law is smooth, the weight costs nothing.
    def smooth(c: int, size: int) -> float:
        noise = random.Random(1000 * c + size).gauss(0.0, 0.03)  # the same for a configuration each time
        return 1e-6 * (9 * c * c * size * size) ** 0.9 * math.exp(noise)

    def jumpy(c: int, size: int) -> float:
        return smooth(c, size) * (5.0 if size in (2, 3) else 1.0)

    channels, sizes = (16, 32, 64, 128, 256, 512), (1, 2, 3, 4, 6, 8)
    between = (24, 48, 96, 192, 384)  # channel counts the table lacks

    def error(law: Callable[[int, int], float], spatial_weight: float | None = None) -> float:
        table = _convolutions(law, channels, sizes)
        fallback = fit_fallback(table)
        assert fallback["spatial_weight"] == choose_spatial_weight(table, fallback)
        weight = fallback["spatial_weight"] if spatial_weight is None else spatial_weight
        model = local_models(table, fallback, weight)["conv_bn_act"]
        missing = _convolutions(law, between, sizes)
        return sum(abs(math.log(model(r["macs"], r["bytes"], r["inputs"]) / r["median_ms"])) for r in missing)

    assert fit_fallback(_convolutions(jumpy, channels, sizes))["spatial_weight"] > 1
    assert error(jumpy) < 0.5 * error(jumpy, 1.0)
    assert error(smooth) < 1.05 * error(smooth, 1.0)


def test_nonnegative_fit_drops_a_column_that_would_be_negative() -> None:
    rows = [[1.0, x, 0.0] for x in (1.0, 2.0, 3.0, 4.0)]
    targets = [2.0 * x + 1.0 for x in (1.0, 2.0, 3.0, 4.0)]
    assert fit_nonnegative(rows, targets) == pytest.approx([1.0, 2.0, 0.0])
    falling = [10.0 - x for x in (1.0, 2.0, 3.0, 4.0)]
    assert all(c >= 0 for c in fit_nonnegative(rows, falling))


def test_kendall_tau_by_hand() -> None:
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant
    # tau-b with ties (scipy.stats.kendalltau gives 0.8): C=4, D=0, one tie in x, one in y
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_accuracy_figures() -> None:
    result = accuracy([1.0, 2.2, 2.7], [1.0, 2.0, 3.0])
    assert result["mape"] == pytest.approx((0 + 0.1 + 0.1) / 3)
    assert result["within_10"] == pytest.approx(1.0)
    assert result["tau"] == pytest.approx(1.0)


# -- the command line ---------------------------------------------------------------


def test_cli_predict_json_says_predicted_and_from_which_table(
    tmp_path: Path, synthetic: tuple[LatencyTable, list[nas.Graph]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "table.json"
    synthetic[0].save(path)
    assert main(["latency", "resnet20", "--predict", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["predicted"] is True
    assert report["table"] == str(path)
    assert report["backend"] == "torch" and report["device"] == "test CPU"
    assert report["median_ms"] == pytest.approx(Predictor(str(path)).predict(nas.build("resnet20")))
    assert main(["latency", "resnet20", "--predict", str(path)]) == 0
    assert "predicted median" in capsys.readouterr().out


def test_cli_predict_refuses_other_conditions(
    tmp_path: Path, synthetic: tuple[LatencyTable, list[nas.Graph]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "table.json"
    synthetic[0].save(path)
    assert main(["latency", "resnet20", "--predict", str(path), "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backend 'torch'" in err
    assert main(["latency", "resnet20", "--predict", str(tmp_path / "none.json")]) == 2
    assert "no such latency table" in capsys.readouterr().err


# -- profiling for real -------------------------------------------------------------


def test_profile_a_tiny_space_on_torch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    store = tmp_path / "store.sqlite"
    table = profile([str(space)], "torch", networks=4, block_samples=2, threads=1, cache=str(store), budget_s=60)
    assert table.conditions["backend"] == "torch" and table.conditions["threads"] == 1
    assert len(table.networks) == 4
    assert table.blocks and all(b["median_ms"] > 0 for b in table.blocks)
    assert {b["kind"] for b in table.blocks} >= {"conv2d+batch_norm+relu", "linear"}
    assert table.profile["spaces"][0]["input"] == [3, 16, 16]
    assert table.correction["fit"]["n"] == 4
    path = table.save(tmp_path / "tiny.json")
    predictor = Predictor(str(path))
    graph = nas.space.decode(
        nas.space.load_space(str(space)), nas.space.sample(nas.space.load_space(str(space)), random.Random(9))
    )
    assert predictor.predict(graph) > 0

    out = tmp_path / "cli.json"
    args = [
        "latency",
        "profile",
        "--space",
        str(space),
        "--backend",
        "torch",
        "--threads",
        "1",
        "-o",
        str(out),
        "--networks",
        "2",
        "--block-samples",
        "0",
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["table"] == str(out) and report["networks"] == 2
    assert LatencyTable.load(out).conditions["backend"] == "torch"


def test_cli_profile_needs_a_space_and_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "profile", "--backend", "torch", "-o", "x.json"]) == 2
    assert "--space" in capsys.readouterr().err
    assert main(["latency", "profile", "--space", "tiny_nonexistent_space", "--backend", "torch"]) == 2
    assert "-o" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> LatencyTable:
    """A table profiled for real on torch: eight networks of a tiny space
    (enough for a fitted correction, not the identity)."""
    folder = tmp_path_factory.mktemp("tiny")
    space = folder / "tiny.yaml"
    space.write_text(TINY_SPACE)
    table = profile([str(space)], "torch", networks=8, block_samples=0, threads=1, cache=False)
    table.save(folder / "tiny.json")
    return table


def test_a_refit_measures_the_networks_again_and_keeps_the_blocks(
    tiny_table: LatencyTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine got twice as slow for whole networks: the refit must see
    # it in every network, refit the correction on it, and keep the blocks.
    held = [n["median_ms"] for n in tiny_table.networks]  # measured again in this order
    real = profile_module.measure
    asked: list[dict[str, Any]] = []

    def slower(graph: nas.Graph, backend: str, **options: Any) -> latency.Measurement:
        twice = 2 * held[len(asked)]
        asked.append({"backend": backend, **options})
        m = real(graph, backend, **{**options, "cache": False})
        times = {"median_ms": twice, "p10_ms": twice, "p90_ms": twice}
        return dataclasses.replace(m, distribution=dataclasses.replace(m.distribution, **times))

    monkeypatch.setattr(profile_module, "measure", slower)
    fresh = refit(tiny_table, cache=False)
    assert [n["hash"] for n in fresh.networks] == [n["hash"] for n in tiny_table.networks]
    assert [n["median_ms"] for n in fresh.networks] == pytest.approx([2 * ms for ms in held])
    assert fresh.blocks == tiny_table.blocks and fresh.networks != tiny_table.networks  # the input is not touched
    assert all(a["refresh"] and a["threads"] == 1 and a["precision"] == "fp32" for a in asked) and len(asked) == 8
    assert fresh.profile["refits"][-1]["median_ratio"] == pytest.approx(2.0)
    graphs = table_networks(tiny_table)
    before, after = Predictor(tiny_table), Predictor(fresh)
    for g in graphs:
        assert after.predict(g) == pytest.approx(2 * before.predict(g), rel=1e-6)  # a linear fit, doubled targets


def test_a_refit_refuses_what_it_cannot_redraw_or_another_machine(
    tiny_table: LatencyTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = copy.deepcopy(tiny_table)
    changed.networks[1]["hash"] = "0" * 16
    with pytest.raises(NASError, match="not what its space draws now"):
        refit(changed, cache=False)
    with pytest.raises(NASError, match="does not record how it was profiled"):
        refit(_synthetic_table(_graphs(2, seed=1)), cache=False)
    elsewhere = copy.deepcopy(tiny_table)
    elsewhere.conditions["device"] = "another CPU"
    measured: list[nas.Graph] = []
    monkeypatch.setattr(profile_module, "measure", lambda graph, backend, **options: measured.append(graph))
    with pytest.raises(NASError, match="was profiled on another CPU"):
        refit(elsewhere, cache=False)
    assert measured == []  # refused before timing anything: a refit on the wrong machine costs nothing


def _ort_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


@pytest.mark.skipif(
    "CPUExecutionProvider" not in _ort_providers() or "CUDAExecutionProvider" in _ort_providers(),
    reason="needs onnxruntime without its CUDA provider",
)
def test_a_refit_of_a_gpu_table_on_a_cpu_machine_is_one_line(tiny_table: LatencyTable) -> None:
    on_gpu = copy.deepcopy(tiny_table)
    on_gpu.conditions.update(backend="onnxruntime", mode="cuda", device="NVIDIA H200")
    with pytest.raises(
        NASError, match=r"profiled on NVIDIA H200: .*this onnxruntime has no CUDAExecutionProvider"
    ) as info:
        refit(on_gpu, cache=False)  # not CUDA's traceback from asking for the GPU's name
    assert "\n" not in str(info.value) and "conditions.mode" in str(info.value)


def test_cli_refit(tiny_table: LatencyTable, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_table.path
    assert path is not None
    out = tmp_path / "refit.json"
    assert main(["latency", "profile", "--refit", path, "-o", str(out), "--no-cache", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["table"] == str(out) and report["refit"]["networks"] == 8
    assert LatencyTable.load(out).blocks == LatencyTable.load(path).blocks
    assert main(["latency", "profile", "--refit", path, "-o", str(out), "--threads", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads 1, not 2" in err
    assert main(["latency", "profile", "--refit", path]) == 2
    assert "-o" in capsys.readouterr().err
    assert main(["latency", "profile", "--refit", path, "--space", "early", "-o", str(out)]) == 2
    assert "takes no --space" in capsys.readouterr().err


def test_a_search_predicts_latency_from_a_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.search import SearchConfig, load_study, run_search

    space = nas.space.load_space("early")
    rng = random.Random(0)
    graphs = [nas.space.decode(space, nas.space.sample(space, rng)) for _ in range(8)]
    path = _synthetic_table(graphs).save(tmp_path / "early.json")
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path}/nas.db"
    config = SearchConfig(
        trials=3, objective="proxy:naswot", storage=storage, study="t", latency_table=str(path), latency_budget_ms=1e6
    )
    run_search(config)
    predictor = Predictor(str(path))
    trials = load_study(storage, "t").get_trials(deepcopy=False)
    assert len(trials) == 3
    for t in trials:
        assert t.user_attrs["latency_source"].startswith(f"predicted from {path} (torch on test CPU")
        assert t.user_attrs["latency_ms"] == pytest.approx(predictor.predict(nas.build(t.user_attrs["yaml"])))


def test_the_card_of_a_model_found_with_a_table_names_the_tables_conditions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without --backend a search takes an onnxruntime table as it is; the card
    # must then say onnxruntime (and the table's device), not the search's default, torch.
    from nas.search import SearchConfig, run_search

    space = nas.space.load_space("early")
    rng = random.Random(0)
    table = _synthetic_table([nas.space.decode(space, nas.space.sample(space, rng)) for _ in range(8)])
    table.conditions["backend"] = "onnxruntime"
    path = table.save(tmp_path / "ort.json")
    monkeypatch.chdir(tmp_path)
    config = SearchConfig(
        trials=2, objective="proxy:naswot", storage=f"sqlite:///{tmp_path}/nas.db", study="t", latency_table=str(path)
    )
    result = run_search(dataclasses.replace(config, latency_budget_ms=1e6))
    assert result.best_dir is not None
    (record,) = json.loads((result.best_dir / "model.json").read_text())["latency"]
    assert record["backend"] == "onnxruntime" and record["device"] == table.conditions["device"]
    assert (record["batch"], record["precision"]) == (table.conditions["batch"], table.conditions["precision"])


def test_refit_refuses_other_conditions_before_measuring(synthetic: tuple[LatencyTable, list[nas.Graph]]) -> None:
    # The check the CLI held: a refit measures in the table's own conditions.
    table = copy.deepcopy(synthetic[0])
    table.path = "t.json"
    held = table.conditions["threads"]
    with pytest.raises(NASError) as info:
        refit(table, threads=held + 1)
    assert info.value.field == "threads" and info.value.file == "t.json"
    assert f"t.json was profiled with --threads {held}, not {held + 1}" in str(info.value)
    with pytest.raises(NASError, match="--backend torch, not onnxruntime"):
        refit(table, backend="onnxruntime")


def test_the_predictor_refuses_conditions_its_table_was_not_measured_in(
    tmp_path: Path, synthetic: tuple[LatencyTable, list[nas.Graph]]
) -> None:
    path = tmp_path / "table.json"
    synthetic[0].save(path)
    predictor = Predictor(str(path))
    predictor.check()  # nothing asked
    predictor.check(backend="torch", batch=1, precision="fp32", threads=1, mode="eager")
    for asked, field in (({"batch": 8}, "batch"), ({"precision": "bf16"}, "precision"), ({"mode": "compile"}, "mode")):
        with pytest.raises(NASError) as info:
            predictor.check(backend="torch", **asked)
        error = info.value
        assert error.field == field and error.file == str(path) and "\n" not in str(error)
        value = next(iter(asked.values()))
        assert error.message == f"the table was measured with {field} {synthetic[0].conditions[field]!r}, not {value!r}"
        assert error.hint == f"profile a table for {field} {value!r}, or leave --{field} out"


@pytest.mark.parametrize(("asked", "field"), [({"batch": 8}, "batch"), ({"precision": "bf16"}, "precision")])
def test_a_search_refuses_a_table_of_another_batch_or_precision(
    tmp_path: Path,
    synthetic: tuple[LatencyTable, list[nas.Graph]],
    capsys: pytest.CaptureFixture[str],
    asked: dict[str, Any],
    field: str,
) -> None:
    # The table was measured at batch 1, fp32: a search at batch 8 or bf16
    # would record those conditions beside latencies predicted for others.
    from nas.search import SearchConfig, run_search
    from nas.search.study import latency_function

    path = tmp_path / "table.json"
    synthetic[0].save(path)
    storage = f"sqlite:///{tmp_path}/nas.db"
    config = SearchConfig(latency_table=str(path), storage=storage, runs=str(tmp_path / "runs"), **asked)
    for attempt in (latency_function, run_search):
        with pytest.raises(NASError) as info:
            attempt(config)  # type: ignore[operator]
        assert info.value.field == field and "\n" not in str(info.value)
    value = str(next(iter(asked.values())))
    command = ["search", "--latency-table", str(path), f"--{field}", value, "--storage", storage]
    assert main([*command, "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the table was measured with {field}" in err and f"--{field}" in err


def test_a_search_without_batch_or_precision_takes_the_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A table of another device (batch 8, bf16) is used as it is: the search records its conditions,
    # and a search that measures (no table) still measures at batch 1 in fp32.
    from nas.search import SearchConfig, load_study, run_search
    from nas.search.study import with_conditions

    space = nas.space.load_space("early")
    rng = random.Random(0)
    table = _synthetic_table([nas.space.decode(space, nas.space.sample(space, rng)) for _ in range(8)])
    table.conditions |= {"batch": 8, "precision": "bf16"}
    path = str(table.save(tmp_path / "bf16.json"))
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path}/nas.db"
    config = SearchConfig(trials=2, objective="proxy:naswot", storage=storage, study="t", latency_table=path)
    run_search(dataclasses.replace(config, latency_budget_ms=1e6))
    study = load_study(storage, "t")
    assert (study.user_attrs["batch"], study.user_attrs["precision"]) == (8, "bf16")
    sources = [t.user_attrs["latency_source"] for t in study.trials if "latency_source" in t.user_attrs]
    assert sources and all("batch 8, bf16" in source for source in sources)
    measured = with_conditions(SearchConfig())
    assert (measured.batch, measured.precision) == (1, "fp32")
    given = with_conditions(dataclasses.replace(config, batch=2))  # what the user gives stays (the check refuses it)
    assert (given.batch, given.precision) == (2, "bf16")


def test_a_search_without_backend_takes_the_tables(
    tmp_path: Path, synthetic: tuple[LatencyTable, list[nas.Graph]]
) -> None:
    # `nas search --latency-table ort.json` (the README's) has no --backend:
    # the default is no choice, so an onnxruntime table is taken; a backend
    # the user names must be the table's.
    from nas.search import SearchConfig
    from nas.search.study import latency_function

    table = copy.deepcopy(synthetic[0])
    table.conditions["backend"] = "onnxruntime"
    path = str(table.save(tmp_path / "ort.json"))
    graph = synthetic[1][0]
    for backend in (SearchConfig.backend, "auto", "onnxruntime"):
        ms, source = latency_function(SearchConfig(latency_table=path, backend=backend))(graph)
        assert ms == pytest.approx(Predictor(path).predict(graph)) and "onnxruntime on test CPU" in source
    with pytest.raises(NASError, match="measured with backend 'onnxruntime', not 'cuda'") as info:
        latency_function(SearchConfig(latency_table=path, backend="cuda"))
    assert info.value.field == "backend"


@pytest.mark.parametrize(("noise", "runs"), [(0.3, 2), (0.7, 2), (0.7, 4), (1.5, 4)])
def test_tau_of_means_is_what_means_of_noisy_runs_reach(noise: float, runs: int) -> None:
    """Simulated: networks' expected scores, each run scattered around them. Read off two runs' agreement, the
    figure is the expected scores' agreement with the mean of the runs (the ceiling of any evaluator), and one
    half of the runs' mean's with the other's (scipy's tau)."""
    rng = np.random.default_rng(0)
    between, ceiling, halves = [], [], []
    for _ in range(50):
        expected = rng.normal(size=300)
        scores = expected + rng.normal(scale=noise, size=(runs, 300))
        half = runs // 2
        between.append(scipy.stats.kendalltau(scores[0], scores[1]).statistic)
        ceiling.append(scipy.stats.kendalltau(expected, scores.mean(axis=0)).statistic)
        halves.append(scipy.stats.kendalltau(scores[:half].mean(axis=0), scores[half:].mean(axis=0)).statistic)
    measured = float(np.mean(between))
    assert tau_of_means(measured, runs) == pytest.approx(np.mean(ceiling), abs=0.015)
    assert tau_of_means(measured, runs // 2, runs - runs // 2) == pytest.approx(np.mean(halves), abs=0.015)
    assert tau_of_means(measured, runs) > tau_of_means(measured, 1) > measured  # more runs, a higher ceiling
    assert tau_of_means(measured, 1, 1) == pytest.approx(measured)
    assert tau_of_means(1.0, 2) == 1.0 and math.isnan(tau_of_means(0.0, 2)) and math.isnan(tau_of_means(-0.1, 2))


def test_kendall_tau_interval_brackets_scipys_tau() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.8, size=30)
    tau, low, high = kendall_tau_interval(list(x), list(y), rounds=300, seed=1)
    assert tau == pytest.approx(scipy.stats.kendalltau(x, y).statistic)
    assert low < tau < high
    assert kendall_tau_interval(list(x), list(x), rounds=50) == (1.0, 1.0, 1.0)  # every resample is concordant
    assert all(math.isnan(v) for v in kendall_tau_interval([1.0], [2.0]))
