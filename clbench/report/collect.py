"""Read a run store into plain records the tables and figures share.

Everything that knows the on-disk layout (``clbench.store``) and its schema versions lives here, so the
rest of the reporter works on :class:`Run` objects and never touches files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clbench.errors import UserError
from clbench.metrics import PROTOCOL_METRICS
from clbench.store import RUN_FILE, SCHEMA_VERSION, MatrixRecord, RunDir, find_runs

#: Output folder names the reporter writes below a results directory; never scanned for runs.
REPORT_DIRS = ("report", "published")


@dataclass
class Run:
    """One run folder, read and upgraded to the current schema."""

    path: Path
    benchmark: str
    method: str
    seed: int
    protocol: str
    tasks: list[str]
    matrix: np.ndarray  # T x T, NaN = not evaluated (pending rows, CIL future tasks)
    counts: list[int] | None
    auc: np.ndarray | None
    initial: np.ndarray | None  # accuracy before any training (zero-shot level), or None
    status: str
    schema_version: int
    info: dict[str, Any] = field(default_factory=dict)  # run.json as written
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        """Number of tasks whose matrix row has been written."""
        return sum(1 for row in self.matrix if np.isfinite(row).any())

    @property
    def complete(self) -> bool:
        return self.completed == len(self.tasks)

    @property
    def wall_time_s(self) -> float | None:
        value = self.info.get("wall_time_s")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    @property
    def label(self) -> str:
        return f"{self.benchmark}/{self.method}/seed{self.seed}"


@dataclass
class ResultSet:
    """All readable runs below a results directory, plus notes on what was skipped and why."""

    root: Path
    runs: list[Run]
    notes: list[str] = field(default_factory=list)

    def benchmarks(self) -> list[str]:
        return sorted({r.benchmark for r in self.runs})

    def methods(self) -> list[str]:
        return sorted({r.method for r in self.runs})

    def select(self, benchmark: str, method: str) -> list[Run]:
        return sorted((r for r in self.runs if r.benchmark == benchmark and r.method == method),
                      key=lambda r: r.seed)

    def protocol(self, benchmark: str) -> str:
        return next(r.protocol for r in self.runs if r.benchmark == benchmark)

    def tasks(self, benchmark: str) -> list[str]:
        return next(r.tasks for r in self.runs if r.benchmark == benchmark)


def _read_json(path: Path) -> Any:
    """A side file's JSON, or None when it is absent; a broken one is a ValueError (the run is skipped)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"{path.name} is unreadable ({type(exc).__name__})") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError) as exc:
        raise ValueError(f"{path.name} is unreadable ({type(exc).__name__})") from None
    return data if isinstance(data, dict) else {}


def _matrix_from_csv(path: Path, tasks: Sequence[str] | None) -> MatrixRecord:
    """Schema 0 runs (before matrix.json): header = task names, one row per completed task."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = lines[0].split(",")
    names = list(tasks) if tasks else header
    rows: list[list[float] | None] = [
        [float(v) if v.strip() else float("nan") for v in ln.split(",")] for ln in lines[1:]
    ]
    rows += [None] * (len(names) - len(rows))
    return MatrixRecord(tasks=names, rows=rows)


def _upgrade(info: dict[str, Any], run: RunDir) -> tuple[dict[str, Any], MatrixRecord]:
    """Bring an older run folder to schema 1 in memory (the files are left as they are).

    Schema 0 = folders written before ``schema_version`` existed: they may lack matrix.json (matrix.csv only),
    ``protocol`` (taken from metrics.json) and ``status`` (derived from the completed rows).
    """
    info = dict(info)
    if (run.path / "matrix.json").is_file():
        record = run.read_matrix()
    elif (run.path / "matrix.csv").is_file():
        record = _matrix_from_csv(run.path / "matrix.csv", info.get("tasks"))
    else:
        raise ValueError("no matrix.json or matrix.csv")
    if "protocol" not in info:
        metrics = _read_json(run.path / "metrics.json") or {}
        if "protocol" not in metrics:
            raise ValueError("protocol missing from run.json and metrics.json")
        info["protocol"] = metrics["protocol"]
    info.setdefault("tasks", record.tasks)
    done = record.completed()
    info.setdefault("completed_tasks", done)
    info.setdefault("status", "complete" if done == len(record.tasks) else "running")
    info.setdefault("seed", 0)
    return info, record


def read_run(run: RunDir) -> Run:
    """Read one run folder; raises ValueError with a short reason when it cannot be used."""
    info = run.read_run()
    if not isinstance(info, dict) or "benchmark" not in info or "method" not in info:
        raise ValueError("run.json lacks benchmark/method (not a clbench run)")
    version = int(info.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise ValueError(f"written by a newer clbench (schema {version} > {SCHEMA_VERSION}); upgrade clbench")
    info, record = _upgrade(info, run)
    if info["protocol"] not in PROTOCOL_METRICS:
        raise ValueError(f"unknown protocol {info['protocol']!r} (this clbench knows {', '.join(PROTOCOL_METRICS)})")
    matrix = record.array()
    if matrix.shape != (len(record.tasks), len(record.tasks)):
        raise ValueError(f"matrix shape {matrix.shape} does not match {len(record.tasks)} tasks")
    return Run(
        path=run.path,
        benchmark=str(info["benchmark"]),
        method=str(info["method"]),
        seed=int(info["seed"]),
        protocol=str(info["protocol"]),
        tasks=list(record.tasks),
        matrix=matrix,
        counts=record.counts,
        auc=record.auc_array(),
        initial=None if record.initial is None else np.asarray(record.initial, dtype=float),
        status=str(info["status"]),
        schema_version=version,
        info=info,
        config=_read_yaml(run.path / "config.yaml"),
        environment=_read_json(run.path / "environment.json") or {},
    )


def _describe_missing(root: Path) -> str:
    if not root.exists():
        return f"results directory {root} does not exist; pass the folder `clbench run` wrote (default: results)"
    if not root.is_dir():
        return f"{root} is a file, not a results directory; pass the folder `clbench run` wrote"
    if not any(root.iterdir()):
        return f"results directory {root} is empty: no runs yet; run `clbench run` first or pass another folder"
    return (f"{root} holds no clbench runs (no {RUN_FILE} below it); "
            "pass the folder `clbench run` wrote (default: results)")


def load_results(root: Path | str, benchmarks: Iterable[str] | None = None,
                 methods: Iterable[str] | None = None) -> ResultSet:
    """Every usable run below ``root``, filtered by benchmark and method names.

    Unreadable or foreign run folders are skipped with a note; no usable run at all is a :class:`UserError`.
    """
    root = Path(root)
    found = [r for r in find_runs(root)
             if not any(part in REPORT_DIRS for part in r.path.relative_to(root).parts[:1])]
    if not found:
        raise UserError(_describe_missing(root))
    runs: list[Run] = []
    notes: list[str] = []
    for rd in found:
        try:
            runs.append(read_run(rd))
        except (UserError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            notes.append(f"skipped {rd.path.relative_to(root)}: {exc}")
    if not runs:
        raise UserError(f"{root} holds no readable clbench runs ({notes[0]}); "
                        "pass the folder `clbench run` wrote")
    runs = _latest_per_seed(runs, notes)
    want_b = set(benchmarks or [])
    want_m = set(methods or [])
    if want_b:
        _check_known("benchmark", want_b, {r.benchmark for r in runs}, root)
        runs = [r for r in runs if r.benchmark in want_b]
    if want_m:
        _check_known("method", want_m, {r.method for r in runs}, root)
        runs = [r for r in runs if r.method in want_m]
    if not runs:
        raise UserError(f"no runs in {root} match --benchmark {','.join(sorted(want_b)) or '*'} "
                        f"and --methods {','.join(sorted(want_m)) or '*'}; drop a filter")
    return ResultSet(root=root, runs=runs, notes=notes)


def _check_known(kind: str, wanted: set[str], present: set[str], root: Path) -> None:
    unknown = sorted(wanted - present)
    if unknown:
        raise UserError(f"no runs of {kind} {', '.join(unknown)} in {root}; "
                        f"present: {', '.join(sorted(present))}")


def _latest_per_seed(runs: list[Run], notes: list[str]) -> list[Run]:
    """Keep one run per (benchmark, method, seed): the most recently updated (other configs are noted)."""
    best: dict[tuple[str, str, int], Run] = {}
    for run in runs:
        key = (run.benchmark, run.method, run.seed)
        other = best.get(key)
        if other is None:
            best[key] = run
            continue
        newer, older = (run, other) if str(run.info.get("updated", "")) >= str(other.info.get("updated", "")) \
            else (other, run)
        best[key] = newer
        notes.append(f"{older.path.name} ({older.label}) superseded by the newer run {newer.path.name}")
    return sorted(best.values(), key=lambda r: (r.benchmark, r.method, r.seed))
