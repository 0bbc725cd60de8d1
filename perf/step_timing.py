"""Shared pieces of the per-step perf scripts: a task, a step closure and interleaved median timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from clbench.benchmark import TaskSpec
from clbench.context import MethodContext
from clbench.method import Batch, Method, TaskState


def make_task(num_classes: int, steps: int) -> TaskState:
    names = tuple(f"class {i}" for i in range(num_classes))
    spec = TaskSpec(name="perf", class_names=names, templates=("a photo of a {}.",))
    return TaskState(index=0, spec=spec, num_tasks=1, steps=steps, train_class_names=names, seen_class_names=names)


def step_fn(method: Method, optimizer: torch.optim.Optimizer, ctx: MethodContext, task: TaskState,
            batches: list[Batch]) -> Callable[[int], None]:
    """One engine-style iteration: zero grads, the method's step under autocast, optimizer step, after_step."""
    def run(step: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            method.training_step(batches[step % len(batches)], task, step)
        optimizer.step()
        method.after_step(task, step)

    return run


def time_interleaved(runners: dict[str, Callable[[int], None]], warmup: int, steps: int,
                     device: torch.device) -> dict[str, float]:
    """Median seconds per step of each runner, stepping them in turn so machine drift hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for step in range(warmup + steps):
        for kind, run in runners.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(step)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= warmup:
                times[kind].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}
