"""``--executor local``: this machine, one run after another or ``--jobs N`` worker processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from clbench.executors.job import CellOutcome, Job, run_job


class LocalExecutor:
    """Today's ``clbench run --jobs`` pool: spawned workers that die with the sweep, CPU threads shared."""

    name = "local"

    def __init__(self, jobs: int = 1, quiet: bool = False) -> None:
        self.jobs = jobs
        self.quiet = quiet

    def submit(self, jobs: Sequence[Job], first: Sequence[Job] = ()) -> list[CellOutcome]:
        return (self._run(first) if first else []) + self._run(jobs)

    def _run(self, jobs: Sequence[Job]) -> list[CellOutcome]:
        jobs = [replace(j, quiet=self.quiet) for j in jobs]
        if self.jobs <= 1 or len(jobs) <= 1:
            cache: dict = {}  # datasets built once and shared by the runs of this process
            return [j.run(cache) for j in jobs]
        from clbench.runner import die_with_parent

        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        jobs = [replace(j, threads=j.threads or threads) for j in jobs]
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(run_job, j) for j in jobs]
            outcomes = []
            for job, future in zip(jobs, futures, strict=True):
                try:
                    outcomes.append(future.result())
                except Exception as exc:  # noqa: BLE001 - the worker process itself died
                    outcomes.append(CellOutcome(job.label, job.record_dir, "failed",
                                                error=f"worker died: {type(exc).__name__}: {exc}"))
        return outcomes
