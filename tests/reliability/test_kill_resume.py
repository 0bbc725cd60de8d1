"""Kills timed to each file write of the final task, then ``--resume``: the results match an uninterrupted run.

Before the fix, a kill after the last checkpoint but before ``run.json``/``matrix.csv``/``metrics.json`` were
rewritten left them at "running 2/3" for ever: resume saw a complete checkpoint, trained nothing and wrote nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clbench.store import find_runs
from tests.reliability.contract import clbench, fault_injected

ARGS = ("run", "--methods", "finetune", "--benchmark", "smoke", "--seeds", "0", "--set", "train.iterations=4",
        "--quiet")
FINAL_TASK_WRITES = ["checkpoint.pt", "matrix.json", "matrix.csv", "metrics.json", "run.json"]
VOLATILE = ("created", "updated", "wall_time_s")  # differ between any two runs


def _results(out: Path) -> dict[str, object]:
    (run,) = find_runs(out)
    info = {k: v for k, v in run.read_run().items() if k not in VOLATILE}
    # the cost block's seconds, rates and peaks are timings; its image counts must survive the kill
    info["cost"] = {phase: spent["images"] for phase, spent in info["cost"]["phases"].items()}
    files = {name: (run.path / name).read_bytes() for name in ("matrix.csv", "matrix.json", "metrics.json",
                                                                "log.jsonl", "config.yaml")}
    return {"run": info, **files}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], list[str]]:
    """An uninterrupted run and the file names it wrote, in order."""
    tmp = tmp_path_factory.mktemp("reference")
    writes = tmp / "writes.txt"
    done = fault_injected(*ARGS, "--out", str(tmp / "out"), kill_at=0, writes_log=writes)
    assert done.returncode == 0, done.stderr
    return _results(tmp / "out"), writes.read_text().split()


def test_final_task_writes_checkpoint_first_then_results_then_run_json(reference):
    _, names = reference
    last_checkpoint = len(names) - 1 - names[::-1].index("checkpoint.pt")
    assert names[last_checkpoint:] == FINAL_TASK_WRITES


@pytest.mark.slow
@pytest.mark.parametrize("write", FINAL_TASK_WRITES)
def test_kill_at_each_final_task_write_then_resume_completes_identically(reference, tmp_path, write):
    expected, names = reference
    kill_at = len(names) - len(FINAL_TASK_WRITES) + FINAL_TASK_WRITES.index(write) + 1
    out = tmp_path / "out"
    killed = fault_injected(*ARGS, "--out", str(out), kill_at=kill_at, writes_log=tmp_path / "writes.txt")
    assert killed.returncode == -9, killed.stderr
    (run,) = find_runs(out)
    assert run.read_run()["status"] == "running"
    assert list(run.path.glob(".*.tmp")), "the kill left a half-written temporary"

    resumed = clbench(*ARGS, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _results(out) == expected
    assert json.loads((run.path / "metrics.json").read_text())["complete"] is True
    assert not list(run.path.glob("*.tmp")) and not list(run.path.glob(".*.tmp")), "stale temporaries remain"
