"""Dataset files that try to run code: refused before any of their code runs (one line, exit 2).

Before the fix, ``benchmark.root`` pointing at a ``cifar-100-python/train`` that is a malicious pickle ran it:
the CIFAR readers turned torchvision's MD5 check off, and torchvision unpickles with ``pickle.load``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from clbench.datasets import safe_pickle
from tests.cli_runner import invoke
from tests.datasets import fake_formats as fake
from tests.reliability.contract import assert_one_line_error, clbench, snapshot


class _RunsCode:
    """Unpickling this calls ``os.system`` (what an attacker's file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def _cifar_run(root: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--methods", "zeroshot", "--benchmark", "cifar100_10", "--model", "clbench-tiny",
            "--set", "model.pretrained=null", "--set", f"benchmark.root={root}", "--out", str(out), "--quiet", *extra]


@pytest.fixture
def poisoned(tmp_path: Path) -> tuple[Path, Path]:
    """A fake CIFAR-100 whose ``train`` pickle creates a marker file when loaded with ``pickle.load``."""
    fake.write_cifar100(tmp_path / "root")
    marker = tmp_path / "pwned"
    with open(tmp_path / "root" / "cifar-100-python" / "train", "wb") as fh:
        pickle.dump({"data": _RunsCode(f"touch {marker}"), "fine_labels": []}, fh)
    return tmp_path / "root", marker


def test_plain_pickle_would_run_the_payload(poisoned):
    """The fixture is a real attack: the unrestricted unpickler runs it."""
    root, marker = poisoned
    with open(root / "cifar-100-python" / "train", "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


@pytest.mark.parametrize("checksums", ["default", "off"])
def test_malicious_cifar_pickle_runs_no_code(poisoned, tmp_path, checksums):
    root, marker = poisoned
    extra = ["--set", "benchmark.verify_checksums=false"] if checksums == "off" else []
    out = tmp_path / "out"
    result = clbench(*_cifar_run(root, out, *extra))
    expected = "MD5" if checksums == "default" else "refused to load"
    line = assert_one_line_error(result, expected, str(root / "cifar-100-python" / "train"))
    assert not marker.exists(), line
    assert not any(p.is_file() and p.name != ".lock" for p in out.rglob("*")), "nothing is written for a refused run"


def test_malicious_cifar_meta_runs_no_code(tmp_path):
    fake.write_cifar100(tmp_path / "root")
    marker = tmp_path / "pwned"
    with open(tmp_path / "root" / "cifar-100-python" / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": _RunsCode(f"touch {marker}")}, fh)
    result = clbench(*_cifar_run(tmp_path / "root", tmp_path / "out", "--set", "benchmark.verify_checksums=false"))
    assert_one_line_error(result, "refused to load", "posix.system")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b"not a pickle at all", pickle.dumps([1, 2, 3]),
                                     pickle.dumps({"data": np.zeros((2, 5)), "fine_labels": [0, 1]})])
def test_garbage_cifar_files_are_one_line_errors(tmp_path, capsys, content):
    fake.write_cifar100(tmp_path / "root")
    (tmp_path / "root" / "cifar-100-python" / "test").write_bytes(content)
    before = snapshot(tmp_path / "root")
    result = invoke(capsys, *_cifar_run(tmp_path / "root", tmp_path / "out", "--set",
                                        "benchmark.verify_checksums=false"))
    assert_one_line_error(result, str(tmp_path / "root" / "cifar-100-python" / "test"),
                          unchanged=[tmp_path / "root"], before=before)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_safe_unpickler_reads_plain_data_of_every_protocol(protocol):
    data = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "fine_labels": [1, 2, 3], "names": ("a", b"b"),
            "set": {1, 2}, "frozen": frozenset({3}), "scalar": np.float32(1.5), "c": complex(1, 2)}
    back = safe_pickle.loads(pickle.dumps(data, protocol=protocol))
    assert np.array_equal(back["data"], data["data"]) and back["data"].dtype == np.uint8
    assert {k: v for k, v in back.items() if k != "data"} == {k: v for k, v in data.items() if k != "data"}


@pytest.mark.parametrize("target", [eval, exec, getattr, __import__, os.system, Path])
def test_safe_unpickler_refuses_any_other_global(target):
    with pytest.raises(safe_pickle.ForbiddenGlobal):
        safe_pickle.loads(pickle.dumps(target))
