"""medmnist_order1/2 end to end on fake official ``.npz`` files (2 train + 1 test image per class)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from clbench.benchmark import Benchmark
from clbench.benchmarks.classnames.medmnist import LABELS
from clbench.data_check import main as data_check
from clbench.errors import MissingResourceError, UserError
from clbench.registry import BENCHMARKS
from tests.datasets import fake_formats as fake

ORDER_I = ["PathMNIST", "DermaMNIST", "BloodMNIST", "OrganAMNIST", "OCTMNIST", "RetinaMNIST", "BreastMNIST",
           "PneumoniaMNIST", "TissueMNIST"]
ORDER_II = sorted(ORDER_I)
CHANNELS = {"pathmnist": 3, "dermamnist": 3, "bloodmnist": 3, "retinamnist": 3}


def write_all(folder: Path, size: int = 28) -> None:
    for flag, labels in LABELS.items():
        fake.write_medmnist(folder, flag, len(labels), CHANNELS.get(flag, 1), size=size)


def build(name: str, root: Path, **options: object) -> Benchmark:
    bench_def = BENCHMARKS.get(name)
    return bench_def.build(bench_def.options(root=str(root), **options), fake.tiny_transforms())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("medmnist")
    write_all(path / "medmnist")
    return path


def test_medmnist_order1_stream(root: Path) -> None:
    bench = build("medmnist_order1", root)
    assert bench.protocol == "mtil" and [t.name for t in bench.tasks] == ORDER_I
    n_classes = [9, 7, 8, 11, 4, 5, 2, 2, 8]
    assert [len(t.class_names) for t in bench.tasks] == n_classes
    assert [len(d) for d in bench.train_datasets] == [2 * n for n in n_classes]
    assert [len(d) for d in bench.test_datasets] == n_classes
    assert bench.tasks[0].class_names[8] == "colorectal adenocarcinoma epithelium"
    assert bench.tasks[5].class_names[0] == "diabetic retinopathy grade 0"
    scenario = bench.stream()
    assert len(scenario.train_stream) == 9
    x, y, t = scenario.train_stream[3].dataset[0]  # OrganAMNIST is grayscale
    assert x.shape == (3, 8, 8) and int(y) == 0 and int(t) == 3


def test_medmnist_order2_and_sizes(root: Path, tmp_path: Path) -> None:
    assert [t.name for t in build("medmnist_order2", root).tasks] == ORDER_II
    write_all(tmp_path / "medmnist", size=64)
    bench = build("medmnist_order1", tmp_path, size=64)
    assert bench.info["size"] == 64 and len(bench.tasks) == 9
    with pytest.raises(MissingResourceError, match="pathmnist_128.npz"):
        build("medmnist_order1", tmp_path, size=128)
    with pytest.raises(UserError, match="28, 64, 128, 224"):
        build("medmnist_order1", tmp_path, size=32)


def test_missing_and_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MissingResourceError) as err:
        build("medmnist_order2", tmp_path)
    assert str(tmp_path / "medmnist" / "pathmnist.npz") in str(err.value) and "zenodo" in str(err.value)
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "octmnist.npz", train_images=np.zeros((1, 28, 28), np.uint8))
    code = data_check(argparse.Namespace(benchmark="medmnist_order1", root=str(tmp_path), overrides=["size=28"]))
    out = capsys.readouterr().out
    assert code == 1 and "lacks array(s) train_labels, test_images, test_labels" in out
    assert str(tmp_path / "medmnist" / "tissuemnist.npz") in out
