"""Contract tests run on every zoo net: it builds, validates, round-trips,
hashes like its flattened form, lowers, and runs a forward pass with the
shape its analysis predicts. Reference checks live in tests/test_zoo_*.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nas
from nas.ir.errors import SourceError

NAMES = nas.zoo.names()


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name: str) -> None:
    meta = nas.build(name).meta
    missing = [key for key in nas.zoo.REQUIRED_META if not meta.get(key)]
    assert not missing, f"{name} lacks {missing}"
    assert isinstance(meta["year"], int) and 1989 <= meta["year"] <= 2017


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_flatten_keep_the_hash(name: str) -> None:
    g = nas.build(name)
    again = nas.build(g.to_yaml())
    assert again.to_yaml() == g.to_yaml()
    assert again.hash == g.hash == nas.flatten(g).hash
    assert (again.params, again.macs) == (g.params, g.macs)


@pytest.mark.parametrize("name", NAMES)
def test_lowers_and_runs_with_the_predicted_shapes(name: str) -> None:
    g = nas.build(name)
    model = nas.lower(g).eval()
    assert sum(p.numel() for p in model.parameters()) == g.params
    inputs = [torch.randn(1, *shape) for shape in g.summary.inputs.values()]
    with torch.inference_mode():
        out = model(*inputs)
    outputs = out if isinstance(out, tuple) else (out,)
    assert [tuple(t.shape[1:]) for t in outputs] == g.summary.outputs
    assert all(torch.isfinite(t).all() for t in outputs if t.is_floating_point())


def test_unknown_zoo_name_suggests() -> None:
    with pytest.raises(SourceError, match="did you mean the zoo net 'resnet50'"):
        nas.build("resnt50")


def test_a_zoo_name_wins_over_a_directory_of_that_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet18").mkdir()
    assert nas.build("resnet18").params == 11_689_512
    (tmp_path / "resnet20").write_text("inputs: {x: [4]}\nnodes: {fc: {block: linear, in: x, out_features: 2}}\n")
    assert nas.build("resnet20").params == 10  # an existing file is read as the file it is
