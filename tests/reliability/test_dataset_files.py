"""Garbage dataset files (MedMNIST ``.npz``, TinyImageNet lists): one line naming the file, exit 2.

Before the fix: ``zipfile.BadZipFile``/``ValueError`` from ``np.load``, ``UnicodeDecodeError`` from a binary
``wnids.txt`` and ``KeyError`` from an unknown class in ``val_annotations.txt``, each with a traceback.
(Malicious and garbage CIFAR-100 pickles: :mod:`tests.reliability.test_malicious_files`.)
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from clbench.benchmarks.classnames.imagenet import WNIDS
from tests.benchmarks.test_medmnist import write_all
from tests.cli_runner import invoke
from tests.datasets import fake_formats as fake
from tests.reliability.contract import assert_one_line_error, snapshot


def _run(benchmark: str, root: Path, out: Path) -> list[str]:
    return ["run", "--methods", "zeroshot", "--benchmark", benchmark, "--model", "clbench-tiny",
            "--set", "model.pretrained=null", "--set", f"benchmark.root={root}", "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def medmnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("medmnist")
    write_all(root / "medmnist")
    return root


NPZ_DAMAGE = {
    "empty": b"",
    "text": b"not a zip archive\n",
    "truncated zip": None,  # the first half of the real file
    "pickled object array": "pickle",
    "wrong dtype": "float",
}


@pytest.mark.parametrize("damage", sorted(NPZ_DAMAGE))
def test_garbage_medmnist_npz(medmnist_root, tmp_path, capsys, damage):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(medmnist_root, root)
    target = root / "medmnist" / "pathmnist.npz"
    if damage == "truncated zip":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "pickled object array":
        with np.load(target) as a:
            arrays = dict(a)
        arrays["train_images"] = np.array([object()] * 3, dtype=object)
        np.savez(target, **arrays)
    elif damage == "wrong dtype":
        with np.load(target) as a:
            arrays = dict(a)
        arrays["test_images"] = arrays["test_images"].astype(np.float64)
        np.savez(target, **arrays)
    else:
        target.write_bytes(NPZ_DAMAGE[damage])
    before = snapshot(root)
    result = invoke(capsys, *_run("medmnist_order1", root, tmp_path / "out"))
    assert_one_line_error(result, str(target), unchanged=[root], before=before)
    assert not (tmp_path / "out").exists() or not any(p.is_file() and p.name != ".lock"
                                                      for p in (tmp_path / "out").rglob("*"))


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    fake.write_tiny_imagenet(tmp_path / "root", list(WNIDS[::5]), {w: w for w in WNIDS[::5]})
    return tmp_path / "root"


def test_binary_wnids_list(tiny_root, tmp_path, capsys):
    target = tiny_root / "tiny-imagenet-200" / "wnids.txt"
    target.write_bytes(pickle.dumps(list(range(300))) + bytes(range(128, 256)))
    result = invoke(capsys, *_run("tinyimagenet_10", tiny_root, tmp_path / "out"))
    assert_one_line_error(result, str(target), "not a text list")


def test_unknown_class_in_val_annotations(tiny_root, tmp_path, capsys):
    target = tiny_root / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    target.write_text(target.read_text() + "val_x.JPEG\tn99999999\t0\t0\t8\t8\n")
    result = invoke(capsys, *_run("tinyimagenet_10", tiny_root, tmp_path / "out"))
    assert_one_line_error(result, f"{target}:201", "n99999999")
