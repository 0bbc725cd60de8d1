"""What every executor runs: a :class:`Job` — one cell of a sweep (resumed from the run store, its failure
recorded, not raised) or one shard of synthetic-data generation (:mod:`clbench.synth.jobs`).

A failed cell never takes the others down: the exception becomes a :class:`CellOutcome` with its last line,
and ``failed.json`` in the run folder keeps the traceback for ``clbench status``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from clbench.config import ResolvedConfig
from clbench.store import RunDir, config_hash, write_json

FAILED_FILE = "failed.json"


class Job(Protocol):
    """What an executor schedules: a picklable frozen dataclass with these fields (executors ``replace`` them)
    and a ``run`` that never raises (a failure is an outcome)."""

    quiet: bool
    threads: int | None
    resume: bool

    @property
    def label(self) -> str: ...

    @property
    def record_dir(self) -> str:
        """Where the job's results live (a run folder; a synthetic-data cache folder)."""
        ...

    def run(self, benchmark_cache: dict[Any, Any] | None = None) -> CellOutcome: ...


def error_line(exc: BaseException) -> str:
    """``Type: last line of the message`` — what an outcome and ``clbench status`` show of a failure."""
    last = (str(exc).strip().splitlines() or [""])[-1]
    return f"{type(exc).__name__}: {last}" if last else type(exc).__name__


def run_job(job: Job) -> CellOutcome:
    """Module-level entry point for process pools and cluster workers."""
    return job.run()


@dataclass(frozen=True)
class CellJob:
    """A picklable description of one run (its resolved configuration) and where its store lives."""

    config: ResolvedConfig
    out: str
    device: str = "auto"
    resume: bool = True
    threads: int | None = None
    quiet: bool = True

    @property
    def run_dir(self) -> RunDir:
        c = self.config
        return RunDir(RunDir.location(Path(self.out), c.benchmark, c.method, c.seed, config_hash(c.identity())))

    @property
    def label(self) -> str:
        return f"{self.config.benchmark}/{self.config.method}/seed{self.config.seed}"

    @property
    def record_dir(self) -> str:
        return str(self.run_dir.path)

    def run(self, benchmark_cache: dict[Any, Any] | None = None) -> CellOutcome:
        return run_cell(self, benchmark_cache)


@dataclass(frozen=True)
class CellOutcome:
    label: str
    run_dir: str
    status: str  # "complete" | "failed"
    error: str = ""
    skipped: bool = False  # was already complete
    host: str = ""


def run_cell(job: CellJob, benchmark_cache: dict[Any, Any] | None = None) -> CellOutcome:
    """Run (or resume, or skip if complete) one cell; any exception becomes a failed outcome."""
    rd = job.run_dir
    host = socket.gethostname()
    try:
        import torch

        from clbench.engine import Engine
        from clbench.registry import BENCHMARKS, METHODS

        if job.threads is not None:
            torch.set_num_threads(job.threads)

        def say(msg: str) -> None:
            if not job.quiet:
                print(msg, file=sys.stderr, flush=True)

        cfg = job.config
        engine = Engine(cfg, BENCHMARKS.get(cfg.benchmark), METHODS.get(cfg.method), Path(job.out),
                        device=job.device, quiet=True, progress=say, benchmark_cache=benchmark_cache)
        result = engine.run(resume=job.resume)
    except Exception as exc:  # noqa: BLE001 - a failed cell is a result, not a crash of the sweep
        error = error_line(exc)
        write_json(rd.path / FAILED_FILE, {"error": error, "traceback": traceback.format_exc(), "host": host,
                                           "pid": os.getpid(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return CellOutcome(job.label, str(rd.path), "failed", error=error, host=host)
    failed = rd.path / FAILED_FILE
    if failed.exists():
        failed.unlink()
    return CellOutcome(job.label, str(rd.path), "complete", skipped=result.skipped, host=host)
