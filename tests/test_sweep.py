"""``clbench sweep`` with the local executor: the grid runs once, complete runs are skipped, incomplete ones
resume to the uninterrupted matrix, a failing cell fails alone, and the report is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from clbench.method import Method
from clbench.registry import METHODS
from tests.cli_runner import REPO, invoke
from tests.test_cli import assert_one_line_error

SUITE = """
methods: [zeroshot, finetune]
benchmarks: [smoke]
seeds: [0]
config: {train: {iterations: 6, warmup: 1}}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def matrices(root: Path) -> dict[str, list]:
    """run folder (relative) -> accuracy rows of every run below root."""
    return {str(p.parent.relative_to(root)): json.loads(p.read_text())["rows"]
            for p in sorted(root.rglob("matrix.json"))}


def test_sweep_runs_the_grid_like_clbench_run_then_skips_it(tmp_path, capsys):
    suite = write(tmp_path / "s.yaml", SUITE)
    out = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "sweep"))
    assert out.returncode == 0, out.stderr
    assert "2 of 2 runs to do" in out.stderr
    assert (tmp_path / "sweep" / "report" / "leaderboard.md").is_file()
    assert "| finetune |" in out.stdout  # the report's Markdown
    cfg = write(tmp_path / "c.yaml", "train: {iterations: 6, warmup: 1}\n")
    ref = invoke(capsys, "run", "--methods", "zeroshot,finetune", "--benchmark", "smoke", "--config", str(cfg),
                 "--out", str(tmp_path / "run"), "--quiet")
    assert ref.returncode == 0, ref.stderr
    got, want = matrices(tmp_path / "sweep"), matrices(tmp_path / "run")
    assert got == want and len(got) == 2

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").rglob("run.json")}
    again = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "sweep"), "--no-report")
    assert again.returncode == 0, again.stderr
    assert "0 of 2 runs to do" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_dry_run_estimates_from_a_previous_run_of_the_same_cell(tmp_path, capsys):
    one = write(tmp_path / "one.yaml", SUITE.replace("zeroshot, ", ""))
    assert invoke(capsys, "sweep", str(one), "--out", str(tmp_path / "r"), "--no-report", "--quiet").returncode == 0
    info = json.loads(next((tmp_path / "r").rglob("run.json")).read_text())
    two = write(tmp_path / "two.yaml", SUITE.replace("zeroshot, ", "").replace("seeds: [0]", "seeds: [0, 1]"))
    out = invoke(capsys, "sweep", str(two), "--out", str(tmp_path / "r"), "--dry-run")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    seed0 = next(ln for ln in lines if "seed 0" in ln)
    seed1 = next(ln for ln in lines if "seed 1" in ln)
    assert "skip (complete)" in seed0
    assert f"est {info['wall_time_s']:.0f}s (from {tmp_path / 'r' / 'smoke' / 'finetune'}" in seed1
    assert "1 of 2 runs to do" in lines[-1]
    assert len(list((tmp_path / "r" / "smoke" / "finetune").iterdir())) == 1  # dry run ran nothing


def test_interrupted_sweep_resumes_to_the_uninterrupted_matrix(tmp_path, capsys):
    slow = SUITE.replace("zeroshot, ", "").replace("iterations: 6", "iterations: 80")
    suite = write(tmp_path / "s.yaml", slow)
    ref = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "ref"), "--no-report", "--quiet")
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--out", str(out),
                             "--no-report", "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    run_json = None
    while time.time() < deadline and proc.poll() is None:
        found = list(out.rglob("run.json"))
        if found and json.loads(found[0].read_text()).get("completed_tasks", 0) >= 1:
            run_json = found[0]
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_json is not None, "the run never completed its first task"
    info = json.loads(run_json.read_text())
    assert info["status"] == "running" and 1 <= info["completed_tasks"] < len(info["tasks"])

    refused = invoke(capsys, "sweep", str(suite), "--out", str(out), "--no-report")
    assert_one_line_error(refused, "1 run(s) of this suite are incomplete", "--resume")
    resumed = invoke(capsys, "sweep", str(suite), "--out", str(out), "--no-report", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_json.parent} after task {info['completed_tasks']}/3" in resumed.stderr
    assert matrices(out) == matrices(tmp_path / "ref")


@dataclass
class BrokenConfig:
    pass


class Broken(Method):
    """A method whose training always raises: a bad cell of a sweep."""

    paper: ClassVar[str] = "none"
    Config: ClassVar[type] = BrokenConfig

    def training_step(self, batch, task, step):  # noqa: ANN001, ANN201
        raise RuntimeError("boom in the broken cell")


@pytest.fixture
def broken_method():
    METHODS.discover()
    METHODS.register("broken")(Broken)
    yield "broken"
    METHODS._items.pop("broken")


def test_a_failing_cell_fails_alone(tmp_path, capsys, broken_method):
    suite = write(tmp_path / "s.yaml", SUITE.replace("zeroshot", broken_method))
    out = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r"), "--quiet")
    assert out.returncode == 1
    assert "FAILED smoke/broken/seed0: RuntimeError: boom in the broken cell" in out.stderr
    failed = json.loads(next((tmp_path / "r" / "smoke" / "broken").rglob("failed.json")).read_text())
    assert failed["error"] == "RuntimeError: boom in the broken cell" and "Traceback" in failed["traceback"]
    done = json.loads(next((tmp_path / "r" / "smoke" / "finetune").rglob("run.json")).read_text())
    assert done["status"] == "complete"
    assert (tmp_path / "r" / "report" / "leaderboard.md").is_file()


def test_unknown_executor_is_one_line(capsys):
    assert_one_line_error(invoke(capsys, "sweep", "smoke", "--executor", "kubernetes", "--dry-run"),
                          "unknown executor 'kubernetes'", "local, slurm, ray")


@pytest.mark.parametrize("executor", ["slurm", "ray"])
def test_remote_executor_refuses_a_relative_out_dir(capsys, executor):
    assert_one_line_error(invoke(capsys, "sweep", "smoke", "--executor", executor, "--out", "results"),
                          "--out 'results' is relative", "absolute path", "every node")


def test_executor_options_unknown_key_and_precedence(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "cfg" / "clbench").mkdir(parents=True)
    user = tmp_path / "cfg" / "clbench" / "executors.yaml"
    user.write_text("slurm: {partition: userpart, account: lab, qos: low}\n")
    suite = write(tmp_path / "s.yaml", SUITE + "executor: {slurm: {partition: suitepart, qos: high}}\n")
    out = invoke(capsys, "sweep", str(suite), "--executor", "slurm", "--out", str(tmp_path / "r"), "--dry-run",
                 "--slurm.qos", "cli")
    assert out.returncode == 0, out.stderr
    assert "{'partition': 'suitepart', 'account': 'lab', 'qos': 'cli'}" in out.stdout
    user.write_text("slurm: {partitoin: x}\n")
    assert_one_line_error(invoke(capsys, "sweep", str(suite), "--executor", "slurm", "--out", str(tmp_path / "r"),
                                 "--dry-run"), "unknown slurm option 'partitoin'", str(user), "partition")


def test_missing_extra_names_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if `pip install clbench[slurm]` never ran
    suite = write(tmp_path / "s.yaml", SUITE)
    assert_one_line_error(invoke(capsys, "sweep", str(suite), "--executor", "slurm", "--out", str(tmp_path / "r")),
                          "needs the submitit package", "pip install 'clbench[slurm]'")
