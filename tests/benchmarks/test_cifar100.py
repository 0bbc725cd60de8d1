"""cifar100_10/20/50 end to end on a fake ``cifar-100-python/`` (100 classes, 2 train + 1 test image each)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from clbench.benchmark import Benchmark
from clbench.data_check import main as data_check
from clbench.errors import MissingResourceError
from clbench.registry import BENCHMARKS
from tests.datasets import fake_formats as fake

ICARL = [87, 0, 52, 58, 44, 91, 68, 97, 51, 15, 94, 92, 10, 72, 49, 78, 61, 14, 8, 86, 84, 96, 18, 24, 32, 45, 88,
         11, 4, 67, 69, 66, 77, 47, 79, 93, 29, 50, 57, 83, 17, 81, 41, 12, 37, 59, 25, 20, 80, 73, 1, 28, 6, 46, 62,
         82, 53, 9, 31, 75, 38, 63, 33, 74, 27, 22, 36, 3, 16, 21, 60, 19, 70, 90, 89, 43, 5, 42, 65, 76, 40, 30, 23,
         85, 2, 95, 56, 48, 71, 64, 98, 13, 99, 7, 34, 55, 54, 26, 35, 39]


def build(name: str, root: Path) -> Benchmark:
    bench_def = BENCHMARKS.get(name)
    return bench_def.build(bench_def.options(root=str(root), verify_checksums=False), fake.tiny_transforms())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cifar")
    fake.write_cifar100(path, train_per_class=2, test_per_class=1)
    return path


def test_cifar100_10_stream(root: Path) -> None:
    bench = build("cifar100_10", root)
    assert bench.protocol == "cil" and BENCHMARKS.get("cifar100_10").protocol == "cil"
    assert bench.info["class_order"] == ICARL
    assert len(bench.tasks) == 10
    assert bench.tasks[0].class_names == tuple(fake.CIFAR_NAMES[c] for c in ICARL[:10])
    assert bench.tasks[0].templates == ("a bad photo of a {}.",)
    scenario = bench.stream()
    train, test = list(scenario.train_stream), list(scenario.test_stream)
    assert len(train) == len(test) == 10
    for i, (tr, te) in enumerate(zip(train, test, strict=True)):
        expected = set(range(10 * i, 10 * i + 10))
        assert set(tr.classes_in_this_experience) == expected == set(te.classes_in_this_experience)
        assert len(tr.dataset) == 20 and len(te.dataset) == 10
    x, y, *_ = train[1].dataset[0]
    assert x.shape == (3, 8, 8) and 10 <= int(y) < 20
    assert bench.seen_class_names(1) == tuple(fake.CIFAR_NAMES[c] for c in ICARL[:20])


@pytest.mark.parametrize(("name", "steps", "per_step"), [("cifar100_20", 20, 5), ("cifar100_50", 50, 2)])
def test_cifar100_step_sizes(root: Path, name: str, steps: int, per_step: int) -> None:
    bench = build(name, root)
    assert [len(t.class_names) for t in bench.tasks] == [per_step] * steps
    assert [len(d) for d in bench.test_datasets] == [per_step] * steps
    assert bench.tasks[-1].class_names[-1] == fake.CIFAR_NAMES[ICARL[-1]]


def test_missing_cifar100(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MissingResourceError) as err:
        build("cifar100_10", tmp_path)
    assert str(tmp_path / "cifar-100-python" / "train") in str(err.value) and "\n" not in str(err.value)
    code = data_check(argparse.Namespace(benchmark="cifar100_10", root=str(tmp_path), overrides=[]))
    out = capsys.readouterr().out
    assert code == 1 and str(tmp_path / "cifar-100-python" / "meta") in out and "download=true" in out


def test_eval_transform_train_reproduces_the_cil_code(root: Path) -> None:
    """benchmark.eval_transform=train: the test set goes through the training transform (ZSCL cil/main.py:31-33)."""
    import dataclasses

    import torch

    from clbench.errors import UserError

    base = fake.tiny_transforms()
    flipped = dataclasses.replace(base, train=lambda image: torch.full((3, 8, 8), 7.0))
    bench_def = BENCHMARKS.get("cifar100_10")
    quirky = bench_def.build(bench_def.options(root=str(root), eval_transform="train", verify_checksums=False), flipped)
    normal = bench_def.build(bench_def.options(root=str(root), verify_checksums=False), flipped)
    assert torch.equal(quirky.test_datasets[0][0][0], torch.full((3, 8, 8), 7.0))
    assert not torch.equal(normal.test_datasets[0][0][0], torch.full((3, 8, 8), 7.0))
    assert quirky.random_eval and not normal.random_eval  # the engine never caches a random test transform
    with pytest.raises(UserError, match="benchmark.eval_transform must be eval or train"):
        bench_def.build(bench_def.options(root=str(root), eval_transform="test", verify_checksums=False), flipped)
