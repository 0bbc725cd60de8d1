"""Executors decide WHERE a sweep's runs happen, never what they compute.

Each is a thin adapter over an existing engine with one interface, ``submit(jobs, first) -> outcomes`` (one
:class:`~clbench.executors.job.CellOutcome` per :class:`~clbench.executors.job.Job` of ``first`` then ``jobs``,
in order): ``local`` (a process pool, as ``clbench run --jobs``), ``slurm`` (submitit job arrays) and ``ray``
(tasks on a Ray cluster). ``first`` (e.g. GIFT's synthetic-data shards) ends before any of ``jobs`` starts: a
SLURM dependency (``afterany``: a failed shard leaves its images to the runs, which make what the cache lacks),
Ray and local in order. A cell job resumes from the run store (:func:`~clbench.executors.job.run_cell`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from clbench.errors import UserError
from clbench.executors.job import CellOutcome, Job

EXECUTORS = ("local", "slurm", "ray")
REMOTE = ("slurm", "ray")


class Executor(Protocol):
    name: str

    def submit(self, jobs: Sequence[Job], first: Sequence[Job] = ()) -> list[CellOutcome]:
        """Run every job of ``first``, then every job of ``jobs``; one outcome per job, ``first``'s first."""
        ...


def make_executor(name: str, options: dict[str, Any], out: Path, jobs: int, quiet: bool) -> Executor:
    """The executor called ``name`` with its merged options (user config < suite < command line)."""
    if name == "local":
        from clbench.executors.local import LocalExecutor

        return LocalExecutor(jobs=jobs, quiet=quiet)
    if name == "slurm":
        from clbench.executors.slurm import SlurmExecutor

        return SlurmExecutor(folder=out / ".submitit", options=options)
    if name == "ray":
        from clbench.executors.ray import RayExecutor

        return RayExecutor(options=options)
    raise UserError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")


def require_extra(module: str, extra: str, executor: str) -> Any:
    """Import an optional dependency, or say in one line which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"the {executor} executor needs the {module} package: pip install 'clbench[{extra}]'") from None
