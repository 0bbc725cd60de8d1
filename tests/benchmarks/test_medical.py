"""HieraMedTransfer / MedXtreme (bring-your-own-data) on fake class-folder trees and a split.csv."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from clbench.benchmark import Benchmark
from clbench.benchmarks.medical import load_specs
from clbench.data_check import main as data_check
from clbench.errors import MissingResourceError, UserError
from clbench.registry import BENCHMARKS
from tests.datasets import fake_formats as fake

HIERAMED_I = ["RANZCR", "CheXchoNet", "PD", "BreakHis", "Chaoyang", "GasHisSDB", "EyePACS", "AIROGS", "FARFUM-RoP"]
HIERAMED_II = ["AIROGS", "BreakHis", "Chaoyang", "CheXchoNet", "EyePACS", "FARFUM-RoP", "GasHisSDB", "PD", "RANZCR"]
MEDXTREME_I = ["AOD", "BMC", "ISIC2024", "NCT100K", "NIH", "PITVIS"]
MEDXTREME_II = ["AOD", "NCT100K", "PITVIS", "ISIC2024", "NIH", "BMC"]
PAPER_CLASSES = {"RANZCR": 11, "CheXchoNet": 4, "PD": 3, "BreakHis": 2, "Chaoyang": 4, "GasHisSDB": 2, "EyePACS": 5,
                 "AIROGS": 2, "FARFUM-RoP": 3, "AOD": 8, "BMC": 21, "ISIC2024": 33, "NCT100K": 9, "NIH": 15,
                 "PITVIS": 15}


def keys_of(dataset: str) -> list[str]:
    spec = load_specs()[dataset]
    return [k for k, _ in spec.classes] if spec.classes else [f"class_{i}" for i in range(spec.num_classes or 0)]


def build(name: str, root: Path, **options: str) -> Benchmark:
    bench_def = BENCHMARKS.get(name)
    return bench_def.build(bench_def.options(root=str(root), **options), fake.tiny_transforms())


def check(name: str, root: Path, *overrides: str) -> int:
    return data_check(argparse.Namespace(benchmark=name, root=str(root), overrides=list(overrides)))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("medical")
    for dataset in HIERAMED_I:
        folder = path / "hieramed" / dataset
        if dataset == "PD":
            fake.write_split_csv(folder, keys_of(dataset))
        else:
            fake.write_class_folders(folder, keys_of(dataset))
    for dataset in MEDXTREME_I:
        fake.write_class_folders(path / "medxtreme" / dataset, keys_of(dataset))
    return path


def test_paper_class_counts_and_templates() -> None:
    specs = load_specs()
    assert {name: s.num_classes for name, s in specs.items()} == PAPER_CLASSES
    for spec in specs.values():
        assert spec.templates and all("{}" in t for t in spec.templates)
        assert spec.classes is None or len(spec.classes) == spec.num_classes


def test_hieramed_streams(root: Path) -> None:
    bench = build("hieramed_order1", root)
    assert bench.protocol == "mtil" and [t.name for t in bench.tasks] == HIERAMED_I
    assert [len(t.class_names) for t in bench.tasks] == [PAPER_CLASSES[d] for d in HIERAMED_I]
    assert [len(d) for d in bench.train_datasets] == [PAPER_CLASSES[d] for d in HIERAMED_I]
    assert bench.tasks[0].class_names[-1] == "a Swan-Ganz catheter"  # class map prompt name
    assert bench.tasks[1].class_names == ("class 0", "class 1", "class 2", "class 3")  # discovered folders
    assert bench.test_datasets[2].targets == [0, 1, 2]  # PD comes from split.csv
    scenario = bench.stream()
    assert len(scenario.train_stream) == len(scenario.test_stream) == 9
    x, y, t = scenario.test_stream[8].dataset[2]
    assert x.shape == (3, 8, 8) and int(y) == 2 and int(t) == 8
    assert [t.name for t in build("hieramed_order2", root).tasks] == HIERAMED_II


def test_medxtreme_streams(root: Path) -> None:
    first, second = build("medxtreme_order1", root), build("medxtreme_order2", root)
    assert first.protocol == second.protocol == "medxtreme"
    assert BENCHMARKS.get("medxtreme_order2").protocol == "medxtreme"
    assert [t.name for t in first.tasks] == MEDXTREME_I and [t.name for t in second.tasks] == MEDXTREME_II
    assert first.tasks[1].class_names[0] == "an abnormal eosinophil" and len(first.tasks[2].class_names) == 33


def test_class_map_override(root: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("datasets:\n  CheXchoNet:\n    classes: {class_0: none, class_1: slvh, class_2: dlv, "
                       "class_3: both}\n    templates: ['an x-ray of {}.']\n")
    bench = build("hieramed_order1", root, class_map=str(mapping))
    assert bench.tasks[1].class_names == ("none", "slvh", "dlv", "both")
    assert bench.tasks[1].templates == ("an x-ray of {}.",)
    mapping.write_text("datasets:\n  Nope: {num_classes: 2}\n")
    with pytest.raises(UserError, match="unknown dataset"):
        build("hieramed_order1", root, class_map=str(mapping))


def test_missing_and_malformed_folders(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MissingResourceError) as err:
        build("medxtreme_order2", tmp_path)
    assert str(tmp_path / "medxtreme" / "AOD") in str(err.value) and "\n" not in str(err.value)
    broken = tmp_path / "copy"
    shutil.copytree(root, broken)
    shutil.rmtree(broken / "hieramed" / "BreakHis" / "test" / "malignant")  # a class without test images
    fake.image(broken / "hieramed" / "AIROGS" / "train" / "unsure" / "0.png")  # a folder not in the class map
    shutil.rmtree(broken / "hieramed" / "CheXchoNet" / "train" / "class_3")  # 3 classes, the paper has 4
    shutil.rmtree(broken / "hieramed" / "CheXchoNet" / "test" / "class_3")
    (broken / "hieramed" / "PD" / "images" / "test_1.png").unlink()  # listed in split.csv
    assert check("hieramed_order1", broken) == 1
    out = capsys.readouterr().out
    assert str(broken / "hieramed" / "BreakHis" / "test" / "malignant") in out
    assert str(broken / "hieramed" / "AIROGS" / "train" / "unsure") in out
    assert "3 classes found, the paper's task has 4" in out
    assert str(broken / "hieramed" / "PD" / "images" / "test_1.png") in out
    assert check("hieramed_order2", root) == 0
