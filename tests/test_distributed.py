"""Data-parallel runs (``--nproc``, ``clbench.distributed``): 2 CPU processes over gloo give the single-process
results; only rank 0 touches the run store; bad input is one line, exit 2, before any process starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clbench.data import StepBatches
from clbench.distributed import World
from clbench.engine import Engine
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from clbench.store import RunDir, find_runs
from tests.cli_runner import REPO, invoke

# 23 examples per class: the passes end in short batches of 5, 12 and 14 examples (alpha, beta, gamma), so the
# ranks' shards are unequal at those steps (2 and 3 of 5) and the gradient weights are not 1/2 there.
SETTINGS = ("train.iterations=6", "train.warmup=2", "benchmark.train_per_class=23",
            "gift.synth_backend=procedural", "gift.synth_images_per_task=16")

# Tolerances. Two processes add two half-batch gradients where one process sums the whole batch: the same
# values up to float32 rounding (~1e-7 relative). The accuracy matrices come out equal (asserted exactly: a
# prediction flip would need a test image within ~1e-6 of a decision boundary). AdamW divides by sqrt(v): an
# entry whose gradient is a near-cancelling sum moves by up to a fraction of lr per step whichever way the
# rounding went. The attention key biases are left out (their true gradient is 0, softmax ignores them: both runs
# move them by rounding noise alone, 3e-3 apart after 21 steps); of the other entries 99.9% must agree within
# PARAMETER_ATOL and every one within ADAM_STEP, one step at the smoke lr (1.3e-4 seen). Logged losses: within LOSS_RTOL (GIFT's AWC weights entries by g^2 / mean(g^2), where
# those few entries weigh most: 1.4e-5 relative seen). Without the all-reduce every rank follows its own half
# batch: the losses differ from step 1 on and the parameters by orders of magnitude more.
PARAMETER_ATOL = 1e-6
ADAM_STEP = 1e-3
LOSS_RTOL = 1e-4

# Records every file event of this process under $WATCH_DIR with the process's RANK (spawned ranks inherit the
# environment, so this runs first in each of them).
AUDIT = '''
import os, sys
_root = os.path.realpath(os.environ["WATCH_DIR"])
_log = os.open(os.environ["WATCH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"open": 0, "os.rename": 0, "os.remove": 0, "os.mkdir": 0, "os.truncate": 0, "shutil.rmtree": 0,
           "os.chmod": 0, "os.rmdir": 0}

def _hook(event, args):
    if event not in _EVENTS or not args or isinstance(args[0], int):
        return
    path = os.path.realpath(os.fsdecode(args[0]))
    if not path.startswith(_root):
        return
    kind = event
    if event == "open":
        mode, flags = args[1], args[2]
        kind = "write" if (isinstance(mode, str) and any(c in mode for c in "wax+")) or \\
            (isinstance(flags, int) and flags & _WRITE) else "read"
    os.write(_log, f"{os.environ.get('RANK', 'launcher')}\\t{kind}\\t{path}\\n".encode())

sys.addaudithook(_hook)
'''


def reference_files(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    captions = root / "captions.txt"
    captions.write_text("a red circle\na blue square\ntwo green triangles\na small star\n")
    return root / "images", captions


class Stop(Exception):
    pass


@pytest.mark.slow  # two spawned processes importing torch: ~60 s of CPU
def test_two_processes_give_the_single_process_results_and_only_rank_0_writes(tmp_path: Path, capsys) -> None:
    images, captions = reference_files(tmp_path / "reference")
    settings = [*SETTINGS, f"zscl.ref_images={images}", f"zscl.ref_texts={captions}",
                f"gift.synth_cache={tmp_path / 'synth'}"]
    flags = [x for s in settings for x in ("--set", s)]
    methods = "finetune,zscl,gift"
    one, two = tmp_path / "one", tmp_path / "two"

    # the single-process runs, in this process
    single = invoke(capsys, "run", "--methods", methods, "--benchmark", "smoke", "--out", str(one), "--quiet",
                    "--device", "cpu", *flags)
    assert single.returncode == 0, single.stderr

    # the finetune run stopped inside its second task, after a mid-task checkpoint (step 3 of 7; results-neutral
    # key): the two processes resume it from both checkpoints, which rank 1 reads too
    cfg = resolve("smoke", "finetune", 0, config_layers("smoke", methods.split(","), None,
                                                        [*settings, "train.checkpoint_every=2"]))

    class StopInSecondTask(METHODS.get("finetune")):  # type: ignore[misc, valid-type]
        def training_step(self, batch, task, step):  # noqa: ANN001, ANN201
            if (task.index, step) == (1, 5):
                raise Stop
            return super().training_step(batch, task, step)

    with pytest.raises(Stop):
        Engine(cfg, BENCHMARKS.get("smoke"), StopInSecondTask, two, device="cpu", quiet=True).run()
    stopped = find_runs(two)[0]
    assert stopped.step_checkpoint_path.exists() and stopped.checkpoint_path.exists()

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "events.tsv"
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "WATCH_DIR": str(two), "WATCH_LOG": str(log),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "clbench.cli", "run", "--methods", methods, "--benchmark", "smoke",
                           "--out", str(two), "--nproc", "2", "--resume", "--quiet", "--device", "cpu", *flags],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("| finetune |") == 1  # rank 0 alone prints the table

    runs_one = {r.read_run()["method"]: r for r in find_runs(one)}
    runs_two = {r.read_run()["method"]: r for r in find_runs(two)}
    assert sorted(runs_two) == sorted(runs_one) == sorted(methods.split(","))
    for method, run in runs_two.items():
        assert run.path.name == runs_one[method].path.name  # --nproc is not part of the run's identity
        assert run.read_run()["status"] == "complete"
        a, b = runs_one[method].read_matrix(), run.read_matrix()
        assert a.counts == b.counts and a.initial == b.initial
        np.testing.assert_array_equal(b.array(), a.array())
        lines_a = [json.loads(x) for x in (runs_one[method].path / "log.jsonl").read_text().splitlines()]
        lines_b = [json.loads(x) for x in (run.path / "log.jsonl").read_text().splitlines()]
        assert [(x.get("task"), x.get("step")) for x in lines_a] == [(x.get("task"), x.get("step")) for x in lines_b]
        for x, y in zip(lines_a, lines_b, strict=True):
            for key in x:
                if key not in ("task", "step", "event", "accuracy"):
                    assert y[key] == pytest.approx(x[key], rel=LOSS_RTOL), (method, key, x, y)
        wa = torch.load(runs_one[method].checkpoint_path, weights_only=True)["model"]
        wb = torch.load(run.checkpoint_path, weights_only=True)["model"]
        assert sorted(wa) == sorted(wb)
        diffs = torch.cat([(wa[n] - wb[n]).abs().flatten() if not n.endswith("attn.in_proj_bias") else
                           torch.cat([(wa[n] - wb[n]).abs()[:len(wa[n]) // 3], (wa[n] - wb[n]).abs()[-len(wa[n]) // 3:]])
                           for n in wa])  # without the key biases (q, k, v biases: the middle third)
        assert float(diffs.quantile(0.999)) <= PARAMETER_ATOL and float(diffs.max()) <= ADAM_STEP, method

    events = [line.split("\t") for line in log.read_text().splitlines()]
    by_rank: dict[str, set[tuple[str, str]]] = {}
    for rank, kind, path in events:
        by_rank.setdefault(rank, set()).add((kind, str(Path(path).relative_to(two.resolve()))))
    assert any(kind == "write" for kind, _ in by_rank["0"])
    others = {e for rank, found in by_rank.items() if rank != "0" for e in found}
    finetune_ckpts = {("read", str(p.resolve().relative_to(two.resolve()))) for p in
                      (runs_two["finetune"].checkpoint_path, runs_two["finetune"].step_checkpoint_path)}
    assert others == finetune_ckpts, others  # rank 1 only loaded the checkpoints it resumes from


def test_shards_of_a_step_batch_make_the_whole_batch() -> None:
    whole = StepBatches(69, 16, seed=5, steps=10)
    for size in (1, 2, 3, 16, 20):
        worlds = [World(rank, size) for rank in range(size)]
        parts = [StepBatches(69, 16, seed=5, steps=10, part=lambda n, w=w: w.step_shard(n)[0]) for w in worlds]
        for step in range(10):
            full = whole.batch(step)
            assert whole.size(step) == len(full) == (5 if step % 5 == 4 else 16)
            shares = [w.step_shard(len(full)) for w in worlds]
            assert sum(weight for _, weight in shares) == pytest.approx(1.0)
            got = [draw for p, (_, weight) in zip(parts, shares, strict=True) if weight > 0 for draw in p.batch(step)]
            assert got == full  # contiguous shards, in rank order, with the single-process draw seeds
            for p, (_, weight) in zip(parts, shares, strict=True):
                if weight == 0:  # no example of its own: it runs the step on the last one, contributing nothing
                    assert len(full) < size and p.batch(step) == full[-1:]


@pytest.mark.parametrize(("args", "message"), [
    (("--methods", "finetune", "--nproc", "0"), "--nproc must be at least 1, got 0"),
    (("--methods", "finetune", "--nproc", "3"), "train.batch_size 16 is not divisible by --nproc 3"),
    (("--methods", "finetune,lwf", "--nproc", "2"), "method lwf cannot run with --nproc 2: its text distillation"),
    (("--methods", "moe_adapters", "--nproc", "2"), "method moe_adapters cannot run with --nproc 2"),
    (("--methods", "finetune", "--nproc", "2", "--jobs", "2"), "--jobs and --nproc exclude each other"),
    (("--methods", "finetune", "--nproc", "2", "--device", "cuda:1"), "--device cuda:1 names one GPU"),
])
def test_bad_input_is_one_line_before_any_process_starts(tmp_path: Path, capsys, args: tuple[str, ...],
                                                          message: str) -> None:
    result = invoke(capsys, "run", "--benchmark", "smoke", "--out", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_torchrun_world_size_must_agree_with_nproc(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--out", str(tmp_path),
                    "--nproc", "4")
    assert result.returncode == 2 and "--nproc 4 disagrees with WORLD_SIZE=2" in result.stderr
    assert World.from_env() == World(rank=1, size=2, local_rank=1)


def test_every_method_declares_whether_it_runs_data_parallel() -> None:
    refusing = {name for name in METHODS.names() if not METHODS.get(name).distributed}
    assert refusing == {"lwf", "lwf_vr", "moe_adapters", "diki"}  # diki: not checked yet (the default)
    assert all(METHODS.get(name).distributed_reason for name in refusing)


def test_a_follower_run_dir_writes_nothing(tmp_path: Path) -> None:
    from clbench.store import FollowerRunDir, MatrixRecord

    run = FollowerRunDir(tmp_path / "run")
    with run.lock():
        run.clear()
        run.write_run({"a": 1})
        run.write_config({})
        run.write_environment({})
        run.write_matrix(MatrixRecord.empty(["a"], False))
        run.write_metrics("mtil", False, {})
        run.append_log({"task": 0})
        run.truncate_log(0)
    assert not (tmp_path / "run").exists() and isinstance(run, RunDir)
