"""Experiment loggers: csv / tensorboard / wandb mirror the run store's step logs and accuracy rows; a resumed
run's csv equals an uninterrupted run's; unknown loggers and missing extras are one-line errors."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from clbench.engine import Engine
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from tests.cli_runner import invoke

SETTINGS = ("train.iterations=6", "train.log_every=2", "train.checkpoint_every=2")


def engine(out: Path, loggers: str, cls: type | None = None) -> Engine:
    layers = config_layers("smoke", ["finetune"], None, [*SETTINGS, f"train.loggers=[{loggers}]"])
    cfg = resolve("smoke", "finetune", 0, layers)
    return Engine(cfg, BENCHMARKS.get("smoke"), cls or METHODS.get("finetune"), out, device="cpu", quiet=True)


def csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "loggers" / "scalars.csv") as fh:
        return list(csv.DictReader(fh))


def test_csv_logger_mirrors_the_step_log_and_the_matrix(tmp_path: Path) -> None:
    result = engine(tmp_path, "csv").run()
    run = result.run_dir.path
    rows = csv_rows(run)
    log = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "step" in e]
    assert [e["step"] for e in steps if e["task"] == 0] == [0, 2, 4, 6]  # log_every 2 and the last step
    for e in steps:
        got = {r["tag"]: float(r["value"]) for r in rows if r["task"] == str(e["task"]) and r["step"] == str(e["step"])}
        assert got["train/loss"] == e["loss"] and got["train/lr"] == e["lr"]
        if e["step"] > 0:
            assert got["train/images_per_s"] > 0
        # global step = the task's offset (7 steps per task: iterations 6 + the final step) + step
        glob = {r["global_step"] for r in rows if r["task"] == str(e["task"]) and r["step"] == str(e["step"])}
        assert glob == {str(7 * e["task"] + e["step"])}
    accuracy = [r for r in rows if r["step"] == ""]
    names = result.record.tasks
    for t, row in enumerate(result.record.rows):
        assert [float(r["value"]) for r in accuracy if r["task"] == str(t)] == row
    assert [float(r["value"]) for r in accuracy if r["task"] == "-1"] == result.record.initial
    assert {r["tag"] for r in accuracy} == {f"accuracy/{n}" for n in names}


class Interrupted(Exception):
    pass


def test_resumed_run_csv_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    whole = engine(tmp_path / "whole", "csv").run().run_dir.path
    base = METHODS.get("finetune")

    class Cut(base):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, task: Any, step: int) -> Any:
            if (task.index, step) == (1, 5):  # logged step 4 is written after the checkpoint of step 3
                raise Interrupted
            return super().training_step(batch, task, step)

    with pytest.raises(Interrupted):
        engine(tmp_path / "cut", "csv", Cut).run()
    cut = engine(tmp_path / "cut", "csv").run_dir.path
    assert any(r["task"] == "1" and r["step"] == "4" for r in csv_rows(cut))  # logged after the checkpoint
    engine(tmp_path / "cut", "csv").run(resume=True)

    def values(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:  # images/s is a timing (and needs a
        # previous logged step of the same process: the resumed run's first logged step has none)
        return [(r["task"], r["step"], r["global_step"], r["tag"], r["value"]) for r in rows
                if r["tag"] != "train/images_per_s"]

    assert values(csv_rows(cut)) == values(csv_rows(whole))


def test_unknown_logger_and_missing_extra_are_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    args = ("run", "--methods", "finetune", "--benchmark", "smoke", "--out", str(out), "--quiet")
    bad = invoke(capsys, *args, "--logger", "csv,mlflow")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown logger 'mlflow'" in bad.stderr
    swept = invoke(capsys, "sweep", "smoke", "--out", str(out), "--logger", "tensorbored")
    assert swept.returncode == 2 and "unknown logger 'tensorbored'" in swept.stderr

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    missing = invoke(capsys, *args, "--logger", "csv,wandb")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "pip install 'clbench[loggers]'" in missing.stderr and "wandb" in missing.stderr
    assert not out.exists(), "nothing is written before the error"


def test_tensorboard_logger_writes_the_steps_and_accuracies(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the loggers extra is not installed (pip install 'clbench[loggers]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = engine(tmp_path, "tensorboard").run()
    folder = result.run_dir.path / "loggers" / "tensorboard"
    train, evals = EventAccumulator(str(folder / "train")).Reload(), EventAccumulator(str(folder / "eval")).Reload()
    log = [json.loads(ln) for ln in (result.run_dir.path / "log.jsonl").read_text().splitlines()]
    losses = [(7 * e["task"] + e["step"], e["loss"]) for e in log if "step" in e]
    assert [(ev.step, pytest.approx(ev.value)) for ev in train.Scalars("train/loss")] == losses
    first = result.record.tasks[0]
    curve = [result.record.initial[0]] + [row[0] for row in result.record.rows]
    assert [(ev.step, pytest.approx(ev.value)) for ev in evals.Scalars(f"accuracy/{first}")] == list(enumerate(curve))


def test_wandb_logger_offline_writes_a_local_run(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb", reason="the loggers extra is not installed (pip install 'clbench[loggers]')")
    monkeypatch.setenv("WANDB_MODE", "offline")  # never the network
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = engine(tmp_path, "wandb").run()
    runs = list((result.run_dir.path / "loggers" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(f"smoke-finetune-{result.run_dir.path.name}")
    assert list(runs[0].glob("*.wandb")) and list(runs[0].glob("*.wandb"))[0].stat().st_size > 0
