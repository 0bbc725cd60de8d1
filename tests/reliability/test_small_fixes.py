"""The smaller findings: result-file permissions, stale temporaries, plugin names that leave ``--out``.

(``score --json`` and the [0, 100] range: :mod:`tests.reliability.test_inputs`; an unchanged synth manifest:
:mod:`tests.reliability.test_synth_cache`.)
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from clbench.registry import METHODS
from clbench.store import RunDir, find_runs, write_atomic
from tests.cli_runner import REPO, invoke
from tests.reliability.contract import assert_one_line_error

RUN = ("run", "--methods", "finetune", "--benchmark", "smoke", "--set", "train.iterations=2", "--quiet")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_result_files_follow_the_umask(tmp_path, umask):
    """Before: every atomically written file was 0600 (mkstemp), unreadable to a team sharing the folder."""
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "clbench.cli", *RUN, "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, preexec_fn=lambda: os.umask(umask))
    (run,) = find_runs(out)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.path.iterdir() if p.is_file()}
    assert set(modes) >= {"run.json", "matrix.csv", "matrix.json", "metrics.json", "config.yaml",
                          "environment.json", "checkpoint.pt", "log.jsonl"}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


def test_write_atomic_mode_in_process(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


def test_resume_removes_stale_temporaries(tmp_path, capsys):
    out = tmp_path / "out"
    assert invoke(capsys, *RUN, "--out", str(out)).returncode == 0
    (run,) = find_runs(out)
    info = run.read_run()
    RunDir(run.path).write_run({**info, "status": "running", "completed_tasks": 2})
    stale = [run.path / ".checkpoint.pt.abc123.tmp", run.path / ".run.json.def456.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    keep = run.path / "notes.tmp"  # not one of ours: left alone
    keep.write_text("mine")
    assert invoke(capsys, *RUN, "--out", str(out), "--resume").returncode == 0
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "mine"


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".", "x\\y"])
def test_plugin_method_names_cannot_leave_out(tmp_path, capsys, monkeypatch, name):
    """An entry-point name is any string; before, ``../escape`` wrote its run beside ``--out``."""
    METHODS.discover()
    monkeypatch.setitem(METHODS._items, name, METHODS.get("finetune"))
    out = tmp_path / "out"
    result = invoke(capsys, "run", "--methods", name, "--benchmark", "smoke", "--out", str(out), "--quiet")
    assert_one_line_error(result, "method name", "cannot name a results folder")
    assert list(tmp_path.iterdir()) == []
