"""``--executor ray``: one Ray task per cell on an existing cluster (``ray.init(address=...)``).

Jobs that must end first (synthetic-data shards) are submitted and awaited before the cells. A task asks for
one GPU when the cluster has GPUs, else ``num_cpus`` CPUs. When a worker dies mid-run Ray
retries the task (``max_retries``); every attempt resumes from the run store, so a retry continues after the last
completed task and yields the same matrix. Results go to ``--out``, which every worker must be able to write:
an absolute path on a shared filesystem (checked before anything is submitted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from clbench.errors import UserError
from clbench.executors import require_extra
from clbench.executors.job import CellOutcome, Job


def _ray_cell(job: Job) -> CellOutcome:
    """The Ray task: one job (a cell, resumed from the store on every attempt). The worker process stays for
    the next job (warm imports), so the job's cached GPU memory is handed back first."""
    try:
        return job.run()
    finally:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _resolve_address(address: str) -> str | None:
    """HOST:PORT of the cluster ``address`` names; ``auto`` follows Ray's own lookup ($RAY_ADDRESS, then the
    address file of the newest cluster started on this machine)."""
    import os
    import tempfile
    from pathlib import Path

    if address != "auto":
        return address.split("://", 1)[-1]
    if os.environ.get("RAY_ADDRESS"):
        return _resolve_address(os.environ["RAY_ADDRESS"])
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    return current.read_text().strip() or None if current.is_file() else None


def _reachable(host_port: str, timeout: float = 5.0) -> bool:
    import socket

    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class RayExecutor:
    name = "ray"

    def __init__(self, options: dict[str, Any]) -> None:
        self.ray = require_extra("ray", "ray", "ray")
        self.address = str(options.get("address") or "auto")
        self.num_cpus = float(options.get("num_cpus") or 1)
        self.num_gpus = options.get("num_gpus")
        self.max_retries = int(options.get("max_retries", 3))
        self._connect()

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        target = _resolve_address(self.address)
        if target is None:
            raise UserError(f"no running Ray cluster found for --ray.address {self.address!r}; start one with "
                            "`ray start --head` or pass the head's HOST:PORT")
        if not _reachable(target):  # ray.init would retry an unreachable GCS for minutes
            raise UserError(f"cannot reach the Ray cluster at {target} (--ray.address {self.address!r}); is the head "
                            "running and is the address right?")
        try:
            ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError depending on the case
            last = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"cannot reach a Ray cluster at --ray.address {self.address!r} ({last}); start one "
                            "with `ray start --head` or pass the head's HOST:PORT") from None

    def resources(self) -> dict[str, float]:
        """Per task: one GPU on a GPU cluster (as the papers' runs), else ``num_cpus`` CPUs."""
        gpus = self.num_gpus
        if gpus is None:
            gpus = 1.0 if self.ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return {"num_cpus": self.num_cpus, "num_gpus": float(gpus)}

    def submit(self, jobs: Sequence[Job], first: Sequence[Job] = ()) -> list[CellOutcome]:
        ray = self.ray
        res = self.resources()
        # max_calls=0: a worker runs cell after cell (Ray's default for GPU tasks is 1, a fresh worker per cell
        # that imports torch and open_clip again: seconds to tens of seconds per job)
        # (max_calls is only accepted by ray.remote, not by .options())
        task = ray.remote(max_calls=0, max_retries=self.max_retries, retry_exceptions=False, **res)(_ray_cell)
        outcomes = []
        for group in (first, jobs):  # first ends before jobs start
            # progress goes to the workers' logs (<ray temp dir>/session_latest/logs/worker-*.err)
            group = [replace(j, resume=True, quiet=False, threads=j.threads or max(1, int(self.num_cpus)))
                     for j in group]
            refs = [task.remote(j) for j in group]
            for job, ref in zip(group, refs, strict=True):
                try:
                    outcomes.append(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - the worker died more than max_retries times
                    last = (str(exc).strip().splitlines() or [""])[0][:300]
                    outcomes.append(CellOutcome(job.label, job.record_dir, "failed",
                                                error=f"Ray task failed after {self.max_retries} retries: "
                                                      f"{type(exc).__name__}: {last}"))
        ray.shutdown()
        return outcomes
