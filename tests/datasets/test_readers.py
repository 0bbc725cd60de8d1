"""Format readers and dataset wrappers on tiny fake data in the official layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import random_split

from clbench.datasets import class_folders, medmnist_npz, split_csv, tiny_imagenet
from clbench.datasets.labeled import ArrayImages, ImageFiles, LabeledView, as_rgb
from clbench.datasets.location import default_root, resolve_root
from clbench.datasets.requirements import Missing, absent, preflight, require
from clbench.datasets.split import seeded_split
from clbench.datasets.torchvision_sets import CIFAR100, SUN397, Flowers102, targets_of
from clbench.errors import MissingResourceError
from tests.datasets import fake_formats as fake


def test_seeded_split_is_zscls_random_split() -> None:
    train, test = seeded_split(103)
    ref_train, ref_test = random_split(list(range(103)), [82, 21], generator=torch.Generator().manual_seed(42))
    assert (train, test) == (list(ref_train.indices), list(ref_test.indices))
    assert sorted(train + test) == list(range(103))


def test_wrappers_expose_targets_and_give_rgb(tmp_path: Path) -> None:
    tf = fake.tiny_transforms().train
    gray = fake.image(tmp_path / "g.png", 3, mode="L")
    files = ImageFiles([gray], [4], tf)
    x, y = files[0]
    assert files.targets == [4] and y == 4 and x.shape == (3, 8, 8)
    arrays = ArrayImages(np.zeros((2, 28, 28), np.uint8), np.array([[1], [0]]), tf)
    assert arrays.targets == [1, 0] and arrays[1][0].shape == (3, 8, 8)
    base = [(Image.new("L", (8, 8)), 9), (Image.new("RGB", (8, 8)), 9), (Image.new("RGB", (8, 8)), 9)]
    view = LabeledView(base, [5, 6, 7], tf, indices=[2, 0])
    assert view.targets == [7, 5] and len(view) == 2 and view[0][1] == 7
    assert as_rgb(np.zeros((4, 4), np.uint8)).mode == "RGB"
    with pytest.raises(ValueError):
        LabeledView(base, [1], tf)
    with pytest.raises(ValueError):
        ImageFiles([gray], [1, 2], tf)


def test_checksum_free_torchvision_readers(tmp_path: Path) -> None:
    fake.write_cifar100(tmp_path, train_per_class=2)
    cifar = CIFAR100(str(tmp_path), train=True, verify_checksums=False)
    assert len(cifar) == 200 and cifar.classes[:2] == ["class_00", "class_01"]
    assert targets_of(cifar)[:3] == [0, 0, 1]
    fake.write_flowers102(tmp_path, n_classes=3)
    flowers = Flowers102(str(tmp_path), split="test")
    assert targets_of(flowers) == [0, 1, 2]
    fake.write_sun397(tmp_path, ["abbey", "apartment_building/outdoor"], per_class=2)
    sun = SUN397(str(tmp_path))
    assert [str(p) for p in sun._image_files] == sorted(str(p) for p in sun._image_files)
    assert sun.classes == ["abbey", "apartment_building/outdoor"] and sorted(targets_of(sun)) == [0, 0, 1, 1]
    with pytest.raises(TypeError):
        targets_of(object())


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    wnids = ["n02", "n01", "n03"]
    base = fake.write_tiny_imagenet(tmp_path, wnids, {"n01": "cat, kitty", "n02": "dog", "n03": "eel"})
    assert tiny_imagenet.read_wnids(base) == wnids
    assert tiny_imagenet.read_words(base) == {"n01": "cat", "n02": "dog", "n03": "eel"}
    paths, labels = tiny_imagenet.train_samples(base, wnids)
    assert labels == [0, 1, 2] and paths[0].name == "n02_0.JPEG"
    vpaths, vlabels = tiny_imagenet.val_samples(base, wnids)
    assert vlabels == [0, 1, 2] and all(p.is_file() for p in vpaths)
    assert tiny_imagenet.missing_class_folders(base) == []
    (base / "wnids.txt").write_text("n02\nn09\n")
    assert tiny_imagenet.missing_class_folders(base) == [base / "train" / "n09" / "images"]


def test_medmnist_npz(tmp_path: Path) -> None:
    assert medmnist_npz.file_name("pathmnist", 28) == "pathmnist.npz"
    assert medmnist_npz.file_name("pathmnist", 64) == "pathmnist_64.npz"
    with pytest.raises(ValueError):
        medmnist_npz.file_name("pathmnist", 32)
    path = fake.write_medmnist(tmp_path, "bloodmnist", n_classes=3, channels=3, size=64)
    images, labels = medmnist_npz.load_split(path, "train")
    assert images.shape == (6, 64, 64, 3) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert medmnist_npz.missing_keys(path) == []
    np.savez(tmp_path / "broken.npz", train_images=images)
    assert medmnist_npz.missing_keys(tmp_path / "broken.npz") == ["train_labels", "test_images", "test_labels"]


def test_class_folders_and_split_csv(tmp_path: Path) -> None:
    fake.write_class_folders(tmp_path / "ds", ["b", "a"], per_split=2)
    assert class_folders.class_dirs(tmp_path / "ds" / "train") == ["a", "b"]
    paths, labels = class_folders.scan(tmp_path / "ds" / "test", ["b", "a"])
    assert labels == [0, 0, 1, 1] and paths[0].parent.name == "b"
    fake.write_split_csv(tmp_path / "csv", ["x", "y"])
    rows = split_csv.read(tmp_path / "csv" / "split.csv")
    assert [(r.label, r.split) for r in rows] == [("x", "train"), ("y", "train"), ("x", "test"), ("y", "test")]
    assert rows[0].path == tmp_path / "csv" / "images" / "train_0.png"
    (tmp_path / "bad.csv").write_text("path,label,split\na.png,x,val\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        split_csv.read(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("file,label\n")
    with pytest.raises(ValueError, match="path, split"):
        split_csv.read(tmp_path / "cols.csv")


def test_requirements_error_is_one_line_with_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = absent("CIFAR100", [tmp_path / "a", tmp_path / "b"], "download it", downloadable=True)
    assert [m.path for m in missing] == [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(MissingResourceError) as err:
        require("bench", missing)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "a") in message and "1 more missing" in message
    require("bench", missing, download=True)  # torchvision would fetch them
    require("bench", [])

    class Opts:
        download = False

        def missing_data(self) -> list[Missing]:
            return [Missing("X", tmp_path / "x", "get it")]

    with pytest.raises(MissingResourceError, match="X not found"):
        preflight("bench", Opts())
    preflight("bench", object())  # benchmarks without data files pass
    monkeypatch.setenv("CLBENCH_DATA", str(tmp_path))
    assert default_root() == str(tmp_path)
    assert resolve_root("~/x") == Path.home() / "x"
