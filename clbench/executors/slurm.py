"""``--executor slurm``: one SLURM job array through submitit, requeued and resumed on pre-emption or timeout.

Each array task runs one job (a cell: :func:`~clbench.executors.job.run_cell`). Jobs that must end first
(synthetic-data shards) form their own array, and the cells' array waits for it (``--dependency=afterany``):
both are queued at once. On pre-emption or at the time limit SLURM signals the job; submitit then calls
:meth:`CellTask.checkpoint`, which resubmits the same job with ``resume=True``, and requeues it: the requeued
job continues from the run store's last checkpoint (a mid-task one, or the end of the last completed task) and
yields the same matrix as an uninterrupted run.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.executors import require_extra
from clbench.executors.job import CellOutcome, Job, error_line

submitit: Any = None


def _submitit() -> Any:
    global submitit
    if submitit is None:
        submitit = require_extra("submitit", "slurm", "slurm")
    return submitit


class CellTask:
    """Runs one job; submitit's checkpoint protocol (``checkpoint`` returning a DelayedSubmission, as
    ``submitit.helpers.Checkpointable``) requeues it resuming from the run store (or the synthetic cache)."""

    def __call__(self, job: Job) -> CellOutcome:
        return job.run()

    def checkpoint(self, job: Job) -> Any:
        return _submitit().helpers.DelayedSubmission(CellTask(), replace(job, resume=True))


class SlurmExecutor:
    name = "slurm"

    def __init__(self, folder: Path, options: dict[str, Any]) -> None:
        _submitit()
        if shutil.which("sbatch") is None:
            raise UserError("--executor slurm needs sbatch on PATH (run on a SLURM login node, or use --executor "
                            "local or ray)")
        self.folder = Path(folder)
        self.options = options

    def parameters(self) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters from clbench's option names."""
        o = self.options
        params: dict[str, Any] = {"job_name": "clbench", "time": int(o.get("timeout_min", 60)),
                                  "cpus_per_task": int(o.get("cpus_per_task", 1))}
        if o.get("mem_gb") is not None:
            params["mem"] = f"{int(float(o['mem_gb']) * 1024)}MB"
        if int(o.get("gpus_per_node", 0) or 0) > 0:
            params["gpus_per_node"] = int(o["gpus_per_node"])
        for key in ("partition", "account", "qos", "constraint"):
            if o.get(key):
                params[key] = o[key]
        if o.get("setup"):
            params["setup"] = list(o["setup"])
        return params

    def submit(self, jobs: Sequence[Job], first: Sequence[Job] = ()) -> list[CellOutcome]:
        sub = _submitit()
        threads = int(self.options.get("cpus_per_task", 1))
        # progress goes to the job logs (.submitit/<job id>/*_log.err), where a requeue shows up too
        first, jobs = ([replace(j, quiet=False, threads=j.threads or threads) for j in group] for group in (first, jobs))
        submitted = []
        dependency = None
        for group in (first, jobs):
            if not group:
                continue
            executor = sub.SlurmExecutor(folder=str(self.folder / "%j"))
            executor.update_parameters(**self.parameters(), **({"dependency": dependency} if dependency else {}))
            with executor.batch():  # one sbatch call: a job array of len(group) tasks
                futures = [executor.submit(CellTask(), j) for j in group]
            submitted += zip(group, futures, strict=True)
            dependency = f"afterany:{futures[0].job_id.split('_')[0]}"  # the whole array, failed tasks included
        outcomes = []
        for job, future in submitted:
            try:
                outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 - the SLURM job died (killed, node failure, OOM)
                outcomes.append(CellOutcome(job.label, job.record_dir, "failed",
                                            error=f"SLURM job {future.job_id} failed: {error_line(exc)[:300]}"))
        return outcomes
