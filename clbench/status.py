"""``clbench status DIR``: one line per run — done / running (task k of n, step, ETA) / stale / failed / pending.

Read-only: everything comes from the run store (``run.json``, ``log.jsonl``, ``config.yaml``, the mtime of those
files), ``failed.json`` left by a failed sweep cell, and the sweeps' cell lists (``DIR/.sweeps/*.json``) for cells
that have not started. Exit code 0 only when every run is done.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clbench.errors import UserError
from clbench.executors.job import FAILED_FILE
from clbench.store import RUN_FILE

STATES = ("done", "running", "stale", "failed", "pending")


@dataclass
class RunStatus:
    label: str
    path: Path
    state: str
    detail: str


def _label(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _last_step(log: Path, task: int) -> int | None:
    """The last logged step of ``task`` (reads the log's tail only)."""
    if not log.is_file():
        return None
    with open(log, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 65536))
        lines = fh.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("task") == task and "step" in rec:
            return int(rec["step"])
        if isinstance(rec.get("task"), int) and rec["task"] < task:
            return None
    return None


def _steps_per_task(path: Path) -> int | None:
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text())
        return int(cfg["train"]["iterations"]) if cfg["train"].get("iterations") else None
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def run_status(path: Path, root: Path, stale_after: float, now: float) -> RunStatus:
    label = _label(path, root)
    failed = path / FAILED_FILE
    run_file = path / RUN_FILE
    if not run_file.is_file():
        if failed.is_file():
            err = json.loads(failed.read_text()).get("error", "?")
            return RunStatus(label, path, "failed", f"{err} (see {failed})")
        return RunStatus(label, path, "pending", "not started")
    info = json.loads(run_file.read_text())
    total = len(info.get("tasks", []))
    done = int(info.get("completed_tasks", 0))
    if info.get("status") == "complete":
        return RunStatus(label, path, "done", f"{done}/{total} tasks in {_duration(float(info.get('wall_time_s', 0)))}")
    log = path / "log.jsonl"
    activity = max(p.stat().st_mtime for p in (run_file, log) if p.exists())
    if failed.is_file() and failed.stat().st_mtime >= activity:
        err = json.loads(failed.read_text()).get("error", "?")
        return RunStatus(label, path, "failed", f"{err} after {done}/{total} tasks (see {failed}, log {log})")
    idle = now - activity
    if idle > stale_after:
        return RunStatus(label, path, "stale", f"no progress for {_duration(idle)} after {done}/{total} tasks "
                                               f"(killed? resume with clbench sweep --resume; log {log})")
    step, steps = _last_step(log, done), _steps_per_task(path)
    where = f"task {done + 1} of {total}"
    if step is not None:
        where += f", step {step + 1}" + (f"/{steps}" if steps else "")
    eta = _eta(info, run_file, now, done, total, step, steps)
    return RunStatus(label, path, "running", where + (f", ETA {_duration(eta)}" if eta is not None else ""))


def _eta(info: dict[str, Any], run_file: Path, now: float, done: int, total: int, step: int | None,
         steps: int | None) -> float | None:
    """Remaining time: the current task's pace (time since the last task ended / steps done) and, for later
    tasks, the mean time of the completed ones."""
    in_task = now - run_file.stat().st_mtime  # run.json is rewritten when a task ends
    per_task = float(info.get("wall_time_s", 0.0)) / done if done else None
    if step is not None and steps:
        current = in_task * (steps - step - 1) / (step + 1)
        per_task = per_task or in_task * steps / (step + 1)
    elif per_task is not None:
        current = max(0.0, per_task - in_task)
    else:
        return None
    return current + per_task * (total - done - 1)


def collect(root: Path, stale_after: float, now: float | None = None) -> list[RunStatus]:
    from clbench.sweep import read_plans

    now = time.time() if now is None else now
    paths: dict[Path, None] = {}
    for plan in read_plans(root):
        for cell in plan.get("cells", []):
            paths[Path(cell["run_dir"])] = None
    for marker in (RUN_FILE, FAILED_FILE):
        for p in sorted(root.rglob(marker)):
            if ".submitit" not in p.parts:
                paths[p.parent] = None
    return [run_status(p, root, stale_after, now) for p in paths]


def status(results_dir: str, stale_after: float = 600.0) -> int:
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"{root} does not exist; give the --out folder of clbench run or clbench sweep")
    runs = collect(root, stale_after)
    if not runs:
        raise UserError(f"{root} holds no runs and no sweep plan (.sweeps/*.json); nothing to report")
    width = max(len(r.label) for r in runs)
    for r in runs:
        print(f"{r.state:<8} {r.label:<{width}}  {r.detail}")
    counts = {s: sum(r.state == s for r in runs) for s in STATES}
    print(f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0 if counts["done"] == len(runs) else 1
