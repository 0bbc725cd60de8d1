"""``clbench status`` while a real sweep runs: done / running (task, step, ETA) / pending, then stale once the
sweep is killed, failed for a cell that raised; exit code 0 only when every run is done."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from tests.cli_runner import REPO, invoke
from tests.test_cli import assert_one_line_error
from tests.test_sweep import broken_method  # noqa: F401 - fixture

SUITE = """
methods: [zeroshot, finetune]
benchmarks: [smoke]
seeds: [0, 1]
config: {train: {iterations: 80, warmup: 1, log_every: 1}}
"""


def lines_by_run(stdout: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in stdout.splitlines()[:-1]:
        state, label, detail = line.split(None, 2)
        out[label.split("-")[0]] = (state, detail)
    return out


def test_status_follows_a_running_sweep(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--out", str(out),
                             "--no-report", "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    seen = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (out / ".sweeps").exists():
                res = invoke(capsys, "status", str(out))
                runs = lines_by_run(res.stdout)
                fine0 = runs.get("smoke/finetune/seed0", ("", ""))
                if fine0[0] == "running" and "step" in fine0[1] and "ETA" in fine0[1]:
                    seen = (res, runs)
                    break
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert seen is not None, "never saw finetune seed 0 running"
    res, runs = seen
    assert res.returncode == 1
    assert runs["smoke/zeroshot/seed0"][0] == "done" and runs["smoke/zeroshot/seed1"][0] == "done"
    assert re.fullmatch(r"task [123] of 3, step \d+/80, ETA \d+(s|min)", runs["smoke/finetune/seed0"][1])
    assert runs["smoke/finetune/seed1"] == ("pending", "not started")
    assert res.stdout.splitlines()[-1] == "4 runs: 2 done, 1 running, 1 pending"

    time.sleep(1.2)
    stale = lines_by_run(invoke(capsys, "status", str(out), "--stale-after", "1").stdout)
    assert stale["smoke/finetune/seed0"][0] == "stale" and "--resume" in stale["smoke/finetune/seed0"][1]


def test_failed_cell_shows_its_error_and_done_runs_exit_zero(tmp_path, capsys, broken_method):  # noqa: F811
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace("zeroshot", broken_method).replace("[0, 1]", "[0]")
                     .replace("iterations: 80", "iterations: 3"))
    assert invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r"), "--no-report", "--quiet").returncode == 1
    res = invoke(capsys, "status", str(tmp_path / "r"))
    runs = lines_by_run(res.stdout)
    assert res.returncode == 1
    state, detail = runs["smoke/broken/seed0"]
    assert state == "failed" and detail.startswith("RuntimeError: boom in the broken cell after 0/3 tasks")
    assert "failed.json" in detail
    assert runs["smoke/finetune/seed0"][0] == "done"

    done = invoke(capsys, "status", str(tmp_path / "r" / "smoke" / "finetune"))
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "1 runs: 1 done"


def test_status_of_a_missing_folder_is_one_line(capsys, tmp_path):
    assert_one_line_error(invoke(capsys, "status", str(tmp_path / "nope")), "does not exist")
