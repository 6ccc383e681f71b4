"""The data layer: sources read as stored, split once, fed per network and per batch.

Generated data in each format (a tiny MNIST in its raw IDX files, image
folders, ``.npz`` arrays); nothing is downloaded. Figures are checked
against independent computations (numpy, Pillow, ``torch.nn.functional``
on the raw arrays), never against the loader's own output.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import nas.data.sources
from nas.data import load_data, loader
from nas.data.synthetic import Clutter, cluttered
from nas.data.transforms import flip, pad_crop, padding, resized_crop
from nas.ir.errors import NASError, SourceError


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_data("digits")


def _images(tmp: Path, layout: dict[str, int], *, size: int = 12, mode: str = "L") -> None:
    """Class folders under ``tmp`` with ``layout[class]`` images each, every image's pixels from its index."""
    rng = np.random.default_rng(0)
    for label, count in layout.items():
        (tmp / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size, size) if mode == "L" else (size, size, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(tmp / label / f"{i:03d}.png")


def _idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (LeCun's MNIST format): magic, dimensions, unsigned bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


# -- sources ---------------------------------------------------------------------------


def test_digits_are_split_the_same_way_every_time(digits) -> None:  # type: ignore[no-untyped-def]
    assert digits.classes == 10 and digits.channels == 1 and digits.augmentation == "none"
    assert len(digits.train) + len(digits.val) == 1797  # scikit-learn's digits
    assert len(digits.val) == round(0.2 * 1797)
    assert set(digits.train.y.tolist()) == set(range(10))
    again = load_data("digits")
    assert torch.equal(again.train.y, digits.train.y) and torch.equal(again.val.x, digits.val.x)
    from sklearn.datasets import load_digits

    raw = torch.tensor(load_digits().images, dtype=torch.float64)
    train = digits.train.x.to(torch.float64)
    assert abs(digits.mean[0] - float(train.mean())) < 1e-9 and abs(digits.std[0] - float(train.std())) < 1e-9
    assert 0 < digits.mean[0] < float(raw.max())


def test_batches_are_resized_normalised_and_repeat_grey_channels(digits) -> None:  # type: ignore[no-untyped-def]
    feed = loader(digits, "val", (3, 32, 32), batch_size=50)
    x, y = next(iter(feed.epoch()))
    assert x.shape == (50, 3, 32, 32) and torch.equal(y, digits.val.y[:50])
    expected = F.interpolate((digits.val.x[:50] - digits.mean[0]) / digits.std[0], size=(32, 32), mode="bilinear")
    torch.testing.assert_close(x[:, 1:2], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(x[:, 0], x[:, 2])
    assert len(feed) == -(-len(digits.val) // 50)


def test_npz_arrays_stay_uint8_and_no_copy_is_made_per_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (50, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(50) % 3)
    data = load_data(tmp_path / "d.npz")
    assert data.classes == 3 and data.channels == 3 and len(data.train) == 40
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape == (40, 3, 12, 12)  # as stored: 1 byte a pixel
    for shape in ((3, 24, 24), (1, 6, 6)):
        batch, _ = next(iter(loader(data, "train", shape, batch_size=8).epoch()))
        assert batch.shape == (8, *shape)
    assert data.train.x.shape == (40, 3, 12, 12)  # nothing was resized in place or cached


def test_torchvision_mnist_is_read_from_its_raw_files(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (40, 28, 28)), np.arange(40) % 10
    _idx(raw / "train-images-idx3-ubyte", images)
    _idx(raw / "train-labels-idx1-ubyte", labels)
    _idx(raw / "t10k-images-idx3-ubyte", images[:5])
    _idx(raw / "t10k-labels-idx1-ubyte", labels[:5])
    data = load_data(f"torchvision:MNIST:{tmp_path}")
    assert data.classes == 10 and data.kind == "digits" and data.augmentation == "none"
    assert len(data.train) + len(data.val) == 40  # validation held out of the training split; test unseen
    for part in (data.train, data.val):
        for row, label in zip(part.x[:, 0].numpy(), part.y.tolist()):
            (index,) = [i for i in range(40) if np.array_equal(images[i], row)]
            assert labels[index] == label


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torchvision:CIFAR10:{root}", r"CIFAR10 is missing or damaged .*expected cifar-10-batches-py"),
        ("torchvision:MNIST:{root}", r"MNIST is missing or damaged .*expected MNIST/raw/"),
        ("torchvision:ImageNet21k:{root}", r"'ImageNet21k' is not one nas reads"),
        ("torchvision:CIFAR10", r"is not torchvision:NAME:ROOT"),
    ],
)
def test_a_missing_torchvision_data_set_is_one_line(tmp_path: Path, spec: str, message: str) -> None:
    pytest.importorskip("torchvision")
    with pytest.raises(SourceError, match=message) as raised:
        load_data(spec.format(root=tmp_path))
    assert "\n" not in str(raised.value)


def test_cluttered_digits_are_drawn_the_same_way_every_time() -> None:
    data = load_data("cluttered:400")
    assert (len(data.train), len(data.val)) == (400, 100) and data.stem == "cluttered-400"
    assert data.train.x.shape == (400, 1, 32, 32) and data.train.x.dtype == torch.uint8
    assert data.kind == "digits" and data.augmentation == "none" and data.classes == 10
    assert set(data.train.y.tolist()) == set(range(10))
    again = load_data("cluttered:400")
    assert torch.equal(again.train.x, data.train.x) and torch.equal(again.val.y, data.val.y)
    assert not torch.equal(data.train.x[:100], data.val.x)
    train = data.train.x.to(torch.float64) / 255
    assert abs(data.mean[0] - float(train.mean())) < 1e-9 and abs(data.std[0] - float(train.std())) < 1e-9


def test_cluttered_validation_images_come_from_unseen_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Label each source digit by its index: the two parts must share none."""
    x, _, _ = nas.data.sources._digits()
    index = torch.arange(len(x))
    monkeypatch.setattr(nas.data.sources, "_digits", lambda: (x, index, [str(i) for i in range(len(x))]))
    data = load_data("cluttered:2000")
    train, val = set(data.train.y.tolist()), set(data.val.y.tolist())
    assert not train & val
    assert len(val) > 0.7 * round(0.2 * len(x))  # 500 draws reach most of the 359 held-out digits


@pytest.mark.parametrize("angle", [0.0, 45.0])
def test_a_cluttered_digit_lies_wholly_on_the_canvas_at_its_scale(angle: float) -> None:
    """Without fragments or noise a canvas holds one digit: its ink is the
    source's ink times the area scale (a digit cut by the edge would lose some),
    and it is not always in the same place."""
    glyph = torch.zeros(1, 1, 8, 8)
    glyph[0, 0, 1:7, 2:6] = 16.0
    side = 16.0
    clutter = Clutter(size=32, scale=(side, side), rotation=angle, fragments=0, noise=0.0)
    images, labels = cluttered(glyph, torch.tensor([3]), 64, seed=0, clutter=clutter)
    assert labels.tolist() == [3] * 64
    ink = images.to(torch.float64).sum(dim=(1, 2, 3)) / 255
    expected = float((glyph / 16).sum()) * (side / 8) ** 2
    assert torch.allclose(ink, torch.full_like(ink, expected), rtol=0.05)
    rows = images[:, 0].to(torch.float64).sum(dim=2).argmax(dim=1)
    assert len(set(rows.tolist())) > 4


def test_fragments_and_noise_clutter_the_canvas() -> None:
    glyph = torch.zeros(1, 1, 8, 8)
    glyph[0, 0, 1:7, 2:6] = 1.0
    clean = Clutter(fragments=0, noise=0.0)
    busy = Clutter(fragments=4, noise=0.0)
    plain, _ = cluttered(glyph, torch.tensor([0]), 32, seed=0, clutter=clean)
    strewn, _ = cluttered(glyph, torch.tensor([0]), 32, seed=0, clutter=busy)
    assert (strewn.to(torch.int64).sum() > 1.3 * plain.to(torch.int64).sum()).item()
    noisy, _ = cluttered(glyph, torch.tensor([0]), 32, seed=0, clutter=Clutter(fragments=0, noise=0.1))
    assert ((noisy > 0) & (plain == 0)).sum() > 0.3 * (plain == 0).sum()


def test_a_cluttered_count_that_is_not_a_number_is_one_line() -> None:
    with pytest.raises(SourceError, match=r"'ten' is not a number of images.*cluttered:N") as raised:
        load_data("cluttered:ten")
    assert "\n" not in str(raised.value)


def test_an_image_folder_is_split_with_the_fixed_seed_and_decoded_per_batch(tmp_path: Path) -> None:
    _images(tmp_path / "img", {"cat": 5, "dog": 5})
    data = load_data(tmp_path / "img")
    assert data.class_names == ["cat", "dog"] and data.channels == 1 and len(data.train) == 8
    assert data.train.paths.dtype.kind == "U"  # one numpy array: forked workers share it without copies
    batch, labels = next(iter(loader(data, "val", (1, 6, 6), batch_size=2, workers=0).epoch()))
    for image, path in zip(batch, data.val.paths):
        with Image.open(path) as original:
            expected = np.asarray(original.resize((6, 6), Image.Resampling.BILINEAR), dtype=np.float64) / 255
        got = image[0].double() * data.std[0] + data.mean[0]
        assert np.allclose(got.numpy(), expected, atol=1e-5)
    assert torch.equal(labels, data.val.y)


def test_train_and_val_folders_are_kept_as_given(tmp_path: Path) -> None:
    _images(tmp_path / "tree" / "train", {"a": 4, "b": 3}, mode="RGB")
    _images(tmp_path / "tree" / "val", {"a": 2, "b": 1}, mode="RGB")
    data = load_data(tmp_path / "tree")
    assert len(data.train) == 7 and len(data.val) == 3 and data.channels == 3
    assert all("/val/" in p for p in data.val.paths) and all("/train/" in p for p in data.train.paths)
    _images(tmp_path / "tree" / "val", {"zebra": 1}, mode="RGB")
    with pytest.raises(SourceError, match="validation classes zebra have no training folder"):
        load_data(tmp_path / "tree")


def test_an_unreadable_image_is_one_line_naming_it(tmp_path: Path) -> None:
    _images(tmp_path / "img", {"a": 6, "b": 6})
    data = load_data(tmp_path / "img")
    broken = Path(data.val.paths[1])
    broken.write_bytes(b"not an image")
    for workers in (0, 2):
        with pytest.raises(SourceError) as raised:
            list(loader(data, "val", (1, 8, 8), batch_size=4, workers=workers).epoch())
        assert raised.value.file == str(broken) and "\n" not in str(raised.value)


def test_channels_that_cannot_be_matched_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "c.npz", x=np.zeros((10, 3, 4, 4), np.uint8), y=np.arange(10) % 2)
    with pytest.raises(NASError, match="has 3 channels and the network reads 2"):
        loader(load_data(tmp_path / "c.npz"), "train", (2, 4, 4), batch_size=2)
    with pytest.raises(NASError, match="unknown augmentation 'twirl'"):
        loader(load_data(tmp_path / "c.npz"), "train", (3, 4, 4), batch_size=2, augment="twirl")


# -- augmentation ------------------------------------------------------------------------


def test_a_padded_crop_shifts_each_image_by_at_most_its_padding() -> None:
    x = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16) + 1
    out = pad_crop(x, torch.Generator().manual_seed(0))
    pad = padding(16)
    for original, cropped in zip(x, out):
        shifts = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(
                cropped, F.pad(original, (pad, pad, pad, pad))[:, pad + dy : pad + dy + 16, pad + dx : pad + dx + 16]
            )
        ]
        assert len(shifts) == 1


def test_flips_mirror_some_images_and_leave_the_others() -> None:
    x = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = flip(x, torch.Generator().manual_seed(1))
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    assert all(m or torch.equal(o, i) for m, o, i in zip(mirrored, out, x))
    assert 16 < sum(mirrored) < 48


def test_resized_crops_stay_inside_the_image() -> None:
    x = torch.rand(8, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    out = resized_crop(x, (20, 20), torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 20, 20) and out.min() >= 0 and out.max() <= 1


def test_an_epoch_repeats_with_its_seed_and_differs_from_the_next(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "n.npz", x=np.random.default_rng(0).integers(0, 256, (40, 3, 16, 16), np.uint8), y=np.arange(40) % 4
    )
    data = load_data(tmp_path / "n.npz")
    assert data.augmentation == "crop-flip"  # small natural images: CIFAR's augmentation
    feed = loader(data, "train", (3, 16, 16), batch_size=8)
    first = [x for x, _ in feed.epoch(0, seed=5)]
    assert all(torch.equal(a, b) for a, b in zip(first, [x for x, _ in feed.epoch(0, seed=5)]))
    assert not torch.equal(first[0], next(iter(feed.epoch(1, seed=5)))[0])


def test_images_on_disk_are_augmented_the_same_whatever_the_workers(tmp_path: Path) -> None:
    _images(tmp_path / "img", {"a": 6, "b": 6}, size=80, mode="RGB")
    data = load_data(tmp_path / "img")
    assert data.augmentation == "resized-crop-flip"  # larger than CIFAR: ImageNet's augmentation
    runs = [
        [x for x, _ in loader(data, "train", (3, 32, 32), batch_size=4, workers=w).epoch(2, seed=1)] for w in (0, 2)
    ]
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    plain = next(iter(loader(data, "train", (3, 32, 32), batch_size=4, augment=False, workers=0).epoch(2, seed=1)))[0]
    assert not torch.equal(runs[0][0], plain)
