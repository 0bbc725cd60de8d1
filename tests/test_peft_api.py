"""The parameter-efficient plugin API: patch_model, trainable, task_schedule, partial checkpoints, counts."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from clbench.engine import Engine
from clbench.method import Method, TaskState
from clbench.models import load_model
from clbench.registry import BENCHMARKS
from clbench.runner import config_layers, resolve


def _add_bias(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
    return output + module.extra_bias


class ImageBias(Method):
    """A minimal PEFT method: one added vector on the image features, the only thing that trains."""

    def patch_model(self, model: nn.Module) -> None:
        model.visual.extra_bias = nn.Parameter(torch.randn(model.visual.output_dim) * 0.01)
        model.visual.register_forward_hook(_add_bias)

    def trainable(self, task: TaskState) -> list[tuple[str, nn.Parameter]]:
        return [("visual.extra_bias", self.model.visual.extra_bias)]

    def task_schedule(self, task: TaskState, lr: float) -> tuple[float, int]:
        return 0.05, 3 + task.index


def run_bias(out: Path) -> Engine:
    cfg = resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, ["train.log_every=1"]))
    engine = Engine(cfg, BENCHMARKS.get("smoke"), ImageBias, out, device="cpu", quiet=True)
    engine.run()
    return engine


def test_only_declared_parameters_train_and_checkpoint_holds_only_them(tmp_path: Path) -> None:
    engine = run_bias(tmp_path)
    ckpt = torch.load(engine.run_dir.checkpoint_path, weights_only=True)
    # every backbone tensor is bit-identical to the pretrained one, so the checkpoint stores the added vector only
    assert set(ckpt["model"]) == {"visual.extra_bias"}
    torch.manual_seed(-1)  # the engine patches under seed * 1009 - 1: the vector it started from
    start = torch.randn(32) * 0.01
    assert not torch.equal(ckpt["model"]["visual.extra_bias"], start)  # it trained
    info = engine.run_dir.read_run()
    pretrained_total = sum(p.numel() for p in load_model("clbench-tiny", None).model.parameters())
    assert info["parameters"] == {"total": pretrained_total + 32, "trainable": 32, "added": 32}


def test_task_schedule_sets_each_tasks_lr_and_iterations(tmp_path: Path) -> None:
    engine = run_bias(tmp_path)
    logs = [json.loads(line) for line in (engine.run_dir.path / "log.jsonl").read_text().splitlines()]
    steps = [s for s in logs if "step" in s]
    for task in range(3):
        mine = [s for s in steps if s["task"] == task]
        assert [s["step"] for s in mine] == list(range(3 + task + 1))  # schedule N = 3 + task, + final step N
        # warm-up of the smoke schedule (5 steps): lr_0 = 0.05 * 1/5
        assert mine[0]["lr"] == 0.05 / 5


def test_resume_rebuilds_patched_modules_and_gives_the_same_matrix(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    reference = run_bias(tmp_path / "ref").run_dir.read_matrix().array()

    def stop(self: ImageBias, task: TaskState) -> None:
        if task.index == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ImageBias, "before_task", stop)
    cfg = resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, ["train.log_every=1"]))
    try:
        Engine(cfg, BENCHMARKS.get("smoke"), ImageBias, tmp_path / "cut", device="cpu", quiet=True).run()
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    resumed = Engine(cfg, BENCHMARKS.get("smoke"), ImageBias, tmp_path / "cut", device="cpu", quiet=True)
    assert resumed.run_dir.read_run()["completed_tasks"] == 2
    assert (resumed.run(resume=True).record.array() == reference).all()


class SGDImageBias(ImageBias):
    """ImageBias with its own optimizer (as DIKI's plain SGD); records what the engine handed it."""

    calls: list[tuple[list[str], float]] = []

    def optimizer(self, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        names = {id(p): n for n, p in self.model.named_parameters()}
        SGDImageBias.calls.append(([names[id(p)] for p in params], lr))
        return torch.optim.SGD(params, lr=lr)


def test_a_methods_own_optimizer_steps_its_declared_parameters(tmp_path: Path) -> None:
    SGDImageBias.calls = []
    cfg = resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, ["train.log_every=1"]))
    engine = Engine(cfg, BENCHMARKS.get("smoke"), SGDImageBias, tmp_path / "sgd", device="cpu", quiet=True)
    engine.run()
    assert SGDImageBias.calls == [(["visual.extra_bias"], 0.05)] * 3  # once per task, its declared parameters
    sgd = torch.load(engine.run_dir.checkpoint_path, weights_only=True)["model"]["visual.extra_bias"]
    adamw = torch.load(run_bias(tmp_path / "adamw").run_dir.checkpoint_path, weights_only=True)["model"]
    assert not torch.allclose(sgd, adamw["visual.extra_bias"], atol=1e-4)  # the engine stepped the method's SGD
