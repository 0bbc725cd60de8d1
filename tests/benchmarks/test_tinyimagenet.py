"""tinyimagenet_5/10/20 end to end on a fake ``tiny-imagenet-200/`` (200 classes, 1 train + 1 val image each)."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pytest

from clbench.benchmark import Benchmark
from clbench.benchmarks.classnames.imagenet import NAME_BY_WNID, WNIDS
from clbench.data_check import main as data_check
from clbench.errors import MissingResourceError, UserError
from clbench.registry import BENCHMARKS
from tests.datasets import fake_formats as fake

TINY_WNIDS = list(WNIDS[::5])  # 200 real ImageNet ids, in the file order the fake wnids.txt uses
WORDS = {w: f"word {i}, synonym" for i, w in enumerate(TINY_WNIDS)}


def build(name: str, root: Path, **options: str) -> Benchmark:
    bench_def = BENCHMARKS.get(name)
    return bench_def.build(bench_def.options(root=str(root), **options), fake.tiny_transforms())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    fake.write_tiny_imagenet(path, TINY_WNIDS, WORDS)
    return path


def expected_order() -> list[int]:
    order = list(range(200))
    random.Random(0).shuffle(order)
    return order


def test_tinyimagenet_10_stream(root: Path) -> None:
    bench = build("tinyimagenet_10", root)
    order = expected_order()
    assert order[:5] == [131, 181, 22, 172, 144]  # ZSCL's class_orders/tinyimagenet.yaml
    assert bench.protocol == "cil" and bench.info["class_order"] == order
    assert [len(t.class_names) for t in bench.tasks] == [100] + [10] * 10
    assert bench.tasks[0].class_names[0] == NAME_BY_WNID[TINY_WNIDS[order[0]]]
    scenario = bench.stream()
    train, test = list(scenario.train_stream), list(scenario.test_stream)
    assert len(train) == len(test) == 11
    assert set(train[0].classes_in_this_experience) == set(range(100))
    assert set(test[3].classes_in_this_experience) == set(range(120, 130))
    assert [len(e.dataset) for e in train] == [100] + [10] * 10
    assert [len(e.dataset) for e in test] == [100] + [10] * 10


@pytest.mark.parametrize(("name", "sizes"),
                         [("tinyimagenet_5", [100] + [20] * 5), ("tinyimagenet_20", [100] + [5] * 20)])
def test_tinyimagenet_steps_and_word_names(root: Path, name: str, sizes: list[int]) -> None:
    bench = build(name, root, class_names="words")
    assert [len(t.class_names) for t in bench.tasks] == sizes
    assert bench.tasks[-1].class_names[-1] == f"word {expected_order()[-1]}"


def test_bad_options_and_missing_data(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="class_names"):
        build("tinyimagenet_5", root, class_names="latin")
    with pytest.raises(MissingResourceError) as err:
        build("tinyimagenet_5", tmp_path)
    assert str(tmp_path / "tiny-imagenet-200" / "wnids.txt") in str(err.value)
    code = data_check(argparse.Namespace(benchmark="tinyimagenet_5", root=str(tmp_path), overrides=[]))
    out = capsys.readouterr().out
    assert code == 1 and str(tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt") in out
    assert data_check(argparse.Namespace(benchmark="tinyimagenet_5", root=str(root), overrides=[])) == 0
    assert "all data present" in capsys.readouterr().out
