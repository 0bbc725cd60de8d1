"""Garbage where clbench reads: ``score`` matrices, run stores, checkpoints; and the last-resort handler.

Before the fix: a deep JSON matrix raised RecursionError, a binary one UnicodeDecodeError, a broken run.json or
matrix.json a JSONDecodeError, a truncated or foreign checkpoint an UnpicklingError/KeyError, all with
tracebacks; ``score --json`` printed ``NaN``; accuracies of 150 were scored without a word.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from clbench.store import find_runs
from tests.cli_runner import invoke
from tests.reliability.contract import assert_one_line_error, clbench, snapshot

# ---- score ---------------------------------------------------------------------------------------------------
SCORE_INPUTS = {
    "empty.csv": b"",
    "binary.csv": bytes(range(256)),
    "utf16.csv": "1,2\n3,4\n".encode("utf-16"),
    "deep.json": b"[" * 100000 + b"]" * 100000,
    "huge.json": json.dumps([[10**400, 1], [1, 1]]).encode(),
    "ragged.json": b"[[1, 2], [3]]",
    "strings.json": b'[["a", "b"], ["c", "d"]]',
    "object.npy": b"\x93NUMPY garbage",
    "above.csv": b"50,150\n40,60\n",
    "negative.csv": b"50,-1\n40,60\n",
    "infinite.json": b"[[50, 1e999], [40, 60]]",
}


@pytest.mark.parametrize("name", sorted(SCORE_INPUTS))
def test_score_garbage(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(SCORE_INPUTS[name])
    result = invoke(capsys, "score", str(path), "--protocol", "mtil")
    assert_one_line_error(result, str(path))
    assert result.stdout == ""


def test_score_outside_percent_range_says_where(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_bytes(SCORE_INPUTS["above.csv"])
    result = invoke(capsys, "score", str(path), "--protocol", "mtil")
    assert_one_line_error(result, "150.0 at row 1, column 2", "[0, 100]")


def test_score_json_is_valid_json_for_a_one_task_matrix(tmp_path):
    path = tmp_path / "one.json"
    path.write_text("[[70.0]]")
    result = clbench("score", str(path), "--protocol", "mtil", "--json")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert parsed["metrics"]["transfer"] is None and parsed["metrics"]["last"] == 70.0


# ---- run stores ----------------------------------------------------------------------------------------------
RUN = ("run", "--methods", "finetune", "--benchmark", "smoke", "--set", "train.iterations=2", "--quiet")


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store") / "out"
    done = clbench(*RUN, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(("name", "content"), [("run.json", b"{not json"), ("run.json", b"[1, 2]"),
                                                ("run.json", b'{"tasks": 5}'), ("run.json", b"\xff\xfe\x00"),
                                                ("matrix.json", b"{}"), ("matrix.json", b"\x00" * 10)])
def test_run_over_a_broken_run_store(complete_run, tmp_path, capsys, name, content):
    out = _copy(complete_run, tmp_path / "out")
    (run,) = find_runs(out)
    (run.path / name).write_bytes(content)
    before = snapshot(out)
    result = invoke(capsys, *RUN, "--out", str(out))
    assert_one_line_error(result, str(run.path / name), "--force", unchanged=[out], before=before)


@pytest.mark.parametrize("damage", ["truncated", "foreign", "not a dict", "malicious", "other model"])
def test_resume_from_a_bad_checkpoint(complete_run, tmp_path, capsys, damage):
    import torch

    out = _copy(complete_run, tmp_path / "out")
    (run,) = find_runs(out)
    info = run.read_run()
    run.write_run({**info, "status": "running", "completed_tasks": 1})
    ckpt = run.checkpoint_path
    marker = tmp_path / "pwned"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, ckpt)
    elif damage == "not a dict":
        torch.save([torch.zeros(2)], ckpt)
    elif damage == "other model":  # the right keys, the weights of another architecture
        real = torch.load(ckpt, weights_only=True)
        torch.save({**real, "model": {"fc.weight": torch.zeros(3, 3)}, "completed_tasks": 1}, ckpt)
    else:
        class RunsCode:
            def __reduce__(self):
                return os.system, (f"touch {marker}",)

        ckpt.write_bytes(pickle.dumps({"model": RunsCode()}))
    before = snapshot(out)
    result = invoke(capsys, *RUN, "--out", str(out), "--resume")
    assert_one_line_error(result, str(ckpt), "--force", unchanged=[out], before=before)
    assert not marker.exists()


def test_report_skips_broken_runs_and_refuses_when_none_is_readable(complete_run, tmp_path, capsys):
    out = _copy(complete_run, tmp_path / "out")
    (run,) = find_runs(out)
    (run.path / "config.yaml").write_bytes(b"\xff\xfe garbage: [")
    result = invoke(capsys, "report", str(out), "--format", "md", "--no-figures")
    assert_one_line_error(result, "no readable clbench runs", "config.yaml")


# ---- the last resort -----------------------------------------------------------------------------------------
def test_a_genuine_bug_is_one_line_with_a_saved_traceback(tmp_path, capsys, monkeypatch):
    import clbench.metrics

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in a metric")

    monkeypatch.setattr(clbench.metrics, "compute", broken)
    path = tmp_path / "m.csv"
    path.write_text("50,40\n45,60\n")
    result = invoke(capsys, "score", str(path), "--protocol", "mtil")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("clbench: internal error: ZeroDivisionError: a bug in a metric")
    saved = Path(line.split("full traceback in ")[1].split(";")[0])
    try:
        text = saved.read_text()
        assert "Traceback" in text and "a bug in a metric" in text
    finally:
        saved.unlink()
