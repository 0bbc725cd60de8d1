"""``clbench data check`` through the command line parser (in-process: no subprocess start-up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clbench.cli import main
from tests.datasets import fake_formats as fake


def test_data_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "--benchmark", "cifar100_20", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "cifar100_20: 3 item(s) missing" in out and str(tmp_path / "cifar-100-python" / "train") in out
    fake.write_cifar100(tmp_path)
    assert main(["data", "check", "--benchmark", "cifar100_20", "--root", str(tmp_path)]) == 0
    assert "all data present" in capsys.readouterr().out
    assert main(["data", "check", "--benchmark", "smoke"]) == 0
    assert "nothing to check" in capsys.readouterr().out


def test_data_check_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "--benchmark", "cifar100_11", "--root", str(tmp_path)]) == 2
    assert "did you mean 'cifar100_10'" in capsys.readouterr().err
    assert main(["data", "check", "--benchmark", "medmnist_order1", "--set", "benchmark.size=30"]) == 2
    assert "benchmark.size" in capsys.readouterr().err
    assert main(["data", "check", "--benchmark", "medmnist_order1", "--set", "colour=red"]) == 2
    assert "unknown config key benchmark.colour" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "check"])
