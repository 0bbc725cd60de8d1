"""The engine on the in-memory smoke benchmark: run dirs, determinism, resume after a kill, caches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from clbench.engine import Engine
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from clbench.store import RunDir, find_runs
from tests.cli_runner import REPO, invoke


def make_engine(out: Path, method: str = "finetune", seed: int = 0, overrides: tuple[str, ...] = ()) -> Engine:
    layers = config_layers("smoke", [method], None, list(overrides))
    cfg = resolve("smoke", method, seed, layers)
    return Engine(cfg, BENCHMARKS.get("smoke"), METHODS.get(method), out, device="cpu", quiet=True)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    import _pytest.capture

    capture = _pytest.capture.CaptureFixture(_pytest.capture.SysCapture, None, _ispytest=True)
    capture._start()
    try:
        result = invoke(capture, "run", "--methods", "zeroshot,finetune", "--benchmark", "smoke",
                        "--out", str(out), "--quiet")
    finally:
        capture.close()
    return out, result


def test_run_writes_complete_run_dirs_and_prints_table(smoke_results):
    out, result = smoke_results
    assert result.returncode == 0, result.stderr
    assert "| zeroshot |" in result.stdout and "| finetune |" in result.stdout and "transfer" in result.stdout
    runs = find_runs(out)
    assert sorted(r.read_run()["method"] for r in runs) == ["finetune", "zeroshot"]
    for run in runs:
        files = {p.name for p in run.path.iterdir()}
        assert {"run.json", "config.yaml", "environment.json", "matrix.csv", "matrix.json", "metrics.json",
                "log.jsonl", "checkpoint.pt"} <= files
        info = run.read_run()
        assert info["status"] == "complete" and info["completed_tasks"] == 3 and info["schema_version"] == 1
        assert info["tasks"] == ["alpha", "beta", "gamma"]
        env = json.loads((run.path / "environment.json").read_text())
        assert env["packages"]["torch"] and "git_sha" in env and env["device"]["type"] == "cpu"
        record = run.read_matrix()
        assert record.array().shape == (3, 3) and np.isfinite(record.array()).all()
        metrics = json.loads((run.path / "metrics.json").read_text())
        assert metrics["complete"] and set(metrics["metrics"]) == {"transfer", "avg", "last", "bwt", "forgetting"}
        header = (run.path / "matrix.csv").read_text().splitlines()[0]
        assert header == "alpha,beta,gamma"
        ckpt = torch.load(run.checkpoint_path, weights_only=True)
        assert ckpt["completed_tasks"] == 3


def test_zeroshot_rows_repeat_and_finetune_learns(smoke_results):
    out, _ = smoke_results
    by_method = {r.read_run()["method"]: r.read_matrix() for r in find_runs(out)}
    zs = by_method["zeroshot"].array()
    assert (zs == zs[0]).all()
    ft = by_method["finetune"].array()
    assert np.diag(ft).mean() > zs.diagonal().mean() + 20  # learned each task when trained on it


def test_same_seed_same_matrix_and_other_seed_differs(tmp_path):
    a = make_engine(tmp_path / "a").run().record.array()
    b = make_engine(tmp_path / "b").run().record.array()
    c = make_engine(tmp_path / "c", seed=1).run().record.array()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_logit_scale_frozen_and_not_trained(tmp_path):
    engine = make_engine(tmp_path)
    result = engine.run()
    ckpt = torch.load(result.run_dir.checkpoint_path, weights_only=True)
    from clbench.models import load_model

    fresh = load_model("clbench-tiny", None)
    # the checkpoint keeps only tensors that differ from the pretrained ones: an unchanged logit_scale is left out
    assert "logit_scale" not in ckpt["model"]
    assert "visual.conv1.weight" in ckpt["model"]  # trained
    assert fresh.model.logit_scale.requires_grad is False


def test_existing_incomplete_run_needs_resume_or_force(tmp_path, capsys):
    engine = make_engine(tmp_path)
    engine.run_dir.write_run({"status": "running", "completed_tasks": 1, "tasks": ["a", "b", "c"]})
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--out", str(tmp_path), "--quiet")
    assert out.returncode == 2 and "--resume" in out.stderr and "--force" in out.stderr


def test_text_heads_encoded_once_per_model_state(tmp_path):
    from clbench.context import MethodContext
    from clbench.models import load_model

    loaded = load_model("clbench-tiny", None)
    ctx = MethodContext(loaded.model, loaded.tokenizer, torch.device("cpu"), 0.2)
    names, templates = ("a", "b"), ("x {}", "y {}")
    first = ctx.text_features(loaded.model, names, templates)
    for _ in range(5):
        assert ctx.text_features(loaded.model, names, templates) is first
    assert ctx.text_heads.encodes == 1
    ctx.weights_changed()
    ctx.text_features(loaded.model, names, templates)
    assert ctx.text_heads.encodes == 2


def test_evaluation_reuses_text_heads_within_a_row(tmp_path, monkeypatch):
    """A whole run encodes each task's head once per evaluation row, never per batch."""
    import clbench.text_heads as th

    calls = []
    original = th.class_embeddings

    def counting(*args, **kwargs):
        calls.append(tuple(args[2]))
        return original(*args, **kwargs)

    monkeypatch.setattr(th, "class_embeddings", counting)
    make_engine(tmp_path, method="zeroshot").run()
    # zeroshot: one initial evaluation row (3 heads) and no more: unchanged weights reuse it
    assert len(calls) == 3


def _wait_for(predicate, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


@pytest.mark.slow
def test_resume_after_kill_gives_the_uninterrupted_matrix(tmp_path):
    args = ["--methods", "finetune", "--benchmark", "smoke", "--set", "train.iterations=60", "--quiet"]
    reference = make_engine(tmp_path / "ref", overrides=("train.iterations=60",)).run().record.array()

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "run", *args, "--out", str(out)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def mid_second_task() -> bool:
        runs = find_runs(out)
        if not runs or not (runs[0].path / "log.jsonl").exists():
            return False
        lines = (runs[0].path / "log.jsonl").read_text().splitlines()
        return any(json.loads(ln).get("task") == 1 and "step" in json.loads(ln) for ln in lines if ln)

    try:
        _wait_for(mid_second_task, timeout=240)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = find_runs(out)[0]
    assert run.read_run()["status"] == "running" and run.read_run()["completed_tasks"] == 1

    resumed = subprocess.run([sys.executable, "-m", "clbench.cli", "run", *args, "--out", str(out), "--resume"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    run = RunDir(run.path)
    assert run.read_run()["status"] == "complete"
    assert np.array_equal(run.read_matrix().array(), reference)
    tasks_logged = [json.loads(ln)["task"] for ln in (run.path / "log.jsonl").read_text().splitlines() if ln]
    assert tasks_logged == sorted(tasks_logged), "the interrupted task's log lines were replaced, not duplicated"


def test_a_resumed_run_rebuilds_the_same_random_init_initial_model(tmp_path, monkeypatch):
    """smoke's CLIP is a random init: a resumed run's initial model (reloaded, not copied) must be the same draw."""
    seen: list[torch.Tensor] = []
    loaded: list[torch.Tensor] = []

    class Probe(METHODS.get("finetune")):
        def before_run(self):
            loaded.append(self.model.visual.conv1.weight.detach().clone())

        def after_task(self, task):  # after training started: the engine reloads the pretrained model
            seen.append(self.ctx.initial_model().visual.conv1.weight.detach().clone())

    cfg = resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, ["train.iterations=2"]))

    def engine(out: Path) -> Engine:
        return Engine(cfg, BENCHMARKS.get("smoke"), Probe, out, device="cpu", quiet=True)

    engine(tmp_path / "ref").run()
    reference = list(seen)
    assert all(torch.equal(w, loaded[0]) for w in reference)  # the reload is the first load's draw

    def stop(self, task):
        if task.index == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Probe, "before_task", stop)
        with pytest.raises(KeyboardInterrupt):
            engine(tmp_path / "cut").run()
    seen.clear()
    engine(tmp_path / "cut").run(resume=True)
    assert len(reference) == 3 and len(seen) == 1 and torch.equal(seen[0], reference[2])


def test_parallel_jobs_give_the_sequential_matrices(smoke_results, tmp_path, capsys):
    out, _ = smoke_results
    result = invoke(capsys, "run", "--methods", "zeroshot,finetune", "--benchmark", "smoke", "--out", str(tmp_path),
                    "--quiet", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert "| finetune | 1 |" in result.stdout
    sequential = {r.read_run()["method"]: r.read_matrix().array() for r in find_runs(out)}
    parallel = {r.read_run()["method"]: r.read_matrix().array() for r in find_runs(tmp_path)}
    assert sequential.keys() == parallel.keys()
    for method, matrix in sequential.items():
        assert np.array_equal(matrix, parallel[method]), method


def _stat_fields(pid: int | str) -> list[str] | None:
    """Linux: the fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...); None when gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    """Linux: the pids whose parent is ``pid``."""
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and (fields := _stat_fields(e.name)) is not None and int(fields[1]) == pid]


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the worker death signal is Linux-only")
def test_killed_parallel_runner_leaves_no_worker_behind(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "run", "--methods", "finetune", "--seeds", "0,1",
                             "--benchmark", "smoke", "--set", "train.iterations=100000", "--jobs", "2", "--quiet",
                             "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(find_runs(out)) == 2 and all((r.path / "log.jsonl").exists() for r in find_runs(out)),
                  timeout=240)
        workers = [p for p in _children(proc.pid) if "spawn_main" in (Path("/proc") / str(p) / "cmdline").read_text()]
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _wait_for(lambda: not any(_alive(p) for p in workers), timeout=30)


class _CountedScalar:
    """A step log value that counts how often the engine turns it into a number (a device sync on CUDA)."""

    conversions = 0

    def __float__(self) -> float:
        type(self).conversions += 1
        return 1.0


def test_step_logs_become_numbers_only_on_logged_steps(tmp_path):
    from clbench.methods.finetune import Finetune

    class Lazy(Finetune):
        def training_step(self, batch, task, step):  # noqa: ANN001, ANN201
            super().training_step(batch, task, step)
            return {"loss": _CountedScalar()}

    layers = config_layers("smoke", ["finetune"], None, ["train.iterations=25", "train.log_every=10"])
    cfg = resolve("smoke", "finetune", 0, layers)
    _CountedScalar.conversions = 0
    result = Engine(cfg, BENCHMARKS.get("smoke"), Lazy, tmp_path, device="cpu", quiet=True).run()
    logged = [json.loads(ln) for ln in (result.run_dir.path / "log.jsonl").read_text().splitlines()]
    steps = [(r["task"], r["step"]) for r in logged if "step" in r]
    assert steps == [(t, s) for t in range(3) for s in (0, 10, 20, 25)]  # 25 + 1 steps (train.final_step)
    assert _CountedScalar.conversions == len(steps) and all(r["loss"] == 1.0 for r in logged if "step" in r)
