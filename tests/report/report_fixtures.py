"""Result directories for the reporter tests, written through ``clbench.store`` like the engine does."""

from __future__ import annotations

import csv
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clbench.store import MatrixRecord, RunDir
from tests.cli_runner import SHARED

MTIL_TASKS = ["colour", "shape", "background", "letters", "digits", "count", "size", "position"]
CIL_TASKS = [f"classes{i * 4}-{i * 4 + 3}" for i in range(5)]
ZSCL_FIXTURES = SHARED / "fixtures" / "zscl_mtil_order1"


def synthetic_matrix(protocol: str, n: int, method: str, seed: int) -> np.ndarray:
    """A plausible accuracy matrix: learn each task, forget it by a method-specific rate afterwards."""
    rng = np.random.default_rng(zlib.crc32(f"{method}/{seed}".encode()))
    skill = {"zeroshot": 0.0, "finetune": 0.9, "lwf": 0.7, "zscl": 0.8}.get(method, 0.5)
    keep = {"zeroshot": 1.0, "finetune": 0.6, "lwf": 0.85, "zscl": 0.95}.get(method, 0.8)
    zs = np.linspace(30, 70, n)
    a = np.full((n, n), np.nan)
    for t in range(n):
        for j in range(n):
            if j > t:
                a[t, j] = np.nan if protocol == "cil" else zs[j] * (0.9 + 0.1 * keep) + rng.normal(0, 1)
            else:
                peak = zs[j] + skill * (95 - zs[j])
                a[t, j] = peak * keep ** (t - j) + rng.normal(0, 1.5) if method != "zeroshot" else zs[j]
    return np.clip(a, 0, 100)


def write_run(root: Path, benchmark: str, method: str, seed: int, matrix: np.ndarray, protocol: str,
              tasks: Sequence[str], completed: int | None = None, initial: Sequence[float] | None = None,
              auc: np.ndarray | None = None, schema_version: int | None = None) -> RunDir:
    """One run folder; ``completed`` < len(tasks) leaves the later rows null (an interrupted run)."""
    n = len(tasks)
    done = n if completed is None else completed
    run = RunDir(RunDir.location(root, benchmark, method, seed, f"{zlib.crc32(f'{benchmark}/{method}'.encode()):08x}"))
    rows: list[list[float] | None] = [list(map(float, matrix[t])) if t < done else None for t in range(n)]
    auc_rows = None if auc is None else [list(map(float, auc[t])) if t < done else None for t in range(n)]
    run.write_matrix(MatrixRecord(tasks=list(tasks), rows=rows, initial=None if initial is None else list(initial),
                                  counts=[100] * n, auc=auc_rows))
    info: dict[str, Any] = {"run_id": run.path.name, "benchmark": benchmark, "method": method, "seed": seed,
                            "protocol": protocol, "tasks": list(tasks),
                            "status": "complete" if done == n else "running", "completed_tasks": done,
                            "wall_time_s": 12.5 + seed, "model": "shapes-tiny",
                            "device": {"type": "cpu", "threads": 2}}
    run.write_run(info)
    if schema_version is not None:  # simulate an older writer
        import json

        data = json.loads((run.path / "run.json").read_text())
        if schema_version == 0:
            data.pop("schema_version")
            data.pop("protocol")
            data.pop("status")
        else:
            data["schema_version"] = schema_version
        (run.path / "run.json").write_text(json.dumps(data))
    run.write_metrics(protocol, done == n, {})
    run.write_config({"benchmark": {"name": benchmark}, "method": {"name": method}, "seed": seed,
                      "train": {"lr": 1e-4, "batch_size": 64}})
    run.write_environment({"python": "3.11.2", "packages": {"clbench": "0.1.0", "torch": "2.14.1",
                                                           "open_clip_torch": "3.0.0"},
                           "git_sha": "0123456789abcdef", "device": {"type": "cpu", "threads": 2},
                           "platform": "Linux"})
    return run



def build_results(root: Path, n_tasks: int = 8) -> Path:
    """Shapes world runs: MTIL-protocol (``n_tasks``) with 1 and 3 seeds, CIL (5 steps), one run unfinished."""
    bench, tasks = "shapes_mtil_order1", MTIL_TASKS[:n_tasks]
    zs = synthetic_matrix("mtil", n_tasks, "zeroshot", 0)[0]
    write_run(root, bench, "zeroshot", 0, synthetic_matrix("mtil", n_tasks, "zeroshot", 0), "mtil", tasks, initial=zs)
    for seed in (0, 1, 2):
        write_run(root, bench, "finetune", seed, synthetic_matrix("mtil", n_tasks, "finetune", seed), "mtil", tasks,
                  initial=zs)
    write_run(root, bench, "zscl", 0, synthetic_matrix("mtil", n_tasks, "zscl", 0), "mtil", tasks, initial=zs)
    write_run(root, bench, "lwf", 0, synthetic_matrix("mtil", n_tasks, "lwf", 0), "mtil", tasks, completed=3,
              initial=zs)
    for method in ("finetune", "zscl"):
        write_run(root, "shapes_cil_5", method, 0, synthetic_matrix("cil", 5, method, 0), "cil", CIL_TASKS)
    return root


def zscl_matrix(name: str) -> tuple[list[str], np.ndarray]:
    """One of ZSCL's released MTIL Order I matrices (shared fixtures)."""
    with open(ZSCL_FIXTURES / f"{name}.csv") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=float)
