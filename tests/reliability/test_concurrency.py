"""One process per run folder: a second identical run, or a ``--resume`` during training, is refused; restarts
leave no dead attempt's log lines.

Before the fix both processes "succeeded" and interleaved their records (a 19-line log became 38 or 54 lines),
and a resume that found no checkpoint started over on top of the dead attempt's log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clbench.store import RunDir, find_runs
from tests.cli_runner import REPO
from tests.reliability.contract import assert_one_line_error, clbench, fault_injected, snapshot
from tests.test_engine import _wait_for

ARGS = ("run", "--methods", "finetune", "--benchmark", "smoke", "--seeds", "0", "--quiet")


def test_run_folder_held_by_another_process_is_refused(tmp_path):
    out = tmp_path / "out"
    first = clbench(*ARGS, "--set", "train.iterations=2", "--out", str(out))
    assert first.returncode == 0, first.stderr
    (run,) = find_runs(out)
    before = snapshot(out)
    with run.lock():  # this test process plays the run that is still training
        for extra in ((), ("--resume",), ("--force",)):
            result = clbench(*ARGS, "--set", "train.iterations=2", "--out", str(out), *extra)
            assert_one_line_error(result, str(run.path), f"pid {os.getpid()} on {socket.gethostname()}",
                                  unchanged=[out], before=before)
    again = clbench(*ARGS, "--set", "train.iterations=2", "--out", str(out), "--force")
    assert again.returncode == 0, again.stderr  # the lock went with its holder


@pytest.mark.slow
def test_two_identical_runs_at_once_second_is_refused(tmp_path):
    out = tmp_path / "out"
    args = [*ARGS, "--set", "train.iterations=100000", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: bool(find_runs(out)) and (find_runs(out)[0].path / "log.jsonl").exists(), timeout=240)
        (run,) = find_runs(out)
        second = clbench(*args)
        assert_one_line_error(second, f"pid {proc.pid} on {socket.gethostname()}")
        resumed = clbench(*args, "--resume")
        assert_one_line_error(resumed, f"pid {proc.pid}")
        assert proc.poll() is None, "the first run kept training"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lines = (run.path / "log.jsonl").read_text().splitlines()
    steps = [ln for ln in lines if '"step"' in ln]
    assert len(steps) == len(set(steps)), "two processes wrote the same records"


@pytest.mark.slow
def test_restart_without_checkpoint_drops_the_dead_attempts_log(tmp_path):
    """Killed in task 1 before its checkpoint, ``--resume`` starts over: the log is the uninterrupted run's."""
    small = ("--set", "train.iterations=4")
    reference = fault_injected(*ARGS, *small, "--out", str(tmp_path / "ref"), kill_at=0,
                               writes_log=tmp_path / "ref-writes.txt")
    assert reference.returncode == 0, reference.stderr
    names = (tmp_path / "ref-writes.txt").read_text().split()
    (ref_run,) = find_runs(tmp_path / "ref")
    out = tmp_path / "out"
    killed = fault_injected(*ARGS, *small, "--out", str(out), kill_at=names.index("checkpoint.pt") + 1,
                            writes_log=tmp_path / "writes.txt")
    assert killed.returncode == -9
    (run,) = find_runs(out)
    assert (run.path / "log.jsonl").read_text(), "the dead attempt logged its first task"
    resumed = clbench(*ARGS, *small, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (run.path / "log.jsonl").read_text() == (ref_run.path / "log.jsonl").read_text()
    assert RunDir(run.path).read_matrix().to_csv() == ref_run.read_matrix().to_csv()


def test_lock_file_names_the_holder(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        assert (run.path / ".lock").read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
