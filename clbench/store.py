"""Run directories: one folder per (benchmark, method, config, seed), written atomically.

Layout (schema version 1), read by ``clbench report`` and by other tools::

    <out>/<benchmark>/<method>/<run_id>/
        run.json          schema_version, run_id, benchmark, method, seed, protocol, tasks, status
                          ("running" | "complete"), completed_tasks, config_hash, created, updated, wall_time_s
        config.yaml       the fully resolved configuration (benchmark, model, train, method, seed)
        environment.json  python / package versions, git sha, device, platform
        matrix.csv        accuracy matrix (%): header = task names in training order, one row per completed
                          task (row t = after training task t); empty cell = not evaluated
        matrix.json       {"tasks", "rows" (T lists, null = pending; NaN cells stored as null), "initial"
                          (accuracy before any training or null), "counts" (test-set sizes), "auc" (like rows,
                          for protocols with AUC, else null)}
        metrics.json      {"protocol", "complete", "metrics": {name: value}} (metrics of the rows so far)
        log.jsonl         one JSON object per logged training step / evaluation
        checkpoint.pt     model + method + optimizer-free state after the last completed task
                          (``torch.load(..., weights_only=True)``)

``run_id`` = ``seed<seed>-<first 8 hex of the config hash>``: the same configuration maps to the same folder,
which is what ``--resume`` continues.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
RUN_FILE = "run.json"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def nan_to_none(values: Sequence[float] | None) -> list[float | None] | None:
    if values is None:
        return None
    return [None if (v is None or not math.isfinite(float(v))) else float(v) for v in values]


def none_to_nan(values: Sequence[float | None] | None) -> list[float]:
    return [float("nan") if v is None else float(v) for v in (values or [])]


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class MatrixRecord:
    """The evaluation results of a run, in memory."""

    tasks: list[str]
    rows: list[list[float] | None]
    initial: list[float] | None = None
    counts: list[int] | None = None
    auc: list[list[float] | None] | None = None

    @classmethod
    def empty(cls, tasks: Sequence[str], with_auc: bool) -> MatrixRecord:
        t = len(tasks)
        return cls(tasks=list(tasks), rows=[None] * t, auc=[None] * t if with_auc else None)

    def array(self) -> np.ndarray:
        t = len(self.tasks)
        return np.array([row if row is not None else [np.nan] * t for row in self.rows], dtype=float)

    def auc_array(self) -> np.ndarray | None:
        if self.auc is None:
            return None
        t = len(self.tasks)
        return np.array([row if row is not None else [np.nan] * t for row in self.auc], dtype=float)

    def completed(self) -> int:
        return sum(1 for row in self.rows if row is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "rows": [nan_to_none(r) for r in self.rows],
            "initial": nan_to_none(self.initial),
            "counts": self.counts,
            "auc": None if self.auc is None else [nan_to_none(r) for r in self.auc],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MatrixRecord:
        return cls(
            tasks=list(obj["tasks"]),
            rows=[None if r is None else none_to_nan(r) for r in obj["rows"]],
            initial=None if obj.get("initial") is None else none_to_nan(obj["initial"]),
            counts=obj.get("counts"),
            auc=None if obj.get("auc") is None else [None if r is None else none_to_nan(r) for r in obj["auc"]],
        )

    def to_csv(self) -> str:
        lines = [",".join(self.tasks)]
        for row in self.rows:
            if row is None:
                continue
            lines.append(",".join("" if not math.isfinite(v) else repr(float(v)) for v in row))
        return "\n".join(lines) + "\n"


class RunDir:
    """One run's folder and its files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __lt__(self, other: RunDir) -> bool:
        return str(self.path) < str(other.path)

    @staticmethod
    def location(out: Path, benchmark: str, method: str, seed: int, cfg_hash: str) -> Path:
        return Path(out) / benchmark / method / f"seed{seed}-{cfg_hash[:8]}"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def exists(self) -> bool:
        return (self.path / RUN_FILE).is_file()

    def read_run(self) -> dict[str, Any]:
        return json.loads((self.path / RUN_FILE).read_text())

    def write_run(self, info: dict[str, Any]) -> None:
        info = {"schema_version": SCHEMA_VERSION, **info, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(self.path / RUN_FILE, info)

    def write_config(self, config: dict[str, Any]) -> None:
        import yaml

        write_atomic(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def write_environment(self, env: dict[str, Any]) -> None:
        write_json(self.path / "environment.json", env)

    def write_matrix(self, record: MatrixRecord) -> None:
        write_json(self.path / "matrix.json", record.to_json())
        write_atomic(self.path / "matrix.csv", record.to_csv())

    def read_matrix(self) -> MatrixRecord:
        return MatrixRecord.from_json(json.loads((self.path / "matrix.json").read_text()))

    def write_metrics(self, protocol: str, complete: bool, metrics: dict[str, float]) -> None:
        clean = {k: (None if not math.isfinite(v) else v) for k, v in metrics.items()}
        write_json(self.path / "metrics.json", {"protocol": protocol, "complete": complete, "metrics": clean})

    def append_log(self, record: dict[str, Any]) -> None:
        """Append one JSON line (a line is written whole by one ``write`` call)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def truncate_log(self, completed_tasks: int) -> None:
        """On resume, drop log lines of the task that was interrupted."""
        log = self.path / "log.jsonl"
        if not log.exists():
            return
        keep = [ln for ln in log.read_text().splitlines() if ln.strip() and json.loads(ln).get("task", 0) < completed_tasks]
        write_atomic(log, "".join(ln + "\n" for ln in keep))


def find_runs(root: Path) -> list[RunDir]:
    """Every run folder (holding run.json) below ``root``."""
    return sorted(RunDir(p.parent) for p in Path(root).rglob(RUN_FILE)) if Path(root).exists() else []
