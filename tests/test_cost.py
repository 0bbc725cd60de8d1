"""Cost accounting: run.json's ``cost`` block counts what was done, and a resumed run adds up its parts."""

from __future__ import annotations

import pytest

from clbench.engine import Engine
from clbench.methods.finetune import Finetune
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from clbench.store import RunDir

SMOKE_TEST_IMAGES = (3 + 4 + 2) * 8  # smoke: classes per task x test_per_class
ITERS, BATCH = 4, 16


def engine(out, method_cls=None) -> Engine:
    layers = config_layers("smoke", ["finetune"], None, [f"train.iterations={ITERS}"])
    cfg = resolve("smoke", "finetune", 0, layers)
    return Engine(cfg, BENCHMARKS.get("smoke"), method_cls or METHODS.get("finetune"), out, device="cpu", quiet=True)


def test_cost_counts_images_per_phase(tmp_path):
    cost = engine(tmp_path).run().run_dir.read_run()["cost"]
    phases = cost["phases"]
    assert phases["training"]["images"] == 3 * (ITERS + 1) * BATCH  # ITERS + 1 steps per task (train.final_step)
    assert phases["evaluation"]["images"] == 4 * SMOKE_TEST_IMAGES  # zero-shot row + one row per task
    assert phases["generation"] == {"seconds": 0.0, "images": 0, "images_per_s": None}  # finetune: no services
    for name in ("training", "evaluation"):
        p = phases[name]
        # seconds are stored to the millisecond, so the rate was computed from a value within 0.5 ms of it
        low, high = p["images"] / (p["seconds"] + 5e-4), p["images"] / max(p["seconds"] - 5e-4, 1e-9)
        assert p["seconds"] > 0 and low - 0.01 <= p["images_per_s"] <= high + 0.01
    assert cost["peak_host_memory_mb"] > 50 and cost["peak_gpu_memory_mb"] is None


class Crash(Finetune):
    def before_task(self, task):  # noqa: ANN001, ANN201
        if task.index == 1:
            raise KeyboardInterrupt  # interrupted during the second task
        super().before_task(task)


def test_resumed_run_accumulates_its_cost(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        engine(tmp_path, Crash).run()
    first = engine(tmp_path).run_dir
    before = RunDir(first.path).read_run()["cost"]["phases"]
    assert before["training"]["images"] == (ITERS + 1) * BATCH and before["evaluation"]["images"] == 2 * SMOKE_TEST_IMAGES
    after = engine(tmp_path).run(resume=True).run_dir.read_run()["cost"]["phases"]
    assert after["training"]["images"] == 3 * (ITERS + 1) * BATCH  # the uninterrupted run's counts
    assert after["evaluation"]["images"] == 4 * SMOKE_TEST_IMAGES
    for name in ("training", "evaluation"):
        assert after[name]["seconds"] > before[name]["seconds"]
