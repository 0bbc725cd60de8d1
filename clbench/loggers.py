"""Experiment loggers (``train.loggers`` / ``--logger csv,tensorboard,wandb``): mirrors of numbers the engine
already computes, for the dashboards people watch. Results-neutral (not part of a run's identity); the run
store (``log.jsonl``, ``matrix.json``) stays the source of truth.

What they get: every logged training step (the step logs the engine turns into numbers every
``train.log_every`` steps anyway: loss terms and learning rate, plus the images/s since the previous logged
step, timed on the host at those same points, so nothing adds a device sync) and each accuracy-matrix row
(the initial row, then one per task). Files go under ``<run>/loggers/``.

- ``csv`` (built in): ``loggers/scalars.csv``, one row per value: ``task,step,global_step,tag,value`` (an
  accuracy row has an empty step; the initial row is task -1).
- ``tensorboard``: event files (``torch.utils.tensorboard``, the ``tensorboard`` package): training scalars in
  ``loggers/tensorboard/train`` on the run's cumulative optimizer step, accuracies in ``.../eval`` on the
  number of tasks done.
- ``wandb``: one W&B run per clbench run (id from the run folder, so a resumed run continues it; files in
  ``loggers/wandb``); ``WANDB_MODE=offline`` and ``WANDB_PROJECT`` are respected (default project ``clbench``).

On resume the csv drops, and TensorBoard purges, what was logged after the resume point, so they hold what an
uninterrupted run would; W&B ignores steps it has already seen.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from clbench.errors import UserError
from clbench.store import RunDir, write_atomic

LOGGERS = ("csv", "tensorboard", "wandb")
#: logger -> (module it imports, extra that installs it)
NEEDS = {"tensorboard": ("tensorboard", "loggers"), "wandb": ("wandb", "loggers")}
CSV_HEADER = ["task", "step", "global_step", "tag", "value"]


def check_loggers(names: Sequence[str]) -> None:
    """Unknown names or a missing optional package: one line naming the extra, before any work."""
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UserError(f"unknown logger {unknown[0]!r}; valid: {', '.join(LOGGERS)}")
    for name in names:
        if name in NEEDS and importlib.util.find_spec(NEEDS[name][0]) is None:
            raise UserError(f"the {name} logger needs the {NEEDS[name][0]} package: "
                            f"pip install 'clbench[{NEEDS[name][1]}]'")


class Backend(Protocol):
    def step(self, task: int, step: int, global_step: int, values: dict[str, float]) -> None: ...

    def accuracy(self, task: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class CsvBackend:
    """``scalars.csv``; lines are appended whole, a resume keeps only the rows before its resume point."""

    def __init__(self, folder: Path, resume: tuple[int, int] | None) -> None:
        self.path = folder / "scalars.csv"
        if resume is not None and self.path.exists():
            self._truncate(*resume)
        if not self.path.exists():
            write_atomic(self.path, ",".join(CSV_HEADER) + "\n")

    def _truncate(self, task: int, steps_done: int) -> None:
        keep = io.StringIO()
        writer = csv.writer(keep, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for row in csv.DictReader(self.path.read_text(errors="replace").splitlines()):
            try:
                t, s = int(row["task"]), row["step"]
                float(row["value"])
            except (KeyError, TypeError, ValueError):
                continue  # the header, or a line a dying process left unfinished
            if t < task or (t == task and s not in ("", None) and int(s) < steps_done):
                writer.writerow([row[k] for k in CSV_HEADER])
        write_atomic(self.path, keep.getvalue())

    def _append(self, rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        with open(self.path, "a") as fh:
            fh.write(buf.getvalue())

    def step(self, task: int, step: int, global_step: int, values: dict[str, float]) -> None:
        self._append([[task, step, global_step, tag, repr(v)] for tag, v in values.items()])

    def accuracy(self, task: int, values: dict[str, float]) -> None:
        self._append([[task, "", "", tag, repr(v)] for tag, v in values.items()])

    def close(self) -> None:
        pass


class TensorBoardBackend:
    def __init__(self, folder: Path, resume_global_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.train = SummaryWriter(str(folder / "tensorboard" / "train"), purge_step=resume_global_step)
        self.eval = SummaryWriter(str(folder / "tensorboard" / "eval"))

    def step(self, task: int, step: int, global_step: int, values: dict[str, float]) -> None:
        for tag, v in values.items():
            self.train.add_scalar(tag, v, global_step)

    def accuracy(self, task: int, values: dict[str, float]) -> None:
        for tag, v in values.items():
            self.eval.add_scalar(tag, v, task + 1)  # x axis: tasks done (0 = before training)

    def close(self) -> None:
        self.train.close()
        self.eval.close()


class WandbBackend:
    def __init__(self, folder: Path, run_id: str, name: str, config: dict[str, Any]) -> None:
        import os

        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "clbench"), id=run_id, name=name,
                                  resume="allow", dir=str(folder), config=config, reinit="create_new")
        except Exception as exc:  # noqa: BLE001 - no login, no network, bad project: wandb's own reason
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise UserError(f"the wandb logger could not start a run ({reason}); log in with `wandb login`, or "
                            "set WANDB_MODE=offline to write it locally") from None
        self.run.define_metric("tasks_done")
        self.run.define_metric("accuracy/*", step_metric="tasks_done")
        self.last_step = 0

    def step(self, task: int, step: int, global_step: int, values: dict[str, float]) -> None:
        self.last_step = global_step
        self.run.log({**values, "task": task}, step=global_step)

    def accuracy(self, task: int, values: dict[str, float]) -> None:
        self.run.log({**values, "tasks_done": task + 1}, step=self.last_step)

    def close(self) -> None:
        self.run.finish()


class RunLoggers:
    """The run's loggers behind one engine-facing object (a no-op without any)."""

    def __init__(self, names: Sequence[str], run_dir: RunDir, config: dict[str, Any],
                 resume: tuple[int, int, int] | None) -> None:
        """``resume``: (task, steps of it done, cumulative global step) of the resume point, or None (fresh)."""
        check_loggers(names)
        folder = run_dir.path / "loggers"
        self.backends: list[Backend] = []
        for name in names:
            if name == "csv":
                self.backends.append(CsvBackend(folder, None if resume is None else resume[:2]))
            elif name == "tensorboard":
                self.backends.append(TensorBoardBackend(folder, None if resume is None else resume[2]))
            elif name == "wandb":
                run_id = f"{run_dir.path.parent.parent.name}-{run_dir.path.parent.name}-{run_dir.path.name}"
                self.backends.append(WandbBackend(folder, run_id.replace("/", "-")[:120], run_id, config))

    def step(self, task: int, step: int, global_step: int, values: dict[str, float]) -> None:
        clean = {f"train/{k}": float(v) for k, v in values.items() if math.isfinite(float(v))}
        for backend in self.backends:
            backend.step(task, step, global_step, clean)

    def accuracy(self, task: int, task_names: Sequence[str], row: Sequence[float]) -> None:
        """Accuracy row after ``task`` (-1: before training), one value per task evaluated."""
        clean = {f"accuracy/{name}": float(a) for name, a in zip(task_names, row, strict=True) if math.isfinite(a)}
        for backend in self.backends:
            backend.accuracy(task, clean)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []
