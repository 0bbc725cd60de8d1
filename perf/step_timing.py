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


def random_batches(batch_size: int, num_classes: int, image_size: int, device: torch.device,
                   generator: torch.Generator, count: int = 4) -> list[Batch]:
    """A few random task batches, cycled by the step closures (data loading is not what these scripts time)."""
    return [Batch(torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device),
                  torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)) for _ in range(count)]


def compare(kinds: list[str], build: Callable[[str], tuple[Method, torch.optim.Optimizer, MethodContext]],
            task: TaskState, batches: list[Batch], warmup: int, steps: int, device: torch.device,
            header: str) -> dict[str, float]:
    """Build each variant, time their steps interleaved, print ms/step and the ratio to the first variant."""
    runners = {}
    for kind in kinds:
        method, optimizer, ctx = build(kind)
        method.before_task(task)
        runners[kind] = step_fn(method, optimizer, ctx, task, batches)
    median = time_interleaved(runners, warmup, steps, device)
    print(header)
    width = max(len(k) for k in kinds) + 1
    for kind in kinds:
        print(f"  {kind:{width}s} {1000 * median[kind]:8.1f} ms/step   {median[kind] / median[kinds[0]]:5.2f}x {kinds[0]}")
    return median


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
