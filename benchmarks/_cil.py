"""Shared by the class-incremental families (CIFAR100, TinyImageNet): class splits into per-step tasks."""

from __future__ import annotations

from collections.abc import Sequence

from clbench.benchmark import TaskSpec

from .classnames.cifar100 import CIL_TEMPLATE


def step_sizes(total: int, steps: int, base: int = 0) -> list[int]:
    """Classes per task: an optional ``base`` task, then ``steps`` equal steps covering the rest exactly."""
    rest = total - base
    if steps <= 0 or rest % steps:
        raise ValueError(f"{rest} classes do not split into {steps} equal steps")
    return ([base] if base else []) + [rest // steps] * steps


def cil_tasks(ordered_names: Sequence[str], sizes: Sequence[int]) -> list[TaskSpec]:
    """One task per step, holding the next ``sizes[i]`` class names of the class order."""
    if sum(sizes) != len(ordered_names):
        raise ValueError(f"steps cover {sum(sizes)} classes, the class order has {len(ordered_names)}")
    tasks, start = [], 0
    for i, size in enumerate(sizes):
        names = tuple(ordered_names[start:start + size])
        tasks.append(TaskSpec(name=f"step{i + 1}", class_names=names, templates=(CIL_TEMPLATE,)))
        start += size
    return tasks
