"""mtil_order1/2 end to end on fakes of the eleven torchvision formats under one root."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from clbench.benchmark import Benchmark
from clbench.benchmarks.classnames.mtil import CALTECH101, EUROSAT, FLOWERS102
from clbench.data_check import main as data_check
from clbench.errors import MissingResourceError
from clbench.registry import BENCHMARKS
from tests.datasets import fake_formats as fake

ORDER_I = ["Aircraft", "Caltech101", "CIFAR100", "DTD", "EuroSAT", "Flowers", "Food", "MNIST", "OxfordPet", "Cars",
           "SUN397"]
ORDER_II = ["Cars", "Food", "MNIST", "OxfordPet", "Flowers", "SUN397", "Aircraft", "Caltech101", "DTD", "EuroSAT",
            "CIFAR100"]
CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"]
SUN = ["abbey", "airplane_cabin", "apartment_building/outdoor"]

# task -> (class names, train size, test size) the fakes below must produce
EXPECTED: dict[str, tuple[tuple[str, ...], int, int]] = {
    "Aircraft": (("707-320", "A300B4", "Cessna 172"), 3, 3),
    "Caltech101": (CALTECH101, 80, 21),  # ZSCL's seeded 80/20 split of 101 images
    "CIFAR100": (tuple(n.replace("_", " ") for n in fake.CIFAR_NAMES), 100, 100),
    "DTD": (("banded", "blotchy", "zigzagged"), 3, 3),
    "EuroSAT": (EUROSAT, 16, 4),
    "Flowers": (FLOWERS102, 102, 102),
    "Food": (("apple pie", "beef tartare", "ramen"), 3, 3),
    "MNIST": (("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"), 10, 10),
    "OxfordPet": (("Abyssinian", "American Bulldog", "Bengal"), 3, 3),
    "Cars": (tuple(CARS), 2, 2),
    "SUN397": (("abbey", "airplane cabin", "apartment building/outdoor"), 7, 2),
}


def build(name: str, root: Path) -> Benchmark:
    bench_def = BENCHMARKS.get(name)
    return bench_def.build(bench_def.options(root=str(root), verify_checksums=False), fake.tiny_transforms())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mtil")
    fake.write_aircraft(path, ["707-320", "A300B4", "Cessna 172"])
    fake.write_caltech101(path)
    fake.write_cifar100(path)
    fake.write_dtd(path, ["banded", "blotchy", "zigzagged"])
    fake.write_eurosat(path)
    fake.write_flowers102(path)
    fake.write_food101(path, ["apple_pie", "beef_tartare", "ramen"])
    fake.write_mnist(path)
    fake.write_pets(path, ["Abyssinian", "american_bulldog", "Bengal"])
    fake.write_stanford_cars(path, CARS)
    fake.write_sun397(path, SUN)
    return path


def test_mtil_order1_stream(root: Path) -> None:
    bench = build("mtil_order1", root)
    assert bench.protocol == "mtil" and [t.name for t in bench.tasks] == ORDER_I
    for task, train, test in zip(bench.tasks, bench.train_datasets, bench.test_datasets, strict=True):
        names, n_train, n_test = EXPECTED[task.name]
        assert task.class_names == names, task.name
        assert (len(train), len(test)) == (n_train, n_test), task.name
        assert max(train.targets) < len(names) and max(test.targets) < len(names)
        assert task.lr == (5e-5 if task.name in ("Aircraft", "MNIST") else None)
    by_name = {t.name: t for t in bench.tasks}
    assert by_name["Food"].templates == ("a photo of a {}, a type of food.",)
    assert len(by_name["CIFAR100"].templates) == 18 and len(by_name["Caltech101"].templates) == 34
    assert by_name["MNIST"].templates == ('a photo of the number: "{}".',)
    scenario = bench.stream()
    train, test = list(scenario.train_stream), list(scenario.test_stream)
    assert len(train) == len(test) == 11
    assert [e.task_label for e in train] == list(range(11))
    assert {int(item[1]) for item in train[2].dataset} == set(range(100))
    x, y, t = test[7].dataset[0]  # MNIST: grayscale idx data arrives as RGB
    assert x.shape == (3, 8, 8) and int(t) == 7


def test_mtil_order2_and_split_reproducibility(root: Path) -> None:
    bench = build("mtil_order2", root)
    assert [t.name for t in bench.tasks] == ORDER_II
    first = build("mtil_order1", root)
    caltech = ORDER_I.index("Caltech101")
    assert first.train_datasets[caltech].indices == bench.train_datasets[ORDER_II.index("Caltech101")].indices
    assert sorted(first.train_datasets[caltech].indices + first.test_datasets[caltech].indices) == list(range(101))


def test_missing_mtil_data(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MissingResourceError) as err:
        build("mtil_order2", tmp_path)
    assert "fgvc-aircraft-2013b" in str(err.value) and str(tmp_path) in str(err.value)
    (root / "stanford_cars" / "cars_test_annos_withlabels.mat").rename(root / "hidden.mat")
    try:
        code = data_check(argparse.Namespace(benchmark="mtil_order1", root=str(root), overrides=[]))
        out = capsys.readouterr().out
        assert code == 1 and "Cars:" in out and "cars_test_annos_withlabels.mat" in out and "Kaggle" in out
        with pytest.raises(MissingResourceError, match="no longer download"):
            bench_def = BENCHMARKS.get("mtil_order1")
            bench_def.build(bench_def.options(root=str(root), download=True), fake.tiny_transforms())
    finally:
        (root / "hidden.mat").rename(root / "stanford_cars" / "cars_test_annos_withlabels.mat")


def test_few_shot_mtil_keeps_order_and_tests_and_draws_shots_per_class(root: Path) -> None:
    full = build("mtil_order1", root)
    bench_def = BENCHMARKS.get("mtil_order1_5shot")
    assert bench_def.defaults["train"]["iterations"] == 500 and bench_def.defaults["benchmark"]["shots"] == 5
    cut = bench_def.build(bench_def.options(root=str(root), shots=1, verify_checksums=False), fake.tiny_transforms())
    assert cut.protocol == "mtil" and [t.name for t in cut.tasks] == ORDER_I
    for task, train, test, full_test in zip(cut.tasks, cut.train_datasets, cut.test_datasets, full.test_datasets,
                                            strict=True):
        assert sorted(train.targets) == sorted(set(train.targets)), task.name  # one image per present class
        assert len(test) == len(full_test)
    assert sorted(cut.train_datasets[2].targets) == list(range(100))  # CIFAR100: every class once


def test_xtail_order1_is_rails_ten_domains_with_one_template(root: Path) -> None:
    bench_def = BENCHMARKS.get("xtail_order1")
    assert bench_def.protocol == "xtail" and bench_def.defaults["benchmark"]["shots"] == 16
    bench = bench_def.build(bench_def.options(root=str(root), verify_checksums=False), fake.tiny_transforms())
    assert bench.protocol == "xtail"
    assert [t.name for t in bench.tasks] == [n for n in ORDER_I if n != "CIFAR100"]
    assert all(t.templates == ("a photo of a {}.",) for t in bench.tasks)
    for task, train in zip(bench.tasks, bench.train_datasets, strict=True):
        _, n_train, _ = EXPECTED[task.name]
        assert len(train) <= min(n_train, 16 * len(task.class_names)), task.name
