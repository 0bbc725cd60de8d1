"""Every baseline runs end to end through the engine: 2 smoke tasks x 3 iterations, logs its own loss terms."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from clbench.benchmark import BenchmarkDef
from clbench.engine import Engine
from clbench.registry import METHODS
from clbench.runner import resolve

# method -> (config overrides, loss terms its training log must show)
CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "finetune": ({}, set()),
    "lwf": ({}, {"ce", "distill_image", "distill_text"}),
    "lwf_vr": ({"num_sentences": 20}, {"ce", "distill_image", "distill_text"}),
    "icarl": ({"memory_size": 30, "replay_batch_size": 8, "replay_weight": 1.0},
              {"ce", "replay", "distill_image", "distill_text"}),
    "wise_ft": ({}, set()),
    "magmax": ({}, set()),
    "condu": ({}, set()),
    "condu_lora": ({"rank": 4}, set()),
    "l2": ({}, {"ce", "l2"}),
    "ewc": ({"fisher_batches": 2}, {"ce", "ewc"}),
    "zscl": ({"avg_freq": 2, "ref_batch_size": 5}, {"ce", "zscl_image", "zscl_text", "l2"}),
}


def run_method(method: str, bench: BenchmarkDef, out: Path, overrides: dict[str, Any]) -> Path:
    layers = [bench.defaults, {"train": {"iterations": 3, "warmup": 1, "eval_initial": False, "log_every": 1},
                               method: overrides}]
    cfg = resolve("smoke", method, 0, layers)
    base = METHODS.get(method)
    returned: list[dict[str, Any]] = []

    class Spy(base):  # type: ignore[misc, valid-type]
        def training_step(self, *args: Any) -> Any:
            out = super().training_step(*args)
            returned.append(out)
            return out

    result = Engine(cfg, bench, Spy, out, device="cpu", quiet=True).run()
    # no host-device sync in the step: detached 0-dim tensors, made numbers by the engine on logged steps only
    assert returned and all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
                            for logs in returned for v in logs.values()), returned[-1]
    assert all(math.isfinite(v) for v in result.record.array().ravel()), result.record.rows
    assert set(result.metrics) >= {"transfer", "avg", "last"}
    return result.run_dir.path


@pytest.mark.parametrize("method", sorted(CASES))
def test_method_runs_two_tasks(method: str, smoke_two_tasks: BenchmarkDef, reference_files: tuple[Path, Path],
                               tmp_path: Path) -> None:
    overrides, terms = CASES[method]
    if method == "zscl":
        overrides = {**overrides, "ref_images": str(reference_files[0]), "ref_texts": str(reference_files[1])}
    run_dir = run_method(method, smoke_two_tasks, tmp_path, overrides)
    steps = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [s for s in steps if "step" in s]
    logged = set().union(*(s.keys() for s in steps if s["task"] == 1))  # task 2 has a teacher / memory / Fisher
    assert terms <= logged, (terms, logged)
    assert all(math.isfinite(s["loss"]) for s in steps)


@pytest.mark.parametrize("method", ["finetune", "ewc", "wise_ft"])
def test_channels_last_is_results_neutral(method: str, smoke_two_tasks: BenchmarkDef, tmp_path: Path) -> None:
    """``train.channels_last`` stores the image tower's conv weights channels-last and changes nothing else: the
    accuracy matrices and logged losses of 2 tasks x 3 steps equal the default layout's to float rounding
    (parameter arithmetic included: EWC's Fisher penalty, WiSE-FT's weight averaging)."""
    from clbench.engine import Engine as _Engine

    overrides, _ = CASES[method]
    layouts: dict[bool, Any] = {}
    for on in (False, True):
        layers = [smoke_two_tasks.defaults, {"train": {"iterations": 3, "warmup": 1, "eval_initial": False,
                                                       "log_every": 1, "channels_last": on}, method: overrides}]
        cfg = resolve("smoke", method, 0, layers)
        seen: list[bool] = []

        class Spy(METHODS.get(method)):  # type: ignore[misc, valid-type]
            def training_step(self, *args: Any, _seen: list[bool] = seen) -> Any:
                weight = self.model.visual.conv1.weight  # the ViT's patch embedding
                _seen.append(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())
                return super().training_step(*args)

        result = _Engine(cfg, smoke_two_tasks, Spy, tmp_path / str(on), device="cpu", quiet=True).run()
        assert seen and all(s == on for s in seen)  # the option reached the model the method trains
        steps = [json.loads(line) for line in (result.run_dir.path / "log.jsonl").read_text().splitlines()]
        layouts[on] = (result.record.array(), [s["loss"] for s in steps if "step" in s])
    (plain, plain_loss), (last, last_loss) = layouts[False], layouts[True]
    assert torch.allclose(torch.tensor(last), torch.tensor(plain), atol=1e-6, rtol=0), (plain, last)
    assert last_loss == pytest.approx(plain_loss, rel=1e-5, abs=1e-6)
