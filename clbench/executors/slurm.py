"""``--executor slurm``: one SLURM job array through submitit, requeued and resumed on pre-emption or timeout.

Each array task runs one cell (:func:`~clbench.executors.job.run_cell`). On pre-emption or at the time limit
SLURM signals the job; submitit then calls :meth:`CellTask.checkpoint`, which resubmits the same cell with
``resume=True``, and requeues it: the requeued job continues from the run store's last checkpoint (the end of
the last completed task) and yields the same matrix as an uninterrupted run.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.executors import require_extra
from clbench.executors.job import CellJob, CellOutcome, run_cell

submitit: Any = None


def _submitit() -> Any:
    global submitit
    if submitit is None:
        submitit = require_extra("submitit", "slurm", "slurm")
    return submitit


class CellTask:
    """Runs one cell; submitit's checkpoint protocol (``checkpoint`` returning a DelayedSubmission, as
    ``submitit.helpers.Checkpointable``) requeues it resuming from the run store."""

    def __call__(self, job: CellJob) -> CellOutcome:
        return run_cell(job)

    def checkpoint(self, job: CellJob) -> Any:
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

    def submit(self, jobs: list[CellJob]) -> list[CellOutcome]:
        sub = _submitit()
        executor = sub.SlurmExecutor(folder=str(self.folder / "%j"))
        executor.update_parameters(**self.parameters())
        task = CellTask()
        # progress goes to the job logs (.submitit/<job id>/*_log.err), where a requeue shows up too
        jobs = [replace(j, quiet=False, threads=j.threads or int(self.options.get("cpus_per_task", 1))) for j in jobs]
        with executor.batch():  # one sbatch call: a job array of len(jobs) tasks
            futures = [executor.submit(task, j) for j in jobs]
        outcomes = []
        for job, future in zip(jobs, futures, strict=True):
            try:
                outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 - the SLURM job died (killed, node failure, OOM)
                last = (str(exc).strip().splitlines() or [""])[-1][:300]
                outcomes.append(CellOutcome(job.label, str(job.run_dir.path), "failed",
                                            error=f"SLURM job {future.job_id} failed: {type(exc).__name__}: {last}"))
        return outcomes
