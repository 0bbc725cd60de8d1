"""Bad configuration values and command lines: one line, exit 2, nothing written.

Before the fix these trained on (a NaN learning rate), crashed mid-run with a traceback (``log_every=0``,
zero iterations, negative workers) or overflowed in torch (a 20-digit seed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import invoke
from tests.reliability.contract import assert_one_line_error, clbench

RUN = ("run", "--methods", "finetune", "--benchmark", "smoke", "--quiet")

BAD_SETTINGS = {
    "train.lr=.nan": "train.lr",
    "train.lr=-1e-3": "train.lr",
    "train.lr=.inf": "train.lr",
    "train.log_every=0": "train.log_every",
    "train.label_smoothing=1.0": "train.label_smoothing",
    "train.label_smoothing=-0.1": "train.label_smoothing",
    "train.num_workers=-1": "train.num_workers",
    "train.iterations=0": "train.iterations",
    "train.iterations=-5": "train.iterations",
    "train.grad_clip=-1.0": "train.grad_clip",
    "train.grad_clip=.nan": "train.grad_clip",
    "train.weight_decay=-0.1": "train.weight_decay",
    "train.beta2=1.0": "train.beta2",
    "train.warmup=-1": "train.warmup",
    "train.eval_batch_size=0": "train.eval_batch_size",
}


@pytest.mark.parametrize("setting", sorted(BAD_SETTINGS))
def test_out_of_range_train_values(tmp_path, capsys, setting):
    out = tmp_path / "out"
    result = invoke(capsys, *RUN, "--set", setting, "--out", str(out))
    assert_one_line_error(result, BAD_SETTINGS[setting])
    assert not out.exists()


def test_zero_epochs(tmp_path, capsys):
    result = invoke(capsys, *RUN, "--set", "train.iterations=null", "--set", "train.epochs=0",
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "train.epochs")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("seeds", "says"), [("", "--seeds is empty"), (",", "--seeds is empty"),
                                             ("99999999999999999999", "outside"), ("-1", "outside"),
                                             ("0,1,0", "twice")])
def test_bad_seeds(tmp_path, capsys, seeds, says):
    result = invoke(capsys, *RUN, "--seeds", seeds, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, says)
    assert not (tmp_path / "out").exists()


def test_duplicate_methods(tmp_path, capsys):
    result = invoke(capsys, "run", "--methods", "finetune,zeroshot,finetune", "--benchmark", "smoke",
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "finetune more than once")
    assert not (tmp_path / "out").exists()


def _config(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["binary", "utf16", "deep", "not a mapping"])
def test_unreadable_config_files(tmp_path, capsys, kind):
    data = {
        "binary": bytes(range(256)) * 4,
        "utf16": "train:\n  lr: 1.0e-4\n".encode("utf-16"),
        "deep": b"[" * 100000 + b"]" * 100000,
        "not a mapping": b"- 1\n- 2\n",
    }[kind]
    path = _config(tmp_path, "config.yaml", data)
    result = invoke(capsys, *RUN, "--config", str(path), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, str(path))
    assert not (tmp_path / "out").exists()


def test_contract_in_a_subprocess(tmp_path):
    """The same contract end to end, as a user sees it: a NaN learning rate."""
    out = tmp_path / "out"
    result = clbench(*RUN, "--set", "train.lr=.nan", "--out", str(out))
    assert_one_line_error(result, "train.lr", "nan")
    assert not out.exists()
