"""Through the engine: RAIL fits without SGD, its Transfer == zero-shot Transfer (MTIL); X-TAIL's union head
works for every kind of method (zero-shot, fine-tuned, analytic, merged, decoupled)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clbench import metrics
from clbench.benchmark import Benchmark, BenchmarkDef
from clbench.engine import Engine, RunResult
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import resolve


def run(method: str, bench: BenchmarkDef, out: Path, **method_cfg: Any) -> RunResult:
    layers = [bench.defaults, {"train": {"iterations": 3, "warmup": 1, "eval_initial": False, "log_every": 1},
                               method: {"hidden_dim": 256, **method_cfg} if method.startswith("rail") else {}}]
    cfg = resolve(bench.name, method, 0, layers)
    return Engine(cfg, bench, METHODS.get(method), out, device="cpu", quiet=True).run()


@pytest.fixture(scope="module")
def smoke() -> BenchmarkDef:
    return BENCHMARKS.get("smoke")


@pytest.fixture(scope="module")
def smoke_xtail(smoke: BenchmarkDef) -> BenchmarkDef:
    """``smoke`` read the X-TAIL way: same data, every test image scored over all 9 classes."""

    def build(options: Any, transforms: Any) -> Benchmark:
        return dataclasses.replace(smoke.build(options, transforms), protocol="xtail")

    return dataclasses.replace(smoke, protocol="xtail", build=build)


@pytest.mark.parametrize("method", ["rail", "rail_dual"])
def test_rail_transfer_equals_zero_shot_transfer(method: str, smoke: BenchmarkDef, tmp_path: Path) -> None:
    zs = run("zeroshot", smoke, tmp_path)
    rail = run(method, smoke, tmp_path)
    a, z = rail.record.array(), zs.record.array()
    # future tasks' columns (strict upper triangle) are pure zero-shot: RAIL never fuses an unlearned domain
    upper = np.triu_indices(a.shape[0], k=1)
    np.testing.assert_array_equal(a[upper], z[upper])
    assert rail.metrics["transfer"] == zs.metrics["transfer"] == metrics.transfer(z)
    assert rail.metrics["last"] > zs.metrics["last"] + 10  # it did learn the (random-pattern) tasks
    assert np.isfinite(rail.record.initial).all()  # a fitting method gets its zero-shot reference row
    logged = (rail.run_dir.path / "log.jsonl").read_text()
    assert '"step"' not in logged  # no optimizer iterations ran


@pytest.mark.parametrize("method", ["zeroshot", "finetune", "rail", "magmax", "condu"])
def test_xtail_runs_every_method_over_the_union_head(method: str, smoke_xtail: BenchmarkDef,
                                                     tmp_path: Path) -> None:
    result = run(method, smoke_xtail, tmp_path)
    assert result.protocol == "xtail"
    a = result.record.array()
    assert a.shape == (3, 3) and np.isfinite(a).all()  # every task scored after every step
    assert set(result.metrics) == {"transfer", "avg", "last", "bwt", "forgetting"}
    assert result.metrics["transfer"] == pytest.approx(metrics.transfer(a))
