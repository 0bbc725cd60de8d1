"""Run directories: one folder per (benchmark, method, config, seed), written atomically.

Layout (schema version 1), read by ``clbench report`` and by other tools::

    <out>/<benchmark>/<method>/<run_id>/
        run.json          schema_version, run_id, benchmark, method, seed, protocol, tasks, status
                          ("running" | "complete"), completed_tasks, config_hash, created, updated, wall_time_s,
                          cost (seconds / images / images_per_s per phase generation, training, evaluation;
                          peak_host_memory_mb, peak_gpu_memory_mb: see ``clbench.cost``),
                          parameters {total, trainable, added} (parameter counts of the trained model)
        config.yaml       the fully resolved configuration (benchmark, model, train, method, seed)
        environment.json  python / package versions, git sha, device, platform
        matrix.csv        accuracy matrix (%): header = task names in training order, one row per completed
                          task (row t = after training task t); empty cell = not evaluated
        matrix.json       {"tasks", "rows" (T lists, null = pending; NaN cells stored as null), "initial"
                          (accuracy before any training or null), "counts" (test-set sizes), "auc" (like rows,
                          for protocols with AUC, else null)}
        metrics.json      {"protocol", "complete", "metrics": {name: value}} (metrics of the rows so far)
        log.jsonl         one JSON object per logged training step / evaluation
        checkpoint.pt     model tensors that differ from (or are absent in) the pretrained weights + method +
                          optimizer-free state after the last completed task
                          (``torch.load(..., weights_only=True)``)
        checkpoint-step.pt  mid-task checkpoint of the task after the last completed one (``train.checkpoint_every``
                          / ``checkpoint_every_s``): changed model tensors, optimizer, grad scaler, the method's
                          ``step_state_dict``, RNG states, step index, and the record/cost of checkpoint.pt's
                          moment. Only valid while its ``task`` equals checkpoint.pt's ``completed_tasks``
                          (0 without checkpoint.pt); a stale one is ignored and deleted on resume
        .lock             held (``flock``) by the one process writing the run; names its pid and host

Every file but the log is replaced whole (temporary file + fsync + rename), with the permissions the umask
gives a new file. The checkpoint is written before the result files; resume rewrites the result files from
it, so they are never behind the checkpoint for long. A mid-task checkpoint changes no result file: it only
lets the task in progress continue at its next step (resume still starts from checkpoint.pt's task boundary,
replays ``before_task`` and then loads the step state on top).

``run_id`` = ``seed<seed>-<first 8 hex of the config hash>``: the same configuration maps to the same folder,
which is what ``--resume`` continues.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clbench.errors import UserError

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
TEMP_SUFFIX = ".tmp"


def new_file_mode() -> int:
    """The mode ``open()`` would give a new file under the process umask (read by setting it and putting it
    back: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_error(path: Path, exc: OSError, size: int | None = None) -> UserError:
    """A failed write as one line that names the path (and, for a full disk, the space it needed)."""
    if exc.errno == errno.ENOSPC:
        need = f" needs {size:,} bytes but" if size is not None else ""
        try:
            free = f" {shutil.disk_usage(path.parent if path.parent.exists() else path.anchor).free:,} bytes are free"
        except OSError:
            free = " the device is full"
        return UserError(f"no space left on device: writing {path}{need}{free}; free some space (earlier results "
                         "are intact) and rerun with --resume")
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return UserError(f"cannot write {path}: {reason}{where}; choose a writable location")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, an fsync and a rename.

    The file gets the permissions the umask gives a new file (``mkstemp`` alone would make it 0600, unreadable
    to the rest of a team sharing a results folder). OS failures become one-line :class:`UserError` s.
    """
    raw = data.encode() if isinstance(data, str) else data
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), new_file_mode())
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc, len(raw)) from None
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
        """``<out>/<benchmark>/<method>/seed<seed>-<hash8>``; names that would leave ``out`` are refused."""
        for kind, name in (("benchmark", benchmark), ("method", method)):
            if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name != name.strip():
                raise UserError(f"{kind} name {name!r} cannot name a results folder (no '/', '\\', '..' or "
                                "surrounding spaces); rename the plugin's entry point")
        return Path(out) / benchmark / method / f"seed{seed}-{cfg_hash[:8]}"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def step_checkpoint_path(self) -> Path:
        """The mid-task checkpoint (see the module docstring)."""
        return self.path / "checkpoint-step.pt"

    def exists(self) -> bool:
        return (self.path / RUN_FILE).is_file()

    def _read_json(self, name: str) -> dict[str, Any]:
        """A JSON object of the run folder, or a one-line error that says which file is broken."""
        path = self.path / name
        try:
            obj = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise UserError(f"{path} is unreadable ({reason}); delete the run folder or rerun with --force") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path} does not hold a JSON object; delete the run folder or rerun with --force")
        return obj

    def read_run(self) -> dict[str, Any]:
        info = self._read_json(RUN_FILE)
        if not isinstance(info.get("tasks", []), list) or not isinstance(info.get("completed_tasks", 0), int):
            raise UserError(f"{self.path / RUN_FILE} is not a clbench run record; delete the run folder or rerun "
                            "with --force")
        return info

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder's exclusive lock (``flock`` on ``.lock``) for the ``with`` block.

        A second process asking for it gets a one-line error naming the holder, so two identical commands, or a
        ``--resume`` started while the original still trains, never interleave their writes. The kernel drops
        the lock when the holder dies, whatever kills it.
        """
        import fcntl

        path = self.path / LOCK_FILE
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_error(path, exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise UserError(f"run {self.path} is in use by {holder}; wait for it to finish, or stop it "
                                "and rerun with --resume") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Delete every file of the run (a fresh start) but the lock this process holds."""
        if not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry.name == LOCK_FILE:
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as exc:
                raise write_error(entry, exc) from None

    def remove_temporaries(self) -> list[Path]:
        """Delete the ``.<name>.*.tmp`` files a killed writer left (a checkpoint's can be gigabytes)."""
        removed = []
        for entry in self.path.glob(f".*{TEMP_SUFFIX}"):
            entry.unlink(missing_ok=True)
            removed.append(entry)
        return removed

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
        path = self.path / "matrix.json"
        obj = self._read_json("matrix.json")
        try:
            return MatrixRecord.from_json(obj)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path} is not a clbench accuracy matrix; delete the run folder or rerun with "
                            "--force") from None

    def write_metrics(self, protocol: str, complete: bool, metrics: dict[str, float]) -> None:
        clean = {k: (None if not math.isfinite(v) else v) for k, v in metrics.items()}
        write_json(self.path / "metrics.json", {"protocol": protocol, "complete": complete, "metrics": clean})

    def append_log(self, record: dict[str, Any]) -> None:
        """Append one JSON line (a line is written whole by one ``write`` call)."""
        path = self.path / "log.jsonl"
        line = json.dumps(record) + "\n"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(line)
        except OSError as exc:
            raise write_error(path, exc, len(line)) from None

    def truncate_log(self, completed_tasks: int, steps_done: int = 0) -> None:
        """On resume, keep only the log lines of completed tasks (the interrupted task replays its own), plus
        the step lines of the interrupted task before ``steps_done`` (a mid-task checkpoint's resume point).

        A line a dying process left unfinished is dropped too.
        """
        log = self.path / "log.jsonl"
        if not log.exists():
            return
        keep = []
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("task", 0), int):
                continue
            task, step = record.get("task", 0), record.get("step")
            if task < completed_tasks or (task == completed_tasks and isinstance(step, int) and step < steps_done):
                keep.append(line)
        write_atomic(log, "".join(ln + "\n" for ln in keep))


class FollowerRunDir(RunDir):
    """The run folder as a rank other than 0 of a data-parallel run sees it (``clbench.distributed``): the same
    paths, but every write (results, log, config, lock, clearing) does nothing. Rank 0 alone writes the run
    store; a follower reads only the checkpoint rank 0 wrote, on resume."""

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        yield

    def clear(self) -> None:
        pass

    def remove_temporaries(self) -> list[Path]:
        return []

    def write_run(self, info: dict[str, Any]) -> None:
        pass

    def write_config(self, config: dict[str, Any]) -> None:
        pass

    def write_environment(self, env: dict[str, Any]) -> None:
        pass

    def write_matrix(self, record: MatrixRecord) -> None:
        pass

    def write_metrics(self, protocol: str, complete: bool, metrics: dict[str, float]) -> None:
        pass

    def append_log(self, record: dict[str, Any]) -> None:
        pass

    def truncate_log(self, completed_tasks: int, steps_done: int = 0) -> None:
        pass


def find_runs(root: Path) -> list[RunDir]:
    """Every run folder (holding run.json) below ``root``."""
    return sorted(RunDir(p.parent) for p in Path(root).rglob(RUN_FILE)) if Path(root).exists() else []
