"""The training layer: recipes as data, the loop, resumable checkpoints, devices.

Schedules are checked against PyTorch's own schedulers, the learning-rate
scaling against Goyal et al. 2017 ("Accurate, Large Minibatch SGD": the rate
is linear in the batch), and resumed runs against uninterrupted ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.cli import main
from nas.data import load_data
from nas.ir.errors import NASError, SourceError
from nas.train import RECIPES, choose_recipe, recipe, resolve_device, train
from nas.train.device import claim_gpu, precision_for

NET = """
name: small
inputs: {x: [3, 16, 16]}
nodes:
  conv: {block: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  bn: {block: batch_norm}
  relu: {block: relu}
  pool: {block: adaptive_avg_pool2d, output_size: 1}
  flat: {block: flatten}
  fc: {block: linear, out_features: 4}
"""

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def colour(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Small colour images of four classes, which the ``cifar`` recipe suits."""
    x = np.random.default_rng(0).integers(0, 256, (64, 3, 16, 16), np.uint8)
    np.savez(tmp_path / "colour.npz", x=x, y=np.arange(64) % 4)
    return load_data(tmp_path / "colour.npz")


# -- recipes ----------------------------------------------------------------------------


def test_each_data_set_gets_the_recipe_that_suits_it(colour, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert choose_recipe(load_data("digits")).name == "digits"
    assert choose_recipe(colour).name == "cifar"
    big = np.zeros((10, 3, 96, 96), np.uint8)
    np.savez(tmp_path / "big.npz", x=big, y=np.arange(10) % 2)
    assert choose_recipe(load_data(tmp_path / "big.npz")).name == "imagenet"
    assert RECIPES["cifar"].optimizer == "sgd" and RECIPES["cifar"].nesterov and RECIPES["adam"].optimizer == "adam"


def test_the_rate_scales_linearly_with_the_batch() -> None:
    # Goyal et al. 2017: 0.1 for 256 images, so 0.4 for 1024 and 0.025 for 64.
    assert math.isclose(recipe("imagenet", batch_size=1024).lr, 0.4)
    assert math.isclose(recipe("imagenet", batch_size=64).lr, 0.025)
    assert recipe("imagenet", batch_size=64, lr=0.3).lr == 0.3  # a rate given is kept


def test_the_cosine_schedule_is_pytorchs_after_the_warm_up() -> None:
    total, warm = 50, 5
    r = recipe("cifar", warmup=warm / total, warmup_epochs=100)
    ours = [r.factor(step, total, steps_per_epoch=10) for step in range(total)]
    assert ours[:warm] == pytest.approx([(s + 1) / (warm + 1) for s in range(warm)])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warm)
    reference = []
    for _ in range(total - warm):
        reference.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        theirs.step()
    assert ours[warm:] == pytest.approx(reference, abs=1e-9)
    # 10% of 1,000 steps, capped at 5 epochs of 10 steps: 50 steps of warm-up.
    assert recipe("cifar").factor(0, 1000, steps_per_epoch=10) == pytest.approx(1 / 51)


def test_norms_and_biases_are_not_decayed() -> None:
    model = nas.lower(nas.build(NET))
    optimizer = recipe("cifar").optimizer_for(model)
    assert optimizer is not None
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and exempt["weight_decay"] == 0.0
    assert {p.ndim for p in decayed["params"]} == {2, 4} and {p.ndim for p in exempt["params"]} == {1}
    assert len(decayed["params"]) + len(exempt["params"]) == len(list(model.parameters()))


def test_a_recipe_file_is_read_safely_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("optimizer: adamw\nlr: 0.001\nbatch_size: 16\nlabel_smoothing: 0.0\n")
    mine = recipe(str(good))
    assert (mine.name, mine.optimizer, mine.lr, mine.batch_size, mine.schedule) == (
        "mine",
        "adamw",
        0.001,
        16,
        "cosine",
    )
    cases = {
        "momentom: 0.9\n": (r"unknown recipe field 'momentom'", "momentom"),
        "lr: fast\n": (r"recipe field 'lr' is 'fast'", "lr"),
        "optimizer: lion\n": (r"unknown optimizer 'lion'", "optimizer"),
        "lr: [0.1\n": (r"malformed YAML", None),
        "!!python/object:os.system {}\n": (r"malformed YAML", None),  # the safe loader refuses it
    }
    for text, (message, field) in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(SourceError, match=message) as raised:
            recipe(str(bad))
        assert raised.value.file == str(bad) and raised.value.field == field and "\n" not in str(raised.value)
    with pytest.raises(NASError, match="unknown recipe 'fast'"):
        recipe("fast")


# -- the loop -------------------------------------------------------------------------------


def test_an_interrupted_sgd_run_with_augmentation_resumes_to_the_same_weights(colour, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    graph = nas.build(NET)
    settings = {"recipe": "cifar", "batch_size": 16, "epochs": 3, "seed": 2}
    straight = train(graph, colour, **settings)
    assert straight.recipe["name"] == "cifar" and straight.recipe["augmentation"] == "crop-flip"

    class Stop(Exception):
        pass

    def stop_after_second(epoch: int, accuracy: float) -> None:
        if epoch == 1:
            raise Stop

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        train(graph, colour, **settings, checkpoint=checkpoint, on_epoch=stop_after_second)
    resumed = train(graph, colour, **settings, checkpoint=checkpoint)
    assert resumed.curve == straight.curve
    for key, value in straight.state.items():
        torch.testing.assert_close(resumed.state[key], value, rtol=0, atol=0, msg=key)
    with pytest.raises(NASError, match=r"another run .*recipe"):
        train(graph, colour, **{**settings, "recipe": "imagenet"}, checkpoint=checkpoint)


def test_the_recipe_changes_the_training(colour) -> None:  # type: ignore[no-untyped-def]
    graph = nas.build(NET)
    a = train(graph, colour, recipe="adam", epochs=1)
    b = train(graph, colour, recipe="cifar", epochs=1)
    assert a.recipe["optimizer"] == "adam" and b.recipe["optimizer"] == "sgd"
    assert not torch.equal(a.state["conv.weight"], b.state["conv.weight"])


def test_a_recipes_norm_momentum_replaces_the_networks_while_training(colour) -> None:  # type: ignore[no-untyped-def]
    slow, usual = (
        nas.build(NET.replace("{block: batch_norm}", f"{{block: batch_norm, momentum: {m}}}")) for m in (0.01, 0.1)
    )
    settings = {"batch_size": 16, "epochs": 1, "seed": 1}
    own = train(slow, colour, recipe="cifar", **settings)  # the cifar recipe keeps the network's momentum
    forced = train(slow, colour, recipe=dataclasses.replace(RECIPES["cifar"], norm_momentum=0.1), **settings)
    reference = train(usual, colour, recipe="cifar", **settings)
    # Momentum moves the running statistics only: the weights agree, and the statistics follow the momentum used.
    torch.testing.assert_close(own.state["conv.weight"], reference.state["conv.weight"], rtol=0, atol=0)
    torch.testing.assert_close(forced.state["bn.running_var"], reference.state["bn.running_var"], rtol=0, atol=0)
    assert (own.state["bn.running_var"] - 1).abs().max() < (reference.state["bn.running_var"] - 1).abs().max() / 3
    assert forced.recipe["norm_momentum"] == 0.1 and RECIPES["digits"].norm_momentum == 0.1
    with pytest.raises(NASError, match="norm_momentum is a fraction"):
        dataclasses.replace(RECIPES["cifar"], norm_momentum=0.0)


def test_a_recipe_clips_the_norm_of_all_gradients_together() -> None:
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(4))
    a.grad, b.grad = torch.full((3,), 4.0), torch.full((4,), -3.0)
    norm = float(torch.linalg.vector_norm(torch.cat([a.grad, b.grad])))  # sqrt(48 + 36)
    RECIPES["digits"].with_changes(clip_grad=2.0).clip([a, b])
    torch.testing.assert_close(a.grad, torch.full((3,), 4.0 * 2.0 / norm))
    torch.testing.assert_close(b.grad, torch.full((4,), -3.0 * 2.0 / norm))
    RECIPES["digits"].clip([a, b])  # no clip_grad: left alone
    torch.testing.assert_close(a.grad, torch.full((3,), 4.0 * 2.0 / norm))
    assert "clip_grad" not in RECIPES["digits"].plain()  # runs stored before the field resume
    assert RECIPES["digits"].with_changes(clip_grad=1.0).plain()["clip_grad"] == 1.0
    with pytest.raises(NASError, match="clip_grad is a gradient norm above 0"):
        RECIPES["digits"].with_changes(clip_grad=0.0)


def test_clipped_gradients_bound_every_training_step(colour) -> None:  # type: ignore[no-untyped-def]
    """Under SGD a step is the rate times the (clipped) gradient: clipped to
    almost nothing, the weights stay where they started."""
    graph = nas.build(NET)
    plain = dataclasses.replace(RECIPES["cifar"], weight_decay=0.0, warmup=0.0)
    runs = [
        train(graph, colour, recipe=plain.with_changes(clip_grad=clip), epochs=1, batch_size=16, seed=2)
        for clip in (1e-9, 1e-8, None)
    ]
    tiny, small, free = (r.state["conv.weight"] for r in runs)
    assert (tiny - small).abs().max() < 1e-6
    assert (tiny - free).abs().max() > 2e-4  # four unclipped steps moved it by 8e-4


# -- devices -------------------------------------------------------------------------------


def test_devices_that_are_not_here_are_one_line() -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(NASError, match=f"'cuda:{count}' is not here: this machine has {count} GPU"):
        resolve_device(f"cuda:{count}")
    with pytest.raises(NASError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machines without a GPU")
def test_without_a_gpu_auto_trains_on_the_cpu_and_amp_is_refused(tmp_path: Path) -> None:
    assert claim_gpu(tmp_path) is None and resolve_device("auto", claims=tmp_path) == torch.device("cpu")
    assert precision_for(torch.device("cpu")).dtype is None and precision_for(torch.device("cpu")).channels_last
    with pytest.raises(NASError, match=r"mixed precision .* on a GPU only"):
        precision_for(torch.device("cpu"), amp=True)


def test_cli_training_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "net.yaml").write_text(NET)
    base = ["train", str(tmp_path / "net.yaml"), "-o", str(tmp_path / "out"), "--epochs", "1"]
    for extra, message in (
        (["--recipe", "fast"], "unknown recipe 'fast'"),
        (["--data", f"torchvision:CIFAR10:{tmp_path}"], "CIFAR10 is missing or damaged"),
        (["--device", "cuda:9"], "'cuda:9' is not here"),
        (["--augment", "twirl"], "unknown augmentation 'twirl'"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


DIGITS_NET = """
name: digitnet
inputs: {{x: [1, 8, 8]}}
nodes:
  conv: {{block: conv2d, out_channels: 16, kernel_size: 3, padding: 1}}
  relu: {{block: relu}}
  flat: {{block: flatten}}
  fc: {{block: linear, out_features: {classes}}}
"""


def test_a_network_trains_further_from_its_own_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "net.yaml").write_text(DIGITS_NET.format(classes=10))
    quiet = ["--format", "yaml,weights"]

    def trained(source: str, out: str, *extra: str) -> float:
        command = ["train", str(tmp_path / source), "-o", str(tmp_path / out), "--epochs", "1", *quiet, *extra]
        assert main(command) == 0
        return float(json.loads((tmp_path / out / "model.json").read_text())["accuracy"]["value"])

    first = trained("net.yaml", "first")
    capsys.readouterr()
    # a step too small to move the weights: the run starts from them, and so scores what they scored
    still = ["--lr", "1e-12"]
    assert trained("first", "kept", "--pretrained", *still) == first > 0.8
    assert "starting from the weights of" in capsys.readouterr().err
    source, kept = nas.load(str(tmp_path / "first")).state_dict(), nas.load(str(tmp_path / "kept")).state_dict()
    assert all(torch.allclose(kept[k], source[k], atol=1e-6) for k in source)
    assert trained("first", "new", *still) < 0.5  # without --pretrained: a new initialisation
    card = json.loads((tmp_path / "kept" / "model.json").read_text())
    assert card["source"]["pretrained"] is True
    # a classifier for other classes starts new, the rest is taken
    (tmp_path / "five.yaml").write_text(DIGITS_NET.format(classes=5))
    assert main(["export", str(tmp_path / "five.yaml"), "-o", str(tmp_path / "five"), *quiet]) == 0
    capsys.readouterr()
    trained("five", "refit", "--pretrained")
    assert "2 of 4 tensors (fc.bias, fc.weight new: other shapes)" in capsys.readouterr().err
    # a source without weights: one line, nothing written
    assert main(["train", str(tmp_path / "net.yaml"), "-o", str(tmp_path / "none"), "--pretrained", *quiet]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "holds no weights to start from" in line and not (tmp_path / "none").exists()


def test_a_checkpoint_resumes_only_a_run_from_the_same_weights(colour, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    graph = nas.build(NET)
    checkpoint = tmp_path / "run.ckpt"
    scratch = train(graph, colour, recipe="cifar", epochs=1, checkpoint=checkpoint)
    with pytest.raises(NASError, match=r"its weights differ"):
        train(graph, colour, recipe="cifar", epochs=1, checkpoint=checkpoint, weights=scratch.state)
    other = tmp_path / "other.ckpt"
    train(graph, colour, recipe="cifar", epochs=1, checkpoint=other, weights=scratch.state)
    changed = {k: v + 1 if v.is_floating_point() else v for k, v in scratch.state.items()}
    with pytest.raises(NASError, match=r"its weights differ"):
        train(graph, colour, recipe="cifar", epochs=1, checkpoint=other, weights=changed)
    assert train(graph, colour, recipe="cifar", epochs=1, checkpoint=other, weights=scratch.state).curve


@gpu
def test_mixed_precision_and_channels_last_train_on_a_gpu(colour) -> None:  # type: ignore[no-untyped-def]
    graph = nas.build(NET)
    result = train(graph, colour, recipe="cifar", epochs=1, device="cuda")
    assert result.recipe["amp"] in ("bfloat16", "float16") and result.recipe["channels_last"] is True
    plain = train(graph, colour, recipe="cifar", epochs=1, device="cuda", amp=False, channels_last=False)
    assert plain.recipe["amp"] is None and math.isfinite(plain.accuracy)


@gpu
def test_auto_claims_a_different_gpu_per_process(tmp_path: Path) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    code = (
        "import pathlib, time; from nas.train import resolve_device; "
        f"print(resolve_device('auto', claims=pathlib.Path('{tmp_path}'))); time.sleep(3)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert len({p.communicate()[0].strip() for p in procs}) == 2
